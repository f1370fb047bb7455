//! The `fear` binary as a user meets it: outputs, and one-line errors with exit status 2.

use std::process::{Command, Output};

fn fear(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fear")).args(args).output().expect("running fear")
}

fn assert_usage_error(args: &[&str], needle: &str) {
    let out = fear(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?} should exit 2; stderr: {err}");
    assert!(err.contains(needle), "{args:?}: stderr {err:?} should mention {needle:?}");
}

#[test]
fn arch_reports_index_string_params_and_flops() {
    let out = fear(&["arch", "1", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["index"], 1);
    assert_eq!(v["arch"], "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|");
    assert_eq!(v["params"], 802_426);
    assert!(v["flops"].as_u64().unwrap() > 1_000_000);
    // The same architecture given by its string.
    let by_string = fear(&["arch", "--json", "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"]);
    assert_eq!(by_string.stdout, out.stdout);
}

#[test]
fn arch_all_lists_every_architecture_once() {
    let out = fear(&["arch", "--all", "--json"]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    assert_eq!(lines.len(), 15625);
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(v["index"], i);
    }
    assert_eq!(lines[0]["params"], 129_306);
    assert_eq!(lines[6111]["params"], 1_073_466);
    assert_eq!(lines.iter().filter(|v| v["connected"] == false).count(), 341);
}

#[test]
fn bad_input_is_a_one_line_error_with_status_2() {
    assert_usage_error(&["arch", "15625"], "15625");
    assert_usage_error(&["arch", "|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "nor_conv_9x9");
    assert_usage_error(&["arch", "|nor_conv_3x3~0|+|none~0|"], "");
    assert_usage_error(&["arch", "1", "--no-such-flag"], "--no-such-flag");
    assert_usage_error(&["bench", "--arch", "-3"], "");
    assert_usage_error(&["bench", "--device", "cpu", "--cuda-graph"], "need a GPU device");
    assert_usage_error(&["bench", "--device", "cpu", "--resident-data"], "need a GPU device");
    let out = fear(&["arch", "99999"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1, "one line");
}

#[test]
fn bench_reports_what_freezing_buys() {
    let out = fear(&["bench", "--device", "cpu", "--arch", "1", "--batch", "2", "--steps", "1", "--warmup", "0", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["full_step_ms", "frozen_step_ms", "full_backward_nodes", "frozen_backward_nodes", "full_saved_bytes", "frozen_saved_bytes", "images_per_s"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key} in {v}");
    }
    assert!(v["frozen_backward_nodes"].as_u64() < v["full_backward_nodes"].as_u64());
    assert!(v["frozen_saved_bytes"].as_u64() < v["full_saved_bytes"].as_u64());
}

#[test]
fn threshold_outside_0_to_1_is_a_usage_error() {
    for bad in ["-0.1", "0", "1.5", "-3", "abc"] {
        assert_usage_error(&["rank", "--threshold", bad, "--device", "cpu"], "--threshold");
    }
    assert_usage_error(&["rank", "--threshold", "-0.1"], "outside (0, 1]");
    assert_usage_error(&["search", "--method", "fear", "--threshold", "1.01"], "outside (0, 1]");
}

#[test]
fn a_real_dataset_needs_archs() {
    assert_usage_error(&["rank", "--dataset", "cifar10:/nowhere", "--device", "cpu"], "--archs is required with --dataset");
    assert_usage_error(&["zero-cost", "--proxy", "snip", "--dataset", "cifar10:/nowhere"], "--archs is required with --dataset");
}

/// `fear` in `dir` with HOME set to `home`.
fn fear_home(dir: &std::path::Path, home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fear")).args(args).env("HOME", home).current_dir(dir).output().expect("running fear")
}

#[test]
fn a_leading_tilde_in_a_path_option_is_the_home_folder() {
    let home = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("tilde-home");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(home.join("lists")).unwrap();
    std::fs::write(home.join("lists/archs.txt"), "1\n15624\n").unwrap();
    // The shell leaves `~` after `file:` alone, and a quoted `~/...` too: fear expands both.
    let out = fear_home(&home, &home, &["zero-cost", "--proxy", "params", "--archs", "file:~/lists/archs.txt", "--out", "~/zc.jsonl", "--threads", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(home.join("zc.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(!home.join("~").exists(), "a folder named ~ was made");
    // A dataset folder: the error names the expanded path; the failed load leaves no results file.
    let out = fear_home(&home, &home, &["rank", "--dataset", "folder:~/no-such-data", "--archs", "1", "--device", "cpu", "--out", "~/r.jsonl"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&home.join("no-such-data").display().to_string()), "{err}");
    assert!(!home.join("r.jsonl").exists(), "a failed load left an empty results file");
    // The synthetic cache goes to the user's cache folder, not the current one.
    let cwd = home.join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fear"))
        .args(["zero-cost", "--proxy", "snip", "--archs", "1", "--dataset", "synthetic-cifar10", "--synthetic-size", "2", "--batch", "4"])
        .args(["--channels", "2", "--cells-per-stage", "1", "--threads", "1"])
        .env("HOME", &home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("FEAR_CACHE_DIR")
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_dir(home.join(".cache/fear")).unwrap().count() > 0);
    assert!(!cwd.join("data-cache").exists());
}

#[test]
fn doctor_ends_with_a_verdict() {
    let out = fear(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.trim_end().lines().last().unwrap_or("");
    assert!(last.starts_with("verdict: this machine runs fear on the CPU"), "{last}");
}

/// `bench --plan-stats` counts the planned step's launches without running it: on a GPU plan each
/// train-mode batch norm is a finalize launch after its statistics (taken by the convolution whose
/// output it alone reads, else by a launch of its own) and an apply launch unless the node sum
/// reading it applies it, and sibling convolutions are one launch; on the CPU plan one call per
/// op; and the per-kernel table adds up to the totals.
#[test]
fn bench_plan_stats_count_launches_per_device() {
    let stats = |device: &str| -> serde_json::Value {
        let out = fear(&["bench", "--plan-stats", "--device", device, "--arch", "1", "--batch", "4", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (gpu, cpu) = (stats("emulated"), stats("cpu"));
    for v in [&gpu, &cpu] {
        let rows = v["kernels"].as_array().unwrap();
        for (total, column) in [("launches_full", "full"), ("launches_frozen", "frozen")] {
            let sum: u64 = rows.iter().map(|r| r[column].as_u64().unwrap()).sum();
            assert_eq!(v[total].as_u64(), Some(sum), "{total} in {v}");
        }
        assert!(v["launches_frozen"].as_u64() < v["launches_full"].as_u64());
        assert!(v["flops_frozen"].as_u64() < v["flops_full"].as_u64());
        assert!(v["planned_bytes_frozen"].as_u64() < v["planned_bytes_full"].as_u64());
    }
    let count = |v: &serde_json::Value, kernel: &str| {
        v["kernels"].as_array().unwrap().iter().find(|r| r["kernel"] == kernel).map_or(0, |r| r["full"].as_u64().unwrap())
    };
    let bn = count(&cpu, "bn_train_forward");
    assert!(bn > 0);
    // One finalize per batch norm, but one for both of a sibling pair (arch 1: 15).
    assert_eq!(count(&gpu, "fear_bn_train_finalize") + 15, bn);
    let own_stats = count(&gpu, "fear_bn_stats");
    assert!(own_stats > 0 && own_stats < bn, "{own_stats} of {bn} batch norms took their statistics themselves");
    // Both gradients of a convolution are one launch where both are needed, and arch 1's 15 pairs
    // of sibling convolutions (node 0's two 3x3 edges per cell) one launch each way.
    assert!(count(&gpu, "fear_conv_backward") > 0);
    assert_eq!(count(&cpu, "conv_forward") - count(&gpu, "fear_conv_forward"), 15, "sibling forwards");
    assert_eq!(count(&gpu, "fear_conv_backward_input") + count(&gpu, "fear_conv_backward") + 15, count(&cpu, "conv_backward_input"), "sibling backwards");
    // Each two-gradient backward leaves its weight-gradient sum to the next one's launch: one
    // reduce launch for the last of them, and one per weight-only backward (the stem's).
    let reduces = count(&gpu, "fear_conv_backward_weight_reduce");
    assert_eq!(reduces, 1 + count(&gpu, "fear_conv_backward_weight"), "weight-gradient sums in launches of their own");
    // The GPU plan is fused: the node sums apply the batch norms read only by them, and the
    // convolutions the ReLUs read only by them.
    let (sums, applies) = (count(&gpu, "fear_node_sum"), count(&gpu, "fear_bn_apply"));
    assert!(sums > 0 && applies > 0 && applies < bn, "{sums} node sums, {applies} of {bn} batch norms applied on their own");
    assert!(count(&gpu, "fear_relu") < count(&cpu, "relu"));
    assert_eq!(count(&gpu, "fear_add"), 0);
    assert_eq!(gpu["flops_full"], cpu["flops_full"]);
}

/// `--precision bf16` halves the bytes a step moves without changing its launches or flops
/// (issue 14's model target: arch 1 at batch 256, at most 3.5e9 bytes and 250 launches).
#[test]
fn bf16_plan_stats_meet_the_bytes_target() {
    let stats = |precision: &str| -> serde_json::Value {
        let out = fear(&["bench", "--plan-stats", "--device", "emulated", "--arch", "1", "--batch", "256", "--precision", precision, "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (bf16, fp32) = (stats("bf16"), stats("fp32"));
    assert_eq!(bf16["precision"], "bf16");
    for same in ["launches_full", "launches_frozen", "flops_full"] {
        assert_eq!(bf16[same], fp32[same], "{same}");
    }
    let bytes = |v: &serde_json::Value| v["planned_bytes_full"].as_f64().unwrap();
    assert!(bytes(&bf16) <= 3.5e9, "{} bytes", bytes(&bf16));
    assert!(bytes(&bf16) < 0.6 * bytes(&fp32), "{} of fp32's {}", bytes(&bf16), bytes(&fp32));
    assert!(bf16["launches_full"].as_u64().unwrap() <= 250);
    let rows = bf16["kernels"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["kernel"] == "fear_node_sum_bf16"), "bfloat16 kernels in the plan");
}

/// `--precision` is written into every results line, and a results file is appended to only at
/// its own precision; lines written before the field existed count as fp32.
#[test]
fn the_precision_is_recorded_and_never_mixed() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("precision-never-mixed.jsonl");
    let _ = std::fs::remove_file(&out);
    let out_arg = out.to_str().unwrap();
    let rank = |extra: &[&str], archs: &str| {
        let mut a = vec!["rank", "--archs", archs, "--max-stage1-epochs", "1", "--threshold", "0.001", "--stage2-epochs", "1", "--out", out_arg];
        a.extend_from_slice(extra);
        fear(&a)
    };
    let first = rank(&["--precision", "tf32"], "1");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let line: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&out).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(line["precision"], "tf32");
    let mixed = rank(&[], "1,123");
    assert!(!mixed.status.success());
    assert!(String::from_utf8_lossy(&mixed.stderr).contains("precision = \"tf32\""), "{}", String::from_utf8_lossy(&mixed.stderr));
    // A line without the field (an older fear's) is an fp32 line.
    let mut old = line.clone();
    old.as_object_mut().unwrap().remove("precision");
    std::fs::write(&out, format!("{old}\n")).unwrap();
    let tf32 = rank(&["--precision", "tf32"], "1,123");
    assert!(!tf32.status.success() && String::from_utf8_lossy(&tf32.stderr).contains("written before precision was recorded"));
    let fp32 = rank(&[], "1,123");
    assert!(fp32.status.success(), "{}", String::from_utf8_lossy(&fp32.stderr));
}

/// `--precision fp16` stores like bf16 (the same bytes: 2 an element of the same tensors) and adds
/// loss scaling's two launches to the update; its kernels are the IEEE-half instantiations.
#[test]
fn fp16_plan_stats_store_like_bf16_with_two_loss_scaling_launches() {
    let stats = |precision: &str| -> serde_json::Value {
        let out = fear(&["bench", "--plan-stats", "--device", "emulated", "--arch", "1", "--batch", "256", "--precision", precision, "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (fp16, bf16) = (stats("fp16"), stats("bf16"));
    assert_eq!(fp16["precision"], "fp16");
    let launches = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap();
    assert_eq!(launches(&fp16, "launches_full"), launches(&bf16, "launches_full") + 2);
    assert!(launches(&fp16, "launches_full") <= 250);
    let bytes = |v: &serde_json::Value| v["planned_bytes_full"].as_f64().unwrap();
    assert!(bytes(&fp16) <= 3.5e9, "{} bytes", bytes(&fp16));
    let rows = fp16["kernels"].as_array().unwrap();
    // FP16 products on the convolutions (forwards and gradients) and the classifier.
    let names = [
        "fear_node_sum_f16",
        "fear_conv_forward_f16mma_f16",
        "fear_conv_backward_f16mma_f16",
        "fear_linear_forward_tensor",
        "fear_unscale_grads",
        "fear_update_loss_scale",
    ];
    for name in names {
        assert!(rows.iter().any(|r| r["kernel"] == name), "{name} in the plan");
    }
    assert!(!rows.iter().any(|r| r["kernel"].as_str().unwrap().ends_with("_bf16")), "no bfloat16 kernel in an fp16 plan");
}
