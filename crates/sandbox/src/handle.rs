//! The sandbox handle: a generated college served by a fake Zoho and a fake Moodle on loopback, with the
//! settings a client needs to reach them, and drift applied to the running fakes through their own
//! "people working in the UI" APIs (so webhooks and notifications fire as they would for real edits).

use std::collections::HashSet;
use std::io;
use std::sync::Mutex;

use serde_json::Value;

use super::drift::{self, Mutation};
use super::generator::{College, GenOptions};
use super::moodle::{CostModel, FakeMoodle, MoodleOptions};
use super::seed::{
    Drift, JsonObject, MoodleCategory, MoodleCourse, MoodleEnrolment, MoodleGrade, MoodleSeed, MoodleUser,
    PluginTables, ZohoSeed, ZOHO_MODULES,
};
use super::zoho::{FakeZoho, ZohoOptions};
use zmsync_core::settings::Settings;

/// How to start a sandbox. `Default`: 1,500 students, seed 1, `empty`, no latency or faults, ephemeral ports,
/// and a fake Moodle that answers as a stock Moodle 5.0 does (phones hidden from the token, no outgoing mail).
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    pub generate: GenOptions,
    /// Added to every call on both fakes.
    pub latency_ms: u64,
    /// Added per record written on both fakes (a real Moodle spends ≈ 12 ms per created user).
    pub per_record_ms: u64,
    /// Probability (0–1) that a call fails with a transport fault, on both fakes.
    pub fault_rate: f64,
    /// 0 = an ephemeral port.
    pub zoho_port: u16,
    pub moodle_port: u16,
    /// The webhook receiver's base URL, e.g. `http://127.0.0.1:8080`: the fake Zoho's workflow rules post to
    /// `{base}/v1/events/zoho/{entity}`, the fake Moodle plugin to `{base}/v1/events/moodle/{enrollment|grade}`.
    pub webhook_url: Option<String>,
    /// The secret both fakes sign their webhook posts with (the receiver's `ZOHO_WEBHOOK_HMAC_SECRET` and
    /// `MOODLE_WEBHOOK_HMAC_SECRET`); `None`: unsigned.
    pub webhook_hmac_secret: Option<zmsync_core::secret::Secret>,
    /// The fake Moodle costs server time on 4 PHP workers as a real Moodle 5.0 does ([`CostModel`]).
    pub moodle_cost_model: bool,
    /// *Show user identity* includes `phone1` (stock: only `email`, so the token cannot read phones).
    pub moodle_show_phone: bool,
    /// Outgoing mail works (stock: not set up, so new enrolments end in `Message was not sent.`).
    pub moodle_mail: bool,
}

/// A running sandbox. Dropping it stops both servers.
pub struct Sandbox {
    zoho: FakeZoho,
    moodle: FakeMoodle,
    seeded: Vec<Drift>,
    summary: String,
    seed: u64,
    /// Students already drifted and how many `drift` calls ran: later drifts stay off earlier ones.
    drifted: Mutex<(HashSet<String>, u64)>,
}

impl Sandbox {
    pub fn start(opts: SandboxOptions) -> io::Result<Sandbox> {
        let seed = opts.generate.seed;
        let t = std::time::Instant::now();
        let college = College::generate(opts.generate.clone());
        tracing::info!(took_ms = t.elapsed().as_millis() as u64, "college generated");
        let summary = college.summary();
        let College { zoho, moodle, drift } = college;
        let base = opts.webhook_url.as_deref().map(|u| u.trim_end_matches('/').to_string());
        let zoho_opts = ZohoOptions {
            port: opts.zoho_port,
            latency_ms: opts.latency_ms,
            per_record_ms: opts.per_record_ms,
            fault_rate: opts.fault_rate,
            fault_seed: seed,
            webhook_url: base.as_ref().map(|b| format!("{b}/v1/events/zoho/{{entity}}")),
            webhook_hmac_secret: opts.webhook_hmac_secret.clone(),
            ..ZohoOptions::default()
        };
        let moodle_opts = MoodleOptions {
            port: opts.moodle_port,
            latency_ms: opts.latency_ms,
            per_record_ms: opts.per_record_ms,
            fault_rate: opts.fault_rate,
            fault_seed: seed,
            webhook_url: base.as_ref().map(|b| format!("{b}/v1/events/moodle")),
            webhook_hmac_secret: opts.webhook_hmac_secret.clone(),
            cost: opts.moodle_cost_model.then(CostModel::default),
            mail_configured: opts.moodle_mail,
            ..MoodleOptions::default()
        };
        let mut moodle_opts = moodle_opts;
        if opts.moodle_show_phone {
            moodle_opts.show_identity.push("phone1".into());
        }
        let t = std::time::Instant::now();
        let zoho = FakeZoho::start(zoho, zoho_opts)?;
        tracing::info!(took_ms = t.elapsed().as_millis() as u64, "fake Zoho started");
        let t = std::time::Instant::now();
        let moodle = FakeMoodle::start(moodle, moodle_opts)?;
        tracing::info!(took_ms = t.elapsed().as_millis() as u64, "fake Moodle started");
        let touched = HashSet::new();
        Ok(Sandbox { zoho, moodle, seeded: drift, summary, seed, drifted: Mutex::new((touched, 0)) })
    }

