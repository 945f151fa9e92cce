//! The library's layering, checked from its source: the GPU executor
//! (`src/gpu/`) and the CPU executor (`src/cpu.rs`) stand side by side
//! under `model.rs`, so neither may reach up into `model`, `bench` or
//! the jobs built on them; and the modules inside `src/gpu/` import each
//! other without a cycle. References are read from `crate::…` and
//! `super::…` paths in code (comments are skipped), with names re-exported
//! by `gpu/mod.rs` and `lib.rs` resolved to the module that defines them.
//! Needs no GPU.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules the executors must not import.
const ABOVE_EXECUTORS: &[&str] = &[
    "model",
    "bench",
    "pipelines",
    "embed",
    "batch",
    "serve",
    "infer",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Module path of a file under `src/`: `gpu/spec/linear.rs` → [gpu, spec,
/// linear], `gpu/mod.rs` → [gpu], `lib.rs` → [].
fn module_path(rel: &Path) -> Vec<String> {
    let mut segs: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(segs.last().map(String::as_str), Some("mod" | "lib")) {
        segs.pop();
    }
    segs
}

/// Code without comments (line comments, doc comments and block comments).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut in_block = false;
    for line in text.lines() {
        let mut l = line;
        if in_block {
            match l.find("*/") {
                Some(i) => {
                    l = &l[i + 2..];
                    in_block = false;
                }
                None => continue,
            }
        }
        if let Some(i) = l.find("/*") {
            in_block = !l[i..].contains("*/");
            l = &l[..i];
        }
        let l = match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        };
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Paths after each occurrence of `prefix` (e.g. `crate::`): the
/// identifiers separated by `::`, a trailing `{…}` group expanded into one
/// path per top-level item.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(i) = code[from..].find(prefix) {
        let start = from + i;
        from = start + prefix.len();
        // `super::` inside `crate::a::super` cannot occur; skip identifier tails.
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let mut segs = Vec::new();
        let mut j = from;
        loop {
            let rest = &code[j..];
            if rest.starts_with('{') {
                // One path per item of the group (only its first segment).
                let end = rest.find('}').unwrap_or(rest.len());
                for item in rest[1..end].split(',') {
                    let first: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !first.is_empty() {
                        let mut p = segs.clone();
                        p.push(first);
                        out.push(p);
                    }
                }
                break;
            }
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if ident.is_empty() {
                if !segs.is_empty() {
                    out.push(segs.clone());
                }
                break;
            }
            j += ident.len();
            segs.push(ident);
            if code[j..].starts_with("::") {
                j += 2;
            } else {
                out.push(segs.clone());
                break;
            }
        }
    }
    out
}

/// `pub use child::…::{A, B}` lines of a module root: name → child.
fn reexports(code: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for stmt in code.split(';') {
        let s = stmt.trim();
        let Some(rest) = s.strip_prefix("pub use ") else {
            continue;
        };
        let child: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let names: Vec<String> = match rest.find('{') {
            Some(i) => rest[i + 1..rest.rfind('}').unwrap_or(rest.len())]
                .split(',')
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
            None => vec![rest.rsplit("::").next().unwrap_or("").trim().to_string()],
        };
        for n in names {
            let n = n.rsplit(" as ").next().unwrap_or(&n).trim().to_string();
            map.insert(n, child.clone());
        }
    }
    map
}

struct Crate {
    /// (module path, code) per file.
    files: Vec<(Vec<String>, String)>,
    gpu_children: BTreeSet<String>,
    gpu_reexports: BTreeMap<String, String>,
    root_reexports: BTreeMap<String, String>,
}

impl Crate {
    fn read() -> Crate {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut paths = Vec::new();
        rust_files(&src, &mut paths);
        let mut files = Vec::new();
        for p in paths {
            let rel = p.strip_prefix(&src).expect("under src").to_path_buf();
            if rel.starts_with("cli") {
                continue; // the binary: its `crate` is not the library
            }
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{e}"));
            files.push((module_path(&rel), code_of(&text)));
        }
        let code = |path: &[&str]| {
            files
                .iter()
                .find(|(m, _)| m.iter().map(String::as_str).eq(path.iter().copied()))
                .map(|(_, c)| c.clone())
                .unwrap_or_else(|| panic!("no module {path:?}"))
        };
        let gpu = code(&["gpu"]);
        let gpu_children = gpu
            .lines()
            .filter_map(|l| {
                let l = l.trim().trim_start_matches("pub ");
                l.strip_prefix("mod ")?
                    .strip_suffix(';')
                    .map(str::to_string)
            })
            .collect();
        Crate {
            gpu_reexports: reexports(&gpu),
            root_reexports: reexports(&code(&[])),
            gpu_children,
            files,
        }
    }

