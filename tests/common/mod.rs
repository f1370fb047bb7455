//! Helpers several integration tests share: `mod common;` in a test file brings them in.
//!
//! Each test file compiles its own copy and uses only some of these, hence the allow.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod torch_fixtures;

/// `target/test-tmp`, beside the binary's profile folder: under `target/` so `cargo clean`
/// removes it, and kept after a run so a failure's files can be looked at.
pub fn tmp_root() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_fear")).parent().unwrap().parent().unwrap().join("test-tmp")
}

/// A fresh, empty `target/test-tmp/<name>` (`name` may hold `/`). Tests run in parallel, so
/// each needs a name of its own.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = tmp_root().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `fear args`, run in `dir` with `env` added. Slurm's array variables and the failure hook are
/// cleared first: a test run inside a Slurm array job, or with the hook exported, must not be
/// sharded or failed behind its back.
pub fn fear_env<S: AsRef<OsStr>>(dir: &Path, args: &[S], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fear"))
        .args(args)
        .env_remove("FEAR_INJECT_FAILURE")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("running fear")
}

/// The flags of a tiny run, seconds long: Synthetic CIFAR-10 with 4 images per class (cached in
/// `target/test-tmp/cache`), a C=4 N=1 network, one CPU thread.
pub fn tiny_run_args() -> Vec<String> {
    let cache = tmp_root().join("cache");
    [
        "--dataset",
        "synthetic-cifar10",
        "--synthetic-size",
        "4",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--channels",
        "4",
        "--cells-per-stage",
        "1",
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Where the CIFAR-10 JPEG archive is looked for: `$FEAR_CIFAR10_JPEG` alone when it is set,
/// else `shared/data/cifar10-jpeg.tar.gz` in the repo, then beside it (a worktree's `../shared`).
fn cifar10_jpeg_candidates() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("FEAR_CIFAR10_JPEG") {
        Some(path) => vec![PathBuf::from(path)],
        None => vec![root.join("shared/data/cifar10-jpeg.tar.gz"), root.join("../shared/data/cifar10-jpeg.tar.gz")],
    }
}

/// The CIFAR-10 JPEG archive. The real images are too large to commit, so tests on them run
/// only where the archive is. Without it: under CI (`CI` set) the test fails; elsewhere it is
/// recorded as skipped and returns None, and `tests/zz_skipped.rs`, the last test binary
/// `cargo test` runs, lists every skipped test in the closing lines.
pub fn cifar10_jpeg_archive(test: &str) -> Option<PathBuf> {
    find_or_skip(test, &cifar10_jpeg_candidates(), std::env::var_os("CI").is_some(), &skipped_dir())
        .inspect_err(|why| {
            // Said at once, on the stderr handle: `eprintln!` would be swallowed by the harness.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
        })
        .ok()
}

/// The first of `candidates` that is a file; else a panic when `ci`, or the skip recorded in
/// `skipped` (one file per test, holding why) and why as the error.
pub fn find_or_skip(test: &str, candidates: &[PathBuf], ci: bool, skipped: &Path) -> Result<PathBuf, String> {
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    let why = format!("cifar10-jpeg.tar.gz not found (looked at {}; set FEAR_CIFAR10_JPEG to its path)", looked.join(", "));
    if ci {
        panic!("{test}: {why}. Under CI (the CI variable is set) a real-data test must run, not skip.");
    }
    std::fs::create_dir_all(skipped).unwrap();
    std::fs::write(skipped.join(test), &why).unwrap();
    Err(why)
}

/// Where the tests skipped under one `cargo test` are recorded, in a folder named by the
/// process that ran the test binaries (cargo), so a later run starts empty.
pub fn skipped_dir() -> PathBuf {
    tmp_root().join("skipped").join(std::os::unix::process::parent_id().to_string())
}

/// The tests recorded in `dir` as skipped, with why, sorted by name.
pub fn read_skipped(dir: &Path) -> Vec<(String, String)> {
    let mut skipped: Vec<(String, String)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    skipped.sort();
    skipped
}

/// Unpacks the archive's members matching `patterns` (tar wildcards) into
/// `CARGO_TARGET_TMPDIR/<name>` once, and returns the `cifar10-jpeg` folder there. A marker file
/// written last makes an interrupted unpack start over.
pub fn unpack_cifar10_subset(archive: &Path, name: &str, patterns: &[&str]) -> PathBuf {
    let dest = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let done = dest.join(".unpacked");
    if !done.is_file() {
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir_all(&dest).unwrap();
        let status = Command::new("tar").arg("xzf").arg(archive).arg("-C").arg(&dest).arg("--wildcards").args(patterns).status().expect("running tar");
        assert!(status.success(), "tar failed on {}", archive.display());
        std::fs::write(&done, "").unwrap();
    }
    dest.join("cifar10-jpeg")
}
