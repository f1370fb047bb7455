//! The ops behind the 2021 zero-cost proxies: the sum of all outputs (synflow's loss) and its
//! backward, the per-channel Fisher information, and NASWOT's binary-code Gram matrix. CPU face
//! in `cpu.rs`, CUDA face in `probe.cu` launched by `launch.rs`, self-test cases in `check.rs`.

pub(crate) mod check;
mod cpu;
pub mod launch;

pub use cpu::*;

use super::CpuView;
use crate::engine::kernel::Loc;
use crate::engine::Float;

/// The proxy probe kernels.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeKernel {
    /// out = the sum of every element of `x` (one element): a loss that is the sum of the outputs.
    SumAll { x: Loc, out: Loc },
    /// dx += 1: the backward of `SumAll`, seeding the tape.
    SumAllBackward { dx: Loc },
    /// out[c] = 0.5 * mean over n of (sum over hw of x * dy)^2 (x: a layer's output [n, c, hw],
    /// dy: its gradient).
    ChannelFisher { n: usize, c: usize, hw: usize, x: Loc, dy: Loc, out: Loc },
    /// k [n, n] += agreements of the samples' binary codes `x > 0` (x: [n, d], a ReLU's input).
    BinaryCodeGram { n: usize, d: usize, x: Loc, k: Loc },
}

impl ProbeKernel {
    pub fn name(&self) -> &'static str {
        match self {
            ProbeKernel::SumAll { .. } => "sum_all",
            ProbeKernel::SumAllBackward { .. } => "sum_all_backward",
            ProbeKernel::ChannelFisher { .. } => "channel_fisher",
            ProbeKernel::BinaryCodeGram { .. } => "binary_code_gram",
        }
    }

    /// Inputs, then the one output.
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        match self {
            ProbeKernel::SumAll { x, out } => vec![x, out],
            ProbeKernel::SumAllBackward { dx } => vec![dx],
            ProbeKernel::ChannelFisher { x, dy, out, .. } => vec![x, dy, out],
            ProbeKernel::BinaryCodeGram { x, k, .. } => vec![x, k],
        }
    }

    pub fn outputs(&self) -> usize {
        1
    }

    pub fn accumulates(&self) -> bool {
        true
    }

    pub(crate) fn run_cpu<T: Float>(&self, m: &CpuView<T>) {
        match *self {
            ProbeKernel::SumAll { x, out } => m.w(out)[0] = sum_all(m.r(x)),
            ProbeKernel::SumAllBackward { dx } => sum_all_backward(m.w(dx)),
            ProbeKernel::ChannelFisher { n, c, hw, x, dy, out } => channel_fisher(n, c, hw, m.r(x), m.r(dy), m.w(out)),
            ProbeKernel::BinaryCodeGram { n, d, x, k } => binary_code_gram(n, d, m.r(x), m.w(k)),
        }
    }
}
