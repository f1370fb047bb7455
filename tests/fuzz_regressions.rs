//! Replays every input kept from fuzzing through the fuzz targets' own bodies
//! (`fuzz/src/lib.rs`): the seed corpus `fuzz/corpus/<target>/` and every crash ever found,
//! kept in `tests/fixtures/fuzz/<target>/` once fixed. No fuzzer needed: this runs in every
//! `cargo test`. How to fuzz: fuzz/README.md.

use std::path::{Path, PathBuf};

#[path = "../fuzz/src/lib.rs"]
mod fuzz_entries;

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    v.sort();
    v
}

#[test]
fn every_target_has_a_binary_and_a_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut binaries: Vec<String> = files(&root.join("fuzz/fuzz_targets")).iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    binaries.sort();
    let mut named: Vec<String> = fuzz_entries::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    named.sort();
    assert_eq!(binaries, named, "fuzz/fuzz_targets and fuzz_entries::TARGETS must list the same targets");
    for name in &named {
        assert!(!files(&root.join("fuzz/corpus").join(name)).is_empty(), "no seed corpus for {name}");
    }
}

#[test]
fn kept_fuzz_inputs_are_answered_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, body) in fuzz_entries::TARGETS {
        for dir in [root.join("fuzz/corpus").join(name), root.join("tests/fixtures/fuzz").join(name)] {
            for file in files(&dir) {
                let bytes = std::fs::read(&file).unwrap();
                let outcome = std::panic::catch_unwind(|| body(&bytes));
                assert!(outcome.is_ok(), "{name}: {} panicked", file.display());
            }
        }
    }
}
