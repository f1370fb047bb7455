//! AZ-NAS (Lee & Ham, CVPR 2024, arXiv 2403.19232): three scores of one train-mode forward and
//! backward of the network at its kaiming-normal (fan-in) initialisation on a batch of 64
//! standard-normal images (no data), over the cell features f_0 (the stem's output) .. f_L (the
//! last cell's):
//!
//! - expressivity = sum over features of the entropy of the normalised eigenvalues of the channel
//!   covariance (positions of all images as samples, divided by their count);
//! - progressivity = the smallest increase of that entropy from one feature to the next;
//! - trainability = mean over cells of 2 - s - 1/(s + 1e-6), s the largest singular value of the
//!   cross-covariance of the cell's input gradient (its vector-Jacobian product of random ±1
//!   signs on its output, pixel-unshuffled to the output's size) with those signs; a cell that is
//!   its input (the identity) scores -inf;
//!
//! and the fourth, complexity, is the FLOPs. `az_nas` is their non-linear rank aggregation,
//! sum of log(rank / m) over the m architectures scored, computed by `fear evaluate`
//! (`crate::eval::ensemble`) since it needs the whole population.
//!
//! Non-finite scores (-inf, or NaN where a feature is all zeros after a disconnected cell) are
//! reported as `f64::MIN`, the lowest finite score, as the released code ranks them lowest.
//! A disconnected network has no backward pass here (its loss does not depend on the input);
//! its trainability is that of an all-zero cross-covariance, 2 - 1e6. (PyTorch keeps `none`
//! edges as `x * 0` in its graph, so cells after a disconnected one there still pass gradient
//! through skip and pooling edges; this only reorders networks already tied last by the other
//! two scores.)

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::engine::ops::CrossGeom;
use crate::engine::{Device, Float, Graph, Init, Session};

use super::linalg::symmetric_eigenvalues;
use super::scored_weights;

/// The batch AZ-NAS scores (its NATS-Bench configuration's batch size).
pub const AZ_BATCH: usize = 64;

/// AZ-NAS's three training-free scores of one network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AzScores {
    pub expressivity: f64,
    pub progressivity: f64,
    pub trainability: f64,
}

/// The scores of the network in `session` (planned with `cell_probes`, input gradient on,
/// nothing trainable, the network ending in a [`crate::engine::Head::SumAll`]) on `images`.
pub fn az_scores<T: Float, D: Device<T>>(session: &mut Session<T, D>, images: &[T]) -> Result<AzScores> {
    let n = session.graph().batch();
    session.forward_backward(images, &vec![0; n])?;
    let widen = |v: Vec<T>| v.into_iter().map(Float::as_f64).collect::<Vec<f64>>();
    let entropies: Vec<f64> = session.read_feature_cov(n)?.into_iter().map(|c| spectral_entropy(&widen(c))).collect();
    let cells = session.graph().features.len().saturating_sub(1);
    let cross = session.read_cell_cross(n)?;
    let per_cell: Vec<f64> = if cross.is_empty() {
        vec![cell_trainability(&[0.0], 1, 1); cells]
    } else {
        cross.into_iter().map(|c| c.map_or(f64::NEG_INFINITY, |(g, v)| cross_score(&g, &widen(v)))).collect()
    };
    Ok(AzScores {
        expressivity: lowest_if_not_finite(entropies.iter().sum()),
        progressivity: lowest_if_not_finite(entropies.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, nan_min)),
        trainability: lowest_if_not_finite(per_cell.iter().sum::<f64>() / per_cell.len().max(1) as f64),
    })
}

/// `np.min` semantics: NaN wins.
fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn lowest_if_not_finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        f64::MIN
    }
}

/// Entropy of the eigenvalues of the covariance `cov` ([c, c]) normalised to sum 1:
/// sum of -p ln(p + 1e-8), as the released code (NaN for an all-zero feature).
pub fn spectral_entropy(cov: &[f64]) -> f64 {
    let c = (cov.len() as f64).sqrt().round() as usize;
    let s = symmetric_eigenvalues(cov, c);
    let total: f64 = s.iter().sum();
    s.iter().map(|v| v / total).map(|p| -p * (p + 1e-8).ln()).sum()
}

/// One cell's trainability from its cross-covariance `values` (matrix then identity flag).
pub fn cross_score(g: &CrossGeom, values: &[f64]) -> f64 {
    if values[g.out_len() - 1] != 0.0 {
        return f64::NEG_INFINITY;
    }
    cell_trainability(&values[..g.rows() * g.c_out], g.rows(), g.c_out)
}

/// 2 - s - 1/(s + 1e-6), s the largest singular value of the `rows x cols` matrix `m`.
pub fn cell_trainability(m: &[f64], rows: usize, cols: usize) -> f64 {
    let s = largest_singular_value(m, rows, cols);
    -s - 1.0 / (s + 1e-6) + 2.0
}

/// sqrt of the largest eigenvalue of the smaller of m^T m and m m^T.
pub fn largest_singular_value(m: &[f64], rows: usize, cols: usize) -> f64 {
    let (k, inner) = if cols <= rows { (cols, rows) } else { (rows, cols) };
    let at = |a: usize, i: usize| if cols <= rows { m[i * cols + a] } else { m[a * cols + i] };
    let mut gram = vec![0.0; k * k];
    for a in 0..k {
        for b in a..k {
            let v: f64 = (0..inner).map(|i| at(a, i) * at(b, i)).sum();
            gram[a * k + b] = v;
            gram[b * k + a] = v;
        }
    }
    symmetric_eigenvalues(&gram, k).last().copied().unwrap_or(0.0).max(0.0).sqrt()
}

/// Every parameter of `graph` by name at AZ-NAS's initialisation: conv and linear weights
/// N(0, 2 / fan_in) (kaiming normal, fan in, ReLU gain), their biases 0, BN weights 1 and
/// biases 0.
pub fn kaiming_normal_params(graph: &Graph, seed: u64) -> Vec<(String, Vec<f64>)> {
    normal_params(graph, seed, |fan_in| (2.0 / fan_in as f64).sqrt())
}

/// Every parameter of `graph` by name: conv and linear weights N(0, std(fan_in)^2), their biases
/// 0, BN weights 1 and biases 0.
pub fn normal_params(graph: &Graph, seed: u64, std: impl Fn(usize) -> f64) -> Vec<(String, Vec<f64>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let scored = scored_weights(graph);
    graph
        .params
        .iter()
        .zip(&scored)
        .map(|(spec, &weight)| {
            let values = if weight {
                let std = std(spec.shape[1..].iter().product::<usize>());
                (0..spec.len()).map(|_| std * standard_normal(&mut rng)).collect()
            } else {
                vec![if spec.init == Init::Ones { 1.0 } else { 0.0 }; spec.len()]
            };
            (spec.name.clone(), values)
        })
        .collect()
}

/// `len` standard-normal values from `seed` (AZ-NAS's random input batch).
pub fn standard_normal_batch(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| standard_normal(&mut rng)).collect()
}

/// One N(0, 1) draw (Box-Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}
