//! The plan's ops out of memory while a run applies them: each op is written once, as JSON, to an unnamed
//! temporary file (gone when the run ends, however it ends), and only a small index — seq, entity, action,
//! target, where the op lies — stays in memory. Apply reads back one phase at a time, in chunks, so a run holds
//! a few thousand ops at once, never the whole plan (≈ 3 KB per op in memory, 46,000 ops at 5,000 students).
//! The journal, not this file, is what a crash leaves behind.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;

use crate::model::{Entity, Kind, Side};
use crate::reconcile::{Action, Op};

/// Ops read back at once: a phase larger than this runs chunk after chunk.
pub const CHUNK: usize = 4_000;

/// Where one op lies, and what a phase picks it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub entity: Entity,
    pub action: Action,
    pub target: Side,
    offset: u64,
    len: u32,
}

/// Ops being written; [`SpillWriter::finish`] makes them readable.
pub struct SpillWriter {
    out: BufWriter<File>,
    index: Vec<Entry>,
    offset: u64,
    consulted: BTreeSet<Kind>,
    buf: Vec<u8>,
}

/// The ops of a plan, in the order written (seq order), read back by [`Spill::read`].
pub struct Spill {
    file: File,
    index: Vec<Entry>,
    consulted: BTreeSet<Kind>,
}

/// Says where the file is and what to do: a full or read-only temporary directory is the usual cause.
fn in_temp_dir(e: std::io::Error) -> std::io::Error {
    let dir = std::env::temp_dir();
    std::io::Error::new(
        e.kind(),
        format!(
            "cannot write the plan's ops to a temporary file in {} (set TMPDIR to a writable directory with room): {e}",
            dir.display()
        ),
    )
}

impl SpillWriter {
    pub fn new() -> std::io::Result<SpillWriter> {
        Ok(SpillWriter {
            out: BufWriter::with_capacity(1 << 16, tempfile::tempfile().map_err(in_temp_dir)?),
            index: Vec::new(),
            offset: 0,
            consulted: BTreeSet::new(),
            buf: Vec::new(),
        })
    }

    pub fn push(&mut self, op: &Op) -> std::io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, op)?;
        self.out.write_all(&self.buf).map_err(in_temp_dir)?;
        let len = u32::try_from(self.buf.len()).map_err(std::io::Error::other)?;
        self.index.push(Entry {
            seq: op.seq,
            entity: op.entity,
            action: op.action,
            target: op.target,
            offset: self.offset,
            len,
        });
        self.offset += u64::from(len);
        self.consulted.extend(super::consulted(op));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn finish(self) -> std::io::Result<Spill> {
        let file = self.out.into_inner().map_err(|e| in_temp_dir(e.into_error()))?;
        Ok(Spill { file, index: self.index, consulted: self.consulted })
    }
}

impl Spill {
    /// Every op of `ops`, written and made readable.
    pub fn of<'a>(ops: impl IntoIterator<Item = &'a Op>) -> std::io::Result<Spill> {
        let mut w = SpillWriter::new()?;
        for op in ops {
            w.push(op)?;
        }
        w.finish()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.index
    }

    /// The highest seq written (0: none).
    pub fn max_seq(&self) -> u64 {
        self.index.iter().map(|e| e.seq).max().unwrap_or(0)
    }

    /// The kinds of stored records apply consults for these ops (see [`super::consulted`]).
    pub fn consulted(&self) -> Vec<Kind> {
        self.consulted.iter().copied().collect()
    }

    /// The entries `pick` takes, in chunks of at most [`CHUNK`]; at least one chunk (empty when none is taken),
    /// so a phase with nothing planned still runs once (write-backs of what the run created).
    pub fn chunks(&self, pick: impl Fn(&Entry) -> bool) -> Vec<Vec<Entry>> {
        let taken: Vec<Entry> = self.index.iter().copied().filter(|e| pick(e)).collect();
        if taken.is_empty() {
            return vec![Vec::new()];
        }
        taken.chunks(CHUNK).map(<[Entry]>::to_vec).collect()
    }

    /// The ops of `entries`, read back.
    pub fn read(&self, entries: &[Entry]) -> std::io::Result<Vec<Op>> {
        let mut buf = Vec::new();
        entries
            .iter()
            .map(|e| {
                buf.resize(e.len as usize, 0);
                self.file.read_exact_at(&mut buf, e.offset)?;
                Ok(serde_json::from_slice(&buf)?)
            })
            .collect()
    }

    /// Calls `f` with every op, in order, a chunk at a time.
    pub fn for_each(&self, mut f: impl FnMut(&Op) -> std::io::Result<()>) -> std::io::Result<()> {
        for chunk in self.index.chunks(CHUNK) {
            for op in self.read(chunk)? {
                f(&op)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_dir_that_cannot_be_written_is_named_in_the_error() {
        let e = in_temp_dir(std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device"));
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
        let msg = e.to_string();
        assert!(msg.contains(&std::env::temp_dir().display().to_string()), "{msg}");
        assert!(msg.contains("TMPDIR") && msg.contains("No space left on device"), "{msg}");
    }
}
