//! Results files: JSON Lines, one architecture a line, appended and synced line by line so a
//! killed run loses at most the architecture in flight and never leaves half a line behind.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

/// An open results file.
pub struct ResultsFile {
    path: PathBuf,
    file: File,
    /// Architecture indices already in the file.
    pub done: HashSet<usize>,
    /// Every complete line's JSON value, in file order.
    pub lines: Vec<serde_json::Value>,
}

impl ResultsFile {
    /// Opens `path` for appending, creating it (and its folder) if needed. Complete lines already
    /// there are read; a torn last line (a crash mid-write) is cut off with a warning.
    pub fn open(path: &Path) -> Result<ResultsFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let existing = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let complete = existing.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut lines = Vec::new();
        for (no, line) in existing[..complete].split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let v: serde_json::Value = serde_json::from_slice(line)
                .with_context(|| format!("{} line {}: not a JSON object", path.display(), no + 1))?;
            lines.push(v);
        }
        let file = OpenOptions::new().create(true).append(true).open(path)
            .with_context(|| format!("opening {} for writing", path.display()))?;
        if complete < existing.len() {
            eprintln!("warning: {}: dropping a torn last line ({} bytes) left by an interrupted run", path.display(), existing.len() - complete);
            file.set_len(complete as u64).with_context(|| format!("truncating {}", path.display()))?;
        }
        let done = lines.iter().filter_map(|v| v.get("index").and_then(|i| i.as_u64()).map(|i| i as usize)).collect();
        Ok(ResultsFile { path: path.to_path_buf(), file, done, lines })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line and syncs it to disk before returning.
    pub fn append<S: Serialize>(&mut self, record: &S) -> Result<()> {
        let value = serde_json::to_value(record)?;
        let mut line = serde_json::to_vec(&value)?;
        line.push(b'\n');
        self.file.write_all(&line).and_then(|_| self.file.sync_data())
            .with_context(|| format!("writing {}", self.path.display()))?;
        if let Some(i) = value.get("index").and_then(|i| i.as_u64()) {
            self.done.insert(i as usize);
        }
        self.lines.push(value);
        Ok(())
    }
}
