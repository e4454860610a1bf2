//! One self-contained HTML page per run: its summary, changes per entity, failures and issues grouped by cause
//! with their records, and trends over the last runs as inline SVG charts. No script, no font, no network:
//! the page opens from the server's disk as it is. Every run writes it beside its CSV (`run-<id>.html`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::issues::IssueSummary;
use super::report::ReportError;
use crate::store::{JournalRow, RunRow, Store};

/// Runs the trend charts cover.
pub const TREND_RUNS: i64 = 30;
/// Records listed per group (failures, issues, changes of an entity); the rest are counted.
const MAX_LISTED: usize = 200;

/// Writes the page of run `run_id` beside its CSV `csv` (none: the run wrote no CSV, nor then a page). A
/// failure is logged, never fails the run: the CSV and the journal are what count, and `zmsync report RUN
/// --html FILE` draws it again.
pub fn write_beside(store: &dyn Store, run_id: i64, csv: Option<&Path>) {
    let Some(csv) = csv else { return };
    let out = csv.with_extension("html");
    let result = report_run_row(store, run_id).and_then(|row| write(store, &row, &out, TREND_RUNS));
    if let Err(e) = result {
        tracing::warn!("could not write the HTML report {}: {e}", out.display());
    }
}

fn report_run_row(store: &dyn Store, id: i64) -> Result<RunRow, ReportError> {
    super::report::run_row(store, Some(id))
}

