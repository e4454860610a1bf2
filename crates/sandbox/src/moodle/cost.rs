//! The server-time model: what a call costs a real Moodle 5.0 (PHP 8.2, PostgreSQL 15, 4 PHP workers), measured
//! on a 1,500-student first sync (docs/benchmarks.md "A stock Moodle 5.0"; upper bounds from a loaded 2-core machine).
//! Off by default; the benches turn it on so the time a sync takes is set by the site, as it is for real.
//!
//! A call holds one of `workers` PHP workers for `per_call_ms + per_row_ms × rows`, where `rows` is the rows
//! sent for a write and the rows answered for a read. Network latency (`latency_ms`) is spent before a worker
//! is taken, as a request in flight does not occupy PHP.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

/// Per-function server time and the worker pool.
#[derive(Debug, Clone, PartialEq)]
pub struct CostModel {
    /// PHP workers serving requests (the measured site had 4).
    pub workers: usize,
    /// Every call: bootstrap, token, function lookup, parameter validation (≈ 20 ms measured: 10 calls of 10
    /// users took 0.2 s longer than one call of 100).
    pub per_call_ms: f64,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel { workers: 4, per_call_ms: 20.0 }
    }
}

/// Server time per row, by function (ms). Measured: the first four; the rest are estimates of the same work
/// (an update costs about what a create does without the password and context set-up; a read row is cheap).
pub fn per_row_ms(function: &str) -> f64 {
    match function {
        // Measured on the real site.
        "core_user_create_users" => 34.0,
        "enrol_manual_enrol_users" => 35.0,
        "core_course_create_courses" => 150.0,
        f if f.starts_with("local_student_dashboard_upsert_") => 5.0,
        // Estimates.
        "core_user_update_users" => 20.0,
        "enrol_manual_unenrol_users" => 25.0,
        "core_course_update_courses" => 60.0,
        "core_course_create_categories" => 100.0,
        "core_user_delete_users" => 40.0,
        f if f.starts_with("local_student_dashboard_delete_") => 3.0,
        // Reads, per row answered: `core_user_get_users` measured ≈ 5 s for 1,500 users.
        "core_user_get_users" => 3.4,
        "core_user_get_users_by_field" => 4.0,
        "core_enrol_get_enrolled_users" => 3.0,
        "local_student_dashboard_get_enrolments" | "local_student_dashboard_get_course_grades" => 0.5,
        f if f.starts_with("local_student_dashboard_get_") => 0.3,
        "core_course_get_courses" | "core_course_get_categories" => 1.0,
        _ => 0.0,
    }
}

/// Whether `function` writes (its rows are the rows sent) rather than reads (the rows answered).
fn writes(function: &str) -> bool {
    ["_create_", "_update_", "_delete_", "_upsert_", "enrol_manual_"].iter().any(|p| function.contains(p))
}

/// The rows a call counts: the first list argument for a write (as PHP decoded it: `a[0][k]…` is a map keyed by
/// index), the answer's rows for a read.
pub fn rows(function: &str, args: &Map<String, Value>, answer: Option<&Value>) -> usize {
    if writes(function) {
        return args
            .values()
            .find_map(|v| match v {
                Value::Array(a) => Some(a.len()),
                Value::Object(m) => Some(m.len()),
                _ => None,
            })
            .unwrap_or(0);
    }
    match answer {
        Some(Value::Array(a)) => a.len(),
        Some(Value::Object(m)) => ["users", "rows", "grades", "enrolments"]
            .iter()
            .find_map(|k| m.get(*k)?.as_array().map(Vec::len))
            .unwrap_or(0),
        _ => 0,
    }
}

impl CostModel {
    /// The server time of one call.
    pub fn cost(&self, function: &str, rows: usize) -> Duration {
        Duration::from_secs_f64((self.per_call_ms + per_row_ms(function) * rows as f64) / 1000.0)
    }
}

/// A counting semaphore for the PHP workers (the fake serves one thread per connection).
#[derive(Debug, Default)]
pub struct Workers {
    busy: Mutex<usize>,
    freed: Condvar,
    /// The most workers busy at once.
    pub peak: std::sync::atomic::AtomicUsize,
}

/// A worker held until dropped.
pub struct Worker<'a>(&'a Workers);

impl Workers {
    pub fn take(&self, limit: usize) -> Worker<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *busy >= limit.max(1) {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        *busy += 1;
        self.peak.fetch_max(*busy, std::sync::atomic::Ordering::SeqCst);
        Worker(self)
    }
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy = busy.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_are_sent_for_writes_and_answered_for_reads() {
        let args = json!({"enrolments": [{}, {}, {}]});
        assert_eq!(rows("enrol_manual_enrol_users", args.as_object().unwrap(), None), 3);
        let decoded = json!({"users": {"0": {"username": "a"}, "1": {"username": "b"}}});
        assert_eq!(rows("core_user_create_users", decoded.as_object().unwrap(), None), 2);
        let answer = json!({"users": [{}, {}], "warnings": []});
        assert_eq!(rows("core_user_get_users", &Map::new(), Some(&answer)), 2);
        let m = CostModel::default();
        assert_eq!(m.cost("core_user_create_users", 50), Duration::from_millis(20 + 34 * 50));
    }
}
