//! People working in Moodle: a teacher grading, a manager enrolling, suspending or deleting, an admin
//! editing a dashboard row. Each change is made the way Moodle makes it and fires the plugin's webhooks.

use std::collections::HashSet;

use super::state::Enrolment;
use super::{functions, Event, FakeMoodle, Grade, User};

impl FakeMoodle {
    fn fire(&self, e: Option<Event>) -> bool {
        let Some(e) = e else { return false };
        self.with_state(|s| s.events.push(e.clone()));
        self.shared.outbox.send(&e);
        true
    }

    /// A teacher sets a course-total grade (`None` removes it). Returns false for an unknown course.
    pub fn set_grade(&self, courseid: i64, userid: i64, finalgrade: Option<f64>) -> bool {
        let now = chrono::Utc::now().timestamp();
        let ev = self
            .with_state(|s| {
                s.courses.get(&courseid)?;
                let id = match s.grades.get_mut(&(courseid, userid)) {
                    Some(g) => {
                        g.finalgrade = finalgrade;
                        g.timemodified = now;
                        g.id
                    }
                    None => {
                        let id = s.next_grade_id();
                        s.grades
                            .insert((courseid, userid), Grade { id, courseid, userid, finalgrade, timemodified: now });
                        id
                    }
                };
                Some(Event {
                    eventname: "\\core\\event\\user_graded".into(),
                    courseid,
                    userid,
                    timecreated: now,
                    grade_id: Some(id),
                    grade: finalgrade,
                })
            })
            .flatten();
        self.fire(ev)
    }

    /// A teacher suspends or reactivates an enrolment. Returns false when there is no such enrolment.
    pub fn set_enrolment_status(&self, courseid: i64, userid: i64, suspended: bool) -> bool {
        self.edit_enrolment(courseid, userid, |e| e.status = i64::from(suspended))
    }

    /// A teacher edits an enrolment's dates (Unix seconds, 0 = none). Returns false when there is no such
    /// enrolment.
    pub fn set_enrolment_dates(&self, courseid: i64, userid: i64, timestart: i64, timeend: i64) -> bool {
        self.edit_enrolment(courseid, userid, |e| {
            e.timestart = timestart;
            e.timeend = timeend;
        })
    }

    /// A teacher's edit of one enrolment: `edit` applied, `timemodified` set, `user_enrolment_updated` fired,
    /// as Moodle does. Returns false when there is no such enrolment.
    fn edit_enrolment(&self, courseid: i64, userid: i64, edit: impl FnOnce(&mut Enrolment)) -> bool {
        let now = chrono::Utc::now().timestamp();
        let ev = self
            .with_state(|s| {
                let e = s.enrolments.get_mut(&(courseid, userid))?;
                edit(e);
                e.timemodified = now;
                Some(Event {
                    eventname: functions::enrol::UPDATED.into(),
                    courseid,
                    userid,
                    timecreated: now,
                    grade_id: None,
                    grade: None,
                })
            })
            .flatten();
        self.fire(ev)
    }

    /// A teacher enrols a user manually with a role (upsert, like the web service).
    pub fn enrol(&self, courseid: i64, userid: i64, roleid: i64) -> bool {
        let now = chrono::Utc::now().timestamp();
        let spec = functions::enrol::EnrolSpec { courseid, userid, roleid, timestart: 0, timeend: 0, status: 0 };
        let ev = self.with_state(|s| functions::enrol::upsert(s, spec, now)).flatten();
        self.fire(ev)
    }

    /// A teacher unenrols a user. Returns false when the user was not enrolled.
    pub fn unenrol(&self, courseid: i64, userid: i64) -> bool {
        let now = chrono::Utc::now().timestamp();
        let ev = self
            .with_state(|s| {
                s.unenrol(courseid, userid).map(|_| Event {
                    eventname: functions::enrol::DELETED.into(),
                    courseid,
                    userid,
                    timecreated: now,
                    grade_id: None,
                    grade: None,
                })
            })
            .flatten();
        self.fire(ev)
    }

    /// An admin deletes a user: as Moodle does, the user is unenrolled from every course (each firing
    /// `user_enrolment_deleted`, which the plugin posts) and soft-deleted (username and email mangled, id number
    /// cleared). Returns false for an unknown or already deleted user.
    pub fn delete_user(&self, id: i64) -> bool {
        use md5::Digest;
        let now = chrono::Utc::now().timestamp();
        let events = self
            .with_state(|s| {
                s.live_user(id)?;
                let courses: Vec<i64> = s.enrolments.keys().filter(|(_, u)| *u == id).map(|(c, _)| *c).collect();
                let events: Vec<Event> = courses
                    .into_iter()
                    .filter_map(|c| s.unenrol(c, id).map(|_| c))
                    .map(|courseid| Event {
                        eventname: functions::enrol::DELETED.into(),
                        courseid,
                        userid: id,
                        timecreated: now,
                        grade_id: None,
                        grade: None,
                    })
                    .collect();
                let taken: HashSet<String> = s.users.values().map(|u| u.username.clone()).collect();
                let u = s.users.get_mut(&id)?;
                let mut name = format!("{}.{now}", u.email.to_lowercase());
                while taken.contains(&name) {
                    name.push('1');
                }
                u.email = format!("{:x}", md5::Md5::digest(u.username.as_bytes()));
                u.username = name;
                u.idnumber.clear();
                u.deleted = true;
                u.timemodified = now;
                Some(events)
            })
            .flatten();
        let Some(events) = events else { return false };
        for e in events {
            self.fire(Some(e));
        }
        true
    }

    /// Someone removes a row of a plugin table (`payments`, `registrations`, `units`) by its Zoho id, outside
    /// zmsync and without an event (a database clean-up). Returns false when there is no such row.
    pub fn delete_plugin_row(&self, table: &str, zoho_id: &str) -> bool {
        self.with_state(|s| {
            let Some((_, t)) = s.plugin.iter_mut().find(|(k, _)| **k == table) else { return false };
            let Some(id) = t.find(zoho_id) else { return false };
            t.remove(id);
            true
        })
        .unwrap_or(false)
    }

    /// An admin edits a user. The plugin observes only enrolments and grades (contract §9), so user edits
    /// post no webhook: the sync finds them by reconciling.
    fn edit_user(&self, id: i64, f: impl FnOnce(&mut User)) -> bool {
        let now = chrono::Utc::now().timestamp();
        self.with_state(|s| match s.users.get_mut(&id).filter(|u| !u.deleted) {
            Some(u) => {
                f(u);
                u.timemodified = now;
                true
            }
            None => false,
        })
        .unwrap_or(false)
    }

    pub fn suspend_user(&self, id: i64) -> bool {
        self.edit_user(id, |u| u.suspended = true)
    }

    pub fn rename_user(&self, id: i64, first: &str, last: &str) -> bool {
        self.edit_user(id, |u| {
            u.firstname = first.into();
            u.lastname = last.into();
        })
    }

    pub fn set_user_email(&self, id: i64, email: &str) -> bool {
        self.edit_user(id, |u| u.email = email.into())
    }
}
