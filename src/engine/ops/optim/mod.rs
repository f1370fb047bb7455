//! Optimiser ops over the flat parameter buffers: the gradients' squared norm, clipping by it,
//! PyTorch SGD (momentum, Nesterov, weight decay), and loss scaling's unscale and update. CPU face in `cpu.rs`, CUDA face in `optim.cu`
//! launched by `launch.rs`, self-test cases in `check.rs`.

pub(crate) mod check;
mod cpu;
pub mod launch;

pub use cpu::*;

use super::CpuView;
use crate::engine::kernel::Loc;
use crate::engine::loss_scale::{self, LossScaling};
use crate::engine::Float;

/// The optimiser kernels.
#[derive(Clone, Debug, PartialEq)]
pub enum OptimKernel {
    /// out = sum of squares of `x` (one element; the global norm before clipping).
    SumSquares { x: Loc, out: Loc },
    /// grads *= min(1, max_norm / (sqrt(sum_sq) + 1e-6)) (PyTorch clip_grad_norm_).
    ClipByNorm { grads: Loc, sum_sq: Loc, max_norm: f64 },
    /// PyTorch SGD: g += wd*w; buf = m*buf + g; g = g + m*buf (Nesterov) or buf; w -= lr*g.
    /// The learning rate is read from the one-element location `lr`. With `skip`, nothing at all
    /// when that one-element location is not zero (loss scaling found a non-finite gradient).
    Sgd { w: Loc, g: Loc, buf: Loc, lr: Loc, momentum: f64, weight_decay: f64, nesterov: bool, skip: Option<Loc> },
    /// Loss scaling ([`crate::engine::loss_scale`]): grads *= 1/S, and the state's found-inf
    /// flag set when any result is not finite (`state`: its [`loss_scale::SLOTS`] slots).
    UnscaleGrads { grads: Loc, state: Loc },
    /// Loss scaling's update after the step: the scale halved (a skipped step) or grown, the
    /// counters moved, the flag reset; `loss` set to NaN when the scaling gives up.
    UpdateLossScale { state: Loc, loss: Loc, rules: LossScaling },
}

impl OptimKernel {
    pub fn name(&self) -> &'static str {
        match self {
            OptimKernel::SumSquares { .. } => "sum_squares",
            OptimKernel::ClipByNorm { .. } => "clip_by_norm",
            OptimKernel::Sgd { .. } => "sgd",
            OptimKernel::UnscaleGrads { .. } => "unscale_grads",
            OptimKernel::UpdateLossScale { .. } => "update_loss_scale",
        }
    }

    /// Inputs, then the outputs (SGD writes the decayed gradient in place, the weights and the
    /// momentum).
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        match self {
            OptimKernel::SumSquares { x, out } => vec![x, out],
            OptimKernel::ClipByNorm { grads, sum_sq, .. } => vec![sum_sq, grads],
            OptimKernel::Sgd { w, g, buf, lr, skip, .. } => [lr].into_iter().chain(skip.as_mut()).chain([g, w, buf]).collect(),
            OptimKernel::UnscaleGrads { grads, state } => vec![grads, state],
            OptimKernel::UpdateLossScale { state, loss, .. } => vec![state, loss],
        }
    }

    pub fn outputs(&self) -> usize {
        match self {
            OptimKernel::Sgd { .. } => 3,
            OptimKernel::UnscaleGrads { .. } | OptimKernel::UpdateLossScale { .. } => 2,
            _ => 1,
        }
    }

    pub fn accumulates(&self) -> bool {
        true
    }

    pub(crate) fn run_cpu<T: Float>(&self, m: &CpuView<T>) {
        match *self {
            OptimKernel::SumSquares { x, out } => m.w(out)[0] = sum_squares(m.r(x)),
            OptimKernel::ClipByNorm { grads, sum_sq, max_norm } => clip_by_norm(m.w(grads), m.r(sum_sq)[0], max_norm),
            OptimKernel::Sgd { w, g, buf, lr, momentum, weight_decay, nesterov, skip } => {
                if skip.is_none_or(|s| m.r(s)[0] == T::zero()) {
                    sgd(m.w(w), m.w(g), m.w(buf), m.r(lr)[0], momentum, weight_decay, nesterov)
                }
            }
            OptimKernel::UnscaleGrads { grads, state } => {
                let s = m.w(state);
                if loss_scale::unscale(m.w(grads), s[loss_scale::INV_SCALE]) {
                    s[loss_scale::FOUND_INF] = T::one();
                }
            }
            OptimKernel::UpdateLossScale { state, loss, rules } => {
                if loss_scale::update(m.w(state), &rules) {
                    m.w(loss)[0] = T::from_f64(f64::NAN);
                }
            }
        }
    }
}
