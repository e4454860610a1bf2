//! Snapshot benchmark: a full snapshot of a synced college of 1,500 and of 5,000 students from the sandbox,
//! with 100 ms of latency on every call to either fake. Prints wall time, API calls per side (as the fakes
//! counted them) and the snapshot's peak memory (VmHWM). Run with `cargo bench --bench snapshot`.
//!
//! The parent process generates the college and serves both fakes; the snapshot runs in a child process (this
//! binary again, with `--child`), so its peak memory is zmsync's alone and each size has its own. No
//! assertions: the targets (1,500 under 5 s, 5,000 under 100 MB) are read off the output.

use std::process::Command;
use std::time::Instant;

use zmsync::config::{Config, MoodleConfig, WebhookSecrets, ZohoConfig};
use zmsync::sandbox::generator::{College, GenOptions, State};
use zmsync::sandbox::moodle::{FakeMoodle, MoodleOptions};
use zmsync::sandbox::zoho::{FakeZoho, ZohoOptions};
use zmsync::secret::Secret;
use zmsync::settings::Settings;
use zmsync::snapshot::{self, Options};

const LATENCY_MS: u64 = 100;

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} must be set by the parent"))
}

/// The child: one full snapshot into a fresh SQLite store; prints one line of figures.
fn child() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = zmsync::store::open(&format!("sqlite://{}", dir.path().join("bench.db").display())).expect("store");
    let url = env("BENCH_ZOHO_URL");
    let config = Config {
        config_file: None,
        database_url: String::new(),
        zoho: ZohoConfig {
            region: "eu".into(),
            client_id: Some(env("BENCH_ZOHO_CLIENT_ID")),
            client_secret: Some(Secret::new(env("BENCH_ZOHO_CLIENT_SECRET"))),
            refresh_token: Some(Secret::new(env("BENCH_ZOHO_REFRESH_TOKEN"))),
            accounts_url: url.clone(),
            api_domain: url,
        },
        moodle: MoodleConfig {
            url: Some(env("BENCH_MOODLE_URL")),
            token: Some(Secret::new(env("BENCH_MOODLE_TOKEN"))),
        },
        webhook: WebhookSecrets::default(),
    };
    let settings = Settings::defaults();
    let start = Instant::now();
    let summary = snapshot::run(store.as_ref(), &settings, &config, &Options::default()).expect("snapshot");
    let took = start.elapsed();
    let records: u64 = summary.kinds.iter().map(|k| k.stored).sum();
    println!(
        "{:.2} {} {} {} {}",
        took.as_secs_f64(),
        zmsync::sandbox::memory::resident_kib().map_or(0, |(_, peak)| peak),
        records,
        summary.zoho.as_ref().map(|z| z.api_calls).unwrap_or(0),
        summary.moodle.as_ref().map(|m| m.api_calls).unwrap_or(0),
    );
}

fn run_size(students: usize) {
    let college = College::generate(GenOptions { students, seed: 1, state: State::Synced, drift_count: 0 });
    let zoho_records: usize = college.zoho.modules.values().map(Vec::len).sum();
    let zoho = FakeZoho::start(college.zoho, ZohoOptions { latency_ms: LATENCY_MS, ..ZohoOptions::default() })
        .expect("fake Zoho");
    let moodle =
        FakeMoodle::start(college.moodle, MoodleOptions { latency_ms: LATENCY_MS, ..MoodleOptions::default() })
            .expect("fake Moodle");
    let out = Command::new(std::env::current_exe().expect("own path"))
        .arg("--child")
        .env("BENCH_ZOHO_URL", zoho.url())
        .env("BENCH_ZOHO_CLIENT_ID", zoho.client_id())
        .env("BENCH_ZOHO_CLIENT_SECRET", zoho.client_secret().expose())
        .env("BENCH_ZOHO_REFRESH_TOKEN", zoho.refresh_token().expose())
        .env("BENCH_MOODLE_URL", moodle.url())
        .env("BENCH_MOODLE_TOKEN", moodle.token())
        .output()
        .expect("child");
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        panic!("the snapshot of {students} students failed");
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = line.split_whitespace().collect();
    let (secs, peak, records, zcalls, mcalls) = (f[0], f[1].parse::<u64>().unwrap_or(0), f[2], f[3], f[4]);
    let zs = zoho.stats();
    let ms = moodle.stats();
    let fake_zoho_calls: u64 = zs.requests.iter().filter(|(k, _)| !k.contains("oauth")).map(|(_, v)| v).sum();
    let fake_moodle_calls: u64 = ms.requests.values().sum();
    println!(
        "snapshot {students:>5} students ({zoho_records} Zoho records, {LATENCY_MS} ms latency): {secs:>6} s, \
         {records} records stored, peak {:.1} MiB; API calls Zoho {zcalls} (fake saw {fake_zoho_calls}, max in \
         flight {}), Moodle {mcalls} (fake saw {fake_moodle_calls})",
        peak as f64 / 1024.0,
        zs.max_in_flight,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--child") {
        child();
        return;
    }
    for students in [1_500, 5_000] {
        run_size(students);
    }
}
