//! Softmax cross-entropy and the top-1 count' CPU face against naive f64 references (forward, f32 and f64) and central
//! finite differences (backward, f64), on small odd shapes (part of the `ops` test target,
//! src/engine/ops/tests.rs).

use fear::engine::ops::loss::*;
use fear::engine::Float;

use crate::*;

fn xent_ref(n: usize, k: usize, logits: &[f64], labels: &[u32]) -> (f64, Vec<f64>) {
    let mut loss = 0.0;
    let mut probs = vec![0.0; n * k];
    for i in 0..n {
        let row = &logits[i * k..(i + 1) * k];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        for j in 0..k {
            probs[i * k + j] = (row[j] - lse).exp();
        }
        loss += lse - row[labels[i] as usize];
    }
    (loss / n as f64, probs)
}

fn xent<T: Float>(n: usize, k: usize, logits: &[f64], labels: &[u32]) -> (f64, usize, Vec<f64>) {
    let mut probs = vec![T::nan(); n * k];
    let (l, c) = softmax_xent_forward(n, k, &cast::<T>(logits), labels, &mut probs);
    (l.as_f64(), c, widen(&probs))
}

#[test]
fn softmax_cross_entropy() {
    let mut r = rng(13);
    let (n, k) = (7, 10);
    for offset in [0.0, 1000.0, -1000.0] {
        // Large offsets: a naive exp would overflow (or underflow to 0/0).
        let logits: Vec<f64> = rand_vec(&mut r, n * k).iter().map(|v| v * 4.0 + offset).collect();
        let labels: Vec<u32> = (0..n).map(|_| r.random_range(0..k as u32)).collect();
        let (want_loss, want_probs) = xent_ref(n, k, &logits, &labels);
        let want_correct = (0..n)
            .filter(|&i| {
                let row = &logits[i * k..(i + 1) * k];
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                row.iter().position(|&v| v == m).unwrap() == labels[i] as usize
            })
            .count();
        let (l64, c64, p64) = xent::<f64>(n, k, &logits, &labels);
        assert!((l64 - want_loss).abs() < 1e-12 * want_loss.abs().max(1.0), "loss f64 {l64} vs {want_loss}");
        assert_close("probs f64", &p64, &want_probs, TOL64);
        assert_eq!(c64, want_correct);
        // f32: the logits themselves carry ~1e-4 absolute rounding at |x| ~ 1000, so compare with
        // the reference on the f32-rounded logits.
        let l32in: Vec<f64> = logits.iter().map(|&v| v as f32 as f64).collect();
        let (want_loss32, want_probs32) = xent_ref(n, k, &l32in, &labels);
        let (l32, c32, p32) = xent::<f32>(n, k, &l32in, &labels);
        assert!((l32 - want_loss32).abs() < 1e-5 * want_loss32.abs().max(1.0), "loss f32 {l32} vs {want_loss32}");
        assert_close("probs f32", &p32, &want_probs32, 1e-5);
        assert_eq!(c32, top1_correct(n, k, &cast::<f32>(&l32in), &labels));
        assert_eq!(c64, top1_correct(n, k, &logits, &labels));

        // Backward: dlogits += dloss * (p - onehot) / n, the gradient of dloss * mean loss.
        let fd = finite_diff(&logits, |z| 2.5 * xent::<f64>(n, k, z, &labels).0);
        let d0 = rand_vec(&mut r, n * k);
        let mut d = d0.clone();
        softmax_xent_backward(n, k, &p64, &labels, 2.5, &mut d);
        assert_close("xent dlogits", &added(&d0, &d), &fd, if offset == 0.0 { TOL_FD } else { 1e-4 });
        let mut d32 = cast::<f32>(&d0);
        softmax_xent_backward(n, k, &cast::<f32>(&p64), &labels, 2.5f32, &mut d32);
        assert_close("xent dlogits f32", &widen(&d32), &d, TOL32);
    }
}

#[test]
fn top1_first_maximum_wins_ties() {
    let logits = [1.0, 3.0, 3.0, 0.0, /**/ 5.0, 5.0, 5.0, 5.0, /**/ -1.0, -2.0, -0.5, -3.0];
    assert_eq!(top1_correct(3, 4, &logits, &[1, 0, 2]), 3);
    assert_eq!(top1_correct(3, 4, &logits, &[2, 1, 2]), 1);
    let mut probs = [0.0f32; 12];
    let logits32: Vec<f32> = logits.iter().map(|&v| v as f32).collect();
    let (_, correct) = softmax_xent_forward(3, 4, &logits32, &[2, 3, 2], &mut probs);
    assert_eq!(correct, 1);
    // Probabilities sum to one; the tied row is uniform.
    for row in probs.chunks(4) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    assert!(probs[4..8].iter().all(|&p| (p - 0.25).abs() < 1e-7));
}
