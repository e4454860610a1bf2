//! Fetching and staging: one task per kind (Zoho) or per Moodle source, each streaming pages into the store.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::plan::Plan;
use super::summary::Unmappable;
use super::{Mode, Options, SnapshotError};
use crate::bridge::{self, StoreBridge};
use crate::config::Config;
use crate::mapping::{self, MapError, ZohoNames};
use crate::model::{Kind, Record, Side};
use crate::moodle::{self, calls};
use crate::progress::Bars;
use crate::settings::Settings;
use crate::zoho::{self, ListQuery};

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

/// The read functions the plan's Moodle kinds need.
fn moodle_functions(plan: &Plan) -> Vec<String> {
    let p = calls::PLUGIN;
    let mut f = BTreeSet::from(["core_webservice_get_site_info".to_string(), format!("{p}_get_info")]);
    for kind in plan.side(Side::Moodle) {
        match kind {
            Kind::MoodleUser => {
                f.insert("core_user_get_users".into());
            }
            Kind::MoodleCourse => {
                f.insert("core_course_get_courses".into());
            }
            Kind::MoodleEnrolment => {
                f.insert("core_course_get_courses".into());
                f.insert(format!("{p}_get_enrolments"));
            }
            Kind::MoodleGrade => {
                f.insert("core_course_get_courses".into());
                f.insert(format!("{p}_get_course_grades"));
            }
            k => {
                f.insert(format!("{p}_get_{}", mapping::dashboard::table(k)));
            }
        }
    }
    f.into_iter().collect()
}

// ---- Zoho ---------------------------------------------------------------------------------------------------

/// Where the last run stopped: the largest `Modified_Time` and the ids modified at exactly that instant
/// (`If-Modified-Since` is inclusive; these are skipped when read again).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ZohoCursor {
    time: Option<DateTime<Utc>>,
    ids: Vec<String>,
    /// The instant `time` was over (by Zoho's clock, [`CLOSED_AFTER`] later) when the listing that found it
    /// started: every record modified at that instant was there to be read, and none can be modified at it any
    /// more. The next run then asks from the following second and does not read them all again (after a bulk
    /// write, e.g. the Moodle ids written back by a first sync, that is hundreds of records, page after page).
    #[serde(default)]
    closed: bool,
}

/// (id, `Modified_Time`) pairs a listing skips ([`ListQuery::seen`]).
type Seen = HashSet<(String, String)>;

/// How long after a cursor's instant (whole seconds, as Zoho stamps `Modified_Time` and its `Date` header) a
/// listing must have started for the instant to count as closed: one whole second after it ended.
const CLOSED_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

impl ZohoCursor {
    /// Takes in another cursor (the stored one): the later instant wins, ids at the same instant add up.
    fn merge(&mut self, other: ZohoCursor) {
        match (self.time, other.time) {
            (_, None) => {}
            (Some(a), Some(b)) if a > b => {}
            (Some(a), Some(b)) if a == b => {
                let mine: HashSet<String> = self.ids.iter().cloned().collect();
                self.ids.extend(other.ids.into_iter().filter(|id| !mine.contains(id)));
                self.closed |= other.closed;
            }
            _ => *self = other,
        }
    }

    /// Where a catch-up starts: the cursor's instant and the ids read at it, or, once the instant is closed, the
    /// next second and nothing to skip.
    fn since(&self) -> Option<(DateTime<Utc>, Seen)> {
        let t = self.time?;
        if self.closed {
            return Some((t + chrono::TimeDelta::seconds(1), HashSet::new()));
        }
        Some((t, self.ids.iter().map(|id| (id.clone(), String::new())).collect()))
    }

    /// A listing that started at `started` (Zoho's clock) has read everything up to the cursor: closes its
    /// instant if that was over by then.
    fn listed(&mut self, started: Option<DateTime<Utc>>) {
        if let (Some(t), Some(d)) = (self.time, started) {
            self.closed |= d >= t + CLOSED_AFTER;
        }
    }

    fn see(&mut self, rec: &Value) {
        let Some(t) =
            rec.get("Modified_Time").and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        else {
            return;
        };
        let t = t.with_timezone(&Utc);
        let id = rec.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        match self.time {
            Some(cur) if t < cur => {}
            Some(cur) if t == cur => self.ids.push(id),
            _ => {
                self.time = Some(t);
                self.ids = vec![id];
                self.closed = false;
            }
        }
    }
}

