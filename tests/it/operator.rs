//! The operator's view (issue #22) end to end against the sandbox: `runs`, `runs show`, `history`, `report` and
//! `revert`, on SQLite and (when `ZMSYNC_TEST_DATABASE_URL` is set) PostgreSQL.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};
use zmsync::store::Store;

use crate::support::{PgSchema, Run, Scratch};

fn sandbox(students: usize, state: State, per_record_ms: u64) -> Sandbox {
    Sandbox::start(SandboxOptions {
        generate: GenOptions { students, state, seed: 7, ..GenOptions::default() },
        per_record_ms,
        ..SandboxOptions::default()
    })
    .expect("sandbox starts")
}

fn scratch(sb: &Sandbox, db: Option<&str>) -> Scratch {
    let mut s = Scratch::new();
    for (k, v) in sb.env() {
        s = s.env(k, &v);
    }
    if let Some(url) = db {
        s = s.env("DATABASE_URL", url);
    }
    s
}

fn json_of(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", r.stdout, r.stderr))
}

fn store_of(s: &Scratch, db: Option<&str>) -> Box<dyn Store> {
    zmsync::store::open(&db.map(str::to_string).unwrap_or_else(|| s.db_url())).expect("open the store")
}

fn writes(sb: &Sandbox) -> u64 {
    sb.moodle().stats().records_written.values().sum::<u64>() + sb.zoho().stats().records_written.values().sum::<u64>()
}

/// A fresh diff as rows (every column but the run id), sorted: the state of both sides against the base.
fn diff_rows(s: &Scratch) -> Vec<String> {
    let r = s.run(&["diff", "--format", "csv"]).ok();
    let mut rows: Vec<String> = r
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_once(',').map(|(_, rest)| rest.to_string()).unwrap_or_default())
        .filter(|l| !l.is_empty())
        .collect();
    rows.sort();
    rows
}

fn sync(s: &Scratch) -> Value {
    let r = s.run(&["--json", "sync", "--all", "--allow-mass-change"]);
    assert!(r.code == 0 || r.code == 3, "sync: {}\n{}", r.stdout, r.stderr);
    json_of(&r)
}

/// `revert RUN --out FILE` then `apply FILE`: the apply run's summary.
fn revert_and_apply(s: &Scratch, run: i64, extra: &[&str]) -> (Value, Value) {
    let file = format!("undo-{run}.json");
    let mut args = vec!["--json", "revert", &*Box::leak(run.to_string().into_boxed_str()), "--out", &file];
    args.extend_from_slice(extra);
    let rv = json_of(&s.run(&args).ok());
    let mut apply = vec!["--json", "apply", file.as_str()];
    apply.extend_from_slice(extra);
    let r = s.run(&apply);
    assert!(r.code == 0 || r.code == 3, "apply of the revert: {}\n{}", r.stdout, r.stderr);
    (rv, json_of(&r))
}

// ---- runs and runs show ----------------------------------------------------------------------------------

