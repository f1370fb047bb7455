//! End to end on real images: `fear rank` on a few hundred CIFAR-10 JPEGs from
//! `../shared/data/cifar10-jpeg.tar.gz` (skipped and reported where the archive is absent, a
//! failure under CI); and that skip rule itself.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

/// The first 30 training and 5 test images of every class (300 + 50 images), unpacked once
/// under `target/`.
fn small_cifar10(archive: &Path) -> PathBuf {
    let patterns =
        ["cifar10-jpeg/train/*/000[0-9].jpg", "cifar10-jpeg/train/*/001[0-9].jpg", "cifar10-jpeg/train/*/002[0-9].jpg", "cifar10-jpeg/test/*/000[0-4].jpg"];
    common::unpack_cifar10_subset(archive, "cifar10-jpeg-small", &patterns)
}

#[test]
fn rank_two_architectures_on_real_cifar10_images() {
    let Some(archive) = common::cifar10_jpeg_archive("rank_two_architectures_on_real_cifar10_images") else { return };
    let root = small_cifar10(&archive);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rank-cifar10.jsonl");
    let _ = std::fs::remove_file(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_fear"))
        .args(["rank", "--dataset", &format!("folder:{}", root.display()), "--archs", "1,15624"])
        .args(["--channels", "4", "--cells-per-stage", "1", "--threshold", "0.12", "--max-stage1-epochs", "3", "--stage2-epochs", "1"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "fear rank failed: {stderr}");
    assert!(stderr.contains("300 training images"), "{stderr}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let mut indices: Vec<u64> = lines.iter().map(|v| v["index"].as_u64().unwrap()).collect();
    indices.sort();
    assert_eq!(indices, [1, 15624]);
    for v in &lines {
        let status = v["status"].as_str().unwrap();
        assert!(status == "ok" || status == "capped", "{v}");
        if status == "ok" {
            let s = v["score"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&s), "{v}");
            assert_eq!(v["stage2_acc"].as_array().unwrap().len(), 1);
        }
        assert!(v["stage1_epochs"].as_u64().unwrap() >= 1);
        assert!(v["time_s"].as_f64().unwrap() > 0.0);
        assert_eq!(v["dataset"], "cifar10-jpeg");
    }
}

#[test]
fn a_missing_archive_fails_under_ci_and_is_recorded_as_skipped_elsewhere() {
    let dir = common::test_dir("skip-record");
    let (missing, skipped) = (vec![dir.join("nowhere.tar.gz")], dir.join("skipped"));
    assert!(common::find_or_skip("some_test", &missing, false, &skipped).is_err());
    let recorded = common::read_skipped(&skipped);
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].0 == "some_test" && recorded[0].1.contains("FEAR_CIFAR10_JPEG"), "{recorded:?}");
    let under_ci = std::panic::catch_unwind(|| common::find_or_skip("ci_test", &missing, true, &dir.join("ci")));
    assert!(under_ci.is_err(), "a missing archive under CI must fail the test");
    assert!(common::read_skipped(&dir.join("ci")).is_empty());
    // Found: no skip.
    let here = dir.join("here.tar.gz");
    std::fs::write(&here, "").unwrap();
    assert_eq!(common::find_or_skip("found_test", &[missing[0].clone(), here.clone()], true, &skipped), Ok(here));
}