async fn zoho_kind(client: &zoho::Client, kind: Kind, ctx: &Ctx) -> Result<Staged, SnapshotError> {
    let names = ZohoNames::for_kind(&ctx.settings, kind);
    let module = names.module().to_string();
    let fields = names.read_fields();
    let mut sink = ctx.sink(kind, &module);
    let mut cursor = ZohoCursor::default();
    let mut query = ListQuery::new(&module, fields.clone());
    let Some(inc) = ctx.incremental() else {
        let cursor = list_into(client, query, &mut sink, &mut cursor).await?;
        return Ok(sink.finish(cursor));
    };
    // Incremental: the dirty ids by id, beside the catch-up since the cursor (one round trip, not two).
    let asked: &[String] = inc.zoho_ids.get(&kind).map(Vec::as_slice).unwrap_or(&[]);
    let by_ids = async {
        match asked {
            [] => Ok((Vec::new(), Vec::new())),
            ids => client.get_by_ids_each(&module, &fields, ids).await,
        }
    };
    let catch_up = async {
        let stored: Option<ZohoCursor> =
            ctx.bridge.run(move |s| s.cursor(kind)).await?.and_then(|c| serde_json::from_str(&c).ok());
        let from = match (inc.since, stored) {
            (Some(t), _) => Some((t, HashSet::new())),
            (None, Some(c)) => {
                let from = c.since();
                // Continue from the stored cursor: records at its instant that this run skips stay in its ids,
                // or a later run at the same instant would fetch them again.
                cursor.merge(c);
                from
            }
            (None, None) => None,
        };
        let Some((since, seen)) = from else {
            // No cursor yet: an incremental run only fetches the keys it was given.
            return Ok::<_, SnapshotError>(false);
        };
        query.modified_since = Some(since);
        query.seen = seen;
        list_into(client, query, &mut sink, &mut cursor).await?;
        Ok(true)
    };
    let (recs, listed) = tokio::join!(by_ids, catch_up);
    let ((recs, refused), listed) = (recs?, listed?);
    // The records read by id do not move the cursor: one modified after the catch-up began would put it past
    // changes the catch-up did not see. The next catch-up reads it again instead.
    sink.page(recs).await?;
    let cursor = (listed && cursor.time.is_some()).then(|| json!(cursor).to_string());
    let rejected = refused
        .into_iter()
        .map(|(key, e)| {
            tracing::warn!(kind = %kind, key = %key, "Zoho refused this id (the other ids were read): {e}");
            Unmappable { key, reason: format!("Zoho refused the id: {e}") }
        })
        .collect();
    Ok(sink.finish_asked(cursor, asked, rejected))
}

/// Reads a listing (whole, or since `query.modified_since`) into `sink`, moving `cursor` along; returns the
/// cursor to store, if any record had a `Modified_Time`.
async fn list_into(
    client: &zoho::Client,
    mut query: ListQuery,
    sink: &mut Sink,
    cursor: &mut ZohoCursor,
) -> Result<Option<String>, SnapshotError> {
    let skip_ids: HashSet<String> = query.seen.iter().map(|(id, _)| id.clone()).collect();
    let boundary = query.modified_since;
    query.seen.clear();
    // A full listing is read from both ends at once (half the chain of page tokens); a listing since the
    // cursor is ordered by Modified_Time and read oldest first.
    let mut pages = if boundary.is_none() {
        Listing::Split(Box::new(client.list_split(query)))
    } else {
        Listing::Plain(client.list(query))
    };
    while let Some(mut page) = pages.next().await? {
        // The cursor's own records come back (inclusive If-Modified-Since): skip those not modified since.
        if let Some(b) = boundary {
            page.retain(|r| {
                let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
                let at =
                    r.get("Modified_Time").and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                !(skip_ids.contains(id) && at.map(|t| t.with_timezone(&Utc) <= b).unwrap_or(false))
            });
        }
        page.iter().for_each(|r| cursor.see(r));
        sink.page(page).await?;
    }
    cursor.listed(pages.started());
    Ok(cursor.time.is_some().then(|| json!(cursor).to_string()))
}

enum Listing {
    Plain(zoho::Pages),
    Split(Box<zoho::SplitPages>),
}

impl Listing {
    async fn next(&mut self) -> Result<Option<Vec<Value>>, zoho::ZohoError> {
        match self {
            Listing::Plain(p) => p.next().await,
            Listing::Split(p) => p.next().await,
        }
    }

    /// Zoho's clock when it answered the first page.
    fn started(&self) -> Option<DateTime<Utc>> {
        match self {
            Listing::Plain(p) => p.started,
            Listing::Split(p) => p.started(),
        }
    }
}

// ---- Moodle -------------------------------------------------------------------------------------------------

