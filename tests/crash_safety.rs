//! Crash safety: runs `fear rank`, `fear shortreg`, `fear zero-cost` and `fear search` over a few
//! tiny architectures, kills them with SIGKILL at random moments (75 kills in all), resumes each
//! time, and checks that every results file then parses, holds each architecture exactly once,
//! and equals an uninterrupted run's lines (scores included: CPU runs are deterministic for a
//! seed; only the timings differ). `fear reproduce`, a job of several such runs, is killed and
//! resumed the same way, and must never change or repeat a finished line.
//!
//! Another resumable command is one more line in [`COMMANDS`]. The random moments come from a
//! seed printed at the start; `FEAR_CRASH_SEED=N` replays a run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde_json::Value;

mod common;

/// A resumable command under test: its own arguments (the tiny data, network, seed and `--out`
/// are added) and how many kills it gets. Each run covers [`LINES`] architectures.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    kills: usize,
}

/// Arch 10 is a disconnected cell (capped without training) and 6111 fails on purpose
/// (FEAR_INJECT_FAILURE, honoured by the runner every ranker uses, `fear::run::Runner`), so ok, capped and failed
/// lines all go through kills and resumes.
const ARCHS: &str = "1,6111,123,10,15624,2,3,4";
const LINES: usize = 8;

const COMMANDS: &[Case] = &[
    Case { name: "rank", args: &["rank", "--archs", ARCHS, "--threshold", "0.001", "--stage2-epochs", "1", "--max-stage1-epochs", "2"], kills: 30 },
    Case { name: "shortreg", args: &["shortreg", "--archs", ARCHS, "--epochs", "2", "--batch", "8"], kills: 25 },
    Case { name: "zero-cost", args: &["zero-cost", "--archs", ARCHS, "--proxy", "synflow,snip,params", "--batch", "16"], kills: 10 },
    Case { name: "search", args: &["search", "--method", "shortreg", "--epochs", "1", "--batch", "8", "--archs-budget", "8"], kills: 10 },
];

fn spawn(case: &Case, dir: &Path, out: &str) -> Child {
    let cache = dir.join("cache");
    Command::new(env!("CARGO_BIN_EXE_fear"))
        .args(case.args)
        .args(["--out", out, "--seed", "0", "--dataset", "synthetic-cifar10", "--synthetic-size", "4"])
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--channels", "4", "--cells-per-stage", "1", "--device", "cpu", "--threads", "1"])
        .current_dir(dir)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env("FEAR_INJECT_FAILURE", "6111")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running fear")
}

fn run_to_end(case: &Case, dir: &Path, out: &str) {
    let child = spawn(case, dir, out);
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success(), "{} failed: {}", case.name, String::from_utf8_lossy(&done.stderr));
}

/// The file's lines with the timing fields (`*_s`, the only ones that differ between runs)
/// removed, by index; panics unless every line parses and each index appears once.
fn lines_by_index(path: &Path) -> Vec<(u64, Value)> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "{}: last line not terminated", path.display());
    let mut lines: Vec<(u64, Value)> = text
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display()));
            v.as_object_mut().unwrap().retain(|k, _| !k.ends_with("_s"));
            (v["index"].as_u64().unwrap(), v)
        })
        .collect();
    lines.sort_by_key(|(i, _)| *i);
    assert!(lines.windows(2).all(|w| w[0].0 != w[1].0), "{}: an architecture appears twice", path.display());
    lines
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_result() {
    let seed: u64 = std::env::var("FEAR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("crash_safety: FEAR_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for case in COMMANDS {
        let dir = common::test_dir(&format!("crash_safety/{}", case.name));
        // A first run generates the dataset cache, so the timed one below is what a resumed
        // run costs; the kill moments are drawn within it.
        run_to_end(case, &dir, "warm-up.jsonl");
        let started = Instant::now();
        run_to_end(case, &dir, "reference.jsonl");
        let whole_run = started.elapsed();
        let reference = lines_by_index(&dir.join("reference.jsonl"));
        assert_eq!(reference.len(), LINES, "{}: reference lines", case.name);

        let (mut kills, mut completions) = (0, 0);
        while kills < case.kills {
            // One crash file, killed at random moments and resumed until a run finishes on its own.
            let out = format!("crashed-{completions}.jsonl");
            loop {
                let mut child = spawn(case, &dir, &out);
                let moment = whole_run.mul_f64(rng.random_range(0.0..1.0));
                std::thread::sleep(moment);
                if child.try_wait().unwrap().is_none() {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    kills += 1;
                    continue;
                }
                let done = child.wait_with_output().unwrap();
                assert!(done.status.success(), "{} resumed run failed: {}", case.name, String::from_utf8_lossy(&done.stderr));
                break;
            }
            completions += 1;
            let resumed = lines_by_index(&dir.join(&out));
            assert_eq!(resumed, reference, "{}: {out} differs from the uninterrupted run (seed {seed})", case.name);
        }
        eprintln!("crash_safety: {}: {kills} kills, {completions} resumed files equal to the uninterrupted run", case.name);
    }
}

/// `fear reproduce`'s tiny job: FEAR, the zero-cost proxies and two shortreg variants over
/// [`ARCHS`] (one of them failing on purpose), C=4 N=2 on 4 synthetic images per class.
fn reproduce(dir: &Path, out: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fear"));
    cmd.args(["reproduce", "--scale", "demo", "--out", out, "--archs", ARCHS, "--synthetic-size", "4", "--channels", "4"])
        .args(["--shortreg-grid", "1:8,2:8", "--proxies", "synflow,snip,params", "--proxy-batch", "16"])
        .args(["--threshold", "0.001", "--max-stage1-epochs", "2", "--stage2-epochs", "1", "--device", "cpu", "--threads", "1"])
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .current_dir(dir)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env("FEAR_INJECT_FAILURE", "6111")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Every results file of a reproduction folder's `sub` folder (`results`, `shards/0-of-1`), by name.
fn results_files(dir: &Path, sub: &str) -> Vec<(String, std::path::PathBuf)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join(sub)).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    files.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "jsonl"));
    files.sort();
    files.into_iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p)).collect()
}