/// Writes the page of run `row` to `out`, with trends over the last `trend_runs` runs up to it.
pub fn write(store: &dyn Store, row: &RunRow, out: &Path, trend_runs: i64) -> Result<(), ReportError> {
    let page = render(store, row, trend_runs)?;
    let fail = |e: std::io::Error| ReportError::Write { path: out.to_path_buf(), message: e.to_string() };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(out, page).map_err(fail)
}

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn u(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "∅".into(),
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// One trend point: a run and its figures.
struct Point {
    id: i64,
    changes: f64,
    failures: f64,
    duration: f64,
    calls: f64,
    backlog: f64,
}

fn trend(store: &dyn Store, upto: i64, n: i64) -> Result<Vec<Point>, ReportError> {
    // The runs up to this one: newest `n` whose id ≤ upto (a page re-drawn later shows its own time).
    let mut rows: Vec<RunRow> = store.recent_runs(n + 200)?.into_iter().filter(|r| r.id <= upto).collect();
    rows.truncate(n as usize);
    rows.reverse();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut counts: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
    for (run, outcome, k) in store.journal_counts(&ids)? {
        counts.entry(run).or_default().insert(outcome, k);
    }
    Ok(rows
        .iter()
        .map(|r| {
            let c = counts.get(&r.id);
            let n = |o: &str| c.and_then(|c| c.get(o)).copied().unwrap_or(0) as f64;
            let s = r.summary.as_ref();
            Point {
                id: r.id,
                changes: n("applied"),
                failures: n("rejected") + n("failed"),
                duration: r.finished_at.map(|f| (f - r.started_at).num_milliseconds() as f64 / 1000.0).unwrap_or(0.0),
                calls: (u(s.and_then(|s| s.get("zoho_calls"))) + u(s.and_then(|s| s.get("moodle_calls")))) as f64,
                backlog: u(s.and_then(|s| s.get("dirty_taken"))) as f64,
            }
        })
        .collect())
}

/// A small line chart of `values` by run, as inline SVG.
fn chart(metric: &str, title: &str, unit: &str, points: &[(i64, f64)]) -> String {
    let (w, h, left, bottom, top, right) = (560.0, 170.0, 56.0, 28.0, 24.0, 12.0);
    let max = points.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let ymax = if max <= 0.0 { 1.0 } else { max * 1.1 };
    let n = points.len().max(1);
    let x = |i: usize| {
        left + if n == 1 { (w - left - right) / 2.0 } else { i as f64 * (w - left - right) / (n - 1) as f64 }
    };
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / ymax);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure class="trend"><svg class="chart" data-metric="{metric}" role="img" aria-label="{t}" viewBox="0 0 {w} {h}" width="{w}" height="{h}">"#,
        t = esc(title)
    );
    let _ = write!(s, r#"<text x="{left}" y="14" class="ct">{}</text>"#, esc(title));
    // Axes and the top value.
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{t}" x2="{left}" y2="{b}" stroke="#999"/><line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#999"/>"##,
        t = top,
        b = h - bottom,
        r = w - right
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" class="ax" text-anchor="end">{}</text>"#,
        left - 4.0,
        top + 4.0,
        fmt_num(max, unit)
    );
    let _ = write!(s, r#"<text x="{}" y="{}" class="ax" text-anchor="end">0</text>"#, left - 4.0, h - bottom);
    if points.len() > 1 {
        let path: Vec<String> = points.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.1))).collect();
        let _ = write!(s, r##"<polyline fill="none" stroke="#2563eb" stroke-width="2" points="{}"/>"##, path.join(" "));
    }
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#2563eb"><title>run {}: {}</title></circle>"##,
            x(i),
            y(p.1),
            p.0,
            fmt_num(p.1, unit)
        );
    }
    // First and last run under the axis.
    if let (Some(f), Some(l)) = (points.first(), points.last()) {
        let _ = write!(s, r#"<text x="{left}" y="{}" class="ax">run {}</text>"#, h - 8.0, f.0);
        if points.len() > 1 {
            let _ =
                write!(s, r#"<text x="{}" y="{}" class="ax" text-anchor="end">run {}</text>"#, w - right, h - 8.0, l.0);
        }
    }
    s.push_str("</svg></figure>\n");
    s
}

fn fmt_num(v: f64, unit: &str) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}{unit}")
    } else {
        format!("{v:.1}{unit}")
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1f2937;max-width:1200px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}\
h3{font-size:15px;margin:16px 0 6px}table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #e5e7eb;padding:3px 8px;\
text-align:left;vertical-align:top}th{background:#f3f4f6}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.muted{color:#6b7280}.bad{color:#b91c1c}.ok{color:#15803d}.status{font-weight:600}code{background:#f3f4f6;padding:1px 4px}\
.trends{display:flex;flex-wrap:wrap;gap:12px}.trend{margin:0;border:1px solid #e5e7eb;padding:4px}\
.ct{font:600 13px sans-serif;fill:#1f2937}.ax{font:11px sans-serif;fill:#6b7280}details{margin:4px 0}";

/// Ops of one group: how many, the first [`MAX_LISTED`] in seq order, and (per entity) counts by action and
/// outcome.
#[derive(Default)]
struct Listed {
    count: usize,
    rows: Vec<JournalRow>,
    actions: BTreeMap<(String, String), u64>,
}

impl Listed {
    fn add(&mut self, r: &JournalRow) {
        self.count += 1;
        *self.actions.entry((r.entry.op.clone(), r.entry.outcome.clone())).or_default() += 1;
        if self.rows.len() < MAX_LISTED {
            self.rows.push(r.clone());
        }
    }
}

/// What the page shows of a run's journal, read a row at a time: a large run's ops are counted, not held.
struct Digest {
    by_entity: BTreeMap<String, Listed>,
    /// By (entity, outcome, the API's error code: the message up to its first colon); rejected and failed ops.
    causes: BTreeMap<(String, String, String), Listed>,
}

impl Digest {
    fn of(store: &dyn Store, run_id: i64) -> Result<Digest, ReportError> {
        let mut d = Digest { by_entity: BTreeMap::new(), causes: BTreeMap::new() };
        store.journal_each(run_id, &mut |r| {
            d.by_entity.entry(r.entry.entity.clone()).or_default().add(&r);
            if matches!(r.entry.outcome.as_str(), "rejected" | "failed") {
                let msg = r.entry.message.as_deref().unwrap_or("");
                let code = msg.split(':').next().unwrap_or("").trim().to_string();
                d.causes.entry((r.entry.entity.clone(), r.entry.outcome.clone(), code)).or_default().add(&r);
            }
            Ok(())
        })?;
        Ok(d)
    }
}

/// The whole page.
pub fn render(store: &dyn Store, row: &RunRow, trend_runs: i64) -> Result<String, ReportError> {
    let journal = Digest::of(store, row.id)?;
    // The shown status (a dead `running` row reads as interrupted) without reading the journal twice.
    let line = super::runs::lines(store, std::slice::from_ref(row))?.pop();
    let s = row.summary.as_ref();
    let issues: IssueSummary =
        s.and_then(|s| s.get("issue_summary")).and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    let status = line.map(|l| l.status).unwrap_or_else(|| row.status.clone());
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'; style-src 'unsafe-inline'\"><meta name=\"viewport\" \
         content=\"width=device-width,initial-scale=1\"><title>zmsync run {id}</title><style>{STYLE}</style></head>\
         <body>\n<h1>zmsync run {id}: {kind}</h1>\n",
        id = row.id,
        kind = esc(&row.kind)
    );
    // Summary.
    let _ = write!(h, "<section id=\"summary\"><h2>Summary</h2>\n<table>");
    let mut kv = |k: &str, v: String| {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), v);
    };
    let cls = match status.as_str() {
        "completed" => "ok",
        "running" => "muted",
        _ => "bad",
    };
    kv(
        "status",
        format!("<span class=\"status {cls}\">{}</span>{}", esc(&status), if row.dry_run { " (dry run)" } else { "" }),
    );
    kv("started", esc(&row.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()));
    if let Some(f) = row.finished_at {
        kv("duration", format!("{:.1} s", (f - row.started_at).num_milliseconds() as f64 / 1000.0));
    }
    if let Some(s) = s {
        kv(
            "ops",
            format!(
                "planned {}, applied {}, rejected {}, failed {}",
                u(s.get("planned_ops")),
                u(s.get("applied")),
                u(s.get("rejected")),
                u(s.get("failed"))
            ),
        );
        kv(
            "API calls",
            format!(
                "Zoho {} ({} credits), Moodle {}",
                u(s.get("zoho_calls")),
                u(s.get("zoho_credits")),
                u(s.get("moodle_calls"))
            ),
        );
        kv("issues", format!("{} (and {} skipped by policy)", issues.count(), issues.skipped_by_policy));
        kv("conflicts", u(s.get("conflicts")).to_string());
    }
    if let Some(e) = &row.error {
        kv("error", format!("<span class=\"bad\">{}</span>", esc(e)));
    }
    h.push_str("</table>\n");
    for g in s.and_then(|s| s.get("guards")).and_then(Value::as_array).into_iter().flatten() {
        let _ =
            write!(h, "<p class=\"bad\">guard: {}</p>", esc(g.get("message").and_then(Value::as_str).unwrap_or("")));
    }
    if let Some(ents) = s.and_then(|s| s.get("entities")).and_then(Value::as_object) {
        h.push_str("<table><tr><th>entity</th><th>created</th><th>updated</th><th>suspended</th><th>unchanged</th><th>skipped</th><th>failed</th></tr>");
        for (e, t) in ents {
            let _ = write!(h, "<tr><td>{}</td>", esc(e));
            for k in ["created", "updated", "suspended", "unchanged", "skipped", "failed"] {
                let _ = write!(h, "<td class=\"n\">{}</td>", u(t.get(k)));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");

    // Changes per entity.
    h.push_str("<section id=\"changes\"><h2>Changes per entity</h2>\n");
    if journal.by_entity.is_empty() {
        h.push_str("<p class=\"muted\">This run changed nothing.</p>\n");
    }
    for (entity, listed) in &journal.by_entity {
        let summary: Vec<String> = listed.actions.iter().map(|((a, o), n)| format!("{a} {o} {n}")).collect();
        let _ = writeln!(
            h,
            "<details class=\"entity\"><summary><b>{}</b>: {}</summary>",
            esc(entity),
            esc(&summary.join(", "))
        );
        h.push_str("<table><tr><th>seq</th><th>action</th><th>target</th><th>key</th><th>field: old → new</th><th>outcome</th></tr>");
        for r in &listed.rows {
            let before = r.detail.before.as_ref();
            let fields: Vec<String> = r
                .entry
                .changes
                .as_ref()
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let old = before.and_then(|b| b.get(k)).map(cell).unwrap_or_else(|| "∅".into());
                            format!("{}: {} → {}", esc(k), esc(&old), esc(&cell(v)))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = write!(
                h,
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.entry.seq,
                esc(&r.entry.op),
                esc(&r.entry.target),
                esc(&r.entry.key),
                fields.join("<br>"),
                esc(&r.entry.outcome)
            );
        }
        h.push_str("</table>");
        if listed.count > listed.rows.len() {
            let more = listed.count - listed.rows.len();
            let _ = write!(h, "<p class=\"muted\">… {more} more: the CSV report lists every op.</p>");
        }
        h.push_str("</details>\n");
    }
    h.push_str("</section>\n");

    // Failures by cause: entity, outcome and the API's error code (the message up to its first colon).
    h.push_str("<section id=\"failures\"><h2>Failures by cause</h2>\n");
    if journal.causes.is_empty() {
        h.push_str("<p class=\"ok\">No op was rejected or failed.</p>\n");
    }
    for ((entity, outcome, code), listed) in &journal.causes {
        let _ = write!(
            h,
            "<h3>{} {} — {} ({})</h3><table><tr><th>seq</th><th>action</th><th>key</th><th>message</th></tr>",
            esc(entity),
            esc(outcome),
            esc(code),
            listed.count
        );
        for r in &listed.rows {
            let _ = write!(
                h,
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.entry.seq,
                esc(&r.entry.op),
                esc(&r.entry.key),
                esc(r.entry.message.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");

    // Issues by cause.
    h.push_str("<section id=\"issues\"><h2>Issues by cause</h2>\n");
    if issues.skipped_by_policy > 0 {
        let by: Vec<String> = issues.policy.iter().map(|(e, n)| format!("{e} {n}")).collect();
        let _ = writeln!(
            h,
            "<p class=\"muted\">Skipped by policy (not issues): {} records waiting for people the policy does not \
             create, such as students not active in Zoho ({}).</p>",
            issues.skipped_by_policy,
            esc(&by.join(", "))
        );
    }
    if issues.groups.is_empty() {
        h.push_str("<p class=\"ok\">No issues.</p>\n");
    }
    for g in &issues.groups {
        let _ = write!(
            h,
            "<details class=\"cause\"><summary><b>{}</b> ({}): {} — <code>{}</code></summary><table><tr><th>key</th><th>Zoho id</th><th>Moodle id</th><th>message</th></tr>",
            esc(&g.cause),
            g.count,
            esc(&g.meaning),
            esc(&g.command)
        );
        for r in g.records.iter().take(MAX_LISTED) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.key),
                esc(r.zoho_id.as_deref().unwrap_or("")),
                esc(r.moodle_id.as_deref().unwrap_or("")),
                esc(&r.message)
            );
        }
        h.push_str("</table>");
        if g.records.len() > MAX_LISTED {
            let _ = write!(
                h,
                "<p class=\"muted\">… {} more: <code>{}</code></p>",
                g.records.len() - MAX_LISTED,
                esc(&g.command)
            );
        }
        h.push_str("</details>\n");
    }
    h.push_str("</section>\n");

    // Trends.
    let points = trend(store, row.id, trend_runs)?;
    let _ = write!(
        h,
        "<section id=\"trends\"><h2>Trends over the last {} runs</h2>\n<div class=\"trends\">\n",
        points.len()
    );
    let series = |f: fn(&Point) -> f64| points.iter().map(|p| (p.id, f(p))).collect::<Vec<_>>();
    h.push_str(&chart("changes", "changes applied", "", &series(|p| p.changes)));
    h.push_str(&chart("failures", "ops rejected or failed", "", &series(|p| p.failures)));
    h.push_str(&chart("duration", "duration", " s", &series(|p| p.duration)));
    h.push_str(&chart("api_calls", "API calls (Zoho + Moodle)", "", &series(|p| p.calls)));
    h.push_str(&chart("dirty_backlog", "dirty backlog taken (incremental runs)", "", &series(|p| p.backlog)));
    h.push_str("</div></section>\n");
    let _ = write!(
        h,
        "<footer class=\"muted\"><p>Written by zmsync {} from the store's journal. CSV: <code>zmsync report {}</code>.</p></footer>\n</body></html>\n",
        env!("CARGO_PKG_VERSION"),
        row.id
    );
    Ok(h)
}
