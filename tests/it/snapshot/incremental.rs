//! The incremental snapshot: the given keys by id, plus what changed since the cursor (`If-Modified-Since`,
//! inclusive, so the records at the cursor come back and must be dropped), committed with `full = false`.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use zmsync::model::{Entity, Kind};
use zmsync::sandbox::moodle::MoodleOptions;
use zmsync::sandbox::zoho::ZohoOptions;
use zmsync::snapshot::{Incremental, Mode, Options};

use super::{kind, Harness};

fn incremental(zoho_ids: &[&str], moodle_keys: &[&str]) -> Mode {
    let mut i = Incremental::default();
    if !zoho_ids.is_empty() {
        i.zoho_ids = BTreeMap::from([(Kind::Student, zoho_ids.iter().map(|s| s.to_string()).collect())]);
    }
    if !moodle_keys.is_empty() {
        i.moodle_keys = BTreeMap::from([(Kind::MoodleUser, moodle_keys.iter().map(|s| s.to_string()).collect())]);
    }
    Mode::Incremental(i)
}

fn time(r: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(r["Modified_Time"].as_str().unwrap()).unwrap().to_utc()
}

#[test]
fn incremental_snapshot_fetches_the_keys_and_what_changed_since_the_cursor_once() {
    let h = Harness::start(120, ZohoOptions::default(), MoodleOptions::default());
    let all = h.zoho.records("BTEC_Students");
    let id = |i: usize| all[i]["id"].as_str().unwrap().to_string();
    let (boundary, asked, changed, later) = (id(0), id(1), id(2), id(3));
    // The registry edits one student before the first run: it is the latest, so it sits at the cursor and will
    // come back from the inclusive If-Modified-Since.
    h.zoho.update_record("BTEC_Students", &boundary, json!({"Last_Name": "Edited-Before"})).unwrap();
    let latest = h.zoho.records("BTEC_Students").iter().map(time).max().unwrap();
    assert_eq!(time(&h.zoho.record("BTEC_Students", &boundary).unwrap()), latest);

    let base = Options { only: Some(Entity::Student), ..h.options() };
    let full = h.run(&base).unwrap();
    let students = kind(&full, Kind::Student).stored;
    let users = kind(&full, Kind::MoodleUser).stored;
    assert!(students > 100 && users > 100);
    assert!(h.store.cursor(Kind::Student).unwrap().is_some(), "a full run leaves a cursor");
    // The boundary was stamped just before the full run, so its instant is still open (a slow machine may have
    // started the listing two seconds later and closed it: open it again, the inclusive path is what this checks).
    let mut stored: Value = serde_json::from_str(&h.store.cursor(Kind::Student).unwrap().unwrap()).unwrap();
    stored["closed"] = json!(false);
    h.store.put_cursor(Kind::Student, &stored.to_string()).unwrap();

    h.zoho.update_record("BTEC_Students", &changed, json!({"Last_Name": "Changed-In-Zoho"})).unwrap();
    let user_key = h.store.records(Kind::MoodleUser).unwrap()[0].key.clone();

    h.zoho.reset_stats();
    let opts = Options { mode: incremental(&[&asked], &[&user_key]), ..base.clone() };
    let s = h.run(&opts).unwrap();
    assert_eq!(s.mode, "incremental");
    let st = kind(&s, Kind::Student);
    assert_eq!(st.records, 2, "the asked id and the one changed since the cursor, the boundary not again: {st:?}");
    assert_eq!(kind(&s, Kind::MoodleUser).records, 1, "only the given Moodle key");
    let read = h.zoho.stats().records_read["BTEC_Students"];
    assert_eq!(read, 3, "the fake did send the boundary record back (inclusive If-Modified-Since)");
    // full = false: nothing else was removed, and the change landed.
    assert_eq!(h.store.record_count(Kind::Student).unwrap(), students);
    assert_eq!(h.store.record_count(Kind::MoodleUser).unwrap(), users);
    let stored = h.store.records(Kind::Student).unwrap();
    let rec = stored.iter().find(|r| r.key == changed).unwrap();
    assert!(serde_json::to_string(&rec.fields).unwrap().contains("Changed-In-Zoho"), "{rec:?}");

    // Nothing new since: the changed record is now the boundary and is not fetched twice.
    let opts = Options { mode: incremental(&[], &[]), ..base.clone() };
    let s = h.run(&opts).unwrap();
    assert_eq!(kind(&s, Kind::Student).records, 0, "{:?}", kind(&s, Kind::Student));
    assert_eq!(kind(&s, Kind::MoodleUser).records, 0);

    // A record modified after the cursor is caught, and only it.
    h.zoho.update_record("BTEC_Students", &later, json!({"Last_Name": "Changed-Again"})).unwrap();
    let s = h.run(&opts).unwrap();
    assert_eq!(kind(&s, Kind::Student).records, 1);
    assert_eq!(h.store.record_count(Kind::Student).unwrap(), students);

    // And nothing again: both changed records are at or before the cursor now (even within the same second).
    let s = h.run(&opts).unwrap();
    assert_eq!(kind(&s, Kind::Student).records, 0, "{:?}", kind(&s, Kind::Student));
}

