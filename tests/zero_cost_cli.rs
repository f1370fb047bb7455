//! `fear zero-cost` end to end: JSON Lines fields, resuming, the configuration check, a
//! disconnected cell, usage errors, and every proxy on a small network and a small Synthetic CIFAR-10.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fear(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fear")).args(args).output().expect("running fear")
}

fn tmp(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_file(&p);
    p
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Index 9 is connected; this cell is not (its output node only sees `none` edges).
const DISCONNECTED: &str = "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|";

#[test]
fn synflow_params_and_flops_without_data_resume_and_refuse_mixing() {
    let out = tmp("zc-synflow.jsonl");
    let o = out.to_str().unwrap();
    let archs = format!("1,{DISCONNECTED}");
    let run = fear(&["zero-cost", "--proxy", "synflow,params,flops", "--archs", &archs, "--out", o]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let v = lines(&out);
    assert_eq!(v.len(), 2);
    let by_index = |i: u64| v.iter().find(|l| l["index"] == i).unwrap().clone();
    let a1 = by_index(1);
    assert_eq!(a1["status"], "ok");
    assert_eq!(a1["params"], 802426.0); // SPEC 1: arch 1 has 802,426 parameters
    assert!(a1["synflow"].as_f64().unwrap() > 1e30, "{a1}");
    for key in ["synflow_time_s", "params_time_s", "flops_time_s"] {
        assert!(a1[key].as_f64().unwrap() >= 0.0, "{key}");
    }
    assert_eq!(a1["dataset"], serde_json::Value::Null);
    let other = v.iter().find(|l| l["index"] != 1).unwrap();
    assert_eq!(other["status"], "disconnected");
    assert_eq!(other["synflow"], 0.0);
    // Rerunning resumes: nothing new is appended.
    let again = fear(&["zero-cost", "--proxy", "synflow,params,flops", "--archs", &archs, "--out", o]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("all 2 architectures already done; nothing to run"));
    assert_eq!(lines(&out).len(), 2);
    // Another proxy set into the same file is refused.
    let mixed = fear(&["zero-cost", "--proxy", "synflow", "--archs", "6111", "--out", o]);
    assert!(!mixed.status.success());
    assert!(String::from_utf8_lossy(&mixed.stderr).contains("proxies"));
}

#[test]
fn bad_proxy_is_a_usage_error() {
    let run = fear(&["zero-cost", "--proxy", "synflow,zen", "--out", tmp("zc-bad.jsonl").to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("unknown proxy \"zen\""));
}

#[test]
fn every_proxy_on_a_small_network_and_synthetic_data() {
    let out = tmp("zc-all.jsonl");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zc-cache");
    let run = fear(&[
        "zero-cost",
        "--proxy",
        "all",
        "--archs",
        "1,9",
        "--channels",
        "2",
        "--cells-per-stage",
        "1",
        "--batch",
        "16",
        "--dataset",
        "synthetic-cifar10",
        "--synthetic-size",
        "4",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let v = lines(&out);
    assert_eq!(v.len(), 2);
    for l in &v {
        for p in ["synflow", "synflow_bn", "snip", "grasp", "fisher", "grad_norm", "jacob_cov", "naswot", "params", "flops"] {
            assert!(l[p].as_f64().is_some_and(f64::is_finite), "{p}: {l}");
            assert!(l[format!("{p}_time_s")].as_f64().is_some(), "{p}_time_s: {l}");
        }
        assert_eq!(l["batch"], 16);
        assert_eq!(l["dataset"], "synthetic-cifar10");
    }
}

/// An architecture that fails (here on purpose, FEAR_INJECT_FAILURE) gets a `failed` line with its
/// reason and the others are still scored, on both the data-free and the data path.
#[test]
fn a_failing_architecture_is_recorded_and_the_run_goes_on() {
    for (name, proxies) in [("zc-failed-nodata.jsonl", "synflow,params"), ("zc-failed-data.jsonl", "snip,params")] {
        let out = tmp(name);
        let run = Command::new(env!("CARGO_BIN_EXE_fear"))
            .args(["zero-cost", "--proxy", proxies, "--archs", "1,123,15624", "--out", out.to_str().unwrap()])
            .args(["--channels", "2", "--cells-per-stage", "1", "--batch", "4", "--synthetic-size", "2"])
            .arg("--cache-dir")
            .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("zc-cache"))
            .env("FEAR_INJECT_FAILURE", "123")
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let v = lines(&out);
        assert_eq!(v.len(), 3, "{v:?}");
        let failed = v.iter().find(|l| l["index"] == 123).unwrap();
        assert_eq!(failed["status"], "failed", "{failed}");
        assert!(failed["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(v.iter().filter(|l| l["index"] != 123).all(|l| l["status"] == "ok"), "{v:?}");
    }
}
