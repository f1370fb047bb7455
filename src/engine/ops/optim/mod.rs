//! Optimiser ops over the flat parameter buffers: the gradients' squared norm, clipping by it, and
//! PyTorch SGD (momentum, Nesterov, weight decay). CPU face in `cpu.rs`, CUDA face in `optim.cu`
//! launched by `launch.rs`, self-test cases in `check.rs`.

pub(crate) mod check;
mod cpu;
pub mod launch;

pub use cpu::*;

use super::CpuView;
use crate::engine::kernel::Loc;
use crate::engine::Float;

/// The optimiser kernels.
#[derive(Clone, Debug, PartialEq)]
pub enum OptimKernel {
    /// out = sum of squares of `x` (one element; the global norm before clipping).
    SumSquares { x: Loc, out: Loc },
    /// grads *= min(1, max_norm / (sqrt(sum_sq) + 1e-6)) (PyTorch clip_grad_norm_).
    ClipByNorm { grads: Loc, sum_sq: Loc, max_norm: f64 },
    /// PyTorch SGD: g += wd*w; buf = m*buf + g; g = g + m*buf (Nesterov) or buf; w -= lr*g.
    /// The learning rate is read from the one-element location `lr`.
    Sgd { w: Loc, g: Loc, buf: Loc, lr: Loc, momentum: f64, weight_decay: f64, nesterov: bool },
}

impl OptimKernel {
    pub fn name(&self) -> &'static str {
        match self {
            OptimKernel::SumSquares { .. } => "sum_squares",
            OptimKernel::ClipByNorm { .. } => "clip_by_norm",
            OptimKernel::Sgd { .. } => "sgd",
        }
    }

    /// Inputs, then the outputs (SGD writes the decayed gradient in place, the weights and the
    /// momentum).
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        match self {
            OptimKernel::SumSquares { x, out } => vec![x, out],
            OptimKernel::ClipByNorm { grads, sum_sq, .. } => vec![sum_sq, grads],
            OptimKernel::Sgd { w, g, buf, lr, .. } => vec![lr, g, w, buf],
        }
    }

    pub fn outputs(&self) -> usize {
        match self {
            OptimKernel::Sgd { .. } => 3,
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
            OptimKernel::Sgd { w, g, buf, lr, momentum, weight_decay, nesterov } => sgd(m.w(w), m.w(g), m.w(buf), m.r(lr)[0], momentum, weight_decay, nesterov),
        }
    }
}