fn runs_after_full_failed_and_interrupted(db: Option<&str>) {
    let sb = sandbox(40, State::Empty, 3);
    let s = scratch(&sb, db);
    // 1. Killed inside apply (measured in writes, not time).
    let before = writes(&sb);
    let mut child = s
        .cmd(&["sync", "--all"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while writes(&sb) < before + 5 && t.elapsed() < Duration::from_secs(60) && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(child.try_wait().unwrap().is_none(), "the first run finished before it could be killed");
    child.kill().unwrap();
    let _ = child.wait();
    // 2. A full run that completes (and finishes the killed run's work).
    sb.moodle().set_per_record_ms(0);
    sb.zoho().configure(|_| {});
    let full = sync(&s);
    // 3. A failed run: Moodle refuses the token.
    let r = s.cmd(&["sync", "--all"]).env("MOODLE_TOKEN", "not-the-token").output().unwrap();
    assert_ne!(r.status.code(), Some(0), "a run with a bad token fails");

    let list = json_of(&s.run(&["--json", "runs"]).ok());
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    let status: Vec<&str> = list.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["failed", "completed", "interrupted"], "newest first: {list:?}");
    let killed = list[2]["id"].as_i64().unwrap();
    assert!(list[2]["ops"]["applied"].as_i64().unwrap_or(0) + list[2]["ops"]["planned"].as_i64().unwrap_or(0) > 0);
    assert_eq!(list[1]["id"], full["run_id"]);
    assert_eq!(list[1]["ops"]["applied"].as_u64(), full["applied"].as_u64());
    assert!(list[1]["zoho_calls"].as_u64().unwrap() > 0 && list[1]["moodle_calls"].as_u64().unwrap() > 0);
    assert!(list[1]["duration_s"].as_f64().unwrap() > 0.0);

    let text = s.run(&["runs"]).ok().stdout;
    for w in ["interrupted", "completed", "failed", "API calls"] {
        assert!(text.contains(w), "{w} in\n{text}");
    }
    // runs show: the killed run says it never finished; the failed one its error; the full one its reports.
    let shown = s.run(&["runs", "show", &killed.to_string()]).ok().stdout;
    assert!(shown.contains("interrupted") && shown.contains("never finished"), "{shown}");
    let failed = json_of(&s.run(&["--json", "runs", "show", &list[0]["id"].to_string()]).ok());
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().is_some_and(|e| !e.is_empty()), "{failed}");
    let done = json_of(&s.run(&["--json", "runs", "show", &list[1]["id"].to_string()]).ok());
    assert!(done["report"].as_str().is_some_and(|p| std::path::Path::new(p).exists()), "{done}");
    assert!(done["html"].as_str().is_some_and(|p| p.ends_with(".html") && std::path::Path::new(p).exists()));
    assert!(done["failures"].as_array().unwrap().is_empty());
    // A run that does not exist is a usage error.
    s.run(&["runs", "show", "999"]).code(2);
}

#[test]
fn runs_show_full_failed_and_interrupted_runs() {
    runs_after_full_failed_and_interrupted(None);
}

#[test]
fn runs_show_full_failed_and_interrupted_runs_on_postgres() {
    let Some(pg) = PgSchema::create() else {
        eprintln!("SKIPPED: runs on PostgreSQL (set ZMSYNC_TEST_DATABASE_URL)");
        return;
    };
    runs_after_full_failed_and_interrupted(Some(&pg.url));
}

// ---- issues by cause -------------------------------------------------------------------------------------

#[test]
fn run_summary_counts_policy_skips_apart_and_groups_issues_by_cause() {
    let sb = sandbox(300, State::Empty, 0);
    let s = scratch(&sb, None);
    let v = sync(&s);
    let sum = &v["issue_summary"];
    let groups = sum["groups"].as_array().unwrap();
    let grouped: u64 = groups.iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert_eq!(v["issues"].as_u64().unwrap(), grouped, "issues are the grouped ones: {sum}");
    assert!(sum["skipped_by_policy"].as_u64().unwrap() > 0, "inactive students' records are skipped by policy");
    // Every record skipped by policy waits for a student who is not active in Zoho; the issues' records are not.
    let store = store_of(&s, None);
    let inactive: HashSet<String> = store
        .records(zmsync::model::Kind::Student)
        .unwrap()
        .into_iter()
        .filter(|r| r.field("suspended") == &json!(true))
        .map(|r| r.key)
        .collect();
    for g in groups {
        assert!(g["command"].as_str().unwrap().starts_with(&format!("zmsync runs show {} --issues ", v["run_id"])));
        if g["cause"] == "enrollment.unresolved" {
            for r in g["records"].as_array().unwrap() {
                let student = r["key"].as_str().unwrap().split('|').next().unwrap();
                assert!(!inactive.contains(student), "{r} waits for an inactive student: skipped by policy");
            }
        }
        // The command lists exactly the group's records.
        let cmd: Vec<&str> = g["command"].as_str().unwrap().split_whitespace().skip(1).collect();
        let listed = json_of(&s.run(&[&["--json"][..], &cmd].concat()).ok());
        assert_eq!(listed["count"], g["count"]);
        assert_eq!(listed["records"].as_array().unwrap().len() as u64, g["count"].as_u64().unwrap());
    }
    let text = s.run(&["runs", "show", &v["run_id"].to_string()]).ok().stdout;
    assert!(text.contains("skipped by policy") && text.contains("--issues"), "{text}");
}

