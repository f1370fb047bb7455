//! Sets of architectures named on the command line: `all`, `sample:N`, `file:PATH`, or a
//! comma-separated list of indices and arch strings.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::arch::{parse_arch, Arch, NUM_ARCHS};
use super::error::ArchError;

/// Why an architecture list could not be built; every message names the offending part.
#[derive(Debug)]
pub enum ArchListError {
    /// One entry of a list is not an architecture; `at` says where (`entry 3`, `archs.txt line 7`).
    Entry { at: String, source: ArchError },
    /// The same cell appears twice; `first` and `second` say where.
    Duplicate { arch: Arch, first: String, second: String },
    /// `sample:N` with N missing, malformed, zero or above 15625.
    SampleSize { input: String },
    /// An empty entry in a comma-separated list (e.g. `1,,2` or a trailing comma).
    EmptyEntry { spec: String, entry: usize },
    /// A list, or a file, that names no architecture at all.
    Empty { what: String },
    /// The file of `file:PATH` could not be read.
    Io { path: PathBuf, source: std::io::Error },
}

impl fmt::Display for ArchListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchListError::Entry { at, source } => write!(f, "{at}: {source}"),
            ArchListError::Duplicate { arch, first, second } => {
                write!(f, "architecture {} ({arch}) appears twice: {first} and {second}", arch.index())
            }
            ArchListError::SampleSize { input } => {
                write!(f, "invalid sample size in \"{input}\": expected sample:N with N in 1..={NUM_ARCHS}")
            }
            ArchListError::EmptyEntry { spec, entry } => {
                write!(f, "empty entry {entry} in architecture list \"{spec}\"")
            }
            ArchListError::Empty { what } => write!(f, "no architecture in {what}"),
            ArchListError::Io { path, source } => {
                write!(f, "cannot read architecture list {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ArchListError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ArchListError::Entry { source, .. } => Some(source),
            ArchListError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Parses an architecture-set spec:
/// - `all`: all 15625 cells in index order;
/// - `sample:N`: N distinct cells drawn uniformly without replacement, deterministic in `seed`
///   (ChaCha8 seeded with `seed`, `rand::seq::index::sample`), in the order drawn;
/// - `file:PATH`: one index or arch string per line; blank lines and `#` comments are skipped;
/// - otherwise a comma-separated list of indices and arch strings.
///
/// Lists keep their order; a cell listed twice is an error.
pub fn parse_arch_list(spec: &str, seed: u64) -> Result<Vec<Arch>, ArchListError> {
    let spec = spec.trim();
    if spec == "all" {
        return Ok(Arch::all().collect());
    }
    if let Some(n) = spec.strip_prefix("sample:") {
        return sample(spec, n.trim(), seed);
    }
    if let Some(path) = spec.strip_prefix("file:") {
        return read_file(&crate::util::expand_tilde(path));
    }
    if spec.is_empty() {
        return Err(ArchListError::Empty {
            what: "an empty architecture list (expected all, sample:N, file:PATH, or indices and arch strings \
                   separated by commas)"
                .to_string(),
        });
    }
    let mut entries = Vec::new();
    for (i, entry) in spec.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(ArchListError::EmptyEntry { spec: spec.to_string(), entry: i + 1 });
        }
        entries.push((format!("entry {}", i + 1), entry));
    }
    collect_distinct(entries)
}

fn sample(spec: &str, n: &str, seed: u64) -> Result<Vec<Arch>, ArchListError> {
    let amount = match n.parse::<usize>() {
        Ok(a) if (1..=NUM_ARCHS).contains(&a) => a,
        _ => return Err(ArchListError::SampleSize { input: spec.to_string() }),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let indices = rand::seq::index::sample(&mut rng, NUM_ARCHS, amount);
    Ok(indices.iter().map(|i| Arch::from_index(i).expect("sampled index in range")).collect())
}

fn read_file(path: &Path) -> Result<Vec<Arch>, ArchListError> {
    let text = std::fs::read_to_string(path).map_err(|source| ArchListError::Io { path: path.to_path_buf(), source })?;
    parse_arch_lines(&text, &path.display().to_string())
}

/// Parses the text of an architecture file (`file:PATH`): one index or arch string per line;
/// blank lines and `#` comments are skipped. `source` (the file's name) goes into every error.
pub fn parse_arch_lines(text: &str, source: &str) -> Result<Vec<Arch>, ArchListError> {
    let entries: Vec<(String, &str)> = text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let content = line.split('#').next().unwrap_or("").trim();
            (!content.is_empty()).then(|| (format!("{source} line {}", i + 1), content))
        })
        .collect();
    if entries.is_empty() {
        return Err(ArchListError::Empty { what: format!("file {source}") });
    }
    collect_distinct(entries)
}

/// Parses each `(where, text)` entry, rejecting the first cell seen twice.
fn collect_distinct(entries: Vec<(String, &str)>) -> Result<Vec<Arch>, ArchListError> {
    let mut seen: HashMap<Arch, String> = HashMap::with_capacity(entries.len());
    let mut archs = Vec::with_capacity(entries.len());
    for (at, text) in entries {
        let arch = parse_arch(text).map_err(|source| ArchListError::Entry { at: at.clone(), source })?;
        if let Some(first) = seen.get(&arch) {
            return Err(ArchListError::Duplicate { arch, first: first.clone(), second: at });
        }
        seen.insert(arch, at);
        archs.push(arch);
    }
    Ok(archs)
}
