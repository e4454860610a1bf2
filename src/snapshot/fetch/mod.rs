//! Fetching and staging: one task per kind (Zoho) or per Moodle source, each streaming pages into the store.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;

use super::plan::Plan;
use super::{Mode, Options, SnapshotError};
use crate::bridge::{self, StoreBridge};
use crate::config::Config;
use crate::mapping::{self, MapError};
use crate::model::{Kind, Record, Side};
use crate::moodle;
use crate::progress::Bars;
use crate::settings::Settings;
use crate::zoho;

mod from_moodle;
mod from_zoho;

pub use from_moodle::moodle_calls;
use from_moodle::{dashboard, moodle_courses, moodle_functions, moodle_users};
use from_zoho::zoho_kind;
/// A record that could not be mapped: reported, never silently dropped, never failing the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unmappable {
    pub key: String,
    pub reason: String,
}

/// Records mapped and staged per store call (Moodle answers arrive whole; Zoho pages are 200).
const STAGE_CHUNK: usize = 500;

pub struct Clients {
    pub zoho: Option<zoho::Client>,
    pub moodle: Option<moodle::Client>,
}

impl Clients {
    pub fn new(
        plan: &Plan,
        config: &Config,
        opts: &Options,
        settings: &Settings,
        bridge: &StoreBridge,
    ) -> Result<Clients, SnapshotError> {
        let zoho = if plan.side(Side::Zoho).is_empty() {
            None
        } else {
            let o = opts.zoho.clone().unwrap_or_else(|| zoho::ClientOptions::from_settings(settings));
            Some(zoho::Client::new(&config.zoho, o, Some(bridge::token_cache(bridge)))?)
        };
        let moodle = if plan.side(Side::Moodle).is_empty() {
            None
        } else {
            let o = opts.moodle.clone().unwrap_or_else(|| moodle::ClientOptions {
                max_input_vars: settings.max_input_vars,
                ..moodle::ClientOptions::default()
            });
            Some(moodle::Client::new(&config.moodle, o)?)
        };
        Ok(Clients { zoho, moodle })
    }
}

/// One kind fetched and staged, not yet committed.
#[derive(Debug)]
pub struct Staged {
    pub kind: Kind,
    pub snapshot_id: String,
    /// The Zoho module or the Moodle function it came from.
    pub source: String,
    pub records: u64,
    pub skipped: u64,
    pub unmappable: Vec<Unmappable>,
    /// The incremental cursor to store on commit (Zoho kinds).
    pub cursor: Option<String>,
    /// Incremental: keys asked about that are gone from their side (deleted, unenrolled, or no longer a record
    /// of the kind): removed from the store on commit, as a full snapshot would (issue #19).
    pub removed: Vec<String>,
    /// Incremental: keys the API refused (alone, the rest of their read was kept), with its error.
    pub rejected: Vec<Unmappable>,
}

/// Where one kind's pages go: mapped, counted, staged.
struct Sink {
    kind: Kind,
    source: String,
    sid: String,
    bridge: StoreBridge,
    settings: Arc<Settings>,
    bar: ProgressBar,
    records: u64,
    skipped: u64,
    unmappable: Vec<Unmappable>,
    /// Incremental: the keys staged (to tell the keys asked about that are gone).
    staged: Option<HashSet<String>>,
}

impl Sink {
    async fn page(&mut self, raws: Vec<Value>) -> Result<(), SnapshotError> {
        for chunk in raws.chunks(STAGE_CHUNK) {
            let mut recs: Vec<Record> = Vec::with_capacity(chunk.len());
            for raw in chunk {
                match mapping::map_record(self.kind, raw, &self.settings) {
                    Ok(r) => recs.push(r),
                    Err(MapError::Skip(_)) => self.skipped += 1,
                    Err(e) => {
                        let key = raw_key(raw);
                        tracing::warn!(kind = %self.kind, key = %key, "record not mapped: {e}");
                        self.unmappable.push(Unmappable { key, reason: e.to_string() });
                    }
                }
            }
            self.records += recs.len() as u64;
            self.bar.inc(chunk.len() as u64);
            if let Some(staged) = &mut self.staged {
                staged.extend(recs.iter().map(|r| r.key.clone()));
            }
            if recs.is_empty() {
                continue;
            }
            let (sid, kind) = (self.sid.clone(), self.kind);
            self.bridge.run(move |s| s.stage_records(&sid, kind, &recs)).await?;
        }
        Ok(())
    }