// ---- history ---------------------------------------------------------------------------------------------

fn history_after_drift_repair(db: Option<&str>) {
    let sb = sandbox(60, State::Empty, 0);
    let s = scratch(&sb, db);
    sync(&s);
    assert!(!sb.drift(12).is_empty());
    // What Moodle and Zoho hold before the repair, per (key, field).
    let before = json_of(&s.run(&["--json", "diff", "--format", "json"]).ok());
    let mut moodle_had: BTreeMap<(String, String), Value> = BTreeMap::new();
    for r in before["rows"].as_array().into_iter().flatten() {
        if let (Some(k), Some(f)) = (r["key"].as_str(), r["field"].as_str()) {
            moodle_had.insert((k.to_string(), f.to_string()), r["moodle_value"].clone());
        }
    }
    let run = sync(&s)["run_id"].as_i64().unwrap();
    let store = store_of(&s, db);
    let rows = store.journal_rows(run).unwrap();
    let upd = rows
        .iter()
        .find(|r| r.entry.entity == "student" && r.entry.op == "update" && r.entry.outcome == "applied")
        .expect("the drift repair updated a student");
    let key = upd.entry.key.clone();
    let h = json_of(&s.run(&["--json", "history", &key]).ok());
    let events = h["events"].as_array().unwrap();
    assert!(!events.is_empty());
    // Newest first.
    let runs: Vec<i64> = events.iter().map(|e| e["run_id"].as_i64().unwrap()).collect();
    assert!(runs.windows(2).all(|w| w[0] >= w[1]), "{runs:?}");
    let repair = events.iter().find(|e| e["run_id"] == run && e["action"] == "update").expect("the repair");
    assert_eq!(repair["outcome"], "applied");
    let changes = repair["changes"].as_array().unwrap();
    assert!(!changes.is_empty());
    for c in changes {
        let field = c["field"].as_str().unwrap();
        assert_ne!(c["old"], c["new"], "{c}");
        assert_eq!(c["new"], upd.entry.changes.as_ref().unwrap()[field]);
        if let Some(had) = moodle_had.get(&(key.clone(), field.to_string())) {
            let old = zmsync::reconcile::report::cell(&c["old"]);
            assert_eq!(
                old,
                had.as_str().unwrap_or(""),
                "the old value is what Moodle held before the repair ({field})"
            );
        }
    }
    // The first sync's create is there too, older; by email and id number it is the same history.
    assert!(events.iter().any(|e| e["action"] == "create" && e["run_id"].as_i64() < Some(run)));
    let student = store.records(zmsync::model::Kind::Student).unwrap().into_iter().find(|r| r.key == key).unwrap();
    for other in [student.field_str("email").unwrap(), student.field_str("id_number").unwrap()] {
        let h2 = json_of(&s.run(&["--json", "history", other]).ok());
        assert!(h2["subject"]["zoho_ids"].as_array().unwrap().contains(&json!(key)), "{other}: {h2}");
    }
    let text = s.run(&["history", &key]).ok().stdout;
    assert!(text.contains("→") && text.contains("update"), "{text}");
    // Dependants: an enrolment of the student shows up under --entity.
    let enr = json_of(&s.run(&["--json", "history", &key, "--entity", "enrollment"]).ok());
    assert!(enr["events"].as_array().unwrap().iter().all(|e| e["entity"] == "enrollment"));
    s.run(&["history", "nobody@nowhere.example"]).code(2);
}