/// Waits until Zoho's clock (the fake's: this machine's) is two seconds past `t`, as a later run would find it.
fn wait_past(t: chrono::DateTime<chrono::Utc>) {
    while chrono::Utc::now() < t + chrono::TimeDelta::seconds(2) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn incremental_snapshot_reads_a_bulk_change_once_and_still_finds_a_lost_change() {
    let h = Harness::start(120, ZohoOptions::default(), MoodleOptions::default());
    let base = Options { only: Some(Entity::Student), ..h.options() };
    h.run(&base).unwrap();
    let stored: Value = serde_json::from_str(&h.store.cursor(Kind::Student).unwrap().unwrap()).unwrap();
    assert_eq!(stored["closed"], json!(true), "the seeded records are older than the listing: {stored}");

    // A bulk change no webhook announced (e.g. a mass update in Zoho): the catch-up finds all of it.
    let all = h.zoho.records("BTEC_Students");
    let bulk: Vec<String> = all.iter().take(40).map(|r| r["id"].as_str().unwrap().to_string()).collect();
    for id in &bulk {
        h.zoho.update_record("BTEC_Students", id, json!({"Last_Name": "Bulk"})).unwrap();
    }
    let last = bulk.iter().map(|id| time(&h.zoho.record("BTEC_Students", id).unwrap())).max().unwrap();
    let opts = Options { mode: incremental(&[], &[]), ..base.clone() };
    assert_eq!(kind(&h.run(&opts).unwrap(), Kind::Student).records, 40);

    // Once Zoho's clock is past the bulk's last second, a run reads what is at the cursor's instant one last time
    // (the first run may have started within that second) and closes it; the runs after it read none of it.
    wait_past(last);
    assert_eq!(kind(&h.run(&opts).unwrap(), Kind::Student).records, 0);
    h.zoho.reset_stats();
    assert_eq!(kind(&h.run(&opts).unwrap(), Kind::Student).records, 0);
    let read = h.zoho.stats().records_read.get("BTEC_Students").copied().unwrap_or(0);
    assert_eq!(read, 0, "the closed instant's records are not sent again");

    // A later change whose webhook was lost is still found, and only it.
    let lost = all[100]["id"].as_str().unwrap().to_string();
    h.zoho.update_record("BTEC_Students", &lost, json!({"Last_Name": "Lost-Webhook"})).unwrap();
    assert_eq!(kind(&h.run(&opts).unwrap(), Kind::Student).records, 1);
    let rec = h.store.records(Kind::Student).unwrap().into_iter().find(|r| r.key == lost).unwrap();
    assert!(serde_json::to_string(&rec.fields).unwrap().contains("Lost-Webhook"), "{rec:?}");
}

/// Issue #19: keys an incremental snapshot asked about and that are gone from their side leave the store, as a
/// full snapshot would drop them: a Zoho record deleted, a Moodle enrolment removed, a Moodle user deleted (whose
/// read Moodle refuses: the read is split down to it, and the other keys are still read).
#[test]
fn incremental_snapshot_removes_the_keys_gone_from_their_side() {
    let h = Harness::start(60, ZohoOptions::default(), MoodleOptions::default());
    let base = Options { only: Some(Entity::Student), ..h.options() };
    h.run(&base).unwrap();
    let students = h.store.records(Kind::Student).unwrap();
    let users = h.store.records(Kind::MoodleUser).unwrap();
    let (gone, kept) = (students[0].key.clone(), students[1].key.clone());
    h.zoho.delete_record("BTEC_Students", &gone).unwrap();
    let (dead, alive) = (users[0].key.clone(), users[1].key.clone());
    assert!(h.moodle.delete_user(dead.parse().unwrap()));

    let mut i = Incremental::default();
    i.zoho_ids.insert(Kind::Student, vec![gone.clone(), kept.clone()]);
    i.moodle_keys.insert(Kind::MoodleUser, vec![dead.clone(), alive.clone()]);
    let s = h.run(&Options { mode: Mode::Incremental(i), ..base.clone() }).unwrap();
    assert_eq!(kind(&s, Kind::Student).removed, vec![gone.clone()]);
    assert_eq!(kind(&s, Kind::MoodleUser).removed, vec![dead.clone()], "{:?}", kind(&s, Kind::MoodleUser));
    assert_eq!(kind(&s, Kind::MoodleUser).records, 1, "the live user was read beside the deleted one");
    let has = |k: Kind, key: &str| h.store.records(k).unwrap().iter().any(|r| r.key == key);
    assert!(!has(Kind::Student, &gone) && has(Kind::Student, &kept));
    assert!(!has(Kind::MoodleUser, &dead) && has(Kind::MoodleUser, &alive));
    assert_eq!(h.store.record_count(Kind::Student).unwrap(), students.len() as u64 - 1);
}
