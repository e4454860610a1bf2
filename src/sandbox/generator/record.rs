//! A Zoho record's fields as drawn, written to compact JSON text later, keys in the order put: no map. The
//! generator draws every seed record's values serially (the random draws must stay in order for a seed's
//! bytes) and formats the text ([`RecordWriter::finish`]: the escaping, the dates and times) off the drawing
//! thread, on all cores.

use std::borrow::Cow;
use std::io::Write;

use crate::sandbox::seed::JsonObject;

use super::{date_str, zoho_time};

type Text = Cow<'static, str>;

/// One field's value as drawn.
pub(super) enum Val {
    Str(Text),
    Null,
    F64(f64),
    I64(i64),
    /// A Zoho datetime ([`zoho_time`]): Unix seconds, and whether in India time.
    Time(i64, bool),
    /// A date ([`date_str`]): days since 1970-01-01.
    Date(i64),
    /// A lookup or a user: `{"id": …, "name": …}`.
    Lookup(Text, Text),
}

/// What [`RecordWriter::put`] takes: a string, a number, an `Option` of one (`None` is `null`), or a [`Val`].
pub(super) trait IntoVal {
    fn val(self) -> Val;
}

/// What a lookup's id and name are taken from.
pub(super) trait IntoText {
    fn text(self) -> Text;
}

impl IntoText for &'static str {
    fn text(self) -> Text {
        Cow::Borrowed(self)
    }
}

impl IntoText for &String {
    fn text(self) -> Text {
        Cow::Owned(self.clone())
    }
}

impl IntoText for String {
    fn text(self) -> Text {
        Cow::Owned(self)
    }
}

impl<T: IntoText> IntoVal for T {
    fn val(self) -> Val {
        Val::Str(self.text())
    }
}

impl IntoVal for Val {
    fn val(self) -> Val {
        self
    }
}

impl IntoVal for f64 {
    fn val(self) -> Val {
        Val::F64(self)
    }
}

impl IntoVal for i64 {
    fn val(self) -> Val {
        Val::I64(self)
    }
}

impl<T: IntoVal> IntoVal for Option<T> {
    fn val(self) -> Val {
        self.map_or(Val::Null, IntoVal::val)
    }
}

impl IntoVal for &Option<String> {
    fn val(self) -> Val {
        self.as_ref().map_or(Val::Null, |s| s.val())
    }
}

#[derive(Default)]
pub(super) struct RecordWriter {
    fields: Vec<(&'static str, Val)>,
}

impl RecordWriter {
    pub(super) fn new() -> RecordWriter {
        RecordWriter { fields: Vec::with_capacity(16) }
    }

    /// Any value [`IntoVal`] takes.
    pub(super) fn put(&mut self, key: &'static str, v: impl IntoVal) -> &mut Self {
        self.fields.push((key, v.val()));
        self
    }

    pub(super) fn null(&mut self, key: &'static str) -> &mut Self {
        self.put(key, Val::Null)
    }

    /// A lookup or a user: `{"id": …, "name": …}`.
    pub(super) fn lookup(&mut self, key: &'static str, id: impl IntoText, name: impl IntoText) -> &mut Self {
        self.put(key, Val::Lookup(id.text(), name.text()))
    }

    /// The record's compact JSON text, keys in the order put.
    pub(super) fn finish(self) -> JsonObject {
        let mut buf = Vec::with_capacity(512);
        let json =
            |buf: &mut Vec<u8>, s: &str| serde_json::to_writer(buf, s).expect("writing JSON to memory cannot fail");
        let quoted = |buf: &mut Vec<u8>, s: &str| {
            buf.push(b'"');
            buf.extend_from_slice(s.as_bytes());
            buf.push(b'"');
        };
        buf.push(b'{');
        for (key, v) in &self.fields {
            if buf.len() > 1 {
                buf.push(b',');
            }
            json(&mut buf, key);
            buf.push(b':');
            match v {
                Val::Str(s) => json(&mut buf, s),
                Val::Null => buf.extend_from_slice(b"null"),
                Val::F64(x) => serde_json::to_writer(&mut buf, x).expect("writing JSON to memory cannot fail"),
                Val::I64(x) => write!(buf, "{x}").expect("writing to memory cannot fail"),
                // Digits, dashes, colons and a sign: nothing to escape.
                Val::Time(t, ist) => quoted(&mut buf, &zoho_time(*t, *ist)),
                Val::Date(d) => quoted(&mut buf, &date_str(*d)),
                Val::Lookup(id, name) => {
                    buf.extend_from_slice(b"{\"id\":");
                    json(&mut buf, id);
                    buf.extend_from_slice(b",\"name\":");
                    json(&mut buf, name);
                    buf.push(b'}');
                }
            }
        }
        buf.push(b'}');
        let text = String::from_utf8(buf).expect("serde_json writes UTF-8");
        JsonObject::from_text_unchecked(text)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn record_writer_writes_what_json_would() {
        let mut w = RecordWriter::new();
        w.put("id", "58").put("Name", "O'Brien \"Zoë\" <&>").null("Phone").put("Amount", 1250.5);
        w.lookup("Student", "57", "STU-1").put("Credits", None::<i64>).put("Moodle_Grade", 71.0);
        w.put("Level", Some(15i64)).put("Start_Date", Val::Date(20_332)).put("Created_Time", Val::Time(0, true));
        let rec = w.finish();
        let want = json!({"id": "58", "Name": "O'Brien \"Zoë\" <&>", "Phone": null, "Amount": 1250.5,
            "Student": {"id": "57", "name": "STU-1"}, "Credits": null, "Moodle_Grade": 71.0, "Level": 15,
            "Start_Date": "2025-09-01", "Created_Time": "1970-01-01T05:30:00+05:30"});
        assert_eq!(rec.value(), want);
        assert_eq!(rec.as_str(), serde_json::to_string(&want).unwrap());
        assert_eq!(rec.id().as_deref(), Some("58"));
    }
}
