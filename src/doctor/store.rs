//! The store: reachable, migrated to this binary's schema, settings readable; for SQLite, disk space.

use std::path::PathBuf;

use super::{disk, Check, Report};
use crate::config::Config;
use crate::settings::Settings;
use crate::store::{self, Dialect, Store, LATEST_VERSION};

/// What later checks need from the store checks.
pub struct Opened {
    pub store: Option<Box<dyn Store>>,
    /// The settings the module checks use: the stored ones, the defaults when there is no store, or why
    /// they cannot be read.
    pub settings: Result<Settings, String>,
}

pub fn checks(config: &Config, r: &mut Report) -> Opened {
    let url = &config.database_url;
    let sqlite_path = url.strip_prefix("sqlite://").map(PathBuf::from);
    // Opening creates a missing SQLite file; doctor must not, so a missing file is reported instead.
    if let Some(path) = &sqlite_path {
        if !path.as_os_str().is_empty() && !path.exists() {
            r.push(Check::fail(
                "store",
                format!("no SQLite database at {}", path.display()),
                "run `zmsync init` (or point DATABASE_URL / --database-url at the existing store)",
            ));
            push_disk(path, r);
            return no_store(r, "no store");
        }
    }
    let s = match store::open(url) {
        Ok(s) => s,
        Err(e) => {
            let fix = match sqlite_path {
                Some(_) => "check the path and its permissions, or pass another --database-url",
                None => "check that PostgreSQL is running and that host, port, user, password and database in DATABASE_URL are right",
            };
            // The store's own message already names the location (never a password); drop its hint line,
            // the fix below says the same.
            r.push(Check::fail("store", super::first_line(&e.to_string()), fix));
            if let Some(path) = &sqlite_path {
                push_disk(path, r);
            }
            return no_store(r, "the store is unreachable");
        }
    };
    match s.schema_version() {
        Ok(v) if v == LATEST_VERSION => r.push(Check::pass(
            "store",
            format!("{} at {}, schema {v}/{LATEST_VERSION}", s.dialect().name(), s.location()),
        )),
        Ok(v) => r.push(Check::fail(
            "store",
            format!("{} at {}: schema {v}, this zmsync needs {LATEST_VERSION}", s.dialect().name(), s.location()),
            "run `zmsync init` to migrate it",
        )),
        Err(e) => r.push(Check::fail("store", format!("cannot read the schema version: {e}"), "check the database")),
    }
    if s.dialect() == Dialect::Sqlite {
        if let Some(path) = &sqlite_path {
            push_disk(path, r);
        }
    } else {
        r.push(Check::skip("disk", "the store is PostgreSQL: watch the database server's own disk"));
    }
    let settings = match s.settings_map() {
        Err(e) => {
            r.push(Check::fail("settings", format!("cannot read app_settings: {e}"), "check the database"));
            Err("the settings cannot be read".to_string())
        }
        Ok(rows) => match Settings::from_rows(&rows) {
            Err(e) => {
                r.push(Check::fail("settings", e.to_string(), "fix the value named above with `zmsync settings set`"));
                Err("a stored setting is unreadable".to_string())
            }
            Ok(settings) if rows.is_empty() => {
                r.push(Check::warn(
                    "settings",
                    "none stored: the built-in defaults are in effect",
                    "run `zmsync init` to write them, so `zmsync settings list` shows what the sync uses",
                ));
                Ok(settings)
            }
            Ok(settings) => {
                let enabled: Vec<&str> =
                    crate::model::Entity::ALL.iter().filter(|e| e.enabled(&settings)).map(|e| e.name()).collect();
                r.push(Check::pass("settings", format!("{} keys stored; enabled: {}", rows.len(), enabled.join(", "))));
                Ok(settings)
            }
        },
    };
    Opened { store: Some(s), settings }
}

fn no_store(r: &mut Report, why: &str) -> Opened {
    r.push(Check::skip("settings", format!("{why}: the module checks below use the built-in defaults")));
    Opened { store: None, settings: Ok(Settings::defaults()) }
}

/// Free space where the SQLite file is (or would be).
fn push_disk(path: &std::path::Path, r: &mut Report) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    r.push(match disk::available(&dir) {
        Ok(free) => disk::verdict(&dir, free),
        Err(e) => Check::fail(
            "disk",
            format!("cannot measure free space in {}: {e}", dir.display()),
            "check that the directory exists",
        ),
    });
}
