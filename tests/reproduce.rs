//! `fear reproduce` end to end on a tiny job (seconds): the whole job writes table.md, the
//! figures and the joined results; two shards (one chosen by Slurm's array variables) and
//! `--report` give the same results; bad command lines are refused before any work.

use std::path::Path;

use serde_json::Value;

mod common;

/// The tiny job: 4 architectures (10 a disconnected cell), C=4 N=2, 4 synthetic images per
/// class, two shortreg variants, three proxies.
fn tiny(out: &str, extra: &[&str]) -> Vec<String> {
    let cache = common::tmp_root().join("cache");
    let mut args: Vec<String> = [
        "reproduce",
        "--scale",
        "demo",
        "--out",
        out,
        "--archs",
        "1,123,10,15624",
        "--synthetic-size",
        "4",
        "--channels",
        "4",
        "--shortreg-grid",
        "1:8,2:8",
        "--proxies",
        "synflow,snip,params",
        "--proxy-batch",
        "16",
        "--threshold",
        "0.001",
        "--max-stage1-epochs",
        "2",
        "--stage2-epochs",
        "1",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--cache-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(cache.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn ok(dir: &Path, args: &[String], env: &[(&str, &str)]) -> String {
    let out = common::fear_env(dir, args, env);
    assert!(out.status.success(), "fear {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A joined results file's lines by index, timings (`*_s`) and the device left out.
fn lines(path: &Path) -> Vec<(u64, Value)> {
    let mut v: Vec<(u64, Value)> = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().retain(|k, _| !k.ends_with("_s"));
            (v["index"].as_u64().unwrap(), v)
        })
        .collect();
    v.sort_by_key(|l| l.0);
    v
}

const UNITS: [&str; 4] = ["fear", "zero-cost", "shortreg-e1-b8", "shortreg-e2-b8"];

#[test]
fn the_whole_job_writes_table_1_and_the_figures() {
    let dir = common::test_dir("reproduce/whole");
    ok(&dir, &tiny("job", &[]), &[]);
    let table = std::fs::read_to_string(dir.join("job/table.md")).unwrap();
    for want in ["# Table 1 on synthetic-cifar10", "nearest shortreg spe", "| 100 | 4 |", "## Zero-cost proxies", "| synflow | snip | params |", "Demo scale"] {
        assert!(table.contains(want), "table.md lacks {want:?}:\n{table}");
    }
    // Arch 10 is disconnected: the proxies drop it (the paper's protocol) and say so.
    assert!(table.contains("| synflow | 3 | 1 disconnected |"), "{table}");
    for unit in UNITS {
        assert_eq!(lines(&dir.join(format!("job/results/{unit}.jsonl"))).len(), 4, "{unit}");
    }
    for figure in ["bins-top100.svg", "time-to-threshold-fear.svg", "scores-shortreg-e2-b8.svg"] {
        assert!(dir.join("job/figures").join(figure).is_file(), "{figure}");
    }
    let eval: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("job/evaluation.json")).unwrap()).unwrap();
    assert_eq!(eval["ground_truth"], "cifar10");
    assert_eq!(eval["methods"].as_array().unwrap().len(), 6, "fear, three proxies, two shortreg variants");
}

#[test]
fn shards_and_report_join_to_the_whole_job() {
    let dir = common::test_dir("reproduce/shards");
    ok(&dir, &tiny("whole", &[]), &[]);
    let first = ok(&dir, &tiny("sharded", &["--shard", "0/2"]), &[]);
    assert!(first.contains("fear reproduce --report"), "a shard says how to join: {first}");
    assert!(!dir.join("sharded/table.md").exists(), "a shard alone writes no report");
    let early = ok(&dir, &["reproduce".into(), "--report".into(), "--out".into(), "sharded".into()], &[]);
    assert!(early.contains("table.md"), "{early}");
    assert!(std::fs::read_to_string(dir.join("sharded/table.md")).unwrap().contains("**Incomplete**"));
    // The second task finds its shard in Slurm's array variables.
    ok(&dir, &tiny("sharded", &[]), &[("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "2")]);
    ok(&dir, &["reproduce".into(), "--report".into(), "--out".into(), "sharded".into()], &[]);
    for unit in UNITS {
        let (a, b) = (lines(&dir.join(format!("whole/results/{unit}.jsonl"))), lines(&dir.join(format!("sharded/results/{unit}.jsonl"))));
        assert_eq!(a, b, "{unit}: two shards joined differ from the whole job");
        // Each shard took some of every unit's architectures.
        for k in 0..2 {
            let part = lines(&dir.join(format!("sharded/shards/{k}-of-2/{unit}.jsonl")));
            assert!(!part.is_empty() && part.len() < 4, "{unit}: shard {k} holds {}", part.len());
        }
    }
    assert!(!std::fs::read_to_string(dir.join("sharded/table.md")).unwrap().contains("Incomplete"));
}

#[test]
fn bad_command_lines_are_refused_before_any_work() {
    let dir = common::test_dir("reproduce/usage");
    let refused = |args: &[&str], why: &str| {
        let out = common::fear_env(&dir, args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    };
    refused(&["reproduce", "--out", "x"], "--dataset is required");
    refused(&["reproduce", "--scale", "demo", "--out", "x", "--cells-per-stage", "1"], "at least 2");
    refused(&["reproduce", "--scale", "demo", "--out", "x", "--shortreg-grid", "3"], "EPOCHS:BATCH");
    refused(&["reproduce", "--scale", "demo", "--out", "x", "--shard", "2/2"], "K/N");
    assert!(!dir.join("x").exists(), "a refused command wrote nothing");
    let out = common::fear_env(&dir, &["reproduce", "--report", "--out", "nothing-here"], &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("reproduce.json"));
}
