//! The threshold learner (SPEC 4.1): the MLP graph against a naive forward, learning on a small
//! dataset whose classes HoG separates, and `fear threshold` on real CIFAR-10 images
//! (`../shared/data/cifar10-jpeg.tar.gz`; skipped with a message where it is absent).

use std::path::{Path, PathBuf};
use std::process::Command;

use fear::data::Split;
use fear::engine::{Cpu, PlanOptions, Session};
use fear::threshold::{mlp_graph, train_threshold_learner, Features, MlpRecipe};

mod common;

#[test]
fn mlp_graph_matches_a_naive_forward() {
    let (d, hidden, classes, n) = (5, [4, 3], 2, 3);
    let g = mlp_graph(d, &hidden, classes, n);
    let names: Vec<&str> = g.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
    assert_eq!(g.param_len(), 5 * 4 + 4 + 4 * 3 + 3 + 3 * 2 + 2);
    let mut s: Session<f64, Cpu> = Session::new(Cpu, Box::new(move |b| mlp_graph(d, &hidden, classes, b)), n, PlanOptions::default()).unwrap();
    s.init_params(7).unwrap();
    let x: Vec<f64> = (0..n * d).map(|i| (i as f64 * 0.37).sin()).collect();
    s.evaluate(&x, &[0, 1, 0]).unwrap();
    let logits = s.logits(n, false).unwrap();
    let layer = |x: &[f64], name: usize, relu: bool| -> Vec<f64> {
        let w = s.read_param(&format!("fc{name}.weight")).unwrap();
        let b = s.read_param(&format!("fc{name}.bias")).unwrap();
        let (out, inp) = (b.len(), w.len() / b.len());
        x.chunks(inp)
            .flat_map(|row| {
                (0..out)
                    .map(|o| {
                        let v = b[o] + (0..inp).map(|i| w[o * inp + i] * row[i]).sum::<f64>();
                        if relu {
                            v.max(0.0)
                        } else {
                            v
                        }
                    })
                    .collect::<Vec<f64>>()
            })
            .collect()
    };
    let want = layer(&layer(&layer(&x, 0, true), 1, true), 2, false);
    for (a, b) in logits.iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{logits:?} vs {want:?}");
    }
}

/// Stripes in one of four orientations (random phase, noise): HoG tells them apart.
fn stripes(per_class: usize, seed: u64) -> Split {
    let size = 32;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    for i in 0..per_class * 4 {
        let class = i % 4;
        let (phase, period) = (next() * std::f64::consts::TAU, 4.0 + next() * 4.0);
        for _c in 0..3 {
            for y in 0..size {
                for x in 0..size {
                    let t = match class {
                        0 => x as f64,
                        1 => y as f64,
                        2 => (x + y) as f64 / 1.4,
                        _ => (x as f64 - y as f64) / 1.4,
                    };
                    let v = 128.0 + 90.0 * (t * std::f64::consts::TAU / period + phase).sin() + (next() - 0.5) * 40.0;
                    images.push(v.clamp(0.0, 255.0) as u8);
                }
            }
        }
        labels.push(class as u32);
    }
    Split { images, labels }
}

#[test]
fn learns_oriented_stripes_well_above_chance() {
    let (train, test) = (Features::hog(&stripes(30, 1), 32), Features::hog(&stripes(15, 2), 32));
    assert_eq!(train.dim, 324);
    let recipe = MlpRecipe { hidden: vec![64, 64], lr: 0.1, batch: 16, epochs: 15, ..MlpRecipe::default() };
    let mut seen = 0;
    let epochs = train_threshold_learner(&train, &test, 4, &recipe, 0, &mut |_| seen += 1).unwrap();
    assert_eq!((seen, epochs.len()), (15, 15));
    let last = epochs.last().unwrap();
    assert!(last.train_acc > 0.8, "{epochs:?}");
    assert!(last.test_acc.unwrap() > 0.7, "{epochs:?}"); // chance is 0.25
    assert!((last.lr - fear::train::cosine_lr(0.1, 0.001, 14, 15)).abs() < 1e-15);
}

/// The first 50 training and 10 test images of every class, unpacked once under `target/`.
fn small_cifar10(archive: &Path) -> PathBuf {
    let patterns = ["cifar10-jpeg/train/*/000[0-9].jpg", "cifar10-jpeg/train/*/00[1-4][0-9].jpg", "cifar10-jpeg/test/*/000[0-9].jpg"];
    common::unpack_cifar10_subset(archive, "cifar10-jpeg-threshold", &patterns)
}

#[test]
fn fear_threshold_trains_on_real_cifar10_images() {
    let Some(archive) = common::cifar10_jpeg_archive("fear_threshold_trains_on_real_cifar10_images") else { return };
    let root = small_cifar10(&archive);
    let run = Command::new(env!("CARGO_BIN_EXE_fear"))
        .args(["threshold", "--dataset", &format!("folder:{}", root.display()), "--epochs", "8", "--batch", "100"])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("HoG of 500 training and 100 test images (324 features each)"), "{stderr}");
    let epochs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("epoch")).collect();
    assert_eq!(epochs.len(), 8, "{stdout}");
    let acc = |line: &str, key: &str| -> f64 {
        let at = line.find(key).unwrap() + key.len();
        line[at..].split_whitespace().next().unwrap().parse().unwrap()
    };
    let last = epochs.last().unwrap();
    assert!(acc(last, "train acc ") > 0.3, "chance is 0.1:\n{stdout}");
    assert!(acc(last, "test acc ") > 0.15, "chance is 0.1:\n{stdout}");
    assert!(stdout.contains("suggested threshold for cifar10-jpeg: "), "{stdout}");
}
