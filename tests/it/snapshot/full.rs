//! Full snapshots under trouble: a token that expires mid-run, a 429 storm with 5xx, timeouts and resets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zmsync::model::{Kind, Side};
use zmsync::sandbox::moodle::{self as fake_moodle, MoodleOptions};
use zmsync::sandbox::zoho::{FaultKind, ZohoOptions};

use super::{assert_zoho_complete, kind, Harness};

#[test]
fn snapshot_survives_token_expiry_mid_run_with_one_refresh() {
    let h = Harness::start(250, ZohoOptions { latency_ms: 10, ..ZohoOptions::default() }, MoodleOptions::default());
    let done = Arc::new(AtomicBool::new(false));
    // Expire every token as soon as the first records have been served, i.e. in the middle of the run.
    let watcher = std::thread::scope(|scope| {
        let w = scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if h.zoho.stats().records_read.values().sum::<u64>() > 0 {
                    h.zoho.expire_all_tokens();
                    return true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            false
        });
        let s = h.run(&h.options()).unwrap();
        done.store(true, Ordering::SeqCst);
        assert_zoho_complete(&s, &h.zoho);
        assert_eq!(s.zoho.as_ref().unwrap().token_refreshes, 2, "{:?}", s.zoho);
        w.join().unwrap()
    });
    assert!(watcher, "the tokens were expired while the run was reading");
    let stats = h.zoho.stats();
    assert!(stats.unauthorized >= 1, "the fake refused the expired token mid-run");
    assert_eq!(stats.token_refreshes, 2, "one at the start, exactly one after the expiry");
}

#[test]
fn snapshot_finishes_a_429_storm_and_10_percent_faults_with_the_full_data_set() {
    let zoho = ZohoOptions {
        every_nth_429: Some(5),
        concurrency_cap: Some(4),
        fault_rate: 0.10,
        fault_kinds: vec![FaultKind::InternalError, FaultKind::BadGateway, FaultKind::Timeout, FaultKind::Reset],
        timeout_hold: Duration::from_millis(300),
        fault_seed: 3,
        ..ZohoOptions::default()
    };
    let moodle = MoodleOptions {
        fault_rate: 0.10,
        fault_seed: 5,
        fault_kinds: fake_moodle::ALL_FAULTS.to_vec(),
        fault_hold_ms: 300,
        ..MoodleOptions::default()
    };
    let h = Harness::start(200, zoho, moodle);
    let stormy = h.run(&h.options()).unwrap();
    assert_zoho_complete(&stormy, &h.zoho);
    let zs = h.zoho.stats();
    assert!(zs.throttled > 0 && zs.faults.values().sum::<u64>() > 0, "{zs:?}");
    assert!(h.moodle.stats().faults.values().sum::<u64>() > 0, "Moodle faults were injected");

    // The Moodle side against a calm run of the same fakes: the same records.
    h.zoho.configure(|o| {
        o.every_nth_429 = None;
        o.concurrency_cap = None;
        o.fault_rate = 0.0;
    });
    h.moodle.set_fault_rate(0.0);
    let calm = h.run(&h.options()).unwrap();
    for k in stormy.kinds.iter().filter(|k| k.side == Side::Moodle) {
        let c = kind(&calm, k.kind);
        assert_eq!((k.records, k.skipped), (c.records, c.skipped), "{:?}", k.kind);
        assert!(k.records > 0, "{:?} is empty", k.kind);
    }
    assert_eq!(h.store.record_count(Kind::MoodleUser).unwrap(), kind(&calm, Kind::MoodleUser).stored);
}
