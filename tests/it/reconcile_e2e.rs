//! End to end on the sandbox: the fakes filled by the generator, read through the real clients
//! (`snapshot::run`), reconciled. Needs the generator/`Sandbox` (branch generator) and `snapshot::run`
//! (branch clients); both are on main now.

use std::collections::BTreeSet;

use zmsync::config::Config;
use zmsync::reconcile::{self, Action, Op, Options, Plan};
use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::seed::{Drift, DriftKind};
use zmsync::sandbox::{Sandbox, SandboxOptions};
use zmsync::settings::Settings;
use zmsync::snapshot;
use zmsync::store::{self, Store};

fn start(students: usize) -> (Sandbox, tempfile::TempDir, Box<dyn Store>, Config) {
    let sb = Sandbox::start(SandboxOptions {
        generate: GenOptions { students, seed: 7, state: State::Synced, drift_count: 0 },
        ..SandboxOptions::default()
    })
    .expect("sandbox");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("e2e.db").display());
    let store = store::open(&url).unwrap();
    let env = sb.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let config = Config::load(None, Some(&url), &env).expect("config");
    (sb, dir, store, config)
}

fn snap(store: &dyn Store, config: &Config) {
    snapshot::run(store, &Settings::defaults(), config, &snapshot::Options::default()).expect("snapshot");
}

fn plan(store: &dyn Store) -> Plan {
    reconcile::reconcile(store, &Settings::defaults(), &Options::default()).expect("reconcile")
}

/// The comparable shape of a change: (entity, zoho_id, moodle_id, target, action, fields, conflict).
type Change = (String, Option<String>, Option<String>, String, String, Vec<String>, bool);

fn of_drift(d: &Drift) -> Change {
    let mut f = d.fields.clone();
    f.sort();
    (d.entity.clone(), d.zoho_id.clone(), d.moodle_id.clone(), d.target.clone(), d.action.clone(), f, d.conflict)
}

/// A Drift lists the differing fields, none for create/suspend/unenrol/delete (the whole record, or no
/// field at all); an op lists what it writes.
fn of_op(o: &Op) -> Change {
    let fields = match o.action {
        Action::Create | Action::Enrol | Action::Unenrol | Action::Delete | Action::Hide => Vec::new(),
        Action::Suspend if o.before.is_empty() => Vec::new(),
        _ => o.changes.keys().cloned().collect(),
    };
    (
        o.entity.name().to_string(),
        o.zoho_id.clone(),
        o.moodle_id.clone(),
        o.target.name().to_string(),
        o.action.name().to_string(),
        fields,
        o.conflict,
    )
}

#[test]
fn reconcile_e2e_synced_sandbox_has_an_empty_diff() {
    let (_sb, _dir, store, config) = start(300);
    snap(store.as_ref(), &config);
    // Empty before any base (pairs come from the Moodle ids Zoho holds) and after one.
    let p = plan(store.as_ref());
    assert!(p.ops.is_empty() && p.conflicts.is_empty(), "{}", p.summary_text(50));
    let b = reconcile::baseline(store.as_ref(), &Settings::defaults(), None).unwrap();
    assert!(b.links > 300 && b.states > 300, "{b:?}");
    let p = plan(store.as_ref());
    assert!(p.ops.is_empty(), "{}", p.summary_text(50));
    assert!(p.conflicts.is_empty());
}

#[test]
fn reconcile_e2e_drift_is_planned_exactly() {
    let (sb, _dir, store, config) = start(300);
    snap(store.as_ref(), &config);
    reconcile::baseline(store.as_ref(), &Settings::defaults(), None).unwrap();
    assert!(plan(store.as_ref()).ops.is_empty());

    let drift = sb.drift(22); // every DriftKind twice
    let kinds: BTreeSet<String> = drift.iter().map(|d| format!("{:?}", d.kind)).collect();
    assert_eq!(kinds.len(), DriftKind::ALL.len(), "every kind of drift is exercised: {kinds:?}");
    snap(store.as_ref(), &config);
    let p = plan(store.as_ref());
    let mut want: BTreeSet<Change> = drift.iter().map(of_drift).collect();
    // A course grade changed in Moodle also changes the Zoho grade's dashboard row, in the same run: its level,
    // percentage and date.
    let rows: Vec<Change> = drift
        .iter()
        .filter(|d| d.entity == "grade" && d.target == "zoho")
        .map(|d| {
            let f = vec!["grade".to_string(), "graded_date".to_string(), "moodle_grade".to_string()];
            (
                "dashboard_grade".to_string(),
                d.zoho_id.clone(),
                d.zoho_id.clone(),
                "moodle".into(),
                "update".into(),
                f,
                false,
            )
        })
        .collect();
    want.extend(rows.iter().cloned());
    let got: BTreeSet<Change> = p.ops.iter().map(of_op).collect();
    let missing: Vec<&Change> = want.difference(&got).collect();
    let extra: Vec<&Change> = got.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing: {missing:#?}\nextra: {extra:#?}");
    assert_eq!(p.ops.len(), drift.len() + rows.len(), "one op per drift, and one per grade row it moves");
    // Every conflict is reported.
    let conflicts = drift.iter().filter(|d| d.conflict).count();
    assert_eq!(p.conflicts.len(), conflicts);
    assert!(reconcile::enforce(&p).is_ok());
}
