//! Webhook acceptance benchmark: `cargo bench --bench webhook`.
//!
//! Starts the receiver in-process on loopback (the same code as `zmsync serve`), then drives it with signed
//! Zoho events over keep-alive HTTP/1.1 connections:
//! 1. latency at a steady 200 requests/s (p50, p99, max), every answer a 202 sent after the commit (open
//!    loop: measured from each request's due time, less the client's own wake-up lag, which is printed, with
//!    the machine's CPU steal and load average over the phase: on a shared VM the tail follows the steal);
//! 2. the highest sustained rate with many connections in a closed loop.
//!
//! 3. end to end, webhook → Moodle: the sandbox at 100 ms latency on both fakes (Zoho capped at 10 calls in
//!    flight, as in the sync benchmark) and a synced store; `zmsync serve` and `zmsync sync --incremental
//!    --follow` run as child processes; a student's email is changed in the fake Zoho, whose workflow
//!    emulation posts the signed webhook; timed until the fake Moodle holds the new email (p50 and max of
//!    BENCH_E2E_SAMPLES, default 8, with BENCH_E2E_STUDENTS students, default 1,500).
//!
//! Phases 1 and 2 run twice per store, side by side: on hyper (what `zmsync serve` runs) and on the old
//! tiny_http server (src/webhook/legacy.rs, kept for this comparison only), each line labelled with its server.
//!
//! On SQLite always, and on PostgreSQL when ZMSYNC_TEST_DATABASE_URL is set (in a schema of its own). Figures
//! are printed, never asserted. BENCH_SECONDS changes the length of each acceptance phase (default 10),
//! BENCH_WORKERS the receiver's worker threads (default 64: each waits for its commit). BENCH_ONLY=acceptance
//! or BENCH_ONLY=e2e runs only those phases; BENCH_ONLY=steady only the 200 requests/s phase. With
//! ZMSYNC_WEBHOOK_TIMING=1 the receiver's per-stage breakdown is printed (stderr) when it stops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};
use zmsync::secret::Secret;
use zmsync::webhook::server::Receiver;
use zmsync::webhook::signature::sign;
use zmsync::webhook::{Secrets, ServeOptions};

