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

/// The repository's root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every text file under `dir` (recursively), skipping `target/`, `node_modules/` and hidden entries.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if std::fs::read_to_string(&p).is_ok() {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The targets of the Markdown links `[text](target)` in `text`, with their 1-based line.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((i + 1, after[..end].to_string()));
            rest = &after[end..];
        }
    }
    out
}

/// Paths into the repository quoted in backticks (`src/…`, `cron/…`, …), with their 1-based line. Patterns
/// (`000N_name.sql`, `*`, `<arch>`) are left out: they name no one file.
fn quoted_repo_paths(text: &str) -> Vec<(usize, String)> {
    const TOP: &[&str] = &[
        "src/",
        "crates/",
        "tests/",
        "benches/",
        "cron/",
        "pkg/",
        "fixtures/",
        "migrations/",
        "moodle-plugin/",
        "docs/",
    ];
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for (k, piece) in line.split('`').enumerate() {
            let is_pattern = piece.contains(['*', '<', '{', ' ']) || piece.contains("000N");
            if k % 2 == 1 && !is_pattern && TOP.iter().any(|t| piece.starts_with(t)) {
                out.push((i + 1, piece.to_string()));
            }
        }
    }
    out
}

#[test]
fn the_link_finders_find_links_and_quoted_paths() {
    let text = "see [a](a.md) and [b](https://x.org/b) \n`src/main.rs`, `migrations/*/000N_x.sql`, `zmsync`";
    assert_eq!(link_targets(text), vec![(1, "a.md".to_string()), (1, "https://x.org/b".to_string())]);
    assert_eq!(quoted_repo_paths(text), vec![(2, "src/main.rs".to_string())]);
}

/// Every relative link and every quoted repository path in docs/*.md and README.md names a file that exists.
#[test]
fn doc_links_and_paths_name_files_in_the_repository() {
    let mut broken = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(root()).unwrap_or(&file).display().to_string();
        let dir = file.parent().unwrap_or(root());
        for (line, target) in link_targets(&text) {
            let target = target.split('#').next().unwrap_or("").trim();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if !dir.join(target).exists() {
                broken.push(format!("{name}:{line}: link to {target}"));
            }
        }
        for (line, path) in quoted_repo_paths(&text) {
            if !root().join(path.trim_end_matches('/')).exists() {
                broken.push(format!("{name}:{line}: `{path}`"));
            }
        }
    }
    assert!(broken.is_empty(), "docs name files that do not exist:\n{}", broken.join("\n"));
}

/// The project's working notes (domain, design, API references) are not in the repository: what is shipped
/// states the fact itself or links a page that is.
#[test]
fn shipped_files_point_at_no_file_outside_the_repository() {
    const OUTSIDE: &[&str] = &["domain.md", "design.md", "reference/", "reference §"];
    let mut files = vec![root().join("README.md"), root().join(".env.example")];
    for dir in ["docs", "migrations", "cron", "pkg", "moodle-plugin"] {
        files.extend(files_under(&root().join(dir)));
    }
    let mut hits = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            if let Some(word) = OUTSIDE.iter().find(|w| line.contains(*w)) {
                hits.push(format!("{}:{}: {word}", file.strip_prefix(root()).unwrap_or(file).display(), i + 1));
            }
        }
    }
    assert!(files.len() > 20, "only {} files scanned", files.len());
    assert!(hits.is_empty(), "files outside the repository named:\n{}", hits.join("\n"));
}

/// Every environment variable the code reads (a `ZOHO_*`, `MOODLE_*` or `ZMSYNC_*` name in a string literal
/// of the product's source, and `DATABASE_URL`) is in `.env.example` and in docs/configuration.md.
#[test]
fn env_example_and_configuration_list_every_variable_the_code_reads() {
    let mut vars = std::collections::BTreeSet::from(["DATABASE_URL".to_string()]);
    let mut sources = files_under(&root().join("src"));
    sources.extend(files_under(&root().join("crates")));
    for file in sources.iter().filter(|p| p.extension().is_some_and(|x| x == "rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        for piece in text.split('"').skip(1).step_by(2) {
            let prefixed =
                ["ZOHO_", "MOODLE_", "ZMSYNC_"].iter().any(|p| piece.len() > p.len() && piece.starts_with(p));
            let shaped = piece.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if prefixed && shaped && !piece.starts_with("ZMSYNC_TEST_") && !piece.starts_with("ZMSYNC_BENCH_") {
                vars.insert(piece.to_string());
            }
        }
    }
    assert!(vars.len() >= 12, "only {vars:?} found: did the source move?");
    let example = std::fs::read_to_string(root().join(".env.example")).unwrap();
    let configuration = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let listed = |v: &str| example.lines().any(|l| l.trim_start_matches(['#', ' ']).starts_with(&format!("{v}=")));
    let missing: Vec<_> = vars.iter().filter(|v| !listed(v)).collect();
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");
    let undocumented: Vec<_> = vars.iter().filter(|v| !configuration.contains(&format!("`{v}`"))).collect();
    assert!(undocumented.is_empty(), "docs/configuration.md lacks {undocumented:?}");
    // Secrets are empty in the example.
    for secret in zmsync::config::SECRET_VARS {
        assert!(example.lines().any(|l| l == format!("{secret}=")), "{secret} is not listed empty in .env.example");
    }
}

/// docs/README.md is the index: it links every page of docs/.
#[test]
fn the_docs_index_links_every_page() {
    let index = std::fs::read_to_string(root().join("docs/README.md")).unwrap();
    let linked: Vec<String> = link_targets(&index).into_iter().map(|(_, t)| t).collect();
    let missing: Vec<String> = doc_files()
        .iter()
        .filter(|p| p.parent() == Some(&root().join("docs")))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .filter(|n| n != "README.md" && !linked.contains(n))
        .collect();
    assert!(missing.is_empty(), "docs/README.md does not link {missing:?}");
}
