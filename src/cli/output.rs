//! Shared output plumbing: a buffered stdout that treats a closed pipe as a normal end, and the
//! usage error marker (exit 2).
//!
//! Every `--json` prints JSON Lines (docs/json.md): one JSON object per line, nothing else on
//! stdout. A list is one line per item, so an empty list is zero lines (exit 0); a command whose
//! answer is one thing (a written commit, a report) prints exactly one line. Arrays never appear
//! at the top level: [`Out::json`] writes one object, [`Out::json_each`] one per item.

use std::io::{self, BufWriter, Write};

/// Marks an error as the user's usage mistake: exit status 2 instead of 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// Buffered stdout for data. `git baton status | head` ends quietly.
pub struct Out {
    inner: BufWriter<io::StdoutLock<'static>>,
}

impl Out {
    pub fn new() -> Out {
        Out { inner: BufWriter::with_capacity(64 * 1024, io::stdout().lock()) }
    }
    pub fn line(&mut self, s: &str) -> io::Result<()> {
        self.inner.write_all(s.as_bytes())?;
        self.inner.write_all(b"\n")
    }
    pub fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.inner.write_all(b)
    }
    pub fn json(&mut self, v: &impl serde::Serialize) -> anyhow::Result<()> {
        // Serialise first: an io::Error wrapped in serde_json's error would hide a closed pipe.
        let mut buf = serde_json::to_vec(v)?;
        buf.push(b'\n');
        self.inner.write_all(&buf)?;
        Ok(())
    }
    /// One line per item: the JSON Lines form of a list (zero lines when it is empty).
    pub fn json_each<T: serde::Serialize>(&mut self, items: impl IntoIterator<Item = T>) -> anyhow::Result<()> {
        for item in items {
            self.json(&item)?;
        }
        Ok(())
    }
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Default for Out {
    fn default() -> Self {
        Out::new()
    }
}

pub use crate::runner::select::{branch_selected, glob_match};
