//! NASWOT (README, "Zero-cost proxies"): per sample, the binary code c = (input of each ReLU > 0)
//! over every ReLU of the network; K = sum over ReLUs of c c^T + (1 - c)(1 - c)^T, i.e. `K[i][j]`
//! counts the units on which samples i and j agree; score = log |det K|. One train-mode forward; K
//! accumulates on the tape ([`crate::engine::ops::ProbeKernel::BinaryCodeGram`], planned with
//! `PlanOptions::relu_codes`).
//!
//! A singular K (two samples with identical codes everywhere) has log |det K| = -inf; it is
//! reported as `f64::MIN`, the lowest finite score.

use anyhow::Result;

use crate::engine::{Device, Float, Session};

use super::linalg::log_abs_det;

/// NASWOT of the batch on a session planned with `relu_codes` and nothing trainable.
pub fn naswot<T: Float, D: Device<T>>(session: &mut Session<T, D>, images: &[T], labels: &[u32]) -> Result<f64> {
    let n = labels.len();
    session.forward_backward(images, labels)?;
    let k: Vec<f64> = session.read_code_gram(n)?.into_iter().map(Float::as_f64).collect();
    Ok(naswot_score(&k, n))
}

/// log |det K|, `f64::MIN` for a singular K.
pub fn naswot_score(k: &[f64], n: usize) -> f64 {
    log_abs_det(k, n).unwrap_or(f64::MIN)
}
