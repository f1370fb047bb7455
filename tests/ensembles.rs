//! End to end on tiny runs: `fear rank` and `fear zero-cost` (AZ-NAS, MeCo, ZiCo, SWAP) on the
//! same architectures, then `fear evaluate` making `az_nas`, `fear-epochs` and rank ensembles
//! of them.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

mod common;
use common::{fear_env, test_dir, tiny_run_args};

const ARCHS: &str = "1,123,6111,9930";

fn fear(dir: &Path, args: &[&str]) -> Output {
    fear_env(dir, args, &[])
}

fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn with_tiny(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).chain(tiny_run_args()).collect()
}

fn run(dir: &Path, args: Vec<String>) -> Output {
    fear(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn evaluate_makes_az_nas_fear_epochs_and_ensembles() {
    let dir = test_dir("ensembles");
    ok(&run(&dir, with_tiny(&["rank", "--archs", ARCHS, "--out", "r.jsonl", "--seed", "0", "--threshold", "0.15", "--stage2-epochs", "1"])), "rank");
    ok(&run(&dir, with_tiny(&["zero-cost", "--proxy", "az_nas,meco,zico,swap,synflow", "--archs", ARCHS, "--out", "z.jsonl", "--batch", "16"])), "zero-cost");
    let z: Vec<Value> = std::fs::read_to_string(dir.join("z.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for l in &z {
        for p in ["az_expressivity", "az_progressivity", "az_trainability", "flops", "meco", "zico", "swap"] {
            assert!(l[p].as_f64().is_some_and(f64::is_finite) && l[format!("{p}_time_s")].is_number(), "{p}: {l}");
        }
    }
    let gt = dir.join("gt.csv");
    let mut csv = String::from("index,arch,cifar10,cifar100,imagenet16_120\n");
    for (l, acc) in z.iter().zip([93.0, 80.0, 94.0, 60.0]) {
        csv += &format!("{},{},{acc},{},{}\n", l["index"], l["arch"].as_str().unwrap(), acc - 20.0, acc - 40.0);
    }
    std::fs::write(&gt, csv).unwrap();
    let out = fear(
        &dir,
        &[
            "evaluate",
            "r.jsonl",
            "z.jsonl",
            "--ground-truth",
            gt.to_str().unwrap(),
            "--dataset",
            "cifar10",
            "--json",
            "--ensemble",
            "az+fear=logrank:az_nas,fear",
            "--ensemble",
            "trio=vote:meco,zico,swap",
            "--ensemble",
            "quick=meanrank:fear-epochs,synflow",
        ],
    );
    ok(&out, "evaluate");
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let methods = got["methods"].as_array().unwrap();
    let find = |name: &str| methods.iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("no {name} in {got}"));
    for name in ["fear", "fear-epochs", "az_nas", "meco", "zico", "swap", "az+fear", "trio", "quick"] {
        let m = find(name);
        assert_eq!(m["n"], 4, "{m}");
    }
    assert_eq!(find("az+fear")["kind"], "ensemble");
    assert_eq!(find("fear-epochs")["kind"], "fear-epochs");
    assert!(find("az_nas")["spearman"].is_number());
    // A member that is not there is a usage error naming it.
    let bad = fear(&dir, &["evaluate", "z.jsonl", "--ground-truth", gt.to_str().unwrap(), "--dataset", "cifar10", "--ensemble", "x=logrank:meco,fear"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no method \"fear\""), "{}", String::from_utf8_lossy(&bad.stderr));

    // The same ensembles written by `fear ensemble` evaluate as they did inside evaluate.
    let specs = ["az+fear=logrank:az_nas,fear", "trio=vote:meco,zico,swap", "quick=meanrank:fear-epochs,synflow"];
    let mut args = vec!["ensemble", "r.jsonl", "z.jsonl", "--out", "e.jsonl"];
    specs.iter().for_each(|s| args.extend(["--ensemble", s]));
    ok(&fear(&dir, &args), "ensemble");
    let written = read_lines(&dir.join("e.jsonl"));
    assert_eq!(written.len(), 4);
    for l in &written {
        // The run fields both files hold; `batch` is zero-cost's only.
        assert_eq!((l["channels"].as_u64(), l["cells_per_stage"].as_u64(), l["seed"].as_u64()), (Some(4), Some(1), Some(0)), "{l}");
        assert!(l["dataset"].is_string() && l.get("batch").is_none(), "{l}");
        assert!(l["ensembles"].as_str().unwrap().starts_with("az_nas=logrank:az_expressivity,az_progressivity,az_trainability,flops; az+fear="), "{l}");
    }
    let from_file = fear(&dir, &["evaluate", "e.jsonl", "--ground-truth", gt.to_str().unwrap(), "--dataset", "cifar10", "--json"]);
    ok(&from_file, "evaluate e.jsonl");
    let from_file: Value = serde_json::from_slice(&from_file.stdout).unwrap();
    for name in ["az_nas", "az+fear", "trio", "quick"] {
        assert_same_figures(find(name), method(&from_file, name));
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The method `name` of an `evaluate --json` output.
fn method<'a>(evaluation: &'a Value, name: &str) -> &'a Value {
    evaluation["methods"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("no {name} in {evaluation}"))
}

/// Two evaluations of one ranking agree on every figure (`kind` and `file` aside).
fn assert_same_figures(a: &Value, b: &Value) {
    for key in ["n", "not_ok", "spearman", "kendall", "pairwise_accuracy", "mean_time_s", "top_k", "bins"] {
        assert_eq!(a[key], b[key], "{key} of {}: {a} vs {b}", a["name"]);
    }
    assert!(a["spearman"].is_number(), "{a}");
}

#[test]
fn ensemble_files_hold_az_nas_and_refuse_bad_input() {
    let dir = test_dir("ensemble-files");
    // Architecture 1651 (every edge `none`) is disconnected.
    let archs = "1,123,1651,2000,3000,6111,9930,12000";
    ok(&run(&dir, with_tiny(&["zero-cost", "--proxy", "az_nas,meco,zico", "--archs", archs, "--out", "z.jsonl", "--batch", "16"])), "zero-cost");
    let evaluate = |args: &[&str]| -> Value {
        let out = fear(&dir, &[&["evaluate", "--dataset", "cifar10", "--json"], args].concat());
        ok(&out, "evaluate");
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // Without --ensemble: az_nas alone, on the 7 connected cells (--not-ok drop).
    ok(&fear(&dir, &["ensemble", "z.jsonl", "--out", "a.jsonl"]), "ensemble");
    let a = read_lines(&dir.join("a.jsonl"));
    assert_eq!(a.iter().map(|l| l["index"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 123, 2000, 3000, 6111, 9930, 12000]);
    for l in &a {
        assert!(l["az_nas"].as_f64().is_some_and(|v| v < 0.0) && l["az_nas_time_s"].as_f64().is_some_and(|t| t > 0.0), "{l}");
        assert_eq!((l["status"].as_str(), l["not_ok"].as_str(), l["batch"].as_u64()), (Some("ok"), Some("drop"), Some(16)), "{l}");
    }
    assert_same_figures(method(&evaluate(&["z.jsonl"]), "az_nas"), method(&evaluate(&["a.jsonl"]), "az_nas"));
    // `fear merge` reads it as any results file.
    ok(&fear(&dir, &["merge", "m.jsonl", "a.jsonl"]), "merge");
    assert_eq!(std::fs::read_to_string(dir.join("m.jsonl")).unwrap(), std::fs::read_to_string(dir.join("a.jsonl")).unwrap());

    // Under --not-ok last the disconnected cell ranks lowest in every member and has a line
    // without scores; the file evaluated under last gives what evaluate's own ensemble does.
    ok(&fear(&dir, &["ensemble", "z.jsonl", "--ensemble", "mz=vote:meco,zico", "--not-ok", "last", "--out", "l.jsonl"]), "ensemble --not-ok last");
    let l = read_lines(&dir.join("l.jsonl"));
    assert_eq!(l.len(), 8);
    assert_eq!(
        (l[2]["index"].as_u64(), l[2]["status"].as_str(), l[2]["az_nas"].is_null(), l[2]["mz"].is_null()),
        (Some(1651), Some("disconnected"), true, true)
    );
    let inside = evaluate(&["z.jsonl", "--not-ok", "last", "--ensemble", "mz=vote:meco,zico"]);
    let outside = evaluate(&["l.jsonl", "--not-ok", "last"]);
    for name in ["az_nas", "mz"] {
        assert_same_figures(method(&inside, name), method(&outside, name));
    }
    // The written ensemble is a method like any other: an ensemble of it and a proxy.
    let nested = evaluate(&["z.jsonl", "a.jsonl", "--ensemble", "n=meanrank:az_nas [a.jsonl],meco"]);
    assert_eq!(method(&nested, "n")["n"], 7);

    // Bad input: a one-line usage error, no file written.
    let refused = |args: &[&str], says: &str| {
        let out = fear(&dir, &[&["ensemble", "--out", "bad.jsonl"], args].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says) && err.trim().lines().count() == 1, "{args:?}: {err}");
        assert!(!dir.join("bad.jsonl").exists());
    };
    refused(&["z.jsonl", "--ensemble", "x=meanrank:meco,nope"], "--ensemble x: no method \"nope\"");
    refused(&["z.jsonl", "--ensemble", "score=meanrank:meco,zico"], "the name is a field of the line");
    refused(&["z.jsonl", "--ensemble", "az_nas=meanrank:meco,zico"], "two columns of that name");
    refused(&["z.jsonl", "--ensemble", "x=meanrank:meco,zico", "--ensemble", "x=vote:meco,zico"], "two columns of that name");
    let z = std::fs::read_to_string(dir.join("z.jsonl")).unwrap();
    let dataset = a[0]["dataset"].as_str().unwrap();
    std::fs::write(dir.join("c100.jsonl"), z.replace(&format!("\"dataset\":\"{dataset}\""), "\"dataset\":\"cifar100\"")).unwrap();
    refused(&["z.jsonl", "c100.jsonl"], "an ensemble combines rankings of one dataset");
    let elsewhere = format!("{{\"index\":5000,\"foo\":1.0,\"foo_time_s\":0.5,\"dataset\":\"{dataset}\"}}\n");
    std::fs::write(dir.join("other.jsonl"), elsewhere).unwrap();
    refused(&["z.jsonl", "other.jsonl", "--ensemble", "x=meanrank:meco,foo"], "no architecture is scored by all of its members");
    std::fs::write(dir.join("plain.jsonl"), z.replace("\"az_trainability\"", "\"other\"")).unwrap();
    refused(&["plain.jsonl"], "nothing to write");
}

#[test]
fn shortlist_runs_fear_on_the_proxys_top_fraction_only() {
    let dir = test_dir("shortlist");
    let out = run(
        &dir,
        with_tiny(&[
            "rank",
            "--archs",
            ARCHS,
            "--out",
            "s.jsonl",
            "--seed",
            "0",
            "--threshold",
            "0.001",
            "--max-stage1-epochs",
            "2",
            "--stage2-epochs",
            "1",
            "--shortlist",
            "az_nas:0.5",
        ]),
    );
    ok(&out, "rank --shortlist");
    let lines: Vec<Value> = std::fs::read_to_string(dir.join("s.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    let stage = |l: &Value| l["stage"].as_str().unwrap().to_string();
    assert_eq!(lines.iter().map(stage).collect::<Vec<_>>(), ["fear", "fear", "proxy", "proxy"]);
    // The FEAR stage comes from the proxy's top half and ranks above the rest.
    let proxy = |l: &Value| l["proxy_score"].as_f64().unwrap();
    assert!(proxy(&lines[0]).min(proxy(&lines[1])) >= proxy(&lines[2]).max(proxy(&lines[3])));
    let score = |l: &Value| l["score"].as_f64().unwrap();
    assert!(score(&lines[0]) >= score(&lines[1]) && score(&lines[1]) >= 1.0 && score(&lines[2]) < 1.0 && score(&lines[2]) > score(&lines[3]));
    for l in &lines[..2] {
        let fear_time = l["stage1_s"].as_f64().unwrap() + l["stage2_s"].as_f64().unwrap();
        assert!((l["time_s"].as_f64().unwrap() - (l["proxy_time_s"].as_f64().unwrap() + fear_time)).abs() < 1e-6, "{l}");
        assert_eq!(score(l), 1.0 + l["fear_score"].as_f64().unwrap());
    }
    assert_eq!(lines[3]["time_s"], lines[3]["proxy_time_s"]);
    // A second run on a finished file is refused; a bad spec is a usage error.
    let again = run(&dir, with_tiny(&["rank", "--archs", ARCHS, "--out", "s.jsonl", "--shortlist", "az_nas:0.5"]));
    assert_eq!(again.status.code(), Some(2), "{}", String::from_utf8_lossy(&again.stderr));
    let bad = run(&dir, with_tiny(&["rank", "--archs", ARCHS, "--out", "t.jsonl", "--shortlist", "meco:1.5"]));
    assert_eq!(bad.status.code(), Some(2));
    // fear evaluate names the ranker.
    let gt = dir.join("gt.csv");
    let mut csv = String::from("index,arch,cifar10,cifar100,imagenet16_120\n");
    for (l, acc) in lines.iter().zip([93.0, 80.0, 94.0, 60.0]) {
        csv += &format!("{},{},{acc},{},{}\n", l["index"], l["arch"].as_str().unwrap(), acc - 20.0, acc - 40.0);
    }
    std::fs::write(&gt, csv).unwrap();
    let eval = fear(&dir, &["evaluate", "s.jsonl", "--ground-truth", gt.to_str().unwrap(), "--dataset", "cifar10", "--json"]);
    ok(&eval, "evaluate");
    let got: Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(got["methods"][0]["name"], "shortlist-az_nas:0.5");
    assert_eq!(got["methods"][0]["n"], 4);
}

/// A shortlist run killed in its proxy pass: the proxy lines it wrote are kept and only the
/// rest are scored on the rerun, to the same ranking.
#[test]
fn shortlist_proxy_pass_resumes_where_it_stopped() {
    let dir = test_dir("shortlist-resume");
    let shortlist = |out: &str| {
        let args = [
            "rank",
            "--archs",
            ARCHS,
            "--out",
            out,
            "--seed",
            "0",
            "--threshold",
            "0.001",
            "--max-stage1-epochs",
            "2",
            "--stage2-epochs",
            "1",
            "--shortlist",
            "az_nas:0.5",
        ];
        run(&dir, with_tiny(&args))
    };
    ok(&shortlist("s.jsonl"), "rank --shortlist");
    let proxy_text = std::fs::read_to_string(dir.join("s.proxy.jsonl")).unwrap();
    let proxy_lines: Vec<&str> = proxy_text.lines().collect();
    assert_eq!(proxy_lines.len(), 4, "{proxy_text}");
    assert!(proxy_lines.iter().all(|l| l.contains("\"proxies\":\"flops,az_expressivity,az_progressivity,az_trainability\"")), "{proxy_text}");

    // As a kill would leave it: two lines and a torn third. The first line's FLOPs time is marked,
    // so a line read back (not scored again) shows in the ranking's proxy time.
    let first: Value = serde_json::from_str(proxy_lines[0]).unwrap();
    let mut marked = first.clone();
    marked["flops_time_s"] = serde_json::json!(7.0);
    let kept = format!("{}\n{}\n", serde_json::to_string(&marked).unwrap(), proxy_lines[1]);
    std::fs::write(dir.join("t.proxy.jsonl"), format!("{kept}{}", &proxy_lines[2][..40])).unwrap();
    let rerun = shortlist("t.jsonl");
    ok(&rerun, "rank --shortlist, resumed");
    let err = String::from_utf8_lossy(&rerun.stderr);
    assert!(err.contains("2 of 4 architectures already done; resuming") && err.contains("torn last line"), "{err}");
    let resumed = std::fs::read_to_string(dir.join("t.proxy.jsonl")).unwrap();
    assert!(resumed.starts_with(&kept) && resumed.lines().count() == 4, "{resumed}");
    let indices = |text: &str| -> Vec<u64> {
        let mut i: Vec<u64> = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["index"].as_u64().unwrap()).collect();
        i.sort();
        i
    };
    assert_eq!(indices(&resumed), indices(&proxy_text));

    // The same ranking, the marked line's time read back from the file.
    let (s, t) = (read_lines(&dir.join("s.jsonl")), read_lines(&dir.join("t.jsonl")));
    for key in ["index", "stage", "proxy_score", "status"] {
        assert_eq!(s.iter().map(|l| &l[key]).collect::<Vec<_>>(), t.iter().map(|l| &l[key]).collect::<Vec<_>>(), "{key}");
    }
    let proxy_time = |lines: &[Value]| lines.iter().find(|l| l["index"] == first["index"]).unwrap()["proxy_time_s"].as_f64().unwrap();
    assert!(proxy_time(&s) < 7.0 && proxy_time(&t) > 7.0, "{} {}", proxy_time(&s), proxy_time(&t));
    // A proxy file of another configuration is refused.
    let other = run(&dir, with_tiny(&["rank", "--archs", ARCHS, "--out", "t2.jsonl", "--seed", "1", "--shortlist", "az_nas:0.5"]));
    std::fs::copy(dir.join("s.proxy.jsonl"), dir.join("u.proxy.jsonl")).unwrap();
    let refused = run(&dir, with_tiny(&["rank", "--archs", ARCHS, "--out", "u.jsonl", "--seed", "1", "--shortlist", "az_nas:0.5"]));
    ok(&other, "rank --shortlist --seed 1");
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("seed"), "{}", String::from_utf8_lossy(&refused.stderr));
}

#[test]
fn zero_cost_on_the_emulated_gpu_matches_the_cpu() {
    let dir = test_dir("zc-emulated");
    let proxies = "az_nas,meco,zico,swap,snip,grad_norm,fisher,jacob_cov,naswot,synflow";
    for (device, out) in [("cpu", "cpu.jsonl"), ("emulated", "gpu.jsonl")] {
        let args = vec![
            "zero-cost",
            "--proxy",
            proxies,
            "--archs",
            "6111,9930",
            "--out",
            out,
            "--batch",
            "8",
            "--channels",
            "2",
            "--cells-per-stage",
            "1",
            "--device",
            device,
        ];
        let mut args: Vec<String> = args.into_iter().map(String::from).collect();
        args.extend(tiny_run_args().into_iter().skip_while(|a| a != "--dataset").take(6));
        ok(&run(&dir, args), device);
    }
    let read = |f: &str| -> Vec<Value> { std::fs::read_to_string(dir.join(f)).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect() };
    let (cpu, gpu) = (read("cpu.jsonl"), read("gpu.jsonl"));
    assert!(gpu[0]["device"].as_str().unwrap().contains("emulated"), "{}", gpu[0]);
    for (c, g) in cpu.iter().zip(&gpu) {
        for p in ["az_expressivity", "az_progressivity", "az_trainability", "meco", "zico", "snip", "grad_norm", "fisher", "jacob_cov", "naswot", "synflow"] {
            let (a, b) = (c[p].as_f64().unwrap(), g[p].as_f64().unwrap());
            assert!((a - b).abs() <= 1e-3 * a.abs().max(1e-2), "{p}: cpu {a}, emulated {b}");
        }
        // Patterns of units whose inputs sit at float rounding from 0 may flip: within 1%.
        let (a, b) = (c["swap"].as_f64().unwrap(), g["swap"].as_f64().unwrap());
        assert!((a - b).abs() <= 0.01 * a, "swap: cpu {a}, emulated {b}");
    }
}