    pub fn zoho(&self) -> &FakeZoho {
        &self.zoho
    }

    pub fn moodle(&self) -> &FakeMoodle {
        &self.moodle
    }

    /// The drift seeded at start (`--state drifted`), with the change each must plan.
    pub fn seeded_drift(&self) -> &[Drift] {
        &self.seeded
    }

    /// Counts per module and object, for a one-line summary.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// What a client needs, in this order: ZOHO_ACCOUNTS_URL, ZOHO_API_DOMAIN, ZOHO_CLIENT_ID,
    /// ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN, MOODLE_URL, MOODLE_TOKEN. Secrets are random per start.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ZOHO_ACCOUNTS_URL", self.zoho.url()),
            ("ZOHO_API_DOMAIN", self.zoho.url()),
            ("ZOHO_CLIENT_ID", self.zoho.client_id()),
            ("ZOHO_CLIENT_SECRET", self.zoho.client_secret().expose().to_string()),
            ("ZOHO_REFRESH_TOKEN", self.zoho.refresh_token().expose().to_string()),
            ("MOODLE_URL", self.moodle.url()),
            ("MOODLE_TOKEN", self.moodle.token()),
        ]
    }

    /// [`Sandbox::env`] as `KEY=VALUE` lines (values are URL- and token-safe: no quoting needed).
    pub fn env_lines(&self) -> String {
        self.env().into_iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    /// Applies `k` new differences to the running fakes (as people in the CRM and in Moodle would make
    /// them) and returns the changes a reconcile must now plan, assuming the state before this call is the
    /// sync base. Records of earlier drifts are left alone. A mutation the fakes refuse is logged and its
    /// drift left out of the answer.
    pub fn drift(&self, k: usize) -> Vec<Drift> {
        let mut guard = self.drifted.lock().unwrap_or_else(|e| e.into_inner());
        let (touched, calls) = &mut *guard;
        *calls += 1;
        let zoho = self.zoho_snapshot();
        let moodle = self.moodle_snapshot();
        let mut exclude = touched.clone();
        exclude.extend(self.seeded.iter().filter_map(|d| d.zoho_id.clone()));
        let plans = drift::plan(&zoho, &moodle, k, self.seed.wrapping_add(*calls), &exclude, &Settings::defaults());
        touched.extend(drift::students_touched(&plans));
        let mut out = Vec::with_capacity(plans.len());
        for p in plans {
            match p.mutations.iter().try_for_each(|m| self.apply(m, &moodle)) {
                Ok(()) => out.push(p.drift),
                Err(e) => tracing::warn!(kind = ?p.drift.kind, error = %e, "drift not applied"),
            }
        }
        out
    }

    fn apply(&self, m: &Mutation, before: &MoodleSeed) -> Result<(), String> {
        let ok = |done: bool, what: &str| if done { Ok(()) } else { Err(format!("fake Moodle refused {what}")) };
        match m {
            Mutation::ZohoUpdate { module, id, fields } => {
                self.zoho.update_record(module, id, Value::Object(fields.clone())).map_err(|e| e.to_string())
            }
            Mutation::ZohoDelete { module, id } => self.zoho.delete_record(module, id).map_err(|e| e.to_string()),
            Mutation::MoodleUpdateUser { id, fields } => {
                let user = before.users.iter().find(|u| u.id == *id).ok_or("unknown user")?;
                for (k, v) in fields {
                    let s = v.as_str().unwrap_or("");
                    match k.as_str() {
                        "firstname" => ok(self.moodle.rename_user(*id, s, &user.lastname), "a rename")?,
                        "lastname" => ok(self.moodle.rename_user(*id, &user.firstname, s), "a rename")?,
                        "email" => ok(self.moodle.set_user_email(*id, s), "an email change")?,
                        "suspended" if v.as_bool() == Some(true) => ok(self.moodle.suspend_user(*id), "a suspension")?,
                        other => return Err(format!("no fake Moodle helper for user field {other}")),
                    }
                }
                Ok(())
            }
            Mutation::MoodleEnrol { enrolment: e } => {
                ok(self.moodle.enrol(e.courseid, e.userid, e.roleid), "an enrolment")
            }
            Mutation::MoodleUnenrol { courseid, userid } => ok(self.moodle.unenrol(*courseid, *userid), "an unenrol"),
            Mutation::MoodleSetEnrolmentStatus { courseid, userid, status } => {
                ok(self.moodle.set_enrolment_status(*courseid, *userid, *status == 1), "a status change")
            }
            Mutation::MoodleSetEnrolmentDates { courseid, userid, timestart, timeend } => {
                ok(self.moodle.set_enrolment_dates(*courseid, *userid, *timestart, *timeend), "a date change")
            }
            Mutation::MoodleSetGrade { courseid, userid, finalgrade } => {
                ok(self.moodle.set_grade(*courseid, *userid, *finalgrade), "a grade")
            }
        }
    }

    /// The fake Zoho's current records, seed-shaped.
    fn zoho_snapshot(&self) -> ZohoSeed {
        let mut seed = ZohoSeed::default();
        for m in ZOHO_MODULES {
            seed.modules.insert(m.to_string(), self.zoho.records(m).into_iter().map(JsonObject::from).collect());
        }
        seed
    }

    /// The fake Moodle's current state, seed-shaped (deleted users, the guest, the admin and the site left out).
    fn moodle_snapshot(&self) -> MoodleSeed {
        let student_role = Settings::defaults().roles.student;
        let courses = self.moodle.courses();
        let range = |c: i64| {
            courses
                .iter()
                .find(|k| k.id == c)
                .map(|k| (k.grade_item.grademin, k.grade_item.grademax))
                .unwrap_or((0.0, 100.0))
        };
        MoodleSeed {
            categories: self
                .moodle
                .categories()
                .into_iter()
                .map(|c| MoodleCategory { id: c.id, name: c.name, idnumber: c.idnumber, parent: c.parent })
                .collect(),
            users: self
                .moodle
                .users()
                .into_iter()
                .filter(|u| !u.deleted && u.id > 2)
                .map(|u| MoodleUser {
                    id: u.id,
                    username: u.username,
                    firstname: u.firstname,
                    lastname: u.lastname,
                    email: u.email,
                    idnumber: u.idnumber,
                    auth: u.auth,
                    suspended: u.suspended,
                    phone1: u.phone1,
                })
                .collect(),
            courses: courses
                .iter()
                .filter(|c| c.id != 1)
                .map(|c| MoodleCourse {
                    id: c.id,
                    shortname: c.shortname.clone(),
                    fullname: c.fullname.clone(),
                    idnumber: c.idnumber.clone(),
                    categoryid: c.categoryid,
                    startdate: c.startdate,
                    enddate: c.enddate,
                    visible: c.visible,
                })
                .collect(),
            enrolments: self
                .moodle
                .enrolments()
                .into_iter()
                .map(|(e, roles)| MoodleEnrolment {
                    courseid: e.courseid,
                    userid: e.userid,
                    roleid: if roles.contains(&student_role) {
                        student_role
                    } else {
                        roles.first().copied().unwrap_or(0)
                    },
                    status: e.status,
                    timestart: e.timestart,
                    timeend: e.timeend,
                })
                .collect(),
            grades: self
                .moodle
                .grades()
                .into_iter()
                .map(|g| {
                    let (grademin, grademax) = range(g.courseid);
                    MoodleGrade {
                        courseid: g.courseid,
                        userid: g.userid,
                        finalgrade: g.finalgrade,
                        grademin,
                        grademax,
                        scaleitem: None,
                        timemodified: g.timemodified,
                    }
                })
                .collect(),
            plugin: PluginTables {
                payments: self.moodle.plugin_rows("payments").into_iter().map(JsonObject::from).collect(),
                ..PluginTables::default()
            },
        }
    }
}
