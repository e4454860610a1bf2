//! What a snapshot did, for the one-screen table and for `--json`.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

pub use super::fetch::Unmappable;
use super::fetch::{moodle_calls, Clients, Staged};
use crate::model::{Kind, Side};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindSummary {
    pub kind: Kind,
    pub side: Side,
    /// The Zoho module or Moodle function the records came from.
    pub source: String,
    /// Records mapped and staged.
    pub records: u64,
    /// Objects that are not records yet (`MapError::Skip`, e.g. a course total without a grade).
    pub skipped: u64,
    pub unmappable: Vec<Unmappable>,
    /// Records the store holds for the kind after the commit.
    pub stored: u64,
    pub api_calls: u64,
    /// Incremental: keys asked about that are gone from their side, removed from the store.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Incremental: keys the API refused alone (the rest of the read was kept), with the error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Unmappable>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SideSummary {
    pub api_calls: u64,
    pub retries: u64,
    /// Zoho only: credits spent, tokens minted, 429s received.
    pub credits: u64,
    pub token_refreshes: u64,
    pub throttled: u64,
    /// Moodle only: the most form variables one request carried.
    pub max_form_vars: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotSummary {
    pub mode: &'static str,
    pub kinds: Vec<KindSummary>,
    pub zoho: Option<SideSummary>,
    pub moodle: Option<SideSummary>,
    pub elapsed_ms: u64,
}

impl Staged {
    pub(super) fn into_summary(self, stored: u64, clients: &Clients) -> KindSummary {
        let api_calls = match self.kind.side() {
            Side::Zoho => clients
                .zoho
                .as_ref()
                .map(|z| z.stats().calls_by_module.get(&self.source).copied().unwrap_or(0))
                .unwrap_or(0),
            Side::Moodle => {
                clients.moodle.as_ref().map(|m| moodle_calls(self.kind, &m.stats().by_function)).unwrap_or(0)
            }
        };
        KindSummary {
            kind: self.kind,
            side: self.kind.side(),
            source: self.source,
            records: self.records,
            skipped: self.skipped,
            unmappable: self.unmappable,
            stored,
            api_calls,
            removed: self.removed,
            rejected: self.rejected,
        }
    }
}

impl SnapshotSummary {
    pub(super) fn new(full: bool, kinds: Vec<KindSummary>, clients: &Clients, elapsed: Duration) -> SnapshotSummary {
        let zoho = clients.zoho.as_ref().map(|z| {
            let s = z.stats();
            SideSummary {
                api_calls: s.calls,
                retries: s.retries,
                credits: s.credits,
                token_refreshes: s.refreshes,
                throttled: s.throttled,
                max_form_vars: 0,
            }
        });
        let moodle = clients.moodle.as_ref().map(|m| {
            let s = m.stats();
            SideSummary {
                api_calls: s.calls,
                retries: s.retries,
                max_form_vars: s.max_vars(),
                ..SideSummary::default()
            }
        });
        SnapshotSummary {
            mode: if full { "full" } else { "incremental" },
            kinds,
            zoho,
            moodle,
            elapsed_ms: elapsed.as_millis() as u64,
        }
    }

    pub fn unmappable(&self) -> usize {
        self.kinds.iter().map(|k| k.unmappable.len()).sum()
    }

    /// The human summary: one line per kind, the side totals, the unmappable records.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<8} {:<24} {:<44} {:>8} {:>8} {:>8} {:>6}",
            "side", "kind", "source", "records", "skipped", "unmapped", "calls"
        );
        for k in &self.kinds {
            let _ = writeln!(
                s,
                "{:<8} {:<24} {:<44} {:>8} {:>8} {:>8} {:>6}",
                k.side.name(),
                k.kind.name(),
                k.source,
                k.records,
                k.skipped,
                k.unmappable.len(),
                k.api_calls
            );
        }
        if let Some(z) = &self.zoho {
            let _ = writeln!(
                s,
                "zoho:   {} API calls, {} credits, {} token refreshes, {} retries ({} throttled)",
                z.api_calls, z.credits, z.token_refreshes, z.retries, z.throttled
            );
        }
        if let Some(m) = &self.moodle {
            let _ = writeln!(
                s,
                "moodle: {} API calls, {} retries, at most {} form variables per call",
                m.api_calls, m.retries, m.max_form_vars
            );
        }
        let _ = writeln!(s, "{} snapshot in {:.1} s", self.mode, self.elapsed_ms as f64 / 1000.0);
        let unmapped: Vec<_> = self.kinds.iter().flat_map(|k| k.unmappable.iter().map(move |u| (k.kind, u))).collect();
        if !unmapped.is_empty() {
            let _ = writeln!(s, "records that could not be mapped ({}):", unmapped.len());
            for (kind, u) in unmapped.iter().take(50) {
                let _ = writeln!(s, "  {} {}: {}", kind.name(), u.key, u.reason);
            }
            if unmapped.len() > 50 {
                let _ = writeln!(s, "  … and {} more (see --json)", unmapped.len() - 50);
            }
        }
        s
    }
}
