//! What reconcile reads from the store and writes back to it: the records of each kind, the links and the
//! agreed base. Declared here, in the core, and implemented by the store, so the core never names a database.

use std::fmt;

use crate::model::{Entity, Kind, Link, Record, SyncState};

/// The store's part that reconcile uses. The store implements it for every store it opens.
pub trait Records: Sync {
    fn records(&self, kind: Kind) -> Result<Vec<Record>, SourceError>;
    /// The records of several kinds, in the order asked. A store that reads well side by side overrides it.
    fn records_of(&self, kinds: &[Kind]) -> Result<Vec<Vec<Record>>, SourceError> {
        kinds.iter().map(|k| self.records(*k)).collect()
    }
    fn links(&self, entity: Entity) -> Result<Vec<Link>, SourceError>;
    fn sync_states(&self, entity: Entity) -> Result<Vec<SyncState>, SourceError>;
    /// Upserts links by (entity, zoho_id).
    fn put_links(&self, links: &[Link]) -> Result<(), SourceError>;
    fn put_sync_states(&self, states: &[SyncState]) -> Result<(), SourceError>;
}

/// A store call that failed: the store's own error, kept whole (the command layer reads its kind).
#[derive(Debug)]
pub struct SourceError(pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl SourceError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> SourceError {
        SourceError(Box::new(e))
    }

    /// The store's error, when it is of type `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
