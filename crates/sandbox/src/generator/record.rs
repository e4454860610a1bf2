//! A Zoho record written straight to compact JSON text, keys in the order written: no map, no per-key
//! allocation, the buffer reused from record to record. The generator makes every seed record with it.

use serde::Serialize;

use crate::seed::JsonObject;

pub(super) struct RecordWriter {
    buf: Vec<u8>,
}

impl RecordWriter {
    /// Starts a record in `buf` (emptied first): the generator hands each record the buffer the one before
    /// gave back from [`RecordWriter::finish`], so a record costs one allocation of its exact size.
    pub(super) fn with_buffer(mut buf: Vec<u8>) -> RecordWriter {
        buf.clear();
        buf.push(b'{');
        RecordWriter { buf }
    }

    fn key(&mut self, key: &str) {
        if self.buf.len() > 1 {
            self.buf.push(b',');
        }
        self.json(key);
        self.buf.push(b':');
    }

    fn json<T: Serialize + ?Sized>(&mut self, v: &T) {
        serde_json::to_writer(&mut self.buf, v).expect("writing JSON to memory cannot fail");
    }

    /// Any serializable value: a string, a number, `Option` (`None` is `null`).
    pub(super) fn put<T: Serialize + ?Sized>(&mut self, key: &str, v: &T) -> &mut Self {
        self.key(key);
        self.json(v);
        self
    }

    pub(super) fn null(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(b"null");
        self
    }

    /// A lookup or a user: `{"id": …, "name": …}`.
    pub(super) fn lookup(&mut self, key: &str, id: &str, name: &str) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(b"{\"id\":");
        self.json(id);
        self.buf.extend_from_slice(b",\"name\":");
        self.json(name);
        self.buf.push(b'}');
        self
    }

    /// The record's text, copied to an allocation of its size, and the buffer for the next record.
    pub(super) fn finish(mut self) -> (JsonObject, Vec<u8>) {
        self.buf.push(b'}');
        let text = std::str::from_utf8(&self.buf).expect("serde_json writes UTF-8").to_owned();
        (JsonObject::from_text_unchecked(text), self.buf)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn record_writer_writes_what_json_would() {
        let mut w = RecordWriter::with_buffer(b"stale".to_vec());
        w.put("id", "58").put("Name", "O'Brien \"Zoë\" <&>").null("Phone").put("Amount", &1250.5);
        w.lookup("Student", "57", "STU-1").put("Credits", &None::<i64>).put("Moodle_Grade", &71.0);
        let (rec, _) = w.finish();
        let want = json!({"id": "58", "Name": "O'Brien \"Zoë\" <&>", "Phone": null, "Amount": 1250.5,
            "Student": {"id": "57", "name": "STU-1"}, "Credits": null, "Moodle_Grade": 71.0});
        assert_eq!(rec.value(), want);
        assert_eq!(rec.as_str(), serde_json::to_string(&want).unwrap());
        assert_eq!(rec.id().as_deref(), Some("58"));
    }
}
