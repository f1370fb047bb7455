//! SWAP (Peng et al., ICLR 2024, arXiv 2403.04161; code pym1024/SWAP): a train-mode forward of
//! 16 training images at N(0, 1) conv and linear weights (BN weights 1, biases 0); each unit of
//! every ReLU's output has a sample-wise activation pattern, its signs over the 16 images; the
//! score is the number of distinct patterns over all units, averaged over 32 re-initialisations
//! (the released correlation script's `--input_samples 16 --repeats 32`).
//!
//! The paper's regularised SWAP multiplies this by exp(-(params / 1e3 - mu)^2 / sigma), mu and
//! sigma tuned per search space; the released code does not give NATS-Bench's values, so `swap`
//! here is the plain score.

use anyhow::Result;

use crate::engine::{Device, Float, Session};

/// Images SWAP reads.
pub const SWAP_SAMPLES: usize = 16;
/// Re-initialisations SWAP averages over.
pub const SWAP_REPEATS: usize = 32;

/// The number of distinct activation patterns after a forward of `images` on a session planned
/// with `relu_patterns` and nothing trainable.
pub fn swap_patterns<T: Float, D: Device<T>>(session: &mut Session<T, D>, images: &[T]) -> Result<usize> {
    let n = session.graph().batch();
    session.forward_backward(images, &vec![0; n])?;
    let patterns: Vec<Vec<f64>> = session.read_relu_patterns(n)?.into_iter().map(|p| p.into_iter().map(Float::as_f64).collect()).collect();
    Ok(distinct_patterns(&patterns))
}

/// How many distinct values the patterns of all units hold.
pub fn distinct_patterns(per_relu: &[Vec<f64>]) -> usize {
    let mut all: Vec<u32> = per_relu.iter().flatten().map(|v| *v as u32).collect();
    all.sort_unstable();
    all.dedup();
    all.len()
}
