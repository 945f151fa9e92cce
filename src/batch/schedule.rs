//! Which inputs of a window share a forward pass: sorted by (group,
//! length), cut under a token budget. Pure arithmetic, so it is tested on
//! its own.

/// How one prepared input batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Sequences it adds to a forward (QA: its windows; multiple choice:
    /// its options).
    pub sequences: usize,
    /// Its longest sequence in tokens (the batch pads to the longest).
    pub len: usize,
    /// Only inputs of one group share a forward (multiple choice: the
    /// number of options; `infer`: the line, which is a batch already).
    pub group: u64,
}

/// Limits of one forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Padded tokens per forward: sequences × longest.
    pub max_tokens: usize,
    /// Sequences per forward.
    pub max_sequences: usize,
    /// Real tokens over padded tokens that a batch of several inputs keeps
    /// at least (0: any padding). Padding is work thrown away: the CPU
    /// executor runs every padded position through every layer.
    pub min_fill: f32,
}

/// Cuts `shapes` into batches: indices sorted by (group, len, index), a new
/// batch whenever the group changes or adding the next input would pass a
/// limit (tokens, sequences, or the fill). An input over the limits on its
/// own runs alone.
pub fn plan(shapes: &[Shape], limits: Limits) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..shapes.len()).collect();
    order.sort_by_key(|&i| (shapes[i].group, shapes[i].len, i));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let (mut seqs, mut real, mut group) = (0usize, 0usize, None);
    for i in order {
        let s = shapes[i];
        if !cur.is_empty() {
            // Sorted ascending: this input is the batch's longest.
            let padded = (seqs + s.sequences) * s.len;
            let fits = group == Some(s.group)
                && seqs + s.sequences <= limits.max_sequences
                && padded <= limits.max_tokens
                && (real + s.sequences * s.len) as f32 >= limits.min_fill * padded as f32;
            if !fits {
                batches.push(std::mem::take(&mut cur));
                seqs = 0;
                real = 0;
            }
        }
        cur.push(i);
        seqs += s.sequences;
        real += s.sequences * s.len;
        group = Some(s.group);
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}
