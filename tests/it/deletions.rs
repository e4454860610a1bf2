//! `deletions.policy` end to end: a student deleted in Zoho is deleted in Moodle only where the policy says
//! `delete`, exactly once, even when Moodle's answer is lost; a course is never deleted.

use serde_json::Value;
use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};

use crate::support::{Run, Scratch};

fn setup(students: usize) -> (Sandbox, Scratch) {
    let sb = Sandbox::start(SandboxOptions {
        generate: GenOptions { students, state: State::Empty, seed: 11, ..GenOptions::default() },
        ..SandboxOptions::default()
    })
    .expect("sandbox starts");
    let mut s = Scratch::new();
    for (k, v) in sb.env() {
        s = s.env(k, &v);
    }
    s.run(&["--json", "sync", "--all"]).ok();
    (sb, s)
}

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", r.stdout, r.stderr))
}

/// Deletes `n` linked students in Zoho; answers their Moodle user ids.
fn delete_in_zoho(sb: &Sandbox, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for s in sb.zoho().records("BTEC_Students") {
        let mid = s["Student_Moodle_ID"].as_str().and_then(|m| m.parse::<i64>().ok());
        let (Some(mid), Some(zid)) = (mid, s["id"].as_str()) else { continue };
        sb.zoho().delete_record("BTEC_Students", zid).expect("delete in Zoho");
        ids.push(mid);
        if ids.len() == n {
            break;
        }
    }
    assert_eq!(ids.len(), n, "enough linked students");
    ids
}

fn user(sb: &Sandbox, id: i64) -> zmsync::sandbox::moodle::User {
    sb.moodle().users().into_iter().find(|u| u.id == id).expect("the user row stays (Moodle deletes softly)")
}

#[test]
fn deletions_student_delete_policy_deletes_the_moodle_user_once_even_when_the_answer_is_lost() {
    let (sb, s) = setup(40);
    s.run(&[
        "settings",
        "set",
        "deletions.policy",
        r#"{"student":"delete","teacher":"suspend","class":"hide","enrollment":"unenrol","finance":"delete"}"#,
    ])
    .ok();
    let gone = delete_in_zoho(&sb, 2);
    // Every delete is applied, then its answer is lost: the client asks again and Moodle no longer knows the user.
    sb.moodle().set_fault_after_apply(1.0);
    let v = json(&s.run(&["--json", "sync", "--all"]).ok());
    sb.moodle().set_fault_after_apply(0.0);
    assert_eq!(v["entities"]["student"]["suspended"], 2, "{v}");
    assert_eq!(v["failed"].as_u64().unwrap() + v["rejected"].as_u64().unwrap(), 0, "{v}");
    for id in &gone {
        let u = user(&sb, *id);
        assert!(u.deleted, "user {id} deleted in Moodle");
        assert!(u.idnumber.is_empty(), "Moodle mangles a deleted user's identity");
    }
    let deletes = sb.moodle().request_log().iter().filter(|r| r.function == "core_user_delete_users").count();
    assert!(deletes >= 2, "one call, then its retry: {deletes}");
    // Moodle removed the deleted users' enrolments with them: the next run marks exactly those inactive in Zoho
    // (as for any enrolment removed in Moodle), and then nothing is left to do.
    let v = json(&s.run(&["--json", "sync", "--all"]).ok());
    let updated: u64 = v["entities"].as_object().unwrap().values().map(|t| t["updated"].as_u64().unwrap()).sum();
    assert_eq!(v["entities"]["enrollment"]["updated"], v["planned_ops"], "{v}");
    assert_eq!(updated, v["planned_ops"].as_u64().unwrap(), "{v}");
    assert!(v["planned_ops"].as_u64().unwrap() > 0, "{v}");
    let v = json(&s.run(&["--json", "sync", "--all"]).ok());
    assert_eq!(v["planned_ops"], 0, "{v}");
    let deleted = sb.moodle().users().iter().filter(|u| u.deleted).count();
    assert_eq!(deleted, 2);
}

#[test]
fn deletions_default_policy_suspends_and_a_course_is_never_deleted() {
    let (sb, s) = setup(20);
    let gone = delete_in_zoho(&sb, 1);
    let v = json(&s.run(&["--json", "sync", "--all"]).ok());
    assert_eq!(v["entities"]["student"]["suspended"], 1, "{v}");
    let u = user(&sb, gone[0]);
    assert!(u.suspended && !u.deleted, "suspended, not deleted: {u:?}");

    let r = s
        .run(&[
            "settings",
            "set",
            "deletions.policy",
            r#"{"student":"suspend","teacher":"suspend","class":"delete","enrollment":"unenrol","finance":"delete"}"#,
        ])
        .code(2);
    assert!(r.stderr.contains("deleting a Moodle course deletes its grades"), "{}", r.stderr);
    let v = json(&s.run(&["--json", "settings", "get", "deletions.policy"]).ok());
    assert_eq!(v["value"]["class"], "hide", "the refused value is not stored: {v}");
}