#[test]
fn history_of_a_student_after_drift_repair_shows_old_and_new() {
    history_after_drift_repair(None);
}

#[test]
fn history_of_a_student_after_drift_repair_on_postgres() {
    let Some(pg) = PgSchema::create() else {
        eprintln!("SKIPPED: history on PostgreSQL (set ZMSYNC_TEST_DATABASE_URL)");
        return;
    };
    history_after_drift_repair(Some(&pg.url));
}

// ---- report ----------------------------------------------------------------------------------------------

#[test]
fn report_rewrites_the_runs_csv_from_the_journal() {
    let sb = sandbox(60, State::Empty, 0);
    let s = scratch(&sb, None);
    let v = sync(&s);
    let csv = v["report"].as_str().unwrap().to_string();
    let original = std::fs::read_to_string(&csv).unwrap();
    std::fs::remove_file(&csv).unwrap();
    let r = s.run(&["report", &v["run_id"].to_string()]).ok();
    assert!(r.stdout.contains(&csv), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), original, "the same rows, byte for byte");
    // Without a run: the newest.
    let newest = json_of(&s.run(&["--json", "report", "--out", "again.csv"]).ok());
    assert_eq!(newest["run_id"], v["run_id"]);
    assert_eq!(std::fs::read_to_string(s.path().join("again.csv")).unwrap(), original);
    s.run(&["report", "77"]).code(2);
}

// ---- revert ----------------------------------------------------------------------------------------------

fn revert_of_drift_repair(db: Option<&str>) {
    let sb = sandbox(60, State::Empty, 0);
    let s = scratch(&sb, db);
    sync(&s);
    assert!(!sb.drift(14).is_empty());
    let drifted = diff_rows(&s);
    assert!(!drifted.is_empty());
    let repair = sync(&s);
    let run = repair["run_id"].as_i64().unwrap();
    let repaired = diff_rows(&s);
    assert_ne!(repaired, drifted);

    let (rv, applied) = revert_and_apply(&s, run, &[]);
    assert!(rv["ops"].as_u64().unwrap() > 0, "{rv}");
    assert!(rv["stale"].as_array().unwrap().is_empty(), "nothing changed since: {rv}");
    assert_eq!(applied["failed"], 0, "{applied}");
    assert_eq!(applied["rejected"], 0, "{applied}");
    let after = diff_rows(&s);
    if after != drifted {
        let a: HashSet<&String> = after.iter().collect();
        let d: HashSet<&String> = drifted.iter().collect();
        eprintln!("only after revert:\n{}", a.difference(&d).map(|s| s.as_str()).collect::<Vec<_>>().join("\n"));
        eprintln!("only drifted:\n{}", d.difference(&a).map(|s| s.as_str()).collect::<Vec<_>>().join("\n"));
        eprintln!("repaired:\n{}", repaired.join("\n"));
        eprintln!("revert:\n{rv}");
    }
    assert_eq!(after, drifted, "the revert restores exactly the drifted state");

    // The revert of the revert gives back the run's result.
    let (_, again) = revert_and_apply(&s, applied["run_id"].as_i64().unwrap(), &[]);
    assert_eq!(again["failed"], 0, "{again}");
    assert_eq!(diff_rows(&s), repaired, "the revert of the revert gives back the repair");
}

#[test]
fn revert_of_a_drift_repair_restores_the_drifted_state() {
    revert_of_drift_repair(None);
}

#[test]
fn revert_of_a_drift_repair_on_postgres() {
    let Some(pg) = PgSchema::create() else {
        eprintln!("SKIPPED: revert on PostgreSQL (set ZMSYNC_TEST_DATABASE_URL)");
        return;
    };
    revert_of_drift_repair(Some(&pg.url));
}

