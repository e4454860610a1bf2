//! Seed records read field by field from their text, a block of records at a time on all cores.

use std::borrow::Cow;

use serde_json::Value;

use crate::seed::{parse_value, JsonObject};
use zmsync_core::mapping::MapError;

/// A seed record's fields as a sync reads them, from one scan of its text: for the many records of which
/// the Moodle side needs a few fields and no [`Record`] (enrolments, dashboard rows).
pub(super) struct RawFields<'t> {
    rec: &'t JsonObject,
    fields: Vec<(&'t str, &'t str)>,
}

impl<'t> RawFields<'t> {
    pub(super) fn new(rec: &'t JsonObject) -> RawFields<'t> {
        RawFields { rec, fields: rec.raw_entries().collect() }
    }

    /// A field's value by API name (`None` when absent), for `mapping`'s `raw` readers.
    pub(super) fn get(&self, name: &str) -> Option<Cow<'static, Value>> {
        self.fields.iter().find(|(k, _)| *k == name).map(|(_, text)| Cow::Owned(parse_value(text)))
    }

    pub(super) fn bug(&self, e: MapError) -> ! {
        panic!("a generated record does not map ({e}): a generator bug\n{}", self.rec)
    }
}

/// Records are mapped on all cores a block at a time: what is built for one block (a few MB) is all that is
/// held, and all the garbage it leaves in the workers' heaps.
pub(super) const BLOCK: usize = 2048;
