//! The zero-cost proxies (SPEC 5) held to direct computations on tiny networks:
//! - every proxy against PyTorch autograd in float64 (`tests/fixtures/proxies/*.safetensors`,
//!   written by `scripts/make_proxy_fixtures.py`; grasp's Hessian-gradient product there is the
//!   exact one, by double backward), element by element for grasp's Hg;
//! - the gradients snip and synflow are built from against central finite differences of the
//!   loss (resp. R) itself;
//! - a disconnected cell's scores are finite and its synflow is 0;
//! - the dense linear algebra against matrices with known spectra and determinants.

use std::collections::HashMap;
use std::path::PathBuf;

use fear::engine::{initial_params, Cpu, Head, PlanOptions, Session};
use fear::net::weights::load_weights;
use fear::net::{tiny_network, tiny_network_variant, NetConfig, NetVariant};
use fear::rank::zero_cost::linalg::{log_abs_det, symmetric_eigenvalues};
use fear::rank::zero_cost::score::{score_arch, ProxyBatch, Weights};
use fear::rank::zero_cost::synflow::{synflow_graph, synflow_with_params};
use fear::rank::zero_cost::{jacob_cov, parse_proxies, saliency, scored_weights, Proxy};
use fear::space::Arch;

mod common;
use common::torch_fixtures::torch_fixtures;

struct Fixture {
    path: PathBuf,
    arch: Arch,
    net: NetConfig,
    input: Vec<f64>,
    labels: Vec<u32>,
    /// Every `param/...` tensor by its state_dict name.
    named: Vec<(String, Vec<f64>)>,
    hg: HashMap<String, Vec<f64>>,
    scores: HashMap<String, f64>,
}

