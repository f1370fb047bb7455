//! AZ-NAS's three scores and ZiCo held to PyTorch float64 autograd on tiny networks
//! (`tests/fixtures/proxies/modern/*.safetensors`, written by
//! `scripts/make_modern_proxy_fixtures.py`, which draws the same random-sign cotangents), and
//! their probe ops held to direct f64 computations.

use std::collections::HashMap;
use std::path::PathBuf;

use fear::engine::ops::feature_probe::{feature_covariance, grad_cross_covariance, random_sign, random_signs, CrossGeom};
use fear::net::NetConfig;
use fear::rank::zero_cost::az_nas::{largest_singular_value, spectral_entropy};
use fear::rank::zero_cost::score::{az_scores_of, score_arch, ProxyBatch, Weights};
use fear::rank::zero_cost::{parse_proxies, Proxy};
use fear::space::Arch;

mod common;
use common::torch_fixtures::torch_fixtures;

struct Fixture {
    path: PathBuf,
    arch: Arch,
    net: NetConfig,
    named: Vec<(String, Vec<f64>)>,
    az_input: Vec<f64>,
    zico_input: Vec<f64>,
    zico_labels: Vec<u32>,
    meco_input: Vec<f64>,
    /// PyTorch's -inf as f64::MIN, the lowest finite score fear reports.
    scores: HashMap<String, f64>,
}

fn fixtures() -> Vec<Fixture> {
    torch_fixtures("proxies/modern")
        .into_iter()
        .map(|t| Fixture {
            named: t.under("param/"),
            az_input: t.tensor("az_input"),
            zico_input: t.tensor("zico_input"),
            zico_labels: t.labels("zico_labels"),
            meco_input: t.tensor("meco_input"),
            arch: t.arch,
            net: t.net,
            scores: t.scores,
            path: t.path,
        })
        .collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    a == b || (a - b).abs() <= tol * b.abs().max(1e-3)
}

#[test]
fn az_nas_scores_match_pytorch_autograd_in_float64() {
    for f in fixtures() {
        let az = az_scores_of::<f64>(&f.arch, &f.net, &Weights::Named(f.named.clone()), Some(&f.az_input)).unwrap();
        for (name, got) in [("az_expressivity", az.expressivity), ("az_progressivity", az.progressivity), ("az_trainability", az.trainability)] {
            let want = f.scores[name];
            assert!(close(got, want, 1e-9), "{}: {name} = {got}, PyTorch {want}", f.path.display());
        }
    }
}

#[test]
fn zico_matches_pytorch_autograd_in_float64() {
    let proxies = parse_proxies("zico").unwrap();
    for f in fixtures() {
        let batch = ProxyBatch { images: &f.zico_input, labels: &f.zico_labels };
        let scores = score_arch::<f64>(&f.arch, &f.net, &proxies, Some(&batch), &Weights::Named(f.named.clone())).unwrap();
        let (got, want) = (scores[0].score, f.scores["zico"]);
        assert!(close(got, want, 1e-9), "{}: zico = {got}, PyTorch {want}", f.path.display());
    }
}

#[test]
fn meco_matches_pytorch_forward_hooks_in_float64() {
    let proxies = parse_proxies("meco").unwrap();
    for f in fixtures() {
        let batch = ProxyBatch { images: &f.meco_input, labels: &[0] };
        let scores = score_arch::<f64>(&f.arch, &f.net, &proxies, Some(&batch), &Weights::Named(f.named.clone())).unwrap();
        let (got, want) = (scores[0].score, f.scores["meco"]);
        assert!(close(got, want, 1e-9), "{}: meco = {got}, PyTorch {want}", f.path.display());
    }
}

#[test]
fn swap_matches_pytorch_forward_hooks() {
    let proxies = parse_proxies("swap").unwrap();
    for f in fixtures() {
        let batch = ProxyBatch { images: &f.zico_input, labels: &f.zico_labels };
        let scores = score_arch::<f64>(&f.arch, &f.net, &proxies, Some(&batch), &Weights::Named(f.named.clone())).unwrap();
        assert_eq!(scores[0].score, f.scores["swap"], "{}", f.path.display());
    }
    assert_eq!(fear::rank::zero_cost::swap::distinct_patterns(&[vec![1.0, 3.0, 1.0], vec![0.0, 3.0]]), 3);
    // Samples are bits: unit 0 is positive in samples 0 and 2, unit 1 in none, unit 2 in sample 1.
    let x = [1.0f32, -1.0, 0.0, 0.0, 0.0, 2.0, 3.0, -2.0, 0.0];
    let mut out = [9.0f32; 3];
    fear::engine::ops::feature_probe::activation_patterns(3, 3, &x, &mut out);
    assert_eq!(out, [5.0, 0.0, 2.0]);
}

