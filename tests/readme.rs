//! Every `$ bert-wgpu …` example in README.md runs as printed and prints
//! exactly the output the README shows under it. The only substitution: the
//! all-MiniLM-L6-v2 folder (`~/.cache/bert-wgpu/all-MiniLM-L6-v2`) becomes
//! wherever the tests find it (`BERT_WGPU_MINILM`, see tests/common).

mod common;

use std::process::Command;

/// One README example: the command's arguments (after `bert-wgpu`) and the
/// expected stdout lines.
struct Example {
    line: usize,
    args: Vec<String>,
    output: Vec<String>,
}

/// Splits a shell command line: whitespace-separated words, '…' and "…"
/// quoting (no escapes inside single quotes; `\"` inside double quotes).
fn shell_words(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                cur.push(n);
                            }
                        }
                        _ => cur.push(c),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The examples: fenced blocks whose first line is `$ bert-wgpu …` (a
/// trailing `\` continues the command on the next line).
fn examples(readme: &str) -> Vec<Example> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("```")
            && lines
                .get(i + 1)
                .is_some_and(|l| l.starts_with("$ bert-wgpu "))
        {
            let start = i + 2; // 1-based line of the command
            let mut cmd = String::new();
            let mut j = i + 1;
            loop {
                let l = lines[j].strip_prefix("$ ").unwrap_or(lines[j]);
                match l.trim_end().strip_suffix('\\') {
                    Some(head) => {
                        cmd.push_str(head);
                        cmd.push(' ');
                        j += 1;
                    }
                    None => {
                        cmd.push_str(l);
                        break;
                    }
                }
            }
            let mut output = Vec::new();
            j += 1;
            while j < lines.len() && !lines[j].trim_start().starts_with("```") {
                output.push(lines[j].trim_end().to_string());
                j += 1;
            }
            let mut args = shell_words(&cmd);
            args.remove(0); // bert-wgpu
            out.push(Example {
                line: start,
                args,
                output,
            });
            i = j;
        }
        i += 1;
    }
    out
}

#[test]
fn shell_words_handles_quotes() {
    assert_eq!(
        shell_words(r#"qa --x "a b" 'c d' e"f"g "h\"i""#),
        vec!["qa", "--x", "a b", "c d", "efg", "h\"i"]
    );
}

#[test]
fn every_readme_example_prints_what_the_readme_shows() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let examples = examples(&readme);
    assert!(
        examples.len() >= 6,
        "expected the README's task examples, found {}",
        examples.len()
    );
    let minilm = common::minilm_dir();
    let mut failures = Vec::new();
    for ex in &examples {
        let args: Vec<String> = ex
            .args
            .iter()
            .map(|a| {
                if a == "~/.cache/bert-wgpu/all-MiniLM-L6-v2" {
                    minilm.to_string_lossy().into_owned()
                } else {
                    a.clone()
                }
            })
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_bert-wgpu"))
            .current_dir(root)
            .env_remove("RUST_LOG")
            .env("HF_HUB_OFFLINE", "1")
            .args(&args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let got: Vec<String> = stdout.lines().map(|l| l.trim_end().to_string()).collect();
        if !out.status.success() || got != ex.output {
            failures.push(format!(
                "README.md line {}: bert-wgpu {}\n--- README shows\n{}\n--- it printed (exit {:?})\n{}{}",
                ex.line,
                ex.args.join(" "),
                ex.output.join("\n"),
                out.status.code(),
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    println!("{} README examples ran as printed", examples.len());
}

/// The main job of "The two commands": `embed "I love this movie!"` with no
/// `--model` finds the folder scripts/fetch_minilm.sh writes and prints the
/// embedding the README's embed example shows.
#[test]
fn the_main_job_uses_the_fetched_model_by_default() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    assert!(
        readme.contains(
            r#"scripts/fetch_minilm.sh && cargo run --release -- embed "I love this movie!""#
        ),
        "README's first command changed; update this test"
    );
    let example = examples(&readme)
        .into_iter()
        .find(|e| e.args.first().is_some_and(|a| a == "embed"))
        .expect("README has an embed example");
    // fetch_minilm.sh writes $BERT_WGPU_CACHE/all-MiniLM-L6-v2: make such a
    // cache wherever the tests found the model.
    let minilm = common::minilm_dir();
    let cache = std::env::temp_dir().join(format!("bert-wgpu-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::create_dir_all(&cache).unwrap();
    let link = cache.join("all-MiniLM-L6-v2");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&minilm, &link).unwrap();
    #[cfg(not(unix))]
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::create_dir_all(&link).unwrap();
        std::fs::copy(minilm.join(f), link.join(f)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_bert-wgpu"))
        .current_dir(root)
        .env_remove("RUST_LOG")
        .env_remove("BERT_WGPU_MODEL")
        .env("HF_HUB_OFFLINE", "1")
        .env("BERT_WGPU_CACHE", &cache)
        .args(["embed", "I love this movie!"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect();
    assert_eq!(got, example.output);
}