#[test]
fn revert_of_a_first_sync_leaves_nothing_it_created_active_and_needs_the_guard_lifted() {
    let sb = sandbox(40, State::Empty, 0);
    let s = scratch(&sb, None);
    let first = sync(&s);
    let run = first["run_id"].as_i64().unwrap();
    // Over the mass-change limit: refused, nothing written.
    let refused = s.run(&["revert", &run.to_string(), "--out", "undo.json"]).code(4);
    assert!(refused.stdout.contains("refused") || refused.stderr.contains("refused"), "{}", refused.stderr);
    assert!(!s.path().join("undo.json").exists(), "a refused revert is not written");

    let (rv, applied) = revert_and_apply(&s, run, &["--allow-mass-change"]);
    assert!(rv["guards"].as_array().unwrap().iter().all(|g| g["outcome"] == "allowed"), "{rv}");
    assert_eq!(applied["failed"], 0, "{applied}");
    assert_eq!(applied["rejected"], 0, "{applied}");
    let store = store_of(&s, None);
    let created: Vec<(String, String)> = store
        .journal_rows(run)
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.outcome == "applied" && r.entry.target == "moodle")
        .filter(|r| matches!(r.entry.op.as_str(), "create" | "enrol"))
        .filter_map(|r| Some((r.entry.entity.clone(), r.entry.target_id.clone()?)))
        .collect();
    assert!(!created.is_empty());
    let users = sb.moodle().users();
    let courses = sb.moodle().courses();
    let enrolments: HashSet<String> =
        sb.moodle().enrolments().into_iter().map(|(e, _)| format!("{}:{}", e.courseid, e.userid)).collect();
    for (entity, id) in &created {
        match entity.as_str() {
            "student" | "teacher" => {
                let u = users.iter().find(|u| u.id.to_string() == *id).expect("the user is still there");
                assert!(u.suspended, "user {id} it created is suspended");
            }
            "class" => {
                let c = courses.iter().find(|c| c.id.to_string() == *id).expect("the course is still there");
                assert!(!c.visible, "course {id} it created is hidden");
            }
            "enrollment" | "teaching" => assert!(!enrolments.contains(id), "enrolment {id} it made is removed"),
            _ => {}
        }
    }
    // The Moodle ids written back into Zoho are cleared.
    for st in sb.zoho().records("BTEC_Students") {
        let mid = st["Student_Moodle_ID"].as_str().unwrap_or("");
        assert!(mid.is_empty(), "Student_Moodle_ID {mid} cleared");
    }
}

#[test]
fn revert_skips_an_op_whose_record_changed_since() {
    let sb = sandbox(60, State::Empty, 0);
    let s = scratch(&sb, None);
    sync(&s);
    sb.drift(14);
    let run = sync(&s)["run_id"].as_i64().unwrap();
    let store = store_of(&s, None);
    // A student the repair wrote to in Moodle; someone edits the same field by hand afterwards.
    let edited = store
        .journal_rows(run)
        .unwrap()
        .into_iter()
        .find(|r| {
            r.entry.entity == "student"
                && r.entry.op == "update"
                && r.entry.changes.as_ref().is_some_and(|c| c.get("email").is_some() || c.get("last_name").is_some())
        })
        .expect("the repair changed a student's email or name in Moodle");
    let uid: i64 = edited.detail.moodle_id.clone().unwrap().parse().unwrap();
    let user = sb.moodle().users().into_iter().find(|u| u.id == uid).unwrap();
    if edited.entry.changes.as_ref().unwrap().get("email").is_some() {
        assert!(sb.moodle().set_user_email(uid, "edited.by.hand@college.example"));
    } else {
        assert!(sb.moodle().rename_user(uid, &user.firstname, "Edited-By-Hand"));
    }
    let rv = json_of(&s.run(&["--json", "revert", &run.to_string(), "--out", "undo.json"]).ok());
    let stale = rv["stale"].as_array().unwrap();
    assert_eq!(stale.len(), 1, "{rv}");
    assert_eq!(stale[0]["seq"].as_i64(), Some(edited.entry.seq));
    let text = s.run(&["revert", &run.to_string(), "--cached"]).ok().stdout;
    assert!(text.contains("stale") && text.contains(&edited.entry.key), "{text}");
    // The plan leaves it out: applying it keeps the hand edit.
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(s.path().join("undo.json")).unwrap()).unwrap();
    assert!(plan["ops"].as_array().unwrap().iter().all(|o| o["key"].as_str() != Some(edited.entry.key.as_str())));
    s.run(&["apply", "undo.json"]).ok();
    let after = sb.moodle().users().into_iter().find(|u| u.id == uid).unwrap();
    assert!(after.email == "edited.by.hand@college.example" || after.lastname == "Edited-By-Hand", "{after:?}");
}