    fn finish(self, cursor: Option<String>) -> Staged {
        self.bar.finish_with_message("done");
        Staged {
            kind: self.kind,
            snapshot_id: self.sid,
            source: self.source,
            records: self.records,
            skipped: self.skipped,
            unmappable: self.unmappable,
            cursor,
            removed: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// [`Sink::finish`] for an incremental read of `asked`: those neither staged nor `rejected` are gone.
    fn finish_asked<'k>(
        mut self,
        cursor: Option<String>,
        asked: impl IntoIterator<Item = &'k String>,
        rejected: Vec<Unmappable>,
    ) -> Staged {
        let staged = self.staged.take().unwrap_or_default();
        let refused: HashSet<&str> = rejected.iter().map(|r| r.key.as_str()).collect();
        let mut removed: Vec<String> = asked
            .into_iter()
            .filter(|k| !staged.contains(k.as_str()) && !refused.contains(k.as_str()))
            .cloned()
            .collect();
        removed.sort();
        removed.dedup();
        Staged { removed, rejected, ..self.finish(cursor) }
    }
}

/// The identity of a raw record, for reports of records that did not map.
fn raw_key(raw: &Value) -> String {
    let s = |k: &str| match raw.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    match (s("zoho_id"), s("courseid"), s("userid"), s("id")) {
        (Some(z), _, _, _) => z,
        (None, Some(c), Some(u), _) => format!("{c}:{u}"),
        (None, _, _, Some(id)) => id,
        _ => "(no id)".into(),
    }
}

/// The snapshot id of a kind in this run (known up front so a failed run can discard every kind's pages).
fn snapshot_id(run: &str, kind: Kind) -> String {
    format!("{run}-{}", kind.name())
}

struct Ctx {
    run: String,
    bridge: StoreBridge,
    settings: Arc<Settings>,
    bars: Bars,
    mode: Mode,
}

impl Ctx {
    fn sink(&self, kind: Kind, source: &str) -> Sink {
        let bar = self.bars.records(format!("{} {}", kind.side(), kind.name()));
        Sink {
            kind,
            source: source.to_string(),
            sid: snapshot_id(&self.run, kind),
            bridge: self.bridge.clone(),
            settings: self.settings.clone(),
            bar,
            records: 0,
            skipped: 0,
            unmappable: Vec::new(),
            staged: self.incremental().map(|_| HashSet::new()),
        }
    }

    fn incremental(&self) -> Option<&super::Incremental> {
        match &self.mode {
            Mode::Incremental(i) => Some(i),
            Mode::Full => None,
        }
    }

