//! `fear merge`: join results files (shards of `fear rank` or `fear shortreg`) into one, each
//! architecture once, sorted by index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The merged results file (written atomically; may also be one of the inputs).
    pub out: PathBuf,
    /// Results files to join (JSON Lines, one architecture a line).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// On a conflict (two different lines for one index) keep the first and write OUT anyway.
    #[arg(long)]
    pub force: bool,
}

/// One complete line of a results file.
pub(crate) struct Line {
    pub index: u64,
    /// The line as written (without its newline), so the merged file keeps it byte for byte.
    pub text: String,
    pub value: serde_json::Value,
    /// 1-based line number in its file.
    pub no: usize,
}

/// Reads a results file without changing it: complete lines only; a torn last line (a run killed
/// mid-write) is dropped with a warning.
pub(crate) fn read_results(path: &Path) -> Result<Vec<Line>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < bytes.len() {
        eprintln!("warning: {}: dropping a torn last line ({} bytes) left by an interrupted run", path.display(), bytes.len() - complete);
    }
    let mut lines = Vec::new();
    for (i, raw) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
        let no = i + 1;
        let text = std::str::from_utf8(raw).with_context(|| format!("{} line {no}: not UTF-8", path.display()))?.trim();
        if text.is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(text).with_context(|| format!("{} line {no}: not JSON", path.display()))?;
        let index = value.get("index").and_then(|i| i.as_u64())
            .with_context(|| format!("{} line {no}: no architecture index", path.display()))?;
        lines.push(Line { index, text: text.to_string(), value, no });
    }
    Ok(lines)
}

pub fn run(args: MergeArgs) -> Result<()> {
    // index -> (input number, line) of the first line seen for it.
    let mut kept: BTreeMap<u64, (usize, Line)> = BTreeMap::new();
    let (mut read, mut duplicates, mut conflicts) = (0usize, 0usize, 0usize);
    for (f, path) in args.inputs.iter().enumerate() {
        for line in read_results(path)? {
            read += 1;
            match kept.get(&line.index) {
                None => {
                    kept.insert(line.index, (f, line));
                }
                Some((_, first)) if first.value == line.value => duplicates += 1,
                Some((g, first)) => {
                    conflicts += 1;
                    eprintln!(
                        "conflict: index {}: {} line {} and {} line {} differ{}",
                        line.index, args.inputs[*g].display(), first.no, path.display(), line.no,
                        if args.force { " (keeping the first)" } else { "" }
                    );
                }
            }
        }
    }
    if conflicts > 0 && !args.force {
        anyhow::bail!("{conflicts} conflicting line(s); {} not written (--force keeps the first of each)", args.out.display());
    }
    let mut text = String::new();
    for (_, line) in kept.values() {
        text.push_str(&line.text);
        text.push('\n');
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::util::write_atomically(&args.out, text.as_bytes())?;
    println!(
        "merged {} architectures from {} lines in {} files into {} ({duplicates} duplicates, {conflicts} conflicts)",
        kept.len(), read, args.inputs.len(), args.out.display()
    );
    Ok(())
}
