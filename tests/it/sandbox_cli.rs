//! `zmsync sandbox`: the real binary prints the seven settings, both fakes answer as the references say, and
//! SIGTERM stops it with exit 0.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::Scratch;

const KEYS: [&str; 7] = [
    "ZOHO_ACCOUNTS_URL",
    "ZOHO_API_DOMAIN",
    "ZOHO_CLIENT_ID",
    "ZOHO_CLIENT_SECRET",
    "ZOHO_REFRESH_TOKEN",
    "MOODLE_URL",
    "MOODLE_TOKEN",
];

#[test]
fn sandbox_cli_serves_both_fakes_and_stops_on_sigterm() {
    let s = Scratch::new();
    let started = Instant::now();
    let mut child = s
        .cmd(&["sandbox", "--students", "1500", "--state", "drifted", "--seed", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zmsync sandbox");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut env = Vec::new();
    for key in KEYS {
        let line = lines.next().expect("a line").expect("utf-8");
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
        assert_eq!(k, key, "settings out of order");
        assert!(!v.is_empty() && !v.contains(char::is_whitespace), "{line}");
        env.push(v.to_string());
    }
    println!("sandbox (1,500 students, drifted, debug build) ready in {:.2} s", started.elapsed().as_secs_f64());
    let get = |k: &str| env[KEYS.iter().position(|x| *x == k).unwrap()].clone();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let token: serde_json::Value = http
            .post(format!("{}/oauth/v2/token", get("ZOHO_ACCOUNTS_URL")))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", &get("ZOHO_CLIENT_ID")),
                ("client_secret", &get("ZOHO_CLIENT_SECRET")),
                ("refresh_token", &get("ZOHO_REFRESH_TOKEN")),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let access = token["access_token"].as_str().unwrap_or_else(|| panic!("no token: {token}"));
        assert_eq!(token["expires_in"], 3600);
        let api = token["api_domain"].as_str().unwrap();
        let page: serde_json::Value = http
            .get(format!("{api}/crm/v8/BTEC_Payments?fields=id,Name,Amount,Status&per_page=200"))
            .header("Authorization", format!("Zoho-oauthtoken {access}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["data"].as_array().map(Vec::len), Some(200), "{page}");
        assert_eq!(page["info"]["more_records"], true);

        let site: serde_json::Value = http
            .post(format!("{}/webservice/rest/server.php", get("MOODLE_URL")))
            .form(&[
                ("wstoken", get("MOODLE_TOKEN").as_str()),
                ("wsfunction", "core_webservice_get_site_info"),
                ("moodlewsrestformat", "json"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(site.get("exception").is_none(), "{site}");
        assert!(site["functions"].as_array().map(|f| !f.is_empty()).unwrap_or(false), "{site}");
    });

    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "sandbox did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.contains("drift") && stderr.contains("stopped"), "{stderr}");
    assert!(lines.next().is_none(), "nothing after the seven lines on stdout");
}

/// The second applier: drift made on running fakes through their UI helpers, visible in their state.
#[test]
fn sandbox_cli_drift_applies_to_running_fakes() {
    use zmsync::sandbox::generator::{GenOptions, State};
    use zmsync::sandbox::seed::DriftKind;
    use zmsync::sandbox::{Sandbox, SandboxOptions};

    let generate = GenOptions { students: 300, seed: 9, state: State::Synced, drift_count: 0 };
    let sb = Sandbox::start(SandboxOptions { generate, ..SandboxOptions::default() }).expect("start");
    assert!(sb.seeded_drift().is_empty());
    let first = sb.drift(11);
    assert_eq!(first.len(), 11, "{first:#?}");
    let kinds: std::collections::HashSet<DriftKind> = first.iter().map(|d| d.kind).collect();
    assert_eq!(kinds.len(), 11);
    for d in &first {
        let zid = d.zoho_id.clone().unwrap_or_default();
        let mid = d.moodle_id.clone().unwrap_or_default();
        match d.kind {
            DriftKind::ZohoStudentDeleted => assert!(sb.zoho().record("BTEC_Students", &zid).is_none()),
            DriftKind::ZohoEmailChanged => {
                let rec = sb.zoho().record("BTEC_Students", &zid).unwrap();
                assert!(rec["Academic_Email"].as_str().unwrap().ends_with(".new@student.college.ac.uk"));
            }
            DriftKind::MoodleUserSuspended => {
                let id: i64 = mid.parse().unwrap();
                assert!(sb.moodle().users().iter().any(|u| u.id == id && u.suspended));
            }
            DriftKind::MoodleEnrolmentMissing => {
                let (c, u) = mid.split_once(':').unwrap();
                let (c, u): (i64, i64) = (c.parse().unwrap(), u.parse().unwrap());
                assert!(!sb.moodle().enrolments().iter().any(|(e, _)| e.courseid == c && e.userid == u));
            }
            DriftKind::MoodleGradeChanged => {
                let (c, u) = mid.split_once(':').unwrap();
                let (c, u): (i64, i64) = (c.parse().unwrap(), u.parse().unwrap());
                let g = sb.moodle().grades().into_iter().find(|g| g.courseid == c && g.userid == u).unwrap();
                assert!(g.finalgrade.is_some());
            }
            _ => {}
        }
    }
    // A second drift stays off the records of the first.
    let second = sb.drift(11);
    assert_eq!(second.len(), 11);
    let ids = |v: &[zmsync::sandbox::seed::Drift]| -> std::collections::HashSet<String> {
        v.iter().filter_map(|d| d.moodle_id.clone()).collect()
    };
    assert!(ids(&first).is_disjoint(&ids(&second)));
}