async fn moodle_users(m: &moodle::Client, ws_user: Option<i64>, ctx: &Ctx) -> Result<Staged, SnapshotError> {
    let mut sink = ctx.sink(Kind::MoodleUser, "core_user_get_users");
    let Some(keys) = ctx.keys(Kind::MoodleUser) else {
        let mut users = m.users(ws_user).await?;
        note_unreadable(&mut users);
        sink.page(users).await?;
        return Ok(sink.finish(None));
    };
    // Moodle validates the ids of a read as integers and refuses the whole call for one that is not: such a
    // key fails alone, before the call. A deleted user makes Moodle refuse the whole read too: the read is
    // split down to it, and it is gone (a removal); the others are read.
    let (mut ids, bad): (Vec<String>, Vec<String>) = keys.iter().cloned().partition(|k| k.parse::<i64>().is_ok());
    ids.sort();
    let mut rejected: Vec<Unmappable> = bad
        .into_iter()
        .map(|key| Unmappable { reason: format!("`{key}` is not a Moodle user id (a whole number)"), key })
        .collect();
    if !ids.is_empty() {
        sink.source = "core_user_get_users_by_field".into();
        let (mut users, refused) = m.users_by_id_each(&ids).await?;
        note_unreadable(&mut users);
        sink.page(users).await?;
        rejected.extend(
            refused.into_iter().map(|(key, e)| Unmappable { key, reason: format!("Moodle refused the id: {e}") }),
        );
    }
    Ok(sink.finish_asked(None, &keys, rejected))
}

/// Fields Moodle returned for no user are unknown (not shown to this token), never compared.
fn note_unreadable(users: &mut [Value]) {
    let unreadable = crate::mapping::person::settle_identity_fields(users);
    if !unreadable.is_empty() {
        tracing::info!(fields = ?unreadable, "Moodle returned these user fields for no user: unknown, not compared");
    }
}

fn keep(keys: &Option<HashSet<String>>, raw: &Value) -> bool {
    keys.as_ref().map(|k| k.contains(&raw_key(raw))).unwrap_or(true)
}

async fn moodle_courses(m: &moodle::Client, plan: &Plan, ctx: &Ctx) -> Task {
    let kinds = [Kind::MoodleCourse, Kind::MoodleEnrolment, Kind::MoodleGrade].into_iter().filter(|k| plan.has(*k));
    if kinds.clone().all(|k| ctx.keys(k).is_some_and(|keys| keys.is_empty())) {
        // An incremental run with no course, enrolment or grade keys reads nothing here.
        return Ok(kinds.map(|k| ctx.sink(k, "core_course_get_courses").finish(None)).collect());
    }
    // An incremental run that reads enrolments or grades by key and no course needs no course list: the keys
    // name their courses (an echoed event then costs one read).
    let by_keys_only =
        [Kind::MoodleEnrolment, Kind::MoodleGrade].into_iter().filter(|k| plan.has(*k)).all(|k| ctx.keys(k).is_some())
            && (!plan.has(Kind::MoodleCourse) || ctx.keys(Kind::MoodleCourse).is_some_and(|k| k.is_empty()));
    let courses = if by_keys_only { Vec::new() } else { m.courses().await? };
    let ids: Vec<i64> = courses.iter().filter_map(|c| c.get("id").and_then(Value::as_i64)).collect();
    let mut out = Vec::new();
    if plan.has(Kind::MoodleCourse) {
        let mut sink = ctx.sink(Kind::MoodleCourse, "core_course_get_courses");
        let keys = ctx.keys(Kind::MoodleCourse);
        sink.page(courses.into_iter().filter(|c| keep(&keys, c)).collect()).await?;
        out.push(match &keys {
            Some(k) => sink.finish_asked(None, k, Vec::new()),
            None => sink.finish(None),
        });
    } else {
        drop(courses);
    }
    for kind in [Kind::MoodleEnrolment, Kind::MoodleGrade] {
        if !plan.has(kind) {
            continue;
        }
        let keys = ctx.keys(kind);
        // An incremental run reads only the courses its keys name.
        let wanted: Vec<i64> = match &keys {
            None => ids.clone(),
            Some(k) => {
                let cs: BTreeSet<i64> = k.iter().filter_map(|key| key.split(':').next()?.parse().ok()).collect();
                if by_keys_only {
                    cs.into_iter().collect()
                } else {
                    ids.iter().copied().filter(|i| cs.contains(i)).collect()
                }
            }
        };
        let source = if kind == Kind::MoodleEnrolment { "get_enrolments" } else { "get_course_grades" };
        let mut sink = ctx.sink(kind, &format!("{}_{source}", calls::PLUGIN));
        for chunk in wanted.chunks(calls::COURSES_PER_CALL) {
            let (rows, warnings) =
                if kind == Kind::MoodleEnrolment { m.enrolments(chunk).await? } else { m.course_grades(chunk).await? };
            for w in warnings {
                tracing::warn!(kind = %kind, code = %w.warningcode, item = ?w.itemid, "{}", w.message);
            }
            sink.page(rows.into_iter().filter(|r| keep(&keys, r)).collect()).await?;
        }
        out.push(match &keys {
            Some(k) => sink.finish_asked(None, k, Vec::new()),
            None => sink.finish(None),
        });
    }
    Ok(out)
}

