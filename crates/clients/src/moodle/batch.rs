//! Batch sizing (docs/plugin-contract.md §7): PHP silently drops form variables beyond
//! `max_input_vars` — truncation at a row boundary means *fewer rows processed with no error* — so every
//! request is cut to stay under the site's limit with headroom, and under the plugin's 500-row limit.

use std::ops::Range;

use serde_json::Value;

use super::form;
use super::MoodleError;

/// The plugin functions' hard limit of rows (or ids) per call.
pub const PLUGIN_MAX_ROWS: usize = 500;

/// Splits rows into requests for one function.
#[derive(Debug, Clone)]
pub struct Batcher {
    function: String,
    /// Variables one request's body may carry: 90% of `max_input_vars` (the reference's default of 900 for
    /// 1000), minus `wstoken`.
    budget: usize,
    max_rows: usize,
}

impl Batcher {
    pub fn new(function: &str, max_input_vars: usize, max_rows: usize) -> Batcher {
        let budget = (max_input_vars * 9 / 10).saturating_sub(1).max(1);
        Batcher { function: function.to_string(), budget, max_rows: max_rows.max(1) }
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Index ranges of `rows`, in order, each a request that fits. `fixed_vars` counts the request's other
    /// arguments. A single row that cannot fit is an error (it would be truncated by PHP).
    pub fn split(&self, rows: &[Value], fixed_vars: usize) -> Result<Vec<Range<usize>>, MoodleError> {
        let room = self.budget.saturating_sub(fixed_vars);
        let mut out = Vec::new();
        let (mut start, mut vars) = (0usize, 0usize);
        for (i, row) in rows.iter().enumerate() {
            let n = form::count(row).max(1);
            if n > room {
                return Err(MoodleError::RowTooLarge {
                    function: self.function.clone(),
                    vars: n + fixed_vars + 1,
                    limit: self.budget + 1,
                });
            }
            if i > start && (vars + n > room || i - start >= self.max_rows) {
                out.push(start..i);
                start = i;
                vars = 0;
            }
            vars += n;
        }
        if start < rows.len() {
            out.push(start..rows.len());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batches_stay_under_the_var_budget_and_row_limit() {
        let row = json!({"zoho_id": "1", "userid": 3, "student_zoho_id": "2", "program": "P", "registration_date": "2026-01-01",
                         "total_fee": "1.00", "scholarship_percent": "0", "currency": "USD", "status": "Active"});
        let rows = vec![row; 450];
        let b = Batcher::new("local_student_dashboard_upsert_registrations", 1000, PLUGIN_MAX_ROWS);
        let ranges = b.split(&rows, 0).unwrap();
        assert_eq!(ranges.iter().map(|r| r.len()).collect::<Vec<_>>(), vec![99, 99, 99, 99, 54]);
        for r in &ranges {
            assert!(r.len() * 9 < 900);
        }
        let ids: Vec<Value> = (0..1200).map(|i| json!(i)).collect();
        let ranges = Batcher::new("f", 100_000, PLUGIN_MAX_ROWS).split(&ids, 0).unwrap();
        assert_eq!(ranges.iter().map(|r| r.len()).collect::<Vec<_>>(), vec![500, 500, 200]);
        assert!(Batcher::new("f", 1000, 10).split(&[], 0).unwrap().is_empty());
    }

    #[test]
    fn a_row_that_cannot_fit_is_an_error() {
        let big = json!({"values": (0..2000).collect::<Vec<_>>()});
        let e = Batcher::new("f", 1000, 500).split(&[big], 0).unwrap_err();
        assert!(matches!(e, MoodleError::RowTooLarge { .. }));
    }
}
