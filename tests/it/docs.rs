//! The docs' runnable examples: every fenced block marked ` ```sh runnable ` in docs/*.md and README.md runs
//! against the sandbox, as an operator would type it. Per file: a fresh sandbox (a small college) and a
//! scratch directory with a SQLite store made by `zmsync init`; the sandbox's seven variables and
//! `DATABASE_URL` exported; the built binary first on `PATH` as `zmsync`; each block in file order with
//! `bash -euo pipefail`. A failing block fails the test with its file and line.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::doctor::small_sandbox;
use crate::support::Scratch;

/// One runnable block: where it starts (1-based line of the opening fence) and its text.
#[derive(Debug, PartialEq)]
struct Block {
    line: usize,
    code: String,
}

/// Blocks whose opening fence's info string has `runnable` as a word, e.g. ` ```sh runnable `.
fn runnable_blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(usize, bool, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None if trimmed.starts_with("```") => {
                let info = trimmed.trim_start_matches('`');
                open = Some((i + 1, info.split_whitespace().any(|w| w == "runnable"), String::new()));
            }
            None => {}
            Some((start, runnable, code)) => {
                if trimmed.starts_with("```") {
                    if *runnable {
                        out.push(Block { line: *start, code: std::mem::take(code) });
                    }
                    open = None;
                } else {
                    // Blocks may be indented inside a list item: drop the fence's indentation.
                    code.push_str(line.strip_prefix("   ").unwrap_or(line));
                    code.push('\n');
                }
            }
        }
    }
    out
}

fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    files.push(root.join("README.md"));
    files
}

#[test]
fn the_block_finder_takes_only_runnable_blocks() {
    let text =
        "a\n```sh runnable\nzmsync init\n```\n```sh\nrm -rf /\n```\n   ```sh runnable\n   zmsync doctor\n   ```\n";
    assert_eq!(
        runnable_blocks(text),
        vec![Block { line: 2, code: "zmsync init\n".into() }, Block { line: 8, code: "zmsync doctor\n".into() }]
    );
}

#[test]
fn runnable_doc_blocks_work_against_the_sandbox() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_zmsync")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut ran = 0;
    let mut failures = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let blocks = runnable_blocks(&text);
        if blocks.is_empty() {
            continue;
        }
        let sb = small_sandbox();
        let mut s = Scratch::new();
        for (k, v) in sb.env() {
            s = s.env(k, &v);
        }
        let url = s.db_url();
        let s = s.env("DATABASE_URL", &url).env("PATH", &path);
        s.run(&["init"]).ok();
        let name = file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(&file).display().to_string();
        for b in blocks {
            ran += 1;
            // A clean environment: the scratch's variables (sandbox, DATABASE_URL, PATH) and a few basics, so
            // nothing from the developer's shell (a real MOODLE_TOKEN…) leaks into a block.
            let mut cmd = Command::new("bash");
            cmd.args(["-euo", "pipefail", "-c", &b.code]).current_dir(s.path()).env_clear();
            for (k, v) in &s.env {
                cmd.env(k, v);
            }
            for keep in ["HOME", "LANG", "TMPDIR", "USER"] {
                if let Ok(v) = std::env::var(keep) {
                    cmd.env(keep, v);
                }
            }
            let out = cmd.output().expect("run bash");
            if !out.status.success() {
                failures.push(format!(
                    "{name}:{} exited {:?}\n--- block ---\n{}--- stdout ---\n{}--- stderr ---\n{}",
                    b.line,
                    out.status.code(),
                    b.code,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} runnable doc blocks failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(ran >= 10, "only {ran} runnable blocks found: did the marker change?");
}