fn fixtures() -> Vec<Fixture> {
    torch_fixtures("proxies")
        .into_iter()
        .map(|t| Fixture {
            input: t.tensor("input"),
            labels: t.labels("labels"),
            named: t.under("param/"),
            hg: t.under("hg/").into_iter().collect(),
            arch: t.arch,
            net: t.net,
            scores: t.scores,
            path: t.path,
        })
        .collect()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

#[test]
fn every_proxy_matches_pytorch_autograd_in_float64() {
    let proxies = parse_proxies("synflow,synflow_bn,snip,grasp,fisher,grad_norm,jacob_cov,naswot").unwrap();
    for f in fixtures() {
        let batch = ProxyBatch { images: &f.input, labels: &f.labels };
        let scores = score_arch::<f64>(&f.arch, &f.net, &proxies, Some(&batch), &Weights::Named(f.named.clone())).unwrap();
        assert_eq!(scores.iter().map(|s| s.proxy).collect::<Vec<_>>(), proxies);
        for s in scores {
            let want = f.scores[s.proxy.name()];
            // grasp's Hg is a central finite difference in f64 at a tiny step: about 1e-5 relative.
            let tol = if s.proxy == Proxy::Grasp { 1e-4 } else { 1e-9 };
            assert!(rel(s.score, want) < tol, "{}: {} = {} but PyTorch gives {want}", f.path.display(), s.proxy, s.score);
            assert!(s.seconds >= 0.0);
        }
    }
}

/// A float64 session holding the fixture's weights, the scored weights trainable.
fn session(f: &Fixture) -> Session<f64, Cpu> {
    let (a, n) = (f.arch, f.net);
    let mut s: Session<f64, Cpu> = Session::new(Cpu, Box::new(move |b| tiny_network(&a, &n, b)), f.labels.len(), PlanOptions::default()).unwrap();
    load_weights(&mut s, &f.path, "param/").unwrap();
    let scored = scored_weights(s.graph());
    let names: Vec<String> = s.params().iter().zip(&scored).filter(|(_, k)| **k).map(|(p, _)| p.name.clone()).collect();
    s.set_trainable(|name| names.iter().any(|n| n == name));
    s
}

#[test]
fn finite_difference_hessian_gradient_product_matches_the_exact_one() {
    for f in fixtures() {
        let mut s = session(&f);
        s.forward_backward(&f.input, &f.labels).unwrap();
        let layers = saliency::layer_grads(&s).unwrap();
        let before = s.read_all_params().unwrap();
        let scale = f.hg.values().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        // The usual step (cbrt of machine epsilon) and grasp's own (far below any ReLU kink).
        for (step, tol) in [(f64::EPSILON.cbrt(), 1e-6), (saliency::GRASP_STEPS[0], 1e-4)] {
            let hg = saliency::hessian_gradient(&mut s, &f.input, &f.labels, &layers, step).unwrap();
            assert_eq!(s.read_all_params().unwrap(), before, "the parameters must be restored");
            for (l, h) in layers.iter().zip(&hg) {
                let want = &f.hg[&l.name];
                let err = h.iter().zip(want).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
                assert!(err < tol * scale, "{}: Hg of {} at step {step:e} off by {err:e} (scale {scale:e})", f.path.display(), l.name);
            }
        }
    }
}

/// Central differences of `loss` at the flat parameters `p` along parameter `i`.
fn central(p: &mut [f64], i: usize, h: f64, mut loss: impl FnMut(&[f64]) -> f64) -> f64 {
    let v = p[i];
    p[i] = v + h;
    let up = loss(p);
    p[i] = v - h;
    let down = loss(p);
    p[i] = v;
    (up - down) / (2.0 * h)
}

/// Every 13th scored weight: enough to cover every layer, few enough to stay fast.
fn probe_indices(graph: &fear::engine::Graph) -> Vec<usize> {
    let scored = scored_weights(graph);
    graph.params.iter().zip(&scored).filter(|(_, s)| **s).flat_map(|(p, _)| (p.offset..p.offset + p.len()).step_by(13)).collect()
}

#[test]
fn snip_is_the_sum_of_w_times_the_finite_difference_gradient() {
    let f = &fixtures()[0];
    let mut s = session(f);
    s.forward_backward(&f.input, &f.labels).unwrap();
    let grads = s.read_all_grads().unwrap();
    let mut p = s.read_all_params().unwrap();
    let (images, labels) = (f.input.clone(), f.labels.clone());
    let mut loss = |q: &[f64]| {
        s.write_all_params(q).unwrap();
        s.forward_backward(&images, &labels).unwrap().loss
    };
    let probes = probe_indices(&fear::net::tiny_network(&f.arch, &f.net, 1));
    let (mut ours, mut fd_snip) = (0.0, 0.0);
    for &i in &probes {
        let fd = central(&mut p, i, 1e-6, &mut loss);
        assert!((grads[i] - fd).abs() < 1e-6 * (1.0 + fd.abs()), "dL/dw[{i}] = {} but finite differences give {fd}", grads[i]);
        ours += (p[i] * grads[i]).abs();
        fd_snip += (p[i] * fd).abs();
    }
    assert!(rel(ours, fd_snip) < 1e-6, "{ours} vs {fd_snip}");
}

fn no_bn_sum(a: &Arch, n: &NetConfig, batch: usize) -> fear::engine::Graph {
    tiny_network_variant(a, n, batch, NetVariant { batch_norm: false, head: Head::SumAll })
}

#[test]
fn synflow_gradient_matches_finite_differences_of_r() {
    let f = &fixtures()[0];
    let graph = synflow_graph(&f.arch, &f.net, false);
    let params: Vec<f64> = initial_params::<f64>(&graph, 3).iter().map(|w| w.abs()).collect();
    // R(W) by the same network run forward; dR/dW by finite differences of it.
    let (a, n) = (f.arch, f.net);
    let mut s: Session<f64, Cpu> = Session::new(Cpu, Box::new(move |b| no_bn_sum(&a, &n, b)), 1, PlanOptions::default()).unwrap();
    let ones = vec![1.0; 3 * n.image_size * n.image_size];
    let mut r = |q: &[f64]| {
        s.write_all_params(q).unwrap();
        s.forward_backward(&ones, &[0]).unwrap().loss
    };
    let mut p = params.clone();
    let probes = probe_indices(&graph);
    let mut fd_score_part = 0.0;
    for &i in &probes {
        let h = 1e-4 * p[i].max(1e-3);
        let fd = central(&mut p, i, h, &mut r);
        fd_score_part += (p[i] * fd).abs();
    }
    // synflow's own gradient, summed over the same probes, must agree; and its score is the
    // sum over every scored weight.
    let mut s2: Session<f64, Cpu> = Session::new(Cpu, Box::new(move |b| no_bn_sum(&a, &n, b)), 1, PlanOptions::default()).unwrap();
    s2.write_all_params(&params).unwrap();
    s2.forward_backward(&ones, &[0]).unwrap();
    let g = s2.read_all_grads().unwrap();
    let ours_part: f64 = probes.iter().map(|&i| (params[i] * g[i]).abs()).sum();
    assert!(rel(ours_part, fd_score_part) < 1e-6, "{ours_part} vs {fd_score_part}");
    let scored = scored_weights(&graph);
    let full: f64 =
        graph.params.iter().zip(&scored).filter(|(_, k)| **k).flat_map(|(sp, _)| sp.offset..sp.offset + sp.len()).map(|i| (params[i] * g[i]).abs()).sum();
    let score = synflow_with_params(&graph, &params).unwrap();
    assert!(rel(score, full) < 1e-12, "{score} vs {full}");
}

#[test]
fn a_disconnected_cell_gets_finite_scores_and_zero_synflow() {
    let arch: Arch = "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|".parse().unwrap();
    assert!(!arch.is_connected());
    let net = NetConfig { c: 2, n: 1, classes: 10, image_size: 8 };
    let images: Vec<f64> = (0..4 * 3 * 64).map(|i| ((i * 37 % 101) as f64 / 50.0) - 1.0).collect();
    let labels = [0u32, 3, 5, 7];
    let batch = ProxyBatch { images: &images, labels: &labels };
    let scores = score_arch::<f64>(&arch, &net, &Proxy::ALL, Some(&batch), &Weights::Init(0)).unwrap();
    assert_eq!(scores.len(), Proxy::ALL.len());
    for s in &scores {
        assert!(s.score.is_finite(), "{} = {}", s.proxy, s.score);
    }
    let synflow = scores.iter().find(|s| s.proxy == Proxy::Synflow).unwrap();
    assert_eq!(synflow.score, 0.0);
}

#[test]
fn jacob_cov_of_identical_rows_is_finite_and_lowest() {
    let n = 4;
    let same: Vec<f64> = (0..n).flat_map(|_| [1.0, 2.0, 0.5]).collect();
    let zero = vec![0.0; n * 3];
    let varied: Vec<f64> = vec![1.0, 2.0, 0.5, 0.3, -1.0, 2.0, 0.0, 0.1, 0.2, 5.0, 1.0, -2.0];
    let (s_same, s_zero, s_varied) = (jacob_cov::jacob_cov_score(&same, n), jacob_cov::jacob_cov_score(&zero, n), jacob_cov::jacob_cov_score(&varied, n));
    assert!(s_same.is_finite() && s_zero.is_finite());
    assert!((s_same - s_zero).abs() < 1e-6 * s_same.abs(), "{s_same} vs {s_zero}");
    assert!(s_varied > s_same);
    // np.corrcoef by hand for two rows: perfectly anti-correlated.
    let c = jacob_cov::correlation(&[1.0, 2.0, 3.0, 3.0, 2.0, 1.0], 2);
    assert!((c[1] + 1.0).abs() < 1e-12 && (c[2] + 1.0).abs() < 1e-12 && c[0] == 1.0);
}

#[test]
fn linear_algebra_against_known_spectra_and_determinants() {
    // Q diag(1, 2, 5) Q^T for a rotation Q has eigenvalues 1, 2, 5.
    let (c, s) = (0.6f64, 0.8f64);
    let q = [c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0];
    let d = [1.0, 2.0, 5.0];
    let mut a = [0.0; 9];
    for i in 0..3 {
        for j in 0..3 {
            a[i * 3 + j] = (0..3).map(|k| q[i * 3 + k] * d[k] * q[j * 3 + k]).sum();
        }
    }
    let eig = symmetric_eigenvalues(&a, 3);
    for (e, want) in eig.iter().zip([1.0, 2.0, 5.0]) {
        assert!((e - want).abs() < 1e-12, "{eig:?}");
    }
    assert!((log_abs_det(&a, 3).unwrap() - 10f64.ln()).abs() < 1e-12);
    // A row swap and a negative pivot: |det| = |0*... | computed by hand = 6.
    let b = [0.0, 2.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, -1.0];
    assert!((log_abs_det(&b, 3).unwrap() - 6f64.ln()).abs() < 1e-12);
    assert_eq!(log_abs_det(&[1.0, 2.0, 2.0, 4.0], 2), None);
}

#[test]
fn proxy_lists_parse() {
    assert_eq!(parse_proxies("all").unwrap(), Proxy::ALL.to_vec());
    assert_eq!(parse_proxies("snip,synflow,snip").unwrap(), vec![Proxy::Synflow, Proxy::Snip]);
    assert!(parse_proxies("synflow,bogus").unwrap_err().contains("unknown proxy \"bogus\""));
}