/// The complete lines of a results file (a torn last line, left by a kill, is not one).
fn complete_lines(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text[..text.rfind('\n').map_or(0, |i| i + 1)].to_string()
}

/// `fear reproduce` killed at random moments and resumed: every finished line stays as it was
/// (a resumed job only appends: nothing finished is redone), the joined results equal an
/// uninterrupted job's, and table.md and the figures are written.
#[test]
fn killed_reproduction_resumes_without_redoing_finished_work() {
    let seed: u64 = std::env::var("FEAR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("crash_safety (reproduce): FEAR_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = common::test_dir("crash_safety/reproduce");
    let finish = |out: &str| {
        let done = reproduce(&dir, out).output().unwrap();
        assert!(done.status.success(), "reproduce failed: {}", String::from_utf8_lossy(&done.stderr));
        String::from_utf8_lossy(&done.stderr).into_owned()
    };
    finish("warm-up");
    let started = Instant::now();
    finish("reference");
    let whole_run = started.elapsed();
    let reference = results_files(&dir.join("reference"), "results");
    assert_eq!(reference.len(), 4, "fear, zero-cost and two shortreg variants: {reference:?}");

    let (mut kills, mut completions) = (0, 0);
    while kills < 12 {
        // One job folder, killed at random moments and resumed until a run finishes on its own.
        let out = format!("crashed-{completions}");
        let shards = dir.join(&out).join("shards/0-of-1");
        loop {
            let before: Vec<(String, String)> = results_files(&dir.join(&out), "shards/0-of-1").into_iter().map(|(n, p)| (n, complete_lines(&p))).collect();
            let mut child = reproduce(&dir, &out).spawn().unwrap();
            std::thread::sleep(whole_run.mul_f64(rng.random_range(0.0..1.0)));
            let finished = child.try_wait().unwrap().is_some();
            if !finished {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
            }
            for (name, old) in before {
                let now = std::fs::read_to_string(shards.join(&name)).unwrap();
                assert!(now.starts_with(&old), "{out}/{name}: finished lines changed by a resumed run (seed {seed})");
            }
            if finished {
                break;
            }
        }
        completions += 1;
        let last = finish(&out);
        assert!(last.contains("fear: done") && last.contains("shortreg-e2-b8: done"), "the finished job redid work:\n{last}");
        // Each architecture once in every shard file: a redone one would be appended again.
        for (_, shard) in results_files(&dir.join(&out), "shards/0-of-1") {
            assert_eq!(lines_by_index(&shard).len(), LINES, "{}", shard.display());
        }
        let resumed = results_files(&dir.join(&out), "results");
        assert_eq!(resumed.iter().map(|r| &r.0).collect::<Vec<_>>(), reference.iter().map(|r| &r.0).collect::<Vec<_>>());
        for ((name, a), (_, b)) in resumed.iter().zip(&reference) {
            assert_eq!(lines_by_index(a), lines_by_index(b), "{out}/{name} differs from the uninterrupted job (seed {seed})");
        }
        let table = std::fs::read_to_string(dir.join(&out).join("table.md")).unwrap();
        assert!(table.contains("| 100 |") && !table.contains("Incomplete"), "{table}");
        assert!(dir.join(&out).join("figures/bins-top100.svg").is_file());
    }
    eprintln!("crash_safety: reproduce: {kills} kills, {completions} resumed jobs equal to the uninterrupted one");
}
