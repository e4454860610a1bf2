//! Webhook acceptance benchmark: `cargo bench --bench webhook`.
//!
//! Starts the receiver in-process on loopback (the same code as `zmsync serve`), then drives it with signed
//! Zoho events over keep-alive HTTP/1.1 connections:
//! 1. latency at a steady 200 requests/s (p50, p99, max), every answer a 202 sent after the commit;
//! 2. the highest sustained rate with many connections in a closed loop.
//!
//! On SQLite always, and on PostgreSQL when ZMSYNC_TEST_DATABASE_URL is set (in a schema of its own). Figures
//! are printed, never asserted. BENCH_SECONDS changes the length of each phase (default 10), BENCH_WORKERS the
//! receiver's worker threads (default 64: each waits for its commit).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
            r#"{{"event_id":"{id}","event_type":"updated","module":"BTEC_Students","record_id":"58475960{:08}","timestamp":"2026-01-25T10:00:00Z"}}"#,
            id.len() * 7919 % 100_000_000
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

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn bench(label: &str, database_url: &str, seconds: u64) {
    // Migrate first, as `zmsync serve` does.
    drop(zmsync::store::open(database_url).expect("open the store"));
    let receiver = Receiver::bind("127.0.0.1:0").expect("bind");
    let addr = receiver.addr().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let opts = ServeOptions {
        database_url: database_url.to_string(),
        workers: std::env::var("BENCH_WORKERS").ok().and_then(|s| s.parse().ok()).unwrap_or(64),
        secrets: Secrets { zoho: Some(Secret::new(SECRET)), zoho_notify: None, moodle: None },
    };
    let server = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || receiver.run(opts, stop).expect("serve"))
    };
    std::thread::sleep(Duration::from_millis(300));
    let run_id = std::process::id();

    // Phase 1: a steady 200 requests/s, open loop over 4 connections (50/s each, staggered).
    let rate = 200u64;
    let conns = 4u64;
    let t0 = Instant::now() + Duration::from_millis(50);
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                let interval = Duration::from_nanos(1_000_000_000 * conns / rate);
                let mut lat = Vec::new();
                let mut bad = 0;
                let n = rate / conns * seconds;
                for i in 0..n {
                    let due = t0 + Duration::from_nanos(1_000_000_000 / rate * c) + interval * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let start = Instant::now();
                    let st = conn.post(&addr, &format!("lat-{run_id}-{c}-{i}"));
                    // Measured from when the request was due, so a slow answer is not hidden (no coordinated omission).
                    lat.push(Instant::now().duration_since(due.min(start)));
                    if st != 202 {
                        bad += 1;
                    }
                }
                (lat, bad)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut bad = 0;
    for h in handles {
        let (l, b) = h.join().unwrap();
        lat.extend(l);
        bad += b;
    }
    lat.sort();
    println!(
        "{label}: steady {rate} req/s for {seconds} s: {} events, non-202: {bad}, p50 {}, p99 {}, max {}",
        lat.len(),
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO))
    );

    // Phase 2: the highest sustained rate, closed loop.
    for clients in [8u64, 32] {
        let accepted = Arc::new(AtomicU64::new(0));
        let other = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let hs: Vec<_> = (0..clients)
            .map(|c| {
                let (addr, accepted, other, done) = (addr.clone(), accepted.clone(), other.clone(), done.clone());
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

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let seconds = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    bench("sqlite", &url, seconds);

    match std::env::var("ZMSYNC_TEST_DATABASE_URL").ok().filter(|s| !s.is_empty()) {
        Some(base) => {
            let schema = format!("zbench_{}", std::process::id());
            let mut c = postgres::Client::connect(&base, postgres::NoTls).expect("connect to PostgreSQL");
            c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            bench("postgresql", &format!("{base}{sep}options=-csearch_path%3D{schema}"), seconds);
            c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
        }
        None => println!("postgresql: skipped (ZMSYNC_TEST_DATABASE_URL is not set)"),
    }
}
