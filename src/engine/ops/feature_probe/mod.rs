//! The probes of today's training-free rankers: AZ-NAS's feature covariance, random-sign
//! cotangents and gradient cross-covariance, and SWAP's activation patterns. CPU face in
//! `cpu.rs`, CUDA face in `feature_probe.cu` launched by `launch.rs`, self-test cases in
//! `check.rs`.

pub(crate) mod check;
mod cpu;
pub mod launch;

pub use cpu::*;

use super::CpuView;
use crate::engine::kernel::Loc;
use crate::engine::Float;

/// Where a cell's input gradient and its output cotangent live: input [n, c_in, h_in, w_in],
/// output [n, c_out, h_out, w_out], the input `r = h_in / h_out` times larger per side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CrossGeom {
    pub n: usize,
    pub c_in: usize,
    pub h_in: usize,
    pub w_in: usize,
    pub c_out: usize,
    pub h_out: usize,
    pub w_out: usize,
}

impl CrossGeom {
    /// The side ratio r (1 for a normal cell, 2 for a reduction block).
    pub fn ratio(&self) -> usize {
        self.h_in / self.h_out.max(1)
    }
    /// Rows of the matrix: the input channels after a pixel unshuffle by r.
    pub fn rows(&self) -> usize {
        self.c_in * self.ratio() * self.ratio()
    }
    /// Elements of the output: the [rows, c_out] matrix, then the identity flag.
    pub fn out_len(&self) -> usize {
        self.rows() * self.c_out + 1
    }
    pub fn in_len(&self) -> usize {
        self.n * self.c_in * self.h_in * self.w_in
    }
    pub fn out_grad_len(&self) -> usize {
        self.n * self.c_out * self.h_out * self.w_out
    }
}

/// The feature-probe kernels.
#[derive(Clone, Debug, PartialEq)]
pub enum FeatureProbeKernel {
    /// out [c, c] = the channel covariance of x [n, c, hw] over n * hw (AZ-NAS expressivity).
    FeatureCovariance { n: usize, c: usize, hw: usize, x: Loc, out: Loc },
    /// y = random signs drawn from `seed` (AZ-NAS's cotangent of a cell's output).
    RandomSigns { seed: u64, y: Loc },
    /// out = the cross-covariance of a cell's input gradient with its output cotangent, then an
    /// identity flag (AZ-NAS trainability; see [`grad_cross_covariance`]).
    GradCrossCovariance { g: CrossGeom, g_in: Loc, g_out: Loc, out: Loc },
    /// out [d] = each unit's pattern of `x > 0` over the n samples as an integer (SWAP; x: [n, d],
    /// a ReLU's input).
    ActivationPatterns { n: usize, d: usize, x: Loc, out: Loc },
}

impl FeatureProbeKernel {
    pub fn name(&self) -> &'static str {
        match self {
            FeatureProbeKernel::FeatureCovariance { .. } => "feature_covariance",
            FeatureProbeKernel::RandomSigns { .. } => "random_signs",
            FeatureProbeKernel::GradCrossCovariance { .. } => "grad_cross_covariance",
            FeatureProbeKernel::ActivationPatterns { .. } => "activation_patterns",
        }
    }

    /// Inputs, then the one output.
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        match self {
            FeatureProbeKernel::FeatureCovariance { x, out, .. } => vec![x, out],
            FeatureProbeKernel::RandomSigns { y, .. } => vec![y],
            FeatureProbeKernel::GradCrossCovariance { g_in, g_out, out, .. } => vec![g_in, g_out, out],
            FeatureProbeKernel::ActivationPatterns { x, out, .. } => vec![x, out],
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
            FeatureProbeKernel::FeatureCovariance { n, c, hw, x, out } => feature_covariance(n, c, hw, m.r(x), m.w(out)),
            FeatureProbeKernel::RandomSigns { seed, y } => random_signs(seed, m.w(y)),
            FeatureProbeKernel::GradCrossCovariance { g, g_in, g_out, out } => grad_cross_covariance(&g, m.r(g_in), m.r(g_out), m.w(out)),
            FeatureProbeKernel::ActivationPatterns { n, d, x, out } => activation_patterns(n, d, m.r(x), m.w(out)),
        }
    }
}
