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
        let parsed = parse_results(&path.display().to_string(), &existing)?;
        let file = OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening {} for writing", path.display()))?;
        if parsed.torn_bytes > 0 {
            eprintln!("warning: {}: dropping a torn last line ({} bytes) left by an interrupted run", path.display(), parsed.torn_bytes);
            file.set_len((existing.len() - parsed.torn_bytes) as u64).with_context(|| format!("truncating {}", path.display()))?;
        }
        let done = parsed.lines.iter().map(|l| l.index as usize).collect();
        let lines = parsed.lines.into_iter().map(|l| l.value).collect();
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
        self.file.write_all(&line).and_then(|_| self.file.sync_data()).with_context(|| format!("writing {}", self.path.display()))?;
        if let Some(i) = value.get("index").and_then(|i| i.as_u64()) {
            self.done.insert(i as usize);
        }
        self.lines.push(value);
        Ok(())
    }
}

/// One complete line of a results file.
#[derive(Debug)]
pub struct ResultLine {
    /// The architecture index.
    pub index: u64,
    /// The line as written, without its newline and surrounding white space.
    pub text: String,
    pub value: serde_json::Value,
    /// 1-based line number in its file.
    pub no: usize,
}

/// A results file's complete lines, and the length of a torn last line (0 if none).
#[derive(Debug)]
pub struct ParsedResults {
    pub lines: Vec<ResultLine>,
    pub torn_bytes: usize,
}

/// Parses the bytes of a results file (`name` goes into every error). Only newline-terminated
/// lines count: what follows the last newline is a line torn by a killed writer, reported in
/// `torn_bytes`, never parsed. Blank lines are skipped; any other line must be a JSON object
/// with an `index` (an unsigned integer), else the error names the file and line.
pub fn parse_results(name: &str, bytes: &[u8]) -> Result<ParsedResults> {
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut lines = Vec::new();
    for (i, raw) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
        let no = i + 1;
        let text = std::str::from_utf8(raw).with_context(|| format!("{name} line {no}: not UTF-8"))?.trim();
        if text.is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(text).with_context(|| format!("{name} line {no}: not JSON"))?;
        let index = value.get("index").and_then(|i| i.as_u64()).with_context(|| format!("{name} line {no}: not a results line (no architecture index)"))?;
        lines.push(ResultLine { index, text: text.to_string(), value, no });
    }
    Ok(ParsedResults { lines, torn_bytes: bytes.len() - complete })
}
