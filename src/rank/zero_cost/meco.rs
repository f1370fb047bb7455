//! MeCo (Jiang et al., NeurIPS 2023): one train-mode forward of one image (the released
//! NATS-Bench script's batch of 1 from the training set, PyTorch's default initialisation); for
//! the output of every module a forward hook sees, the smallest eigenvalue of the correlation
//! matrix of its channels (`torch.corrcoef` of the first sample's [C, H*W], NaN entries, i.e.
//! constant channels, set to 0); score = the sum over modules.
//!
//! Modules are counted as on the network the authors hooked (foresight's NAS201Model): a
//! ReLUConvBN's BN output three times (BN, Sequential, op), a pooling edge's twice, the stem's BN
//! three times, the last cell of each stage twice, a skip edge's output (its input) once, and so
//! on ([`crate::engine::Graph::taps`]). Outputs with one position per channel (a `none` edge's
//! zeros, the pooled features, the logits) have an all-zero correlation matrix and add 0.

use anyhow::Result;

use crate::engine::{Device, Float, Session};

use super::linalg::symmetric_eigenvalues;

/// MeCo of the one image `image` on a session of batch 1 planned with `taps`.
pub fn meco<T: Float, D: Device<T>>(session: &mut Session<T, D>, image: &[T]) -> Result<f64> {
    session.forward_backward(image, &[0])?;
    let mut score = 0.0;
    for (cov, modules) in session.read_tap_cov(1)? {
        let cov: Vec<f64> = cov.into_iter().map(Float::as_f64).collect();
        score += modules as f64 * smallest_correlation_eigenvalue(&cov);
    }
    Ok(score)
}

/// The smallest eigenvalue of the correlation matrix of a covariance `cov` ([c, c]), entries of
/// a zero-variance channel 0 (its diagonal too, as `corr[isnan(corr)] = 0` does).
pub fn smallest_correlation_eigenvalue(cov: &[f64]) -> f64 {
    let c = (cov.len() as f64).sqrt().round() as usize;
    let sd: Vec<f64> = (0..c).map(|i| cov[i * c + i].max(0.0).sqrt()).collect();
    let corr: Vec<f64> = (0..c * c)
        .map(|k| {
            let (a, b) = (k / c, k % c);
            if sd[a] > 0.0 && sd[b] > 0.0 {
                (cov[k] / (sd[a] * sd[b])).clamp(-1.0, 1.0)
            } else {
                0.0
            }
        })
        .collect();
    symmetric_eigenvalues(&corr, c).first().copied().unwrap_or(0.0)
}