    /// Moodle keys of an incremental run for `kind` (`None` in a full run).
    fn keys(&self, kind: Kind) -> Option<HashSet<String>> {
        self.incremental().map(|i| i.moodle_keys.get(&kind).map(|v| v.iter().cloned().collect()).unwrap_or_default())
    }
}

type Task = Result<Vec<Staged>, SnapshotError>;

/// Fetches and stages every kind of the plan. On failure, everything staged is discarded.
pub async fn fetch_all(
    plan: &Plan,
    clients: &Clients,
    settings: &Arc<Settings>,
    bridge: &StoreBridge,
    opts: &Options,
) -> Result<Vec<Staged>, SnapshotError> {
    let run = format!("snap-{}-{}", std::process::id(), Utc::now().timestamp_micros());
    let bars = Bars::new(opts.progress);
    let ctx = Arc::new(Ctx {
        run: run.clone(),
        bridge: bridge.clone(),
        settings: settings.clone(),
        bars,
        mode: opts.mode.clone(),
    });
    let result = spawn_all(plan, clients, &ctx, opts.site_checked).await;
    if result.is_err() {
        // A page of a stopped task may still be being staged: let it land before its snapshot is dropped.
        let _ = bridge.settle().await;
        for kind in &plan.kinds {
            let sid = snapshot_id(&run, *kind);
            let _ = bridge.run(move |s| s.discard_snapshot(&sid)).await;
        }
    }
    result
}

async fn spawn_all(
    plan: &Plan,
    clients: &Clients,
    ctx: &Arc<Ctx>,
    site_checked: bool,
) -> Result<Vec<Staged>, SnapshotError> {
    let mut set: JoinSet<Task> = JoinSet::new();
    // Fail fast on credentials and site set-up: a full snapshot checks the Moodle site before any task starts
    // (it needs the web-service user's id, to leave it out of the users). An incremental one reads by key, so the
    // check runs beside its reads instead of before them (two round trips off its path); one whose run already
    // checked the site (the re-read after apply) skips it.
    let mut ws_user = None;
    if let Some(m) = &clients.moodle {
        let needed = moodle_functions(plan);
        if ctx.incremental().is_none() {
            ws_user = Some(m.check_site(&needed).await?.site.userid);
        } else if !site_checked {
            let m = m.clone();
            set.spawn(async move { m.check_site(&needed).await.map(|_| Vec::new()).map_err(SnapshotError::from) });
        }
    }
    if let Some(z) = &clients.zoho {
        z.authenticate().await?;
    }
    if let Some(z) = &clients.zoho {
        for kind in plan.side(Side::Zoho) {
            let (z, ctx) = (z.clone(), ctx.clone());
            set.spawn(async move { zoho_kind(&z, kind, &ctx).await.map(|s| vec![s]) });
        }
    }
    if let Some(m) = &clients.moodle {
        if plan.has(Kind::MoodleUser) {
            let (m, ctx) = (m.clone(), ctx.clone());
            set.spawn(async move { moodle_users(&m, ws_user, &ctx).await.map(|s| vec![s]) });
        }
        if plan.has(Kind::MoodleCourse) || plan.has(Kind::MoodleEnrolment) || plan.has(Kind::MoodleGrade) {
            let (m, ctx, plan) = (m.clone(), ctx.clone(), plan.clone());
            set.spawn(async move { moodle_courses(&m, &plan, &ctx).await });
        }
        for kind in [Kind::DashboardUnit, Kind::DashboardRegistration, Kind::DashboardPayment, Kind::DashboardGrade] {
            if plan.has(kind) {
                let (m, ctx) = (m.clone(), ctx.clone());
                set.spawn(async move { dashboard(&m, kind, &ctx).await.map(|s| vec![s]) });
            }
        }
    }
    let mut staged = Vec::new();
    while let Some(joined) = set.join_next().await {
        let result = match joined {
            Ok(r) => r,
            Err(e) => Err(SnapshotError::Runtime(std::io::Error::other(e.to_string()))),
        };
        match result {
            Ok(s) => staged.extend(s),
            Err(e) => {
                set.shutdown().await;
                return Err(e);
            }
        }
    }
    staged.sort_by_key(|s| s.kind);
    Ok(staged)
}

// ---- guard and clean-up -----------------------------------------------------------------------------------

/// The empty-side guard: a full snapshot that found nothing for a kind the store holds records of is refused.
/// An empty answer is far more often a permission, a renamed module or a restriction than a real mass deletion,
/// and committing it would make the reconcile plan to delete or suspend everything.
pub async fn guard(staged: &[Staged], bridge: &StoreBridge) -> Result<Vec<String>, SnapshotError> {
    let mut refusals = Vec::new();
    for s in staged.iter().filter(|s| s.records == 0) {
        let kind = s.kind;
        let held = bridge.run(move |st| st.record_count(kind)).await?;
        if held > 0 {
            let check = match kind.side() {
                Side::Zoho => format!(
                    "the Zoho token's scopes and the integration user's permission on {}, and the module name in the \
                     setting mapping.fields",
                    s.source
                ),
                Side::Moodle => "the web-service user's capabilities (e.g. moodle/user:viewalldetails, \
                                 moodle/course:view, local/student_dashboard:manage), any context restriction on \
                                 the token, and that the plugin's tables were not emptied"
                    .to_string(),
            };
            refusals.push(format!(
                "{} {} ({}) returned no records but the store holds {held}; check {check}",
                kind.side(),
                kind.name(),
                s.source
            ));
        }
    }
    Ok(refusals)
}

pub async fn discard(staged: &[Staged], bridge: &StoreBridge) {
    for s in staged {
        let sid = s.snapshot_id.clone();
        if let Err(e) = bridge.run(move |st| st.discard_snapshot(&sid)).await {
            tracing::warn!("cannot discard a staged snapshot: {e}");
        }
    }
}