    /// The node a full path (from the crate root) lands in: `gpu::<child>`
    /// inside the executor, else the top-level module.
    fn node(&self, path: &[String]) -> Option<String> {
        let first = path.first()?;
        if first == "gpu" {
            let second = path.get(1)?;
            let child = if self.gpu_children.contains(second) {
                second.clone()
            } else {
                self.gpu_reexports.get(second)?.clone()
            };
            return Some(format!("gpu::{child}"));
        }
        if first.chars().next()?.is_uppercase() {
            return self.root_reexports.get(first).cloned();
        }
        Some(first.clone())
    }

    /// The node of a file.
    fn file_node(&self, module: &[String]) -> String {
        self.node(module).unwrap_or_else(|| "lib".into())
    }

    /// Edges between distinct nodes, with one example of each.
    fn edges(&self) -> BTreeMap<(String, String), String> {
        let mut edges = BTreeMap::new();
        for (module, code) in &self.files {
            let from = self.file_node(module);
            let mut targets = Vec::new();
            for p in paths_after(code, "crate::") {
                targets.push(p);
            }
            for p in paths_after(code, "super::") {
                // `super` of a module root's file is its parent; of a leaf
                // file the module containing it.
                let mut full: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
                full.extend(p);
                targets.push(full);
            }
            for t in targets {
                if let Some(to) = self.node(&t) {
                    if to != from {
                        edges
                            .entry((from.clone(), to))
                            .or_insert_with(|| format!("{}: {}", module.join("::"), t.join("::")));
                    }
                }
            }
        }
        edges
    }
}

#[test]
fn the_reader_sees_known_imports() {
    // Guards the checks below against a parser that finds nothing.
    let edges = Crate::read().edges();
    for (from, to) in [
        ("gpu::plan", "gpu::spec"),
        ("gpu::runner", "gpu::plan"),
        ("gpu::harness", "gpu::record"),
        ("model", "gpu::runner"),
        ("cpu", "kernels"),
    ] {
        assert!(
            edges.contains_key(&(from.to_string(), to.to_string())),
            "expected an import {from} → {to}; found {:?}",
            edges.keys().collect::<Vec<_>>()
        );
    }
}

#[test]
fn the_executors_do_not_reach_above_themselves() {
    let edges = Crate::read().edges();
    let bad: Vec<String> = edges
        .iter()
        .filter(|((from, to), _)| {
            (from.starts_with("gpu") || from == "cpu") && ABOVE_EXECUTORS.contains(&to.as_str())
        })
        .map(|((from, to), at)| format!("{from} → {to} ({at})"))
        .collect();
    assert!(bad.is_empty(), "upward imports:\n{}", bad.join("\n"));
}

#[test]
fn gpu_modules_import_each_other_without_a_cycle() {
    let edges = Crate::read().edges();
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        if from.starts_with("gpu::") && to.starts_with("gpu::") {
            graph.entry(from.clone()).or_default().push(to.clone());
        }
    }
    // Depth-first search; a back edge is a cycle.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, Vec<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let i = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[i..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    let nodes: Vec<String> = graph.keys().cloned().collect();
    for n in nodes {
        if !state.contains_key(&n) {
            let mut stack = Vec::new();
            if let Some(cycle) = visit(&n, &graph, &mut state, &mut stack) {
                let why: Vec<String> = cycle
                    .windows(2)
                    .map(|w| edges[&(w[0].clone(), w[1].clone())].clone())
                    .collect();
                panic!(
                    "import cycle {}\n  via {}",
                    cycle.join(" → "),
                    why.join("\n  via ")
                );
            }
        }
    }
}