// ---- the HTML report in a real browser -------------------------------------------------------------------

/// Chromium on PATH (`chromium`, as Debian names it), or `None`.
fn chromium() -> Option<std::path::PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join(name))
            .find(|p| p.is_file());
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Renders `page` headless: the DOM as the browser built it, and the console messages it logged.
fn render(browser: &std::path::Path, page: &std::path::Path) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            // Nothing may leave the machine: every host resolves to nowhere.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            &format!("file://{}", page.display()),
        ])
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught") || l.contains("net::ERR"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

#[test]
fn html_report_of_a_drifted_college_renders_in_chromium_with_its_sections_and_charts() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: the HTML report in a browser (install Debian's chromium: apt-get install -y chromium)");
        return;
    };
    // The detector must see a console error when there is one, or its silence proves nothing.
    let canary = tempfile::Builder::new().suffix(".html").tempfile().unwrap();
    std::fs::write(canary.path(), "<!DOCTYPE html><p>x</p><script>console.error('canary'); nope();</script>").unwrap();
    let (_, logged) = render(&browser, canary.path());
    assert!(logged.iter().any(|l| l.contains("canary")), "the console is not seen: {logged:?}");

    let sb = sandbox(1500, State::Drifted, 0);
    let s = scratch(&sb, None);
    sync(&s);
    let run = sync(&s);
    let page = std::path::PathBuf::from(run["report"].as_str().unwrap()).with_extension("html");
    assert!(page.exists(), "every run writes its page beside the CSV");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"), "self-contained");
    // `report --html` draws the same run again.
    let again = s.path().join("again.html");
    s.run(&["report", &run["run_id"].to_string(), "--html", again.to_str().unwrap()]).ok();
    for p in [&page, &again] {
        let (dom, console) = render(&browser, p);
        assert!(console.is_empty(), "console messages: {console:?}");
        for id in ["summary", "changes", "failures", "issues", "trends"] {
            assert!(dom.contains(&format!("<section id=\"{id}\">")), "section {id}");
        }
        for metric in ["changes", "failures", "duration", "api_calls", "dirty_backlog"] {
            let at = dom.find(&format!("data-metric=\"{metric}\"")).unwrap_or_else(|| panic!("chart {metric}"));
            let chart = &dom[at..at + dom[at..].find("</svg>").unwrap()];
            assert!(chart.contains("<polyline"), "{metric}: a line over the runs");
            assert_eq!(chart.matches("<circle").count(), 2, "{metric}: one point per run");
        }
        assert!(dom.contains("skipped by policy") || dom.contains("Skipped by policy"));
    }
}

