//! `fear rank`, `fear shortreg` and `fear merge` end to end, on tiny networks (C=4, N=1) and a tiny
//! Synthetic CIFAR-10 (4 images per class), one thread each: results lines, resuming, sharding,
//! merging, the threshold stop and the disconnected-cell shortcut.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

mod common;
use common::{fear_env, test_dir, tiny_run_args};

fn fear(dir: &Path, args: &[&str]) -> Output {
    fear_env(dir, args, &[])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed ({:?}): {}", out.status, stderr(out));
}

/// `fear rank` on the tiny set; `extra` adds or overrides options.
fn rank(dir: &Path, archs: &str, out: &str, extra: &[&str]) -> Output {
    rank_env(dir, archs, out, extra, &[])
}

fn rank_env(dir: &Path, archs: &str, out: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args: Vec<String> = vec!["rank".into(), "--archs".into(), archs.into(), "--out".into(), out.into(), "--seed".into(), "0".into()];
    args.extend(tiny_run_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    fear_env(dir, &args.iter().map(String::as_str).collect::<Vec<_>>(), env)
}

/// A rank that finishes both stages quickly: stage 1 stops at the first epoch with any accuracy
/// above 0 (the lowest useful threshold), one stage-2 epoch.
const QUICK: [&str; 4] = ["--threshold", "0.001", "--stage2-epochs", "1"];

fn read_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.is_empty() || text.ends_with('\n'), "{}: last line not terminated", path.display());
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display()))).collect()
}

fn indices(lines: &[Value]) -> Vec<u64> {
    let mut v: Vec<u64> = lines.iter().map(|l| l["index"].as_u64().unwrap()).collect();
    v.sort();
    v
}

fn by_index(lines: &[Value], index: u64) -> &Value {
    lines.iter().find(|l| l["index"] == index).unwrap_or_else(|| panic!("index {index} missing"))
}

const RANK_FIELDS: [&str; 11] = ["index", "arch", "score", "reached_threshold", "stage1_epochs", "stage1_s", "stage2_s", "time_s", "device", "seed", "status"];

