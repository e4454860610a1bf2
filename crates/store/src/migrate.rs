//! Versioned migrations, one set per dialect, embedded in the binary and recorded in `schema_migrations`.

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub static SQLITE: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/sqlite/0001_init.sql") },
    Migration {
        version: 2,
        name: "records_staging",
        sql: include_str!("../migrations/sqlite/0002_records_staging.sql"),
    },
    Migration { version: 3, name: "events", sql: include_str!("../migrations/sqlite/0003_events.sql") },
    Migration { version: 4, name: "dirty_retry", sql: include_str!("../migrations/sqlite/0004_dirty_retry.sql") },
    Migration { version: 5, name: "journal_before", sql: include_str!("../migrations/sqlite/0005_journal_before.sql") },
    Migration { version: 6, name: "zoho_channel", sql: include_str!("../migrations/sqlite/0006_zoho_channel.sql") },
    Migration { version: 7, name: "cheaper_writes", sql: include_str!("../migrations/sqlite/0007_cheaper_writes.sql") },
];

pub static POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/postgres/0001_init.sql") },
    Migration {
        version: 2,
        name: "records_staging",
        sql: include_str!("../migrations/postgres/0002_records_staging.sql"),
    },
    Migration { version: 3, name: "events", sql: include_str!("../migrations/postgres/0003_events.sql") },
    Migration { version: 4, name: "dirty_retry", sql: include_str!("../migrations/postgres/0004_dirty_retry.sql") },
    Migration {
        version: 5,
        name: "journal_before",
        sql: include_str!("../migrations/postgres/0005_journal_before.sql"),
    },
    Migration { version: 6, name: "zoho_channel", sql: include_str!("../migrations/postgres/0006_zoho_channel.sql") },
    Migration {
        version: 7,
        name: "cheaper_writes",
        sql: include_str!("../migrations/postgres/0007_cheaper_writes.sql"),
    },
];

/// The newest schema this binary knows. Both dialects move together.
pub const LATEST_VERSION: i64 = 7;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_have_the_same_versions_in_order() {
        let v = |m: &[Migration]| m.iter().map(|m| m.version).collect::<Vec<_>>();
        assert_eq!(v(SQLITE), v(POSTGRES));
        assert!(v(SQLITE).windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(*v(SQLITE).last().unwrap(), LATEST_VERSION);
    }
}
