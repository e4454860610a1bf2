//! The generated college's fixed facts, shared by the generator and the drift: the moment it is "as of", the
//! Zoho users that create and edit its records, and Zoho's date and datetime text.

use chrono::{Datelike, NaiveDate};

/// The moment the generated college is "as of": every seeded timestamp is before it, drift after it.
/// Fixed (2026-03-02T09:00:00Z) so a seed gives the same bytes on any day.
pub const AS_OF: i64 = 1_772_442_000;
/// When the `synced` state's sync ran (its write-backs carry this `Modified_Time`).
pub const SYNCED_AT: i64 = AS_OF - 20 * 3600;
/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// The Zoho user the registry office works as (seed records are created by a human).
pub const HUMAN_USER: (&str, &str) = ("5847596000000411001", "Registry Admin");
/// The Zoho user the sync writes as (the `synced` state's Moodle-id write-backs).
pub const INTEGRATION_USER: (&str, &str) = ("5847596000000411009", "zmsync Integration");

fn civil(days: i64) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt((days + 719_163) as i32).expect("generated dates are in range")
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub fn date_str(days: i64) -> String {
    let mut out = String::with_capacity(10);
    push_date(&mut out, days);
    out
}

/// A Zoho datetime to the second: UTC as `+00:00`, or India time as `+05:30` (the org's zone).
pub fn zoho_time(t: i64, ist: bool) -> String {
    let (local, suffix) = if ist { (t + 19_800, "+05:30") } else { (t, "+00:00") };
    let mut out = String::with_capacity(25);
    push_date(&mut out, local.div_euclid(DAY));
    let s = local.rem_euclid(DAY);
    out.push('T');
    push_padded(&mut out, s / 3600, 2);
    out.push(':');
    push_padded(&mut out, s % 3600 / 60, 2);
    out.push(':');
    push_padded(&mut out, s % 60, 2);
    out.push_str(suffix);
    out
}

// Dates and times are written digit by digit: the generator writes about two million of them, and
// `format!` was a tenth of its serial part.
fn push_date(out: &mut String, days: i64) {
    let d = civil(days);
    push_padded(out, i64::from(d.year()), 4);
    out.push('-');
    push_padded(out, i64::from(d.month()), 2);
    out.push('-');
    push_padded(out, i64::from(d.day()), 2);
}

/// `n` in decimal, zero-padded to `width` digits (as `{:0width$}` does).
fn push_padded(out: &mut String, n: i64, width: usize) {
    match u32::try_from(n) {
        Ok(n) if n < 10u32.pow(width as u32) => {
            for place in (0..width as u32).rev() {
                out.push(char::from(b'0' + (n / 10u32.pow(place) % 10) as u8));
            }
        }
        _ => out.push_str(&format!("{n:0width$}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_dates_and_times_are_what_chrono_writes() {
        use chrono::{DateTime, FixedOffset};

        let ist = FixedOffset::east_opt(19_800).unwrap();
        // Every 7 hours and 13 seconds from 1999 to 2031: each time of day, both sides of midnight in India.
        let mut t = 915_148_800;
        while t < 1_924_992_000 {
            let utc = DateTime::from_timestamp(t, 0).unwrap();
            assert_eq!(zoho_time(t, false), utc.format("%Y-%m-%dT%H:%M:%S+00:00").to_string());
            assert_eq!(zoho_time(t, true), utc.with_timezone(&ist).format("%Y-%m-%dT%H:%M:%S+05:30").to_string());
            assert_eq!(date_str(t.div_euclid(DAY)), utc.format("%Y-%m-%d").to_string());
            t += 7 * 3600 + 13;
        }
        // Years past four digits come out whole, as `{:04}` writes them (chrono's `%Y` would add a `+`).
        let far = chrono::NaiveDate::from_num_days_from_ce_opt(3_000_000 + 719_163).unwrap();
        assert_eq!(date_str(3_000_000), format!("{}-{:02}-{:02}", far.year(), far.month(), far.day()));
        assert!(date_str(3_000_000).starts_with("10183-"));
    }
}
