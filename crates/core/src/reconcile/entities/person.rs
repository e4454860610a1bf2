//! Students and teachers: Zoho people paired with Moodle users through the links.

use std::borrow::Cow;
use std::sync::OnceLock;

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Value};

use super::shared::{ignored, known_names, one, op, removal, view, view_equals};
use super::World;
use crate::mapping::person;
use crate::model::{Entity, Fields, Kind, Record, Side};
use crate::reconcile::diff::{Differ, EntityRules, Outcome, Pair};
use crate::reconcile::plan::{Action, IssueKind};
use crate::settings::{RemovalAction, Settings};

pub fn person_pairs<'a>(w: &World<'a>, entity: Entity, d: &mut Differ) {
    let (kind, names, linked) = match entity {
        Entity::Student => (Kind::Student, person::STUDENT_FIELDS, w.students),
        _ => (Kind::Teacher, person::TEACHER_FIELDS, w.teachers),
    };
    let mut base = w.base(entity);
    let zoho = w.records(kind);
    let mut seen = FxHashSet::default();
    seen.reserve(zoho.len());
    for z in zoho {
        seen.insert(z.key.as_str());
        let user = linked.map.moodle(&z.key).and_then(|m| w.users.get(m)).copied();
        // Fields Moodle did not return for this user are unknown: both sides are compared without them.
        let known = user.map(|u| known_names(u, names)).unwrap_or(Cow::Borrowed(names));
        let shown = if known.len() == names.len() { Cow::Borrowed(z) } else { Cow::Owned(z.project(&known)) };
        if let Some(u) = user.filter(|u| view_equals(&shown, u, &known)) {
            d.agreed(&shown, || (z.key.clone(), Some(z.key.clone()), Some(u.key.clone())));
            continue;
        }
        let mut p = Pair::new(&z.key).with_zoho(shown, z);
        if let Some(u) = user {
            p = p.with_moodle(view(u, &known), u);
            p.linked = true;
        }
        p.base = base.get(&z.key);
        d.pair(&p);
    }
    // Linked users whose Zoho record is gone.
    for (zid, mid) in &linked.map.z2m {
        if seen.contains(zid) {
            continue;
        }
        if let Some(u) = w.users.get(mid) {
            let mut p = Pair::new(*zid).with_moodle(view(u, names), u);
            // Ops name a record gone from its side by the id the link knows.
            p.zoho_id = Some(zid.to_string());
            p.linked = true;
            p.base = base.get(zid);
            d.pair(&p);
        }
    }
}

pub struct PersonRules<'a> {
    pub entity: Entity,
    pub settings: &'a Settings,
    pub blocked: &'a FxHashSet<&'a str>,
    pub users: &'a FxHashMap<&'a str, &'a Record>,
    records: &'a [Record],
    /// username → Moodle user id, to see a create that Moodle would refuse (indexed on the first create).
    usernames: OnceLock<FxHashMap<&'a str, &'a str>>,
}

impl<'a> PersonRules<'a> {
    pub fn new(w: &World<'a>, entity: Entity, blocked: &'a FxHashSet<&'a str>) -> PersonRules<'a> {
        PersonRules {
            entity,
            settings: w.settings,
            blocked,
            users: w.users,
            records: w.records(Kind::MoodleUser),
            usernames: OnceLock::new(),
        }
    }

    fn username_owner(&self, username: &str) -> Option<&'a str> {
        let records = self.records;
        let usernames = self
            .usernames
            .get_or_init(|| records.iter().filter_map(|u| Some((u.ref_str("username")?, u.key.as_str()))).collect());
        usernames.get(username).copied()
    }
}

impl EntityRules for PersonRules<'_> {
    fn create(&self, pair: &Pair, target: Side, src: &Record) -> Outcome {
        if target == Side::Zoho {
            return Outcome::Issue(
                IssueKind::Incomplete,
                format!("zmsync does not create {}s in Zoho", self.entity.name()),
            );
        }
        if self.blocked.contains(pair.key.as_str()) {
            return Outcome::Nothing; // the link step reported why
        }
        // A student who is not active in Zoho gets no new account (there is nothing for them to do in Moodle).
        if src.field("suspended") == &Value::Bool(true) {
            return Outcome::Nothing;
        }
        if let Err(e) = person::moodle_user_create(&src.fields, &self.settings.accounts) {
            return Outcome::Issue(IssueKind::Incomplete, format!("cannot create the Moodle user: {e}"));
        }
        let username = person::username_for(&src.fields).unwrap_or_default();
        if let Some(uid) = self.username_owner(&username) {
            return Outcome::Issue(
                IssueKind::Duplicate,
                format!(
                    "the username {username} is taken by Moodle user {uid}, which is not linked; if it is this \
                     person, give it the id number or put {uid} into the Moodle id field in Zoho"
                ),
            );
        }
        let refs = one("username", json!(username));
        op(Action::Create, src.fields.clone(), Fields::new(), "new in Zoho: no Moodle user yet", refs)
    }

    fn remove(&self, pair: &Pair, target: Side, _tgt: &Record) -> Outcome {
        let what = "deleted in Zoho";
        if target == Side::Zoho {
            return Outcome::Nothing;
        }
        let policy = if self.entity == Entity::Student {
            self.settings.deletions.student
        } else {
            self.settings.deletions.teacher
        };
        let raw = pair.moodle_id.as_deref().and_then(|m| self.users.get(m));
        match policy {
            RemovalAction::Suspend => {
                if raw.map(|u| u.field("suspended") == &Value::Bool(true)).unwrap_or(false) {
                    return Outcome::Nothing;
                }
                removal(Action::Suspend, self.entity, policy, what)
            }
            RemovalAction::Delete => removal(Action::Delete, self.entity, policy, what),
            other => ignored(self.entity, other, what),
        }
    }

    fn update_action(&self, target: Side, changes: &Fields, before: &Fields) -> Action {
        if target == Side::Moodle {
            match (changes.get("suspended"), before.get("suspended")) {
                (Some(Value::Bool(true)), _) => return Action::Suspend,
                (Some(Value::Bool(false)), Some(Value::Bool(true))) => return Action::Restore,
                _ => {}
            }
        }
        Action::Update
    }
}
