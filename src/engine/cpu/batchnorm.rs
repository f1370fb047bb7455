//! Batch normalisation over [n, c, hw] (PyTorch BatchNorm2d semantics).
use crate::engine::Float;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BnGeom {
    pub n: usize,
    pub c: usize,
    /// Spatial size h*w (1 for [n, c] features).
    pub hw: usize,
}

/// Train mode: normalise with the biased batch variance; running_mean/var updated in place with
/// `running = (1 - momentum) * running + momentum * batch` (the variance update uses the unbiased
/// variance). Writes the batch `mean` and `invstd = 1/sqrt(var_biased + eps)` (length c) for backward.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train_forward<T: Float>(
    _g: &BnGeom, _x: &[T], _gamma: &[T], _beta: &[T], _eps: f64, _momentum: f64,
    _running_mean: &mut [T], _running_var: &mut [T], _y: &mut [T], _mean: &mut [T], _invstd: &mut [T],
) { unimplemented!() }

/// Eval mode: normalise with the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_eval_forward<T: Float>(
    _g: &BnGeom, _x: &[T], _gamma: &[T], _beta: &[T], _running_mean: &[T], _running_var: &[T],
    _eps: f64, _y: &mut [T],
) { unimplemented!() }

/// Backward of train mode; accumulates into whichever gradients are requested.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward<T: Float>(
    _g: &BnGeom, _x: &[T], _dy: &[T], _gamma: &[T], _mean: &[T], _invstd: &[T],
    _dx: Option<&mut [T]>, _dgamma: Option<&mut [T]>, _dbeta: Option<&mut [T]>,
) { unimplemented!() }
