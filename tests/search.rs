//! `fear search` end to end on a tiny network (C=4, N=1) and a tiny Synthetic CIFAR-10 (4 images
//! per class), one thread: the trajectory's bookkeeping (cut-off budgets, search time, best so
//! far, ground truth), resuming, and the command line's errors. Nothing here depends on timings.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod common;
use common::{fear_env, test_dir, tiny_run_args};

fn fear(dir: &Path, args: &[String]) -> Output {
    fear_env(dir, args, &[])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A ground truth for every index: accuracy = index / 200 (so every value differs).
fn write_ground_truth(dir: &Path) -> PathBuf {
    let path = dir.join("gt.csv");
    let mut text = String::from("index,cifar10\n");
    for i in 0..15625 {
        text.push_str(&format!("{i},{}\n", truth(i)));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn truth(index: u64) -> f64 {
    index as f64 / 200.0
}

/// `fear search` on the tiny set; `extra` adds options.
fn search(dir: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = ["search", "--seed", "5", "--out", "s.jsonl"].map(String::from).to_vec();
    args.extend(tiny_run_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    fear(dir, &args)
}

/// FEAR finishing quickly: stage 1 stops at the first epoch with any accuracy above 0, one
/// stage-2 epoch.
const QUICK_FEAR: [&str; 6] = ["--method", "fear", "--threshold", "0.001", "--stage2-epochs", "1"];

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Replays the trajectory by hand and checks every line's bookkeeping against it.
fn check_trajectory(lines: &[Value], ratio: f64, with_truth: bool) {
    let (mut fastest, mut total, mut best): (Option<f64>, f64, Option<(u64, f64)>) = (None, 0.0, None);
    for (k, l) in lines.iter().enumerate() {
        let index = l["index"].as_u64().unwrap();
        assert_eq!(num(&l["cutoff_s"]), fastest.map(|f| ratio * f), "line {k}: cut-off budget");
        total += l["time_s"].as_f64().unwrap();
        assert!((l["search_time_s"].as_f64().unwrap() - total).abs() < 1e-9, "line {k}: search time");
        assert_eq!(l["evaluated"], k + 1);
        if l["reached_threshold"] == true {
            let t = l["stage1_s"].as_f64().unwrap();
            fastest = Some(fastest.map_or(t, |f: f64| f.min(t)));
        }
        if let Some(s) = num(&l["search_score"]) {
            if best.is_none_or(|(bi, bs)| s > bs || (s == bs && index < bi)) {
                best = Some((index, s));
            }
        }
        assert_eq!(l["best_index"].as_u64(), best.map(|b| b.0), "line {k}: best");
        assert_eq!(num(&l["best_score"]), best.map(|b| b.1), "line {k}: best score");
        if with_truth {
            assert_eq!(num(&l["ground_truth"]), Some(truth(index)), "line {k}");
            assert_eq!(num(&l["best_ground_truth"]), best.map(|b| truth(b.0)), "line {k}");
        } else {
            assert!(l["ground_truth"].is_null() && l["best_ground_truth"].is_null());
        }
    }
}

#[test]
fn fear_search_writes_a_consistent_resumable_trajectory() {
    let dir = test_dir("fear_search_writes_a_consistent_resumable_trajectory");
    let gt = write_ground_truth(&dir);
    let mut args: Vec<&str> = QUICK_FEAR.to_vec();
    args.extend(["--archs-budget", "3", "--cutoff-ratio", "4", "--ground-truth", gt.to_str().unwrap(), "--ground-truth-column", "cifar10"]);
    let out = search(&dir, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("search: best"), "{}", stderr(&out));
    let path = dir.join("s.jsonl");
    let lines = read_lines(&path);
    // The architectures of `sample:3` with the same seed, in the order drawn.
    let expected: Vec<u64> = fear::space::parse_arch_list("sample:3", 5).unwrap().iter().map(|a| a.index() as u64).collect();
    assert_eq!(lines.iter().map(|l| l["index"].as_u64().unwrap()).collect::<Vec<_>>(), expected);
    for l in &lines {
        assert_eq!((l["method"].as_str(), l["archs_budget"].as_u64(), l["cutoff_ratio"].as_f64()), (Some("fear"), Some(3), Some(4.0)));
        if l["status"] == "ok" {
            // Search ranks by the best stage-2 epoch (one epoch here: the last).
            assert_eq!(l["search_score"], l["score"]);
            assert_eq!(l["reached_threshold"], true);
        }
    }
    check_trajectory(&lines, 4.0, true);

    // A rerun does nothing; a run killed mid-line resumes after the complete lines.
    let before = std::fs::read_to_string(&path).unwrap();
    let again = search(&dir, &args);
    assert!(again.status.success() && stderr(&again).contains("all 3 architectures already done; nothing to run"), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    let first_two: String = before.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, format!("{first_two}{{\"index\":12,\"arch\":\"|none~0")).unwrap();
    let resumed = search(&dir, &args);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("resuming after 2 architectures"), "{}", stderr(&resumed));
    let lines = read_lines(&path);
    assert_eq!(lines.len(), 3);
    assert!(std::fs::read_to_string(&path).unwrap().starts_with(&first_two));
    check_trajectory(&lines, 4.0, true);

    // Another cut-off ratio is another search: refused.
    let mut other = args.clone();
    let ratio_at = other.iter().position(|a| *a == "4").unwrap();
    other[ratio_at] = "2";
    let refused = search(&dir, &other);
    assert!(!refused.status.success() && stderr(&refused).contains("cutoff_ratio"), "{}", stderr(&refused));

    // The trajectory is a FEAR results file too.
    let eval = fear(&dir, &["evaluate", "s.jsonl", "--ground-truth", gt.to_str().unwrap(), "--dataset", "cifar10", "--json"].map(String::from));
    assert!(eval.status.success(), "{}", stderr(&eval));
    let v: Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!((v["methods"][0]["name"].as_str(), v["methods"][0]["n"].as_u64()), (Some("fear"), Some(3)));
}

#[test]
fn shortreg_search_ranks_by_its_score() {
    let dir = test_dir("shortreg_search_ranks_by_its_score");
    let out = search(&dir, &["--method", "shortreg", "--epochs", "1", "--batch", "8", "--archs-budget", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = read_lines(&dir.join("s.jsonl"));
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!((l["method"].as_str(), l["epochs"].as_u64(), l["batch"].as_u64()), (Some("shortreg"), Some(1), Some(8)));
        assert_eq!(l["search_score"], l["score"]);
        assert!(l["cutoff_s"].is_null() && l["cutoff_ratio"].is_null());
    }
    check_trajectory(&lines, 4.0, false);
}

#[test]
fn search_command_line_errors() {
    let dir = test_dir("search_command_line_errors");
    let usage = |args: &[&str], needle: &str| {
        let out = search(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    };
    usage(&["--method", "fear", "--archs", "1,2"], "--archs-budget");
    usage(&["--method", "fear", "--shard", "0/2"], "--archs-budget");
    usage(&["--method", "fear", "--archs-budget", "0"], "--archs-budget 0");
    usage(&["--method", "fear", "--cutoff-ratio", "0.5"], "--cutoff-ratio");
    usage(&["--method", "shortreg", "--batch", "8"], "--epochs");
    usage(&["--method", "fear", "--epochs", "3"], "shortreg");
    usage(&["--method", "fear", "--ground-truth", "gt.csv"], "--ground-truth-column");
    usage(&["--method", "fear", "--ground-truth", "missing.csv", "--ground-truth-column", "cifar10"], "no such file");
    usage(&["--method", "random"], "random");
}