#[test]
fn az_nas_stands_for_its_four_scores_and_all_of_them_run_in_float32() {
    assert_eq!(parse_proxies("az_nas").unwrap(), vec![Proxy::Flops, Proxy::AzExpressivity, Proxy::AzProgressivity, Proxy::AzTrainability]);
    let f = &fixtures()[0];
    let proxies = parse_proxies("az_nas,meco,zico,swap").unwrap();
    let images: Vec<f32> = f.zico_input.iter().map(|v| *v as f32).collect();
    let batch = ProxyBatch { images: &images, labels: &f.zico_labels };
    let scores = score_arch::<f32>(&f.arch, &f.net, &proxies, Some(&batch), &Weights::Init(3)).unwrap();
    assert_eq!(scores.len(), 7);
    assert!(scores.iter().all(|s| s.score.is_finite() && s.seconds >= 0.0), "{scores:?}");
}

#[test]
fn a_disconnected_cell_scores_lowest_on_expressivity_and_progressivity() {
    let arch: Arch = "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|".parse().unwrap();
    let net = NetConfig { c: 2, n: 1, classes: 10, image_size: 8 };
    let az = az_scores_of::<f64>(&arch, &net, &Weights::Init(0), None).unwrap();
    assert_eq!((az.expressivity, az.progressivity), (f64::MIN, f64::MIN));
    assert_eq!(az.trainability, 2.0 - 1.0 / 1e-6);
}

#[test]
fn feature_covariance_is_the_channel_covariance_over_positions() {
    let (n, c, hw) = (3, 4, 5);
    let x: Vec<f64> = (0..n * c * hw).map(|i| ((i * 37 % 23) as f64 / 7.0).sin()).collect();
    let mut out = vec![0.0; c * c];
    feature_covariance(n, c, hw, &x, &mut out);
    let at = |i: usize, ch: usize, p: usize| x[(i * c + ch) * hw + p];
    let mean = |ch: usize| (0..n).flat_map(|i| (0..hw).map(move |p| (i, p))).map(|(i, p)| at(i, ch, p)).sum::<f64>() / (n * hw) as f64;
    for a in 0..c {
        for b in 0..c {
            let want: f64 = (0..n).flat_map(|i| (0..hw).map(move |p| (i, p))).map(|(i, p)| (at(i, a, p) - mean(a)) * (at(i, b, p) - mean(b))).sum::<f64>()
                / (n * hw) as f64;
            assert!((out[a * c + b] - want).abs() < 1e-12, "{a},{b}");
        }
    }
    // Entropy of the normalised spectrum: log(c) for an isotropic covariance.
    let eye: Vec<f64> = (0..16).map(|i| if i % 5 == 0 { 2.0 } else { 0.0 }).collect();
    assert!((spectral_entropy(&eye) - 4f64.ln()).abs() < 1e-6);
}

#[test]
fn grad_cross_covariance_unshuffles_like_pytorch_and_flags_identity() {
    let g = CrossGeom { n: 2, c_in: 2, h_in: 4, w_in: 4, c_out: 3, h_out: 2, w_out: 2 };
    let g_in: Vec<f64> = (0..g.in_len()).map(|i| (i as f64 * 0.37).cos()).collect();
    let g_out: Vec<f64> = (0..g.out_grad_len()).map(|i| (i as f64 * 0.11).sin()).collect();
    let mut out = vec![9.0; g.out_len()];
    grad_cross_covariance(&g, &g_in, &g_out, &mut out);
    for c in 0..2 {
        for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            for o in 0..3 {
                let mut want = 0.0;
                for b in 0..2 {
                    for y in 0..2 {
                        for x in 0..2 {
                            want += g_in[((b * 2 + c) * 4 + 2 * y + i) * 4 + 2 * x + j] * g_out[((b * 3 + o) * 2 + y) * 2 + x];
                        }
                    }
                }
                let row = (c * 2 + i) * 2 + j;
                assert!((out[row * 3 + o] - want / 8.0).abs() < 1e-12);
            }
        }
    }
    assert_eq!(out[g.out_len() - 1], 0.0);
    let same = CrossGeom { n: 1, c_in: 2, h_in: 2, w_in: 2, c_out: 2, h_out: 2, w_out: 2 };
    let v: Vec<f64> = (0..8).map(|i| i as f64).collect();
    let mut out = vec![0.0; same.out_len()];
    grad_cross_covariance(&same, &v, &v, &mut out);
    assert_eq!(out[same.out_len() - 1], 1.0);
    // The largest singular value of diag(3, -4) is 4.
    assert!((largest_singular_value(&[3.0, 0.0, 0.0, -4.0, 0.0, 0.0], 3, 2) - 4.0).abs() < 1e-12);
}

#[test]
fn random_signs_are_balanced_and_reproducible() {
    let mut y = vec![0.0f64; 10_000];
    random_signs(42, &mut y);
    assert!(y.iter().all(|v| *v == 1.0 || *v == -1.0));
    assert!(y.iter().sum::<f64>().abs() < 400.0);
    assert!(y.iter().enumerate().all(|(i, v)| *v == random_sign(42, i)));
    let mut other = vec![0.0f64; 10_000];
    random_signs(43, &mut other);
    assert_ne!(y, other);
}