#[test]
fn rank_writes_json_lines_and_a_rerun_does_no_new_work() {
    let dir = test_dir("rank_writes_json_lines_and_a_rerun_does_no_new_work");
    let out = rank(&dir, "1,123", "r.jsonl", &QUICK);
    assert_ok(&out, "rank");
    let path = dir.join("r.jsonl");
    let lines = read_lines(&path);
    assert_eq!(indices(&lines), [1, 123]);
    for l in &lines {
        for key in RANK_FIELDS {
            assert!(l.get(key).is_some(), "field {key} missing from {l}");
        }
        assert_eq!(l["status"], "ok", "{l}");
        let score = l["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert_eq!(l["reached_threshold"], true);
        assert_eq!(l["seed"], 0);
        assert!(l["device"].as_str().unwrap().starts_with("cpu"));
        let time = l["time_s"].as_f64().unwrap();
        assert!((time - l["stage1_s"].as_f64().unwrap() - l["stage2_s"].as_f64().unwrap()).abs() < 1e-9);
        assert_eq!(l["stage2_acc"].as_array().unwrap().len(), 1);
        // The score is the last stage-2 epoch's accuracy.
        assert_eq!(l["stage2_acc"][0], l["score"]);
    }
    assert_eq!(by_index(&lines, 1)["arch"], "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|");

    let before = std::fs::read(&path).unwrap();
    let again = rank(&dir, "1,123", "r.jsonl", &QUICK);
    assert_ok(&again, "rank rerun");
    assert!(stderr(&again).contains("all 2 architectures already done; nothing to run"), "{}", stderr(&again));
    assert_eq!(std::fs::read(&path).unwrap(), before, "a rerun changed the results file");
    // The ranked table lists both.
    let table = String::from_utf8_lossy(&again.stdout);
    assert!(table.contains("rank") && table.contains("123"), "{table}");
}

#[test]
fn rank_resumes_after_a_kill_dropping_the_torn_line() {
    let dir = test_dir("rank_resumes_after_a_kill_dropping_the_torn_line");
    assert_ok(&rank(&dir, "1", "r.jsonl", &QUICK), "rank of one arch");
    let path = dir.join("r.jsonl");
    let first = std::fs::read_to_string(&path).unwrap();
    assert_eq!(first.lines().count(), 1);
    // A run killed while writing arch 123's line.
    std::fs::write(&path, format!("{first}{{\"index\":123,\"arch\":\"|avg_pool_3x3~0|+|avg_")).unwrap();

    let out = rank(&dir, "1,123,15624", "r.jsonl", &QUICK);
    assert_ok(&out, "resumed rank");
    let err = stderr(&out);
    assert!(err.contains("torn"), "no warning about the torn line: {err}");
    assert!(err.contains("1 of 3 architectures already done"), "{err}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(&first), "the finished line was rewritten");
    let lines = read_lines(&path);
    assert_eq!(lines.len(), 3, "each arch exactly once: {text}");
    assert_eq!(indices(&lines), [1, 123, 15624]);
    assert!(lines.iter().all(|l| l["status"] == "ok"));
}

#[test]
fn shards_merged_equal_one_unsharded_run() {
    let dir = test_dir("shards_merged_equal_one_unsharded_run");
    let archs = "1,123,15624";
    assert_ok(&rank(&dir, archs, "shard-0.jsonl", &[&QUICK[..], &["--shard", "0/2"]].concat()), "shard 0/2");
    assert_ok(&rank(&dir, archs, "shard-1.jsonl", &[&QUICK[..], &["--shard", "1/2"]].concat()), "shard 1/2");
    assert_eq!(indices(&read_lines(&dir.join("shard-0.jsonl"))), [1, 15624]);
    assert_eq!(indices(&read_lines(&dir.join("shard-1.jsonl"))), [123]);
    let merged = fear(&dir, &["merge", "all.jsonl", "shard-0.jsonl", "shard-1.jsonl"]);
    assert_ok(&merged, "merge");
    assert!(String::from_utf8_lossy(&merged.stdout).contains("merged 3 architectures"), "{}", String::from_utf8_lossy(&merged.stdout));
    assert_ok(&rank(&dir, archs, "whole.jsonl", &QUICK), "unsharded rank");

    let merged = read_lines(&dir.join("all.jsonl"));
    let whole = read_lines(&dir.join("whole.jsonl"));
    // Sorted by index.
    assert_eq!(merged.iter().map(|l| l["index"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 123, 15624]);
    assert_eq!(indices(&merged), indices(&whole));
    for m in &merged {
        let w = by_index(&whole, m["index"].as_u64().unwrap());
        // Bit-identical on the CPU: the same seed gives the same training, shard or not.
        let (ms, ws) = (m["score"].as_f64().unwrap(), w["score"].as_f64().unwrap());
        assert_eq!(ms.to_bits(), ws.to_bits(), "index {}: score {ms} sharded, {ws} unsharded", m["index"]);
        assert_eq!(m["stage1_acc"], w["stage1_acc"]);
        assert_eq!(m["stage2_acc"], w["stage2_acc"]);
    }
}

#[test]
fn merge_reports_duplicates_and_refuses_conflicts() {
    let dir = test_dir("merge_reports_duplicates_and_refuses_conflicts");
    let line = |i: u64, score: f64| format!("{{\"index\":{i},\"arch\":\"a{i}\",\"status\":\"ok\",\"score\":{score}}}\n");
    std::fs::write(dir.join("a.jsonl"), format!("{}{}", line(5, 0.5), line(2, 0.25))).unwrap();
    // b repeats index 2 identically, adds 7, and ends in a torn line.
    std::fs::write(dir.join("b.jsonl"), format!("{}{}{{\"index\":9,\"sco", line(2, 0.25), line(7, 0.75))).unwrap();
    let out = fear(&dir, &["merge", "m.jsonl", "a.jsonl", "b.jsonl"]);
    assert_ok(&out, "merge");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("merged 3 architectures") && summary.contains("1 duplicates") && summary.contains("0 conflicts"), "{summary}");
    assert!(stderr(&out).contains("torn"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dir.join("m.jsonl")).unwrap(), format!("{}{}{}", line(2, 0.25), line(5, 0.5), line(7, 0.75)));
    // The inputs are read, never changed (the torn line stays for the run that owns the file).
    assert!(std::fs::read_to_string(dir.join("b.jsonl")).unwrap().ends_with("\"sco"));

    // c disagrees about index 5.
    std::fs::write(dir.join("c.jsonl"), line(5, 0.125)).unwrap();
    let out = fear(&dir, &["merge", "n.jsonl", "a.jsonl", "c.jsonl"]);
    assert_eq!(out.status.code(), Some(1), "a conflict must fail: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("index 5") && err.contains("a.jsonl") && err.contains("c.jsonl"), "{err}");
    assert!(!dir.join("n.jsonl").exists(), "OUT written despite a conflict");

    let out = fear(&dir, &["merge", "--force", "n.jsonl", "a.jsonl", "c.jsonl"]);
    assert_ok(&out, "merge --force");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 conflicts"));
    assert_eq!(std::fs::read_to_string(dir.join("n.jsonl")).unwrap(), format!("{}{}", line(2, 0.25), line(5, 0.5)), "the first must win");
}

#[test]
fn threshold_stops_stage1_or_caps() {
    let dir = test_dir("threshold_stops_stage1_or_caps");
    assert_ok(&rank(&dir, "1", "low.jsonl", &["--threshold", "0.001", "--stage2-epochs", "1", "--max-stage1-epochs", "5"]), "threshold 0.001");
    let l = &read_lines(&dir.join("low.jsonl"))[0];
    // Stage 1 stops at the first epoch whose accuracy reaches the threshold.
    let accs: Vec<f64> = l["stage1_acc"].as_array().unwrap().iter().map(|a| a.as_f64().unwrap()).collect();
    let first = accs.iter().position(|&a| a >= 0.001).expect("reached");
    assert_eq!(accs.len(), first + 1, "{l}");
    assert_eq!(l["stage1_epochs"], accs.len(), "{l}");
    assert_eq!(l["reached_threshold"], true);
    assert_eq!(l["status"], "ok");

    assert_ok(&rank(&dir, "1", "high.jsonl", &["--threshold", "1", "--max-stage1-epochs", "1"]), "threshold 1");
    let l = &read_lines(&dir.join("high.jsonl"))[0];
    assert_eq!(l["status"], "capped", "{l}");
    assert!(l["score"].is_null(), "{l}");
    assert_eq!(l["stage1_epochs"], 1);
    assert_eq!(l["reached_threshold"], false);
    assert_eq!(l["stage2_acc"].as_array().unwrap().len(), 0);
}

#[test]
fn disconnected_cell_is_capped_without_training() {
    let dir = test_dir("disconnected_cell_is_capped_without_training");
    let arch = |i: &str| -> Value {
        let out = fear(&dir, &["arch", i, "--json"]);
        assert_ok(&out, "arch");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // 9 looks starved (none on three edges) but node 3 still sees the input through skip_connect;
    // 10 cuts node 3 off entirely.
    assert_eq!(arch("9")["arch"], "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|");
    assert_eq!(arch("9")["connected"], true);
    assert_eq!(arch("10")["arch"], "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|");
    assert_eq!(arch("10")["connected"], false);

    // The default Synthetic CIFAR-10 threshold (0.15) is above the largest class's share (0.1).
    assert_ok(&rank(&dir, "9,10", "r.jsonl", &["--max-stage1-epochs", "1", "--stage2-epochs", "1"]), "rank 9,10");
    let lines = read_lines(&dir.join("r.jsonl"));
    assert_eq!(by_index(&lines, 9)["stage1_epochs"], 1, "the connected cell trains");
    let l = by_index(&lines, 10);
    assert_eq!(l["status"], "capped", "{l}");
    assert!(l["score"].is_null());
    assert_eq!(l["stage1_epochs"], 0, "trained a disconnected cell: {l}");
    assert_eq!(l["time_s"], 0.0);
    assert!(l["reason"].as_str().unwrap_or("").contains("disconnected"), "{l}");
}

#[test]
fn shortreg_trains_e_epochs_and_scores_the_best() {
    let dir = test_dir("shortreg_trains_e_epochs_and_scores_the_best");
    let mut args: Vec<String> =
        ["shortreg", "--epochs", "2", "--batch", "8", "--archs", "1,15624", "--out", "s.jsonl", "--seed", "3"].iter().map(|s| s.to_string()).collect();
    args.extend(tiny_run_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = fear(&dir, &args);
    assert_ok(&out, "shortreg");
    let path = dir.join("s.jsonl");
    let lines = read_lines(&path);
    assert_eq!(indices(&lines), [1, 15624]);
    for l in &lines {
        for key in ["index", "arch", "status", "score", "epochs", "batch", "train_acc", "time_s", "dataset", "device", "seed"] {
            assert!(l.get(key).is_some(), "field {key} missing from {l}");
        }
        assert_eq!(l["status"], "ok", "{l}");
        assert_eq!(l["epochs"], 2);
        assert_eq!(l["batch"], 8);
        assert_eq!(l["seed"], 3);
        assert_eq!(l["dataset"], "synthetic-cifar10");
        let accs: Vec<f64> = l["train_acc"].as_array().unwrap().iter().map(|a| a.as_f64().unwrap()).collect();
        assert_eq!(accs.len(), 2, "E epochs run: {l}");
        let best = accs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(l["score"].as_f64().unwrap(), best, "score is the best epoch: {l}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("15624"));

    // Resumable like rank; another configuration is refused rather than mixed in.
    let before = std::fs::read(&path).unwrap();
    let again = fear(&dir, &args);
    assert_ok(&again, "shortreg rerun");
    assert!(stderr(&again).contains("all 2 architectures already done; nothing to run"), "{}", stderr(&again));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let other: Vec<&str> = args.iter().map(|a| if *a == "2" { "3" } else { a }).collect();
    let refused = fear(&dir, &other);
    assert!(!refused.status.success(), "a different --epochs appended to the same file");
    assert!(stderr(&refused).contains("epochs"), "{}", stderr(&refused));
}

#[test]
fn a_diverging_run_is_recorded_and_the_run_goes_on() {
    let dir = test_dir("a_diverging_run_is_recorded_and_the_run_goes_on");
    // A learning rate of 1e8 without clipping blows the loss up in the first epoch.
    assert_ok(&rank(&dir, "1,15624", "div.jsonl", &["--lr", "1e8", "--grad-clip", "0", "--max-stage1-epochs", "3"]), "diverging rank");
    let lines = read_lines(&dir.join("div.jsonl"));
    assert_eq!(indices(&lines), [1, 15624], "every architecture still gets its line");
    for l in &lines {
        assert_eq!(l["status"], "diverged", "{l}");
        assert!(l["score"].is_null(), "{l}");
        assert_eq!(l["stage2_acc"].as_array().unwrap().len(), 0);
    }
}

/// What every `failed` line holds: the reason, a null score, and the run's configuration.
fn assert_failed_line(l: &Value, config_keys: &[&str]) {
    assert_eq!(l["status"], "failed", "{l}");
    assert!(l["score"].is_null(), "{l}");
    assert!(l["reason"].as_str().unwrap_or("").contains("injected failure"), "{l}");
    for key in config_keys {
        assert!(l.get(key).is_some(), "failed line lacks {key}: {l}");
    }
}

#[test]
fn a_failing_architecture_is_recorded_and_the_run_goes_on() {
    let dir = test_dir("a_failing_architecture_is_recorded_and_the_run_goes_on");
    let inject = [("FEAR_INJECT_FAILURE", "123")];
    let out = rank_env(&dir, "1,123,15624", "r.jsonl", &QUICK, &inject);
    assert_ok(&out, "rank with arch 123 failing");
    let lines = read_lines(&dir.join("r.jsonl"));
    assert_eq!(indices(&lines), [1, 123, 15624], "every architecture gets its line");
    assert_failed_line(by_index(&lines, 123), &["dataset", "seed", "threshold", "channels", "cells_per_stage", "arch", "device"]);
    assert_eq!(by_index(&lines, 1)["status"], "ok");
    assert_eq!(by_index(&lines, 15624)["status"], "ok");
    assert!(stderr(&out).contains("failed: injected failure"), "{}", stderr(&out));
    // The ranking puts it last and counts it.
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("1 of 3 architectures not ok (ranked last): 1 failed"), "{table}");
    let last_row = table.lines().rfind(|l| l.trim_start().starts_with(char::is_numeric)).unwrap();
    assert!(last_row.contains("failed"), "{table}");

    // A failed line is a result like any other: a rerun accepts the file and redoes nothing.
    let before = std::fs::read(dir.join("r.jsonl")).unwrap();
    let again = rank(&dir, "1,123,15624", "r.jsonl", &QUICK);
    assert_ok(&again, "rerun");
    assert!(stderr(&again).contains("all 3 architectures already done; nothing to run"), "{}", stderr(&again));
    assert_eq!(std::fs::read(dir.join("r.jsonl")).unwrap(), before);
}

#[test]
fn shortreg_records_a_failing_architecture_and_goes_on() {
    let dir = test_dir("shortreg_records_a_failing_architecture_and_goes_on");
    let mut args: Vec<String> =
        ["shortreg", "--epochs", "1", "--batch", "8", "--archs", "1,15624", "--out", "s.jsonl", "--seed", "0"].iter().map(|s| s.to_string()).collect();
    args.extend(tiny_run_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = fear_env(&dir, &args, &[("FEAR_INJECT_FAILURE", "1")]);
    assert_ok(&out, "shortreg with arch 1 failing");
    let lines = read_lines(&dir.join("s.jsonl"));
    assert_eq!(indices(&lines), [1, 15624]);
    assert_failed_line(by_index(&lines, 1), &["dataset", "seed", "epochs", "batch", "lr", "channels", "cells_per_stage"]);
    assert_eq!(by_index(&lines, 15624)["status"], "ok");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 of 2 architectures not ok"));
}

#[test]
fn five_failures_in_a_row_stop_the_run() {
    let dir = test_dir("five_failures_in_a_row_stop_the_run");
    // Every architecture fails, as when the device is lost: the run stops after five lines
    // instead of writing a failed line for every architecture in the list.
    let out = rank_env(&dir, "2,3,4,5,6,7,8", "r.jsonl", &QUICK, &[("FEAR_INJECT_FAILURE", "2,3,4,5,6,7,8")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("the last 5 architectures all failed"), "{}", stderr(&out));
    let lines = read_lines(&dir.join("r.jsonl"));
    assert_eq!(indices(&lines), [2, 3, 4, 5, 6]);
    // A success in between resets the count.
    let out = rank_env(&dir, "11,12,13,14,1,15,16,17", "s.jsonl", &QUICK, &[("FEAR_INJECT_FAILURE", "11,12,13,14,15,16,17")]);
    assert_ok(&out, "four failures, a success, three failures");
    assert_eq!(read_lines(&dir.join("s.jsonl")).len(), 8);
}

#[test]
fn off_a_terminal_progress_is_plain_lines() {
    let dir = test_dir("off_a_terminal_progress_is_plain_lines");
    // stderr into a file, as a Slurm job or `2> log` has it; every in-flight message shown.
    let log = dir.join("log.txt");
    let mut args: Vec<String> = ["rank", "--archs", "1,123", "--out", "r.jsonl", "--seed", "0"].map(String::from).to_vec();
    args.extend(tiny_run_args());
    args.extend(QUICK.map(String::from));
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_fear"))
        .args(&args)
        .env("FEAR_PROGRESS_SECS", "0")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env_remove("FEAR_INJECT_FAILURE")
        .current_dir(&dir)
        .stderr(std::fs::File::create(&log).unwrap())
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(run.status.success(), "{text}");
    // One line per finished architecture: index, status, score, time, count and ETA.
    let finished: Vec<&str> = text.lines().filter(|l| l.starts_with("arch ")).collect();
    assert_eq!(finished.len(), 2, "{text}");
    for (k, line) in finished.iter().enumerate() {
        for part in [" ok ", "score 0.", "time ", &format!("[{}/2, ", k + 1), " elapsed, ETA "] {
            assert!(line.contains(part), "{line:?} lacks {part:?}");
        }
    }
    // In-flight lines: stage 1 names its threshold and that only the epoch's end counts.
    assert!(text.lines().any(|l| l.trim_start().starts_with("arch 1 stage 1 epoch 1 step") && l.contains("(threshold 0.001, checked at epoch end)")), "{text}");
    assert!(text.lines().any(|l| l.trim_start().starts_with("arch 123 stage 2 epoch 1/1 step")), "{text}");
    // The ranking says what the score is.
    let table = String::from_utf8_lossy(&run.stdout);
    assert!(table.contains("score: FEAR, the training accuracy of the last stage-2 epoch (higher is better); stage-1 threshold 0.001"), "{table}");

    // The default interval (60 s) keeps a seconds-long run to at most one in-flight line.
    let quiet = rank(&dir, "1", "q.jsonl", &QUICK);
    assert_ok(&quiet, "rank");
    assert!(stderr(&quiet).lines().filter(|l| l.contains(" step ")).count() <= 1, "{}", stderr(&quiet));

    // shortreg and zero-cost report the same way.
    let mut sr: Vec<String> = ["shortreg", "--epochs", "1", "--batch", "8", "--archs", "1,123", "--out", "s.jsonl"].map(String::from).to_vec();
    sr.extend(tiny_run_args());
    let out = fear_env(&dir, &sr.iter().map(String::as_str).collect::<Vec<_>>(), &[("FEAR_PROGRESS_SECS", "0")]);
    assert_ok(&out, "shortreg");
    let lines: Vec<String> = stderr(&out).lines().filter(|l| l.starts_with("arch ")).map(String::from).collect();
    assert!(lines.len() == 2 && lines[1].contains("[2/2, ") && lines[1].contains("time "), "{}", stderr(&out));
    let out = fear(&dir, &["zero-cost", "--proxy", "params,synflow", "--archs", "1,123,15624", "--out", "z.jsonl", "--threads", "1"]);
    assert_ok(&out, "zero-cost");
    let lines: Vec<String> = stderr(&out).lines().filter(|l| l.starts_with("arch ")).map(String::from).collect();
    assert!(lines.len() == 3 && lines[2].contains("[3/3, ") && lines[2].contains("params "), "{}", stderr(&out));
    // ... and zero-cost prints its scores as a table.
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("ranked by synflow") && table.lines().filter(|l| l.contains("|")).count() == 3, "{table}");
}

#[test]
fn the_demo_says_its_scores_say_little() {
    let dir = test_dir("the_demo_says_its_scores_say_little");
    let cache = common::tmp_root().join("cache");
    // The demo's data and network, but one architecture and one quick epoch of each stage.
    let out = fear(
        &dir,
        &[
            "rank",
            "--archs",
            "1",
            "--synthetic-size",
            "4",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--device",
            "cpu",
            "--threads",
            "1",
            "--threshold",
            "0.001",
            "--stage2-epochs",
            "1",
        ],
    );
    assert_ok(&out, "demo");
    assert!(stderr(&out).contains("this was the built-in demo") && stderr(&out).contains("say little about the architectures"), "{}", stderr(&out));
}