async fn dashboard(m: &moodle::Client, kind: Kind, ctx: &Ctx) -> Result<Staged, SnapshotError> {
    let table = mapping::dashboard::table(kind);
    let mut sink = ctx.sink(kind, &format!("{}_get_{table}", calls::PLUGIN));
    let keys = ctx.keys(kind);
    if keys.as_ref().is_some_and(HashSet::is_empty) {
        return Ok(sink.finish(None));
    }
    let mut from = 0usize;
    loop {
        let (rows, total) = m.plugin_rows(table, from, calls::PLUGIN_PAGE).await?;
        let n = rows.len();
        if let Some(total) = Some(total).filter(|t| *t > 0) {
            sink.bar.set_length(total);
        }
        sink.page(rows.into_iter().filter(|r| keep(&keys, r)).collect()).await?;
        from += n;
        if n == 0 || from as u64 >= total {
            break;
        }
    }
    Ok(match &keys {
        Some(k) => sink.finish_asked(None, k, Vec::new()),
        None => sink.finish(None),
    })
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

/// Moodle API calls per kind, by the functions each kind's fetch uses.
pub fn moodle_calls(kind: Kind, by_function: &BTreeMap<String, moodle::FunctionStats>) -> u64 {
    let p = calls::PLUGIN;
    let names: Vec<String> = match kind {
        Kind::MoodleUser => vec!["core_user_get_users".into(), "core_user_get_users_by_field".into()],
        Kind::MoodleCourse => vec!["core_course_get_courses".into()],
        Kind::MoodleEnrolment => vec![format!("{p}_get_enrolments")],
        Kind::MoodleGrade => vec![format!("{p}_get_course_grades")],
        k => vec![format!("{p}_get_{}", mapping::dashboard::table(k))],
    };
    names.iter().filter_map(|n| by_function.get(n)).map(|f| f.calls).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn rec(id: &str, t: &str) -> Value {
        json!({"id": id, "Modified_Time": t})
    }

    #[test]
    fn a_cursor_instant_closes_only_once_a_listing_started_a_second_after_it() {
        let mut c = ZohoCursor::default();
        c.see(&rec("1", "2026-11-24T08:00:00+00:00"));
        c.see(&rec("2", "2026-11-24T08:00:00+00:00"));
        // Started within the instant's second or the next one: records may still be stamped with it.
        c.listed(Some(at("2026-11-24T08:00:00Z")));
        c.listed(Some(at("2026-11-24T08:00:01Z")));
        c.listed(None);
        assert!(!c.closed);
        let (since, seen) = c.since().unwrap();
        assert_eq!(since, at("2026-11-24T08:00:00Z"), "inclusive from the instant");
        assert_eq!(seen.len(), 2, "its ids are skipped");
        c.listed(Some(at("2026-11-24T08:00:02Z")));
        assert!(c.closed);
        let (since, seen) = c.since().unwrap();
        assert_eq!(since, at("2026-11-24T08:00:01Z"), "from the next second");
        assert!(seen.is_empty());
        // The stored form keeps it; a cursor stored before the flag existed is open.
        let back: ZohoCursor = serde_json::from_str(&json!(c).to_string()).unwrap();
        assert!(back.closed);
        let old: ZohoCursor = serde_json::from_str(r#"{"time":"2026-11-24T08:00:00Z","ids":["1"]}"#).unwrap();
        assert!(!old.closed);
        // A later record opens the cursor again at its own instant.
        c.see(&rec("3", "2026-11-24T08:00:05+00:00"));
        assert!(!c.closed);
        assert_eq!(c.ids, vec!["3".to_string()]);
        // Merged with a closed cursor of the same instant (the stored one, nothing newer read): stays closed.
        let mut fresh = ZohoCursor::default();
        fresh.merge(back);
        assert!(fresh.closed);
    }
}
