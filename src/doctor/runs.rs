//! The schedule: the last successful full sync is recent enough (setting `doctor.max_full_run_age_hours`,
//! default 36 h), so a timer or crontab that silently stopped is noticed.

use chrono::{DateTime, Utc};

use super::{Check, Report};
use crate::settings::Settings;
use crate::store::Store;

pub fn checks(store: Option<&dyn Store>, settings: Result<&Settings, &str>, r: &mut Report) {
    let Some(store) = store else {
        r.push(Check::skip("runs.full", "no store"));
        return;
    };
    let Ok(settings) = settings else {
        r.push(Check::skip("runs.full", "the settings cannot be read"));
        return;
    };
    r.push(match store.last_good_run(Some("full")) {
        Err(e) => Check::fail("runs.full", format!("cannot read the runs: {e}"), "check the database"),
        Ok(last) => verdict(last.map(|run| (run.id, run.finished_at.unwrap_or(run.started_at))), settings, Utc::now()),
    });
}

/// The verdict on the last successful full run `(id, finished)` at `now`.
pub fn verdict(last: Option<(i64, DateTime<Utc>)>, settings: &Settings, now: DateTime<Utc>) -> Check {
    let max = settings.max_full_run_age_hours;
    let Some((id, finished)) = last else {
        return Check::warn(
            "runs.full",
            "no successful full sync yet",
            "run `zmsync sync --all`, then enable the nightly run (zmsync-nightly.timer or the crontab)",
        );
    };
    let hours = (now - finished).num_minutes() as f64 / 60.0;
    let when = finished.format("%Y-%m-%d %H:%M UTC");
    if hours > max as f64 {
        Check::warn(
            "runs.full",
            format!("the last successful full sync (run {id}) finished {hours:.0} h ago, at {when}: more than {max} h"),
            "is the nightly run still scheduled (`systemctl list-timers zmsync-nightly.timer`, `crontab -l -u zmsync`) \
             and did its last runs fail (`journalctl -u zmsync-nightly`)? Limit: `zmsync settings set \
             doctor.max_full_run_age_hours N`",
        )
    } else {
        Check::pass(
            "runs.full",
            format!("last successful full sync: run {id}, {hours:.0} h ago ({when}); limit {max} h"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn warns_past_the_limit_and_only_then() {
        let now = Utc::now();
        let s = Settings::defaults();
        for (age_min, want) in
            [(0, Status::Pass), (35 * 60, Status::Pass), (36 * 60 + 1, Status::Warn), (72 * 60, Status::Warn)]
        {
            let c = verdict(Some((7, now - chrono::Duration::minutes(age_min))), &s, now);
            assert_eq!(c.status, want, "{age_min} min: {c:?}");
            assert!(c.detail.contains("run 7"));
        }
        assert_eq!(verdict(None, &s, now).status, Status::Warn);
    }
}
