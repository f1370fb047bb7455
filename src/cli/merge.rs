//! `fear merge`: join results files (shards of `fear rank` or `fear shortreg`) into one, each
//! architecture once, sorted by index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::rank::results::{parse_results, ResultLine};

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The merged results file (written atomically; may also be one of the inputs).
    #[arg(value_parser = crate::util::path_arg)]
    pub out: PathBuf,
    /// Results files to join (JSON Lines, one architecture a line).
    #[arg(value_parser = crate::util::path_arg, required = true)]
    pub inputs: Vec<PathBuf>,
    /// On a conflict (two different lines for one index) keep the first and write OUT anyway.
    #[arg(long)]
    pub force: bool,
}

/// Reads a results file without changing it: complete lines only; a torn last line (a run killed
/// mid-write) is dropped with a warning. `fear evaluate` reads results files through it too.
pub(crate) fn read_results(path: &Path) -> Result<Vec<ResultLine>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let parsed = parse_results(&path.display().to_string(), &bytes)?;
    if parsed.torn_bytes > 0 {
        eprintln!("warning: {}: dropping a torn last line ({} bytes) left by an interrupted run", path.display(), parsed.torn_bytes);
    }
    Ok(parsed.lines)
}

pub fn run(args: MergeArgs) -> Result<()> {
    // index -> (input number, line) of the first line seen for it.
    let mut kept: BTreeMap<u64, (usize, ResultLine)> = BTreeMap::new();
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
                        line.index,
                        args.inputs[*g].display(),
                        first.no,
                        path.display(),
                        line.no,
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
        kept.len(),
        read,
        args.inputs.len(),
        args.out.display()
    );
    Ok(())
}
