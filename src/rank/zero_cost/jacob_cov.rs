//! jacob_cov (README, "Zero-cost proxies"): J = d(sum of logits)/d(input), one row per sample
//! (train-mode BN, so the rows see the whole batch as PyTorch's do); C = the correlation matrix of
//! J's rows (`np.corrcoef`); score = -sum over C's eigenvalues l of log(l + 1e-5) + 1 / (l + 1e-5).
//!
//! A row with zero variance (a disconnected cell's Jacobian is all zeros) has no correlation;
//! it is taken as perfectly correlated with every row, the least informative case, so such a
//! cell gets the all-ones matrix's score (very negative, finite) rather than NaN.

use anyhow::Result;

use crate::engine::{Device, Float, Session};

use super::linalg::symmetric_eigenvalues;

const K: f64 = 1e-5;

/// jacob_cov of the batch (`images`, `labels`) on a session whose network ends in
/// [`crate::engine::Head::SumAll`] and is planned with `input_grad` on.
pub fn jacob_cov<T: Float, D: Device<T>>(session: &mut Session<T, D>, images: &[T], labels: &[u32]) -> Result<f64> {
    let n = labels.len();
    session.forward_backward(images, labels)?;
    let j: Vec<f64> = session.read_input_grad(n)?.into_iter().map(Float::as_f64).collect();
    Ok(jacob_cov_score(&j, n))
}

/// The score of a Jacobian `j` of `n` rows.
pub fn jacob_cov_score(j: &[f64], n: usize) -> f64 {
    let c = correlation(j, n);
    symmetric_eigenvalues(&c, n).iter().map(|l| -((l + K).ln() + 1.0 / (l + K))).sum()
}

/// `np.corrcoef` of the rows of `x` (`n` rows), clipped to [-1, 1]; zero-variance rows are
/// correlated 1 with everything (see the module).
pub fn correlation(x: &[f64], n: usize) -> Vec<f64> {
    let d = x.len().checked_div(n).unwrap_or(0);
    let centred: Vec<Vec<f64>> = x
        .chunks_exact(d.max(1))
        .take(n)
        .map(|row| {
            let mean = row.iter().sum::<f64>() / d as f64;
            row.iter().map(|v| v - mean).collect()
        })
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let var: Vec<f64> = centred.iter().map(|r| dot(r, r)).collect();
    let mut c = vec![1.0; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let v = if var[i] > 0.0 && var[j] > 0.0 { (dot(&centred[i], &centred[j]) / (var[i].sqrt() * var[j].sqrt())).clamp(-1.0, 1.0) } else { 1.0 };
            c[i * n + j] = v;
            c[j * n + i] = v;
        }
    }
    c
}
