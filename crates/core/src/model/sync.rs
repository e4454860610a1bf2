//! The two domain words of a sync's memory: which Zoho record pairs with which Moodle object ([`Link`]) and what
//! both sides last agreed on ([`SyncState`], the base of the 3-way diff). The store keeps them; reconcile reads
//! them.

use chrono::{DateTime, Utc};

use super::{Entity, Fields};

/// A pairing of one Zoho record with one Moodle object, for an entity.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    pub entity: Entity,
    pub zoho_id: String,
    pub moodle_id: String,
}

/// What both sides agreed on for one record after the last successful sync.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SyncState {
    pub entity: Entity,
    pub key: String,
    pub fields: Fields,
    pub fingerprint: String,
    pub synced_at: DateTime<Utc>,
    pub run_id: Option<i64>,
}