const SECRET: &str = "bench-secret";

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).unwrap();
        Conn { reader: BufReader::new(s.try_clone().unwrap()), writer: s }
    }

    /// Sends one signed event and waits for the answer; returns the status.
    fn post(&mut self, addr: &str, id: &str) -> u16 {
        let body = format!(
            r#"{{"event_id":"{id}","event_type":"updated","module":"BTEC_Students","record_id":"58475960{:08}","timestamp":"{}"}}"#,
            id.len() * 7919 % 100_000_000,
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let sig = sign(SECRET, body.as_bytes());
        let req = format!(
            "POST /v1/events/zoho/student HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Zoho-Signature: sha256={sig}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(req.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        status
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The machine's CPU time so far from /proc/stat's `cpu` line: (steal, all), in clock ticks. Steal is time the
/// hypervisor gave this VM's CPUs to another guest: a thread that was runnable then simply did not run, in the
/// receiver or in the client alike. `None` off Linux.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    Some((*ticks.get(7)?, ticks.iter().take(8).sum()))
}

/// The share of CPU time stolen between two [`cpu_ticks`] readings, as text.
fn steal_since(before: Option<(u64, u64)>) -> String {
    match (before, cpu_ticks()) {
        (Some((s0, a0)), Some((s1, a1))) if a1 > a0 => format!("{:.1} %", 100.0 * (s1 - s0) as f64 / (a1 - a0) as f64),
        _ => "n/a".into(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Which HTTP server runs the receiver: hyper (what `zmsync serve` runs) or the old tiny_http one, kept for
/// this side-by-side only (src/webhook/legacy.rs).
#[derive(Clone, Copy, PartialEq)]
enum Http {
    Hyper,
    TinyHttp,
}

impl Http {
    fn name(self) -> &'static str {
        match self {
            Http::Hyper => "hyper",
            Http::TinyHttp => "tiny_http (old)",
        }
    }
}

fn bench(store_label: &str, http: Http, database_url: &str, seconds: u64) {
    let label = &format!("{store_label} {}", http.name());
    let tag = if http == Http::Hyper { "h" } else { "t" };
    // Migrate first, as `zmsync serve` does.
    drop(zmsync::store::open(database_url).expect("open the store"));
    let receiver = Receiver::bind("127.0.0.1:0").expect("bind");
    let addr = receiver.addr().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let opts = ServeOptions {
        database_url: database_url.to_string(),
        workers: std::env::var("BENCH_WORKERS").ok().and_then(|s| s.parse().ok()).unwrap_or(64),
        secrets: Secrets { zoho: Some(Secret::new(SECRET)), zoho_notify: None, moodle: None },
        replay_window: zmsync::webhook::payloads::DEFAULT_WINDOW,
        reload: Arc::default(),
    };
    let server = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || match http {
            Http::Hyper => receiver.run(opts, stop).expect("serve"),
            Http::TinyHttp => zmsync::webhook::legacy::run(receiver, opts, stop).expect("serve (tiny_http)"),
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let run_id = format!("{tag}{}", std::process::id());

    // Phase 1: a steady 200 requests/s, open loop over 8 keep-alive connections (25/s each, staggered), each
    // request due at a fixed time. Latency runs from when the request was due, so an answer that comes late
    // and delays the next request on its connection is counted in full (no coordinated omission), less only
    // the client's own wake-up lag: how late the client thread sent after the request was due and its
    // connection free (a sleeping thread on a loaded machine wakes late; that is the client's delay, not the
    // receiver's). The lag is printed too.
    let rate = 200u64;
    let conns = 8u64;
    let ticks = cpu_ticks();
    let t0 = Instant::now() + Duration::from_millis(50);
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let (addr, run_id) = (addr.clone(), run_id.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                let interval = Duration::from_nanos(1_000_000_000 * conns / rate);
                let (mut lat, mut from_send, mut lag) = (Vec::new(), Vec::new(), Vec::new());
                let mut bad = 0;
                let mut free = t0;
                let n = rate / conns * seconds;
                for i in 0..n {
                    let due = t0 + Duration::from_nanos(1_000_000_000 / rate * c) + interval * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let start = Instant::now();
                    let st = conn.post(&addr, &format!("lat-{run_id}-{c}-{i}"));
                    let end = Instant::now();
                    let late = start.saturating_duration_since(due.max(free));
                    lat.push(end.duration_since(due) - late);
                    from_send.push(end.duration_since(start));
                    lag.push(late);
                    free = end;
                    if st != 202 {
                        bad += 1;
                    }
                }
                (lat, from_send, lag, bad)
            })
        })
        .collect();
    let (mut lat, mut from_send, mut lag) = (Vec::new(), Vec::new(), Vec::new());
    let mut bad = 0;
    for h in handles {
        let (l, f, g, b) = h.join().unwrap();
        lat.extend(l);
        from_send.extend(f);
        lag.extend(g);
        bad += b;
    }
    for v in [&mut lat, &mut from_send, &mut lag] {
        v.sort();
    }
    println!(
        "{label}: steady {rate} req/s for {seconds} s over {conns} connections: {} events, non-202: {bad}, p50 {}, p99 {}, max {} (from the due time, client wake-up lag excluded)",
        lat.len(),
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "{label}:   from the send: p50 {}, p99 {}; the client's wake-up lag: p50 {}, p99 {}, max {}",
        ms(pct(&from_send, 0.50)),
        ms(pct(&from_send, 0.99)),
        ms(pct(&lag, 0.50)),
        ms(pct(&lag, 0.99)),
        ms(*lag.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "{label}:   the machine meanwhile: CPU steal {} (time the hypervisor ran other guests), load average {}",
        steal_since(ticks),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split(' ').next().unwrap_or("?").to_string())
            .unwrap_or_else(|_| "n/a".into())
    );

    // Phase 2: the highest sustained rate, closed loop.
    let steady_only = std::env::var("BENCH_ONLY").is_ok_and(|s| s == "steady");
    for clients in [8u64, 32].into_iter().filter(|_| !steady_only) {
        let accepted = Arc::new(AtomicU64::new(0));
        let other = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let hs: Vec<_> = (0..clients)
            .map(|c| {
                let (addr, accepted, other, done) = (addr.clone(), accepted.clone(), other.clone(), done.clone());
                let run_id = run_id.clone();
                std::thread::spawn(move || {
                    let mut conn = Conn::open(&addr);
                    let mut i = 0u64;
                    let mut lat = Vec::new();
                    while !done.load(Ordering::Relaxed) {
                        let s = Instant::now();
                        let st = conn.post(&addr, &format!("max{clients}-{run_id}-{c}-{i}"));
                        lat.push(s.elapsed());
                        i += 1;
                        if st == 202 {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        } else {
                            other.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    lat
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(seconds));
        done.store(true, Ordering::SeqCst);
        let mut lat = Vec::new();
        for h in hs {
            lat.extend(h.join().unwrap());
        }
        let secs = start.elapsed().as_secs_f64();
        lat.sort();
        println!(
            "{label}: max rate with {clients} keep-alive clients: {:.0} accepted events/s ({} in {secs:.1} s, non-202: {}), p50 {}, p99 {}",
            accepted.load(Ordering::SeqCst) as f64 / secs,
            accepted.load(Ordering::SeqCst),
            other.load(Ordering::SeqCst),
            ms(pct(&lat, 0.50)),
            ms(pct(&lat, 0.99)),
        );
    }

    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    let store = zmsync::store::open(database_url).unwrap();
    let total: i64 = store.event_counts().unwrap().iter().map(|c| c.count).sum();
    println!("{label}: events in the log after shutdown: {total}");
}

/// Child processes, stopped with SIGTERM (then SIGKILL) when dropped.
struct Kids(Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        for c in &mut self.0 {
            for _ in 0..200 {
                if !matches!(c.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Phase 3: webhook → Moodle through `zmsync serve` and `zmsync sync --incremental --follow`.
fn end_to_end(label: &str, database_url: &str) {
    let students = std::env::var("BENCH_E2E_STUDENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1500);
    let samples = std::env::var("BENCH_E2E_SAMPLES").ok().and_then(|s| s.parse().ok()).unwrap_or(8usize);
    let sb = Sandbox::start(SandboxOptions {
        generate: GenOptions { students, state: State::Empty, seed: 11, ..GenOptions::default() },
        ..SandboxOptions::default()
    })
    .expect("sandbox");
    let dir = tempfile::tempdir().unwrap();
    let zmsync = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_zmsync"));
        c.current_dir(dir.path()).env("DATABASE_URL", database_url).env("ZOHO_WEBHOOK_HMAC_SECRET", SECRET);
        c.env_remove("RUST_LOG").env_remove("MOODLE_WEBHOOK_HMAC_SECRET").env_remove("ZOHO_NOTIFY_TOKEN");
        c.envs(sb.env()).args(args);
        c
    };
    // A synced store (built without latency, to save time), then the latency the figure is for.
    for _ in 0..2 {
        let out = zmsync(&["--json", "sync", "--all"]).output().expect("run zmsync sync --all");
        assert!(out.status.success(), "sync --all failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    sb.zoho().set_latency_ms(100);
    sb.moodle().set_latency_ms(100);
    sb.zoho().set_concurrency_cap(Some(10));

    let mut kids = Kids(Vec::new());
    let mut serve = zmsync(&["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
        .spawn()
        .expect("start zmsync serve");
    let mut addr = String::new();
    BufReader::new(serve.stdout.take().unwrap()).read_line(&mut addr).unwrap();
    kids.0.push(serve);
    let addr = addr.trim().to_string();
    sb.zoho().configure(|o| o.webhook_hmac_secret = Some(Secret::new(SECRET)));
    sb.zoho().set_webhook_url(Some(format!("http://{addr}/v1/events/zoho/{{entity}}")));
    kids.0.push(
        zmsync(&["sync", "--incremental", "--follow"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("follow.log")).unwrap())
            .spawn()
            .expect("start zmsync sync --incremental --follow"),
    );
    std::thread::sleep(Duration::from_millis(500));

    let users = sb.moodle().users();
    let picked: Vec<(String, String)> = sb
        .zoho()
        .records("BTEC_Students")
        .into_iter()
        .filter_map(|r| {
            let num = r["Student_ID_Number"].as_str().unwrap_or("").to_string();
            let synced = !num.is_empty() && users.iter().any(|u| u.idnumber == num);
            synced.then(|| (r["id"].as_str().unwrap_or("").to_string(), num))
        })
        .take(samples)
        .collect();
    let email_of = |num: &str| sb.moodle().users().into_iter().find(|u| u.idnumber == num).map(|u| u.email);
    let mut times = Vec::new();
    for (i, (id, num)) in picked.iter().enumerate() {
        let email = format!("e2e.{i}.{}@student.example.edu", std::process::id());
        let t = Instant::now();
        sb.zoho().update_record("BTEC_Students", id, serde_json::json!({"Academic_Email": email})).unwrap();
        let mut reached = true;
        while email_of(num).as_deref() != Some(email.as_str()) {
            if t.elapsed() > Duration::from_secs(60) {
                reached = false;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !reached {
            println!("{label}: e2e sample {i}: the change never reached Moodle in 60 s");
            let log = std::fs::read_to_string(dir.path().join("follow.log")).unwrap_or_default();
            println!("{}", log.lines().rev().take(20).collect::<Vec<_>>().join("\n"));
            continue;
        }
        times.push(t.elapsed());
        // Let the follower settle the marks before the next change, so samples do not overlap.
        std::thread::sleep(Duration::from_millis(1500));
    }
    times.sort();
    println!(
        "{label}: webhook → Moodle with --follow, latency 100 ms both sides, {students} students: {} samples, p50 {}, max {} (target < 3 s); webhooks sent {}, delivery failures {}",
        times.len(),
        ms(pct(&times, 0.50)),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
        sb.zoho().stats().webhooks_sent,
        sb.zoho().stats().delivery_failures,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let seconds = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let (acceptance, e2e) =
        (only.is_empty() || only == "acceptance" || only == "steady", only.is_empty() || only == "e2e");
    if std::env::var_os(zmsync::webhook::server::TIMING_VAR).is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(format!("{}=info", zmsync::webhook::server::TIMING_TARGET))
            .with_writer(std::io::stderr)
            .init();
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    if acceptance {
        for http in [Http::Hyper, Http::TinyHttp] {
            bench("sqlite", http, &url, seconds);
        }
    }
    if e2e {
        let url = format!("sqlite://{}", dir.path().join("e2e.db").display());
        end_to_end("sqlite", &url);
    }

    match std::env::var("ZMSYNC_TEST_DATABASE_URL").ok().filter(|s| !s.is_empty()) {
        Some(base) => {
            let mut c = postgres::Client::connect(&base, postgres::NoTls).expect("connect to PostgreSQL");
            let sep = if base.contains('?') { '&' } else { '?' };
            for (phase, on) in [("accept", acceptance), ("e2e", e2e)] {
                if !on {
                    continue;
                }
                let schema = format!("zbench_{phase}_{}", std::process::id());
                c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
                let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
                if phase == "accept" {
                    for http in [Http::Hyper, Http::TinyHttp] {
                        bench("postgresql", http, &url, seconds);
                    }
                } else {
                    end_to_end("postgresql", &url);
                }
                c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
            }
        }
        None => println!("postgresql: skipped (ZMSYNC_TEST_DATABASE_URL is not set)"),
    }
}
