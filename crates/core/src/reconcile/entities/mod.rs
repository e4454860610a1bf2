//! Per entity: which records form a pair (via the links), and what a create or a removal becomes. One file
//! per entity, as in `mapping/`; what they share (record views, removal wording, the pairing by student and
//! class) is in [`shared`].

mod class;
mod dashboard;
mod enrollment;
mod grade;
mod person;
mod shared;

use std::collections::{BTreeMap, HashMap, HashSet};

use rustc_hash::FxHashMap;

use super::link::Linked;
use crate::model::SyncState;
use crate::model::{Entity, Kind, Record};
use crate::settings::Settings;

pub use class::{class_pairs, ClassRules};
pub use dashboard::{dashboard_pairs, DashboardRules};
pub use enrollment::{enrollment_pairs, teaching_pairs, EnrolRules};
pub use grade::{grade_pairs, GradeRules};
pub use person::{person_pairs, PersonRules};

/// What every entity's pairing may consult: the records, the identity of people and classes, and which of
/// them this plan creates (their dependants are planned with the ids to fill in after the create).
pub struct World<'a> {
    pub settings: &'a Settings,
    pub records: &'a BTreeMap<Kind, Vec<Record>>,
    pub states: &'a BTreeMap<Entity, Vec<SyncState>>,
    pub links: &'a BTreeMap<Entity, Vec<crate::model::Link>>,
    /// Moodle users and courses by id (built once: the identity step, people and classes all look them up).
    pub users: &'a FxHashMap<&'a str, &'a Record>,
    pub courses: &'a FxHashMap<&'a str, &'a Record>,
    pub students: &'a Linked<'a>,
    pub teachers: &'a Linked<'a>,
    pub classes: &'a Linked<'a>,
    pub creating: &'a HashMap<Entity, HashSet<String>>,
}

impl<'a> World<'a> {
    pub fn records(&self, kind: Kind) -> &'a [Record] {
        self.records.get(&kind).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The agreed base of `entity` by key, indexed on its first use (pairs that agree never look it up).
    pub fn base(&self, entity: Entity) -> Base<'a> {
        Base { states: self.states.get(&entity).map(Vec::as_slice).unwrap_or(&[]), index: None }
    }

    /// Moodle id → Zoho id of the stored links of `entity` (to name a record gone from Zoho).
    pub fn linked_zoho(&self, entity: Entity) -> FxHashMap<&'a str, &'a str> {
        self.links
            .get(&entity)
            .map(|v| v.iter().map(|l| (l.moodle_id.as_str(), l.zoho_id.as_str())).collect())
            .unwrap_or_default()
    }

    fn creating(&self, entity: Entity, zoho_id: &str) -> bool {
        self.creating.get(&entity).map(|s| s.contains(zoho_id)).unwrap_or(false)
    }
}

/// An entity's base rows by key, indexed when first asked.
pub struct Base<'a> {
    states: &'a [SyncState],
    index: Option<FxHashMap<&'a str, &'a SyncState>>,
}

impl<'a> Base<'a> {
    pub fn get(&mut self, key: &str) -> Option<&'a SyncState> {
        let states = self.states;
        self.index.get_or_insert_with(|| states.iter().map(|s| (s.key.as_str(), s)).collect()).get(key).copied()
    }
}
