//! Which kinds a snapshot fetches: the enabled entities' kinds on both sides (`Entity::kinds`), or one
//! entity's (`--module`).

use std::collections::BTreeSet;

use crate::mapping::ZohoNames;
use crate::model::{Entity, Kind, Side};
use crate::settings::Settings;

#[derive(Debug, Clone)]
pub struct Plan {
    pub kinds: BTreeSet<Kind>,
}

impl Plan {
    pub fn new(settings: &Settings, only: Option<Entity>, only_kinds: Option<&BTreeSet<Kind>>) -> Plan {
        let mut kinds = BTreeSet::new();
        for e in Entity::ALL {
            let wanted = match only {
                Some(o) => o == e,
                None => e.enabled(settings),
            };
            if wanted {
                let (z, m) = e.kinds();
                kinds.insert(z);
                kinds.insert(m);
            }
        }
        if let Some(wanted) = only_kinds {
            kinds.retain(|k| wanted.contains(k));
        }
        Plan { kinds }
    }

    pub fn side(&self, side: Side) -> Vec<Kind> {
        self.kinds.iter().copied().filter(|k| k.side() == side).collect()
    }

    pub fn has(&self, kind: Kind) -> bool {
        self.kinds.contains(&kind)
    }
}

/// The entity a `--module` value names: an entity name (`student`) or its Zoho module as configured in
/// `mapping.fields` (`BTEC_Students`), case-insensitively.
pub fn parse_module(value: &str, settings: &Settings) -> Option<Entity> {
    Entity::ALL.into_iter().find(|e| {
        let module = ZohoNames::for_kind(settings, e.kinds().0).module().to_string();
        e.name().eq_ignore_ascii_case(value) || (e != &Entity::Teaching && module.eq_ignore_ascii_case(value))
    })
}

/// Every value `--module` accepts, for the error message.
pub fn valid_module_names(settings: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    for e in Entity::ALL {
        out.push(e.name().to_string());
        if e != Entity::Teaching {
            out.push(ZohoNames::for_kind(settings, e.kinds().0).module().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_entities_choose_both_sides() {
        let s = Settings::defaults();
        let p = Plan::new(&s, None, None);
        assert_eq!(p.side(Side::Zoho).len(), 8);
        assert_eq!(p.side(Side::Moodle).len(), 8);
        let p = Plan::new(&s, Some(Entity::Payment), None);
        assert_eq!(p.kinds.into_iter().collect::<Vec<_>>(), vec![Kind::Payment, Kind::DashboardPayment]);
        let mut rows = std::collections::BTreeMap::new();
        rows.insert(
            "modules.enabled".to_string(),
            serde_json::json!({"BTEC_Students":true,"BTEC_Teachers":false,
            "BTEC_Registrations":false,"BTEC_Classes":false,"BTEC_Enrollments":false,"BTEC_Payments":false,
            "BTEC_Grades":false,"BTEC_Units":false,"BTEC_Attendance":false}),
        );
        let p = Plan::new(&Settings::from_rows(&rows).unwrap(), None, None);
        assert_eq!(p.kinds.into_iter().collect::<Vec<_>>(), vec![Kind::Student, Kind::MoodleUser]);
    }

    #[test]
    fn module_names_and_entity_names_both_work() {
        let s = Settings::defaults();
        assert_eq!(parse_module("BTEC_Students", &s), Some(Entity::Student));
        assert_eq!(parse_module("payment", &s), Some(Entity::Payment));
        assert_eq!(parse_module("btec_classes", &s), Some(Entity::Class));
        assert_eq!(parse_module("BTEC_Attendance", &s), None);
        assert!(valid_module_names(&s).contains(&"BTEC_Grades".to_string()));
    }
}