/// The page reads the journal a row at a time and keeps what it shows: per entity the counts by action and
/// outcome over every op, the first 200 ops in seq order and how many more; per cause of failure the same. A
/// journal of 450 ops (250 of one entity) on each store, against counts worked out here.
#[test]
fn html_report_counts_every_op_and_lists_the_first_of_each_group() {
    use zmsync::store::{JournalEntry, NewRun, OpDetail};
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!("sqlite://{}", dir.path().join("h.db").display())];
    let pg = PgSchema::create();
    urls.extend(pg.as_ref().map(|p| p.url.clone()));
    for url in urls {
        let store = zmsync::store::open(&url).unwrap();
        let s = store.as_ref();
        let run =
            s.create_run(&NewRun { kind: "full", module: None, dry_run: false, allow_mass_change: false }).unwrap();
        let entity = |seq: i64| if seq <= 250 { "student" } else { "enrollment" };
        let entries: Vec<JournalEntry> = (1..=450)
            .map(|seq| JournalEntry {
                run_id: run,
                seq,
                entity: entity(seq).into(),
                key: format!("k{seq}"),
                target: "moodle".into(),
                op: if seq % 3 == 0 { "create" } else { "update" }.into(),
                changes: Some(json!({"email": format!("{seq}@x")})),
                fingerprints: None,
                outcome: "planned".into(),
                target_id: None,
                message: None,
            })
            .collect();
        s.journal_planned_with(&entries, &vec![OpDetail::default(); entries.len()]).unwrap();
        // Every 7th op rejected (cause E7), every 11th failed (cause E11), the rest applied.
        let outcome = |seq: i64| match (seq % 7, seq % 11) {
            (0, _) => ("rejected", Some(format!("E7: no {seq}"))),
            (_, 0) => ("failed", Some(format!("E11: down {seq}"))),
            _ => ("applied", None),
        };
        let told: Vec<(i64, &str, Option<String>)> = (1..=450).map(|q| (q, outcome(q).0, outcome(q).1)).collect();
        let told: Vec<(i64, &str, Option<&str>, Option<&str>)> =
            told.iter().map(|(q, o, m)| (*q, *o, None, m.as_deref())).collect();
        s.journal_outcomes(run, &told).unwrap();
        s.finish_run(run, "partial", &json!({}), None).unwrap();
        let row = s.run(run).unwrap().unwrap();
        let html = zmsync::operator::html::render(s, &row, 30).unwrap();

        let changes =
            &html[html.find("<section id=\"changes\">").unwrap()..html.find("<section id=\"failures\">").unwrap()];
        let failures =
            &html[html.find("<section id=\"failures\">").unwrap()..html.find("<section id=\"issues\">").unwrap()];
        for (name, seqs) in [("student", 1..=250), ("enrollment", 251..=450)] {
            let mut want: BTreeMap<(&str, &str), usize> = BTreeMap::new();
            for q in seqs.clone() {
                *want.entry((if q % 3 == 0 { "create" } else { "update" }, outcome(q).0)).or_default() += 1;
            }
            let summary: Vec<String> = want.iter().map(|((a, o), n)| format!("{a} {o} {n}")).collect();
            let at = changes.find(&format!("<b>{name}</b>: {}</summary>", summary.join(", "))).unwrap_or_else(|| {
                panic!("{url}: {name}'s counts {summary:?} in {}", &changes[..changes.len().min(3000)])
            });
            let group = &changes[at..at + changes[at..].find("</details>").unwrap()];
            let listed: Vec<i64> = group
                .match_indices("<tr><td class=\"n\">")
                .map(|(i, m)| group[i + m.len()..].split('<').next().unwrap().parse().unwrap())
                .collect();
            let first: Vec<i64> = seqs.clone().take(200).collect();
            assert_eq!(listed, first, "{url}: {name} lists its first 200 ops in seq order");
            let more = seqs.count().saturating_sub(200);
            assert_eq!(group.contains(&format!("… {more} more")), more > 0, "{url}: {name}: {more} more");
        }
        for (entity, outcome, code, n) in [
            ("student", "rejected", "E7", (1..=250).filter(|q| q % 7 == 0).count()),
            ("student", "failed", "E11", (1..=250).filter(|q| q % 7 != 0 && q % 11 == 0).count()),
            ("enrollment", "rejected", "E7", (251..=450).filter(|q| q % 7 == 0).count()),
        ] {
            assert!(
                failures.contains(&format!("<h3>{entity} {outcome} — {code} ({n})</h3>")),
                "{url}: cause {entity} {outcome} {code} ({n})"
            );
        }
    }
}
