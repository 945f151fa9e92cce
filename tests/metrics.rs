//! Metric functions on hand-checked cases.

use bert_wgpu::metrics::{
    accuracy, get_entities, max_over_golds, seqeval, squad, squad_exact, squad_f1, squad_normalize,
    Chunk,
};

fn chunk(kind: &str, start: usize, end: usize) -> Chunk {
    Chunk {
        kind: kind.into(),
        start,
        end,
    }
}

fn close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-12, "got {got}, want {want}");
}

#[test]
fn accuracy_counts_equal_positions() {
    close(accuracy(&[1, 0, 2, 2], &[1, 1, 2, 0]), 0.5);
    close(accuracy::<usize>(&[], &[]), 0.0);
}

#[test]
fn get_entities_as_seqeval() {
    // seqeval's own docstring example.
    assert_eq!(
        get_entities(&["B-PER", "I-PER", "O", "B-LOC"]),
        vec![chunk("PER", 0, 1), chunk("LOC", 3, 3)]
    );
    // Lenient IOB2: an I- after O opens a chunk; an I- of another type ends
    // the previous chunk and opens a new one; B- after B- splits.
    assert_eq!(
        get_entities(&["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "B-LOC", "I-ORG"]),
        vec![
            chunk("PER", 0, 1),
            chunk("LOC", 3, 3),
            chunk("LOC", 4, 4),
            chunk("LOC", 5, 5),
            chunk("ORG", 6, 6)
        ]
    );
    assert_eq!(
        get_entities(&["B-PER", "I-LOC", "I-LOC"]),
        vec![chunk("PER", 0, 0), chunk("LOC", 1, 2)]
    );
    // A chunk running to the end of the sequence is closed.
    assert_eq!(
        get_entities(&["O", "B-ORG", "I-ORG"]),
        vec![chunk("ORG", 1, 2)]
    );
    assert!(get_entities(&["O", "O"]).is_empty());
}

#[test]
fn seqeval_micro_scores_by_hand() {
    // gold: s1 = B-PER I-PER O B-LOC   -> PER(0,1) LOC(3,3)
    //       s2 = B-ORG O               -> ORG(5,5)   (sentences joined with an O)
    // pred: s1 = B-PER I-PER O I-LOC   -> PER(0,1) LOC(3,3)  (I- after O opens a chunk)
    //       s2 = B-PER O               -> PER(5,5)
    // correct = {PER(0,1), LOC(3,3)} = 2; P = 2/3, R = 2/3, F1 = 2/3.
    let gold = vec![vec!["B-PER", "I-PER", "O", "B-LOC"], vec!["B-ORG", "O"]];
    let pred = vec![vec!["B-PER", "I-PER", "O", "I-LOC"], vec!["B-PER", "O"]];
    let s = seqeval(&gold, &pred);
    assert_eq!((s.gold, s.predicted, s.correct), (3, 3, 2));
    close(s.precision, 2.0 / 3.0);
    close(s.recall, 2.0 / 3.0);
    close(s.f1, 2.0 / 3.0);
}

#[test]
fn seqeval_readme_example() {
    // From seqeval's README: f1 0.50, precision 0.50, recall 0.50.
    // gold MISC(3,5) PER(8,9); pred MISC(2,5) PER(8,9) -> 1 of 2 each way.
    let gold = vec![
        vec!["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"],
        vec!["B-PER", "I-PER", "O"],
    ];
    let pred = vec![
        vec!["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"],
        vec!["B-PER", "I-PER", "O"],
    ];
    let s = seqeval(&gold, &pred);
    close(s.precision, 0.5);
    close(s.recall, 0.5);
    close(s.f1, 0.5);
}

#[test]
fn seqeval_zero_division_is_zero() {
    // Nothing predicted: precision 0 (sklearn's zero_division default), recall 0.
    let s = seqeval(&[vec!["B-PER"]], &[vec!["O"]]);
    assert_eq!((s.precision, s.recall, s.f1), (0.0, 0.0, 0.0));
    // Nothing to find and nothing found.
    let s = seqeval(&[vec!["O"]], &[vec!["O"]]);
    assert_eq!((s.precision, s.recall, s.f1), (0.0, 0.0, 0.0));
    // Entities do not cross sentences: B-PER | I-PER are two chunks.
    let s = seqeval(
        &[vec!["B-PER"], vec!["I-PER"]],
        &[vec!["B-PER"], vec!["I-PER"]],
    );
    assert_eq!((s.gold, s.correct), (2, 2));
}

#[test]
fn squad_normalisation_corner_cases() {
    assert_eq!(squad_normalize("The Eiffel Tower!"), "eiffel tower");
    assert_eq!(squad_normalize("An apple a day"), "apple day");
    // Articles only as whole words.
    assert_eq!(
        squad_normalize("theater anthem Then"),
        "theater anthem then"
    );
    // Punctuation is removed before articles: "a-b" -> "ab", "(the)" -> "" .
    assert_eq!(squad_normalize("a-b (the)"), "ab");
    // `_` is punctuation in Python's string.punctuation.
    assert_eq!(squad_normalize("the_cat"), "thecat");
    assert_eq!(squad_normalize("  Paris,\n\tFrance  "), "paris france");
    // Non-ASCII letters stay (lower-cased), non-ASCII punctuation stays.
    assert_eq!(squad_normalize("Ça va — Zürich"), "ça va — zürich");
    assert_eq!(squad_normalize("A"), "");
}

#[test]
fn squad_em_and_f1_by_hand() {
    close(squad_exact("the Paris", "Paris."), 1.0);
    close(squad_exact("Paris, France", "Paris"), 0.0);
    // pred tokens [cat, sat], gold [cat, sat, down]: P = 1, R = 2/3, F1 = 0.8
    close(squad_f1("the cat sat", "a cat sat down"), 0.8);
    // Repeated tokens count by multiplicity: pred [a.. ] -> [paris, paris],
    // gold [paris]: common 1, P = 1/2, R = 1, F1 = 2/3.
    close(squad_f1("Paris Paris", "paris"), 2.0 / 3.0);
    close(squad_f1("London", "Paris"), 0.0);
    // v1.1: both empty after normalisation -> EM 1, F1 0.
    close(squad_exact("the", "a"), 1.0);
    close(squad_f1("the", "a"), 0.0);
    // Max over gold answers.
    close(
        max_over_golds(squad_f1, "famous writer", &["A famous writer", "writer"]),
        1.0,
    );
    close(max_over_golds(squad_exact, "x", &[] as &[&str]), 0.0);
    // Dataset: EM (1 + 0)/2, F1 (1 + 0)/2, in percent.
    let s = squad(&[
        ("Paris".to_string(), vec!["paris", "in Paris"]),
        ("London".to_string(), vec!["Paris"]),
    ]);
    close(s.exact_match, 50.0);
    close(s.f1, 50.0);
}
