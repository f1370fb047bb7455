//! PyTorch as an outside oracle: the same network, weights and batch as
//! `tests/fixtures/oracle_*.safetensors` (written by `scripts/pytorch_oracle.py`) must give the
//! same logits, loss, gradients, BN running statistics and parameters after one SGD step.

use std::path::{Path, PathBuf};

use fear::engine::{Cpu, Float, PlanOptions, Session};
use fear::net::weights::{load_weights, tensor_f64};
use fear::net::{tiny_network, NetConfig};
use fear::space::Arch;
use safetensors::SafeTensors;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("oracle_")).collect();
    files.sort();
    assert!(files.len() >= 5, "expected the oracle fixtures in {}", dir.display());
    files
}

struct Case {
    cfg: NetConfig,
    arch: Arch,
    batch: usize,
    input: Vec<f64>,
    labels: Vec<u32>,
}

fn case(st: &SafeTensors, meta: &std::collections::HashMap<String, String>) -> Case {
    let get = |k: &str| meta[k].parse::<usize>().unwrap();
    let cfg = NetConfig { c: get("C"), n: get("N"), classes: get("classes"), image_size: get("image_size") };
    let arch: Arch = meta["arch"].parse().unwrap();
    let (_, input) = tensor_f64(st, "input").unwrap();
    let (_, labels) = tensor_f64(st, "labels").unwrap();
    Case { cfg, arch, batch: get("batch"), input, labels: labels.iter().map(|l| *l as u32).collect() }
}

/// Largest |ours - truth| relative to the truth's largest magnitude, with an absolute floor for
/// tensors that are zero up to round-off (the same measure `scripts/pytorch_oracle.py` records
/// for PyTorch's own float32 run in `torch_f32_err`).
fn rel_err(ours: &[f64], truth: &[f64], floor: f64) -> f64 {
    assert_eq!(ours.len(), truth.len());
    let scale = truth.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(floor);
    ours.iter().zip(truth).fold(0.0f64, |m, (a, b)| m.max((a - b).abs())) / scale
}

/// Runs one step of the fixture's case in `T` and compares every reference tensor (float64
/// PyTorch truth). In f64 every tensor must agree to `1e-4`; in f32 each must agree to `1e-4`
/// or, where the float32 step is ill-conditioned, be no worse than 4x PyTorch's own float32 run.
fn check<T: Float>(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    let torch_f32_err: std::collections::HashMap<String, f64> = serde_json::from_str(meta.get("torch_f32_err").map(String::as_str).unwrap_or("{}")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let c = case(&st, &meta);
    let (arch, cfg) = (c.arch, c.cfg);
    let new_session = || {
        let mut s: Session<T, Cpu> = Session::new(Cpu, Box::new(move |n| tiny_network(&arch, &cfg, n)), c.batch, PlanOptions::default()).unwrap();
        load_weights(&mut s, path, "param/").unwrap();
        s
    };
    let input: Vec<T> = c.input.iter().map(|v| T::from_f64(*v)).collect();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let is_f64 = std::mem::size_of::<T>() == 8;
    let mut worst = (0.0f64, String::new());
    let mut failures = Vec::new();
    let mut record = |key: String, ours: &[f64], floor: f64| {
        let truth = tensor_f64(&st, &key).unwrap().1;
        let err = rel_err(ours, &truth, floor);
        let tol = if is_f64 { 1e-4 } else { 1e-4f64.max(4.0 * torch_f32_err.get(&key).copied().unwrap_or(0.0)) };
        if err >= tol {
            failures.push(format!("{key}: relative error {err:.2e} (tolerance {tol:.2e})"));
        }
        if err > worst.0 {
            worst = (err, key);
        }
    };
    let to_f64 = |v: Vec<T>| v.into_iter().map(|x| x.as_f64()).collect::<Vec<f64>>();

    // Raw gradients, logits and loss: forward and backward only.
    let mut s = new_session();
    let out = s.forward_backward(&input, &c.labels).unwrap();
    record("loss".into(), &[out.loss], 1e-6);
    record("logits".into(), &to_f64(s.logits(c.batch, true).unwrap()), 1e-6);
    let grad_floor =
        s.params().iter().map(|p| tensor_f64(&st, &format!("grad/{}", p.name)).unwrap().1).flat_map(|g| g.into_iter()).fold(0.0f64, |m, v| m.max(v.abs()))
            * 1e-6;
    for p in s.params().to_vec() {
        record(format!("grad/{}", p.name), &to_f64(s.read_grad(&p.name).unwrap()), grad_floor);
    }
    for spec in s.graph().states.clone() {
        record(format!("running_after/{}", spec.name), &to_f64(s.read_state(&spec.name).unwrap()), 1e-6);
    }
    // One SGD step from the same start.
    let mut s = new_session();
    s.train_step(&input, &c.labels, 0.1).unwrap();
    for p in s.params().to_vec() {
        record(format!("param_after/{}", p.name), &to_f64(s.read_param(&p.name).unwrap()), 1e-6);
    }
    eprintln!("{name} ({}): worst relative error {:.2e} in {}", std::any::type_name::<T>(), worst.0, worst.1);
    assert!(failures.is_empty(), "{name} in {}:\n{}", std::any::type_name::<T>(), failures.join("\n"));
}

#[test]
fn matches_pytorch_in_f32() {
    for f in fixtures() {
        check::<f32>(&f);
    }
}

#[test]
fn matches_pytorch_in_f64() {
    for f in fixtures() {
        check::<f64>(&f);
    }
}

#[test]
fn parameter_names_and_counts_match_nats_bench() {
    // SPEC 1: parameter counts of archs 0, 1 and 6111 at C=16, N=5, 10 classes.
    for (index, params) in [(0, 129_306), (1, 802_426), (6111, 1_073_466)] {
        let arch = Arch::from_index(index).unwrap();
        let g = tiny_network(&arch, &NetConfig::default(), 1);
        assert_eq!(g.param_len(), params, "arch {index}");
    }
    // Every fixture's parameter names are exactly ours, in the same order.
    for f in fixtures() {
        let bytes = std::fs::read(&f).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().clone().unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let c = case(&st, &meta);
        let g = tiny_network(&c.arch, &c.cfg, 1);
        let mut theirs: Vec<String> = st.names().into_iter().filter_map(|n| n.strip_prefix("param/").map(str::to_string)).collect();
        let mut ours: Vec<String> = g.params.iter().map(|p| p.name.clone()).collect();
        theirs.sort();
        ours.sort();
        assert_eq!(ours, theirs, "{}", f.display());
    }
}
