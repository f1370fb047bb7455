//! Softmax cross-entropy (mean over the batch) with the top-1 count. CPU face in `cpu.rs`, CUDA
//! face in `loss.cu` launched by `launch.rs`, self-test cases in `check.rs`.

pub(crate) mod check;
mod cpu;
pub mod launch;

pub use cpu::*;

use super::{assign_or_add, CpuView};
use crate::engine::kernel::Loc;
use crate::engine::Float;

/// The loss kernels. Labels are the device's label buffer (its first `n`).
#[derive(Clone, Debug, PartialEq)]
pub enum LossKernel {
    /// Softmax probabilities into `probs`; mean loss into `loss` and the top-1 count into `correct`
    /// (both one-element locations).
    SoftmaxXentForward { n: usize, classes: usize, logits: Loc, probs: Loc, loss: Loc, correct: Loc },
    /// dlogits += (probs - onehot) * (S / n) (dlogits = 0 + that without `accumulate`), where S
    /// is 1, or with `scale` the loss scale read from that one-element location
    /// ([`crate::engine::loss_scale`]): the gradient of S times the loss.
    SoftmaxXentBackward { n: usize, classes: usize, probs: Loc, dlogits: Loc, accumulate: bool, scale: Option<Loc> },
}

impl LossKernel {
    pub fn name(&self) -> &'static str {
        match self {
            LossKernel::SoftmaxXentForward { .. } => "softmax_xent_forward",
            LossKernel::SoftmaxXentBackward { .. } => "softmax_xent_backward",
        }
    }

    /// Inputs, then the outputs.
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        match self {
            LossKernel::SoftmaxXentForward { logits, probs, loss, correct, .. } => vec![logits, probs, loss, correct],
            LossKernel::SoftmaxXentBackward { probs, dlogits, scale, .. } => [probs].into_iter().chain(scale.as_mut()).chain([dlogits]).collect(),
        }
    }

    pub fn outputs(&self) -> usize {
        match self {
            LossKernel::SoftmaxXentForward { .. } => 3,
            LossKernel::SoftmaxXentBackward { .. } => 1,
        }
    }

    pub fn accumulates(&self) -> bool {
        match *self {
            LossKernel::SoftmaxXentBackward { accumulate, .. } => accumulate,
            _ => true,
        }
    }

    pub(crate) fn run_cpu<T: Float>(&self, m: &CpuView<T>) {
        match *self {
            LossKernel::SoftmaxXentForward { n, classes, logits, probs, loss, correct } => {
                let (l, c) = softmax_xent_forward(n, classes, m.r(logits), &m.labels[..n], m.w(probs));
                m.w(loss)[0] = l;
                m.w(correct)[0] = T::from_f64(c as f64);
            }
            LossKernel::SoftmaxXentBackward { n, classes, probs, dlogits, accumulate, scale } => {
                let dloss = scale.map_or(T::one(), |s| m.r(s)[0]);
                softmax_xent_backward(n, classes, m.r(probs), &m.labels[..n], dloss, assign_or_add(m.w(dlogits), accumulate))
            }
        }
    }
}
