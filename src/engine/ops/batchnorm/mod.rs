//! Batch normalisation over [n, c, hw] (PyTorch BatchNorm2d semantics): training forward (batch
//! statistics, running statistics updated), evaluation forward (running statistics), backward.
//! CPU face in `cpu.rs`, CUDA face in `batchnorm.cu` launched by `launch.rs`, self-test cases in
//! `check.rs`.

pub(crate) mod check;
mod cpu;
pub mod launch;
mod pair;

pub use cpu::*;
pub use pair::{merge_batch_norm_backwards, BnCoefficientBackward};

use super::{assign_or_add, CpuView};
use crate::engine::kernel::Loc;
use crate::engine::Float;

/// Shape of a batch norm's input: [n, c, hw].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BnGeom {
    pub n: usize,
    pub c: usize,
    /// Spatial size h*w (1 for [n, c] features).
    pub hw: usize,
}

impl BnGeom {
    /// Elements of x (and y, dx).
    pub fn len(&self) -> usize {
        self.n * self.c * self.hw
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Values per channel.
    pub fn count(&self) -> usize {
        self.n * self.hw
    }
}

/// What a batch norm's forward writes: the normalised tensor, or (when the one op reading it
/// applies the normalisation as it loads, as [`super::elementwise::ElementwiseKernel::NodeSum`]
/// does on the GPU plan) only each channel's affine coefficients, 4 values per channel:
/// (mean_hi, mean_lo, scale, beta) for y = ((x - mean_hi) - mean_lo) * scale + beta.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BnOutput {
    Normalised(Loc),
    Coefficients(Loc),
}

impl BnOutput {
    fn loc_mut(&mut self) -> &mut Loc {
        match self {
            BnOutput::Normalised(l) | BnOutput::Coefficients(l) => l,
        }
    }
}

/// The batch-norm kernels.
#[derive(Clone, Debug, PartialEq)]
pub enum BnKernel {
    /// y = the batch-normalised x; mean and invstd of the batch kept for the backward; the
    /// running statistics updated with `momentum`.
    TrainForward { g: BnGeom, x: Loc, gamma: Loc, beta: Loc, running_mean: Loc, running_var: Loc, y: BnOutput, mean: Loc, invstd: Loc, eps: f64, momentum: f64 },
    /// y = x normalised by coefficients a training forward's statistics wrote elsewhere (the
    /// GPU plan: a convolution's epilogue and the finalize after it, see
    /// [`super::conv::BnStatistics`]).
    Apply { g: BnGeom, x: Loc, coef: Loc, y: Loc },
    /// y = x normalised by the running statistics.
    EvalForward { g: BnGeom, x: Loc, gamma: Loc, beta: Loc, running_mean: Loc, running_var: Loc, y: BnOutput, eps: f64 },
    /// dx (+)= the input gradient, dgamma += and dbeta += the affine's gradients (each when
    /// present); `dx_coef`, instead of dx, the coefficients of the input gradient (4 per channel,
    /// see [`bn_backward_coefficients`]) for the convolution that applies them as it loads its
    /// output gradient ([`super::conv::BnGradient`], the GPU plan).
    Backward {
        g: BnGeom,
        x: Loc,
        dy: Loc,
        gamma: Loc,
        mean: Loc,
        invstd: Loc,
        dx: Option<Loc>,
        dx_coef: Option<Loc>,
        dgamma: Option<Loc>,
        dbeta: Option<Loc>,
        accumulate: bool,
    },
    /// Two batch norms' [`BnCoefficientBackward`]s (the batch norms after two sibling
    /// convolutions, same images and positions) in one launch of each of their kernels: the CPU
    /// face runs `first`, then `second` (they touch nothing of each other's, see
    /// [`merge_batch_norm_backwards`]).
    BackwardPair { first: BnCoefficientBackward, second: BnCoefficientBackward },
}

impl BnKernel {
    pub fn name(&self) -> &'static str {
        match self {
            BnKernel::TrainForward { .. } => "bn_train_forward",
            BnKernel::Apply { .. } => "bn_apply",
            BnKernel::EvalForward { .. } => "bn_eval_forward",
            BnKernel::Backward { .. } => "bn_backward",
            BnKernel::BackwardPair { .. } => "bn_backward_pair",
        }
    }

    /// Inputs, then the outputs (the running statistics are read and written).
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        match self {
            BnKernel::TrainForward { x, gamma, beta, running_mean, running_var, y, mean, invstd, .. } => {
                vec![x, gamma, beta, running_mean, running_var, y.loc_mut(), mean, invstd]
            }
            BnKernel::Apply { x, coef, y, .. } => vec![x, coef, y],
            BnKernel::EvalForward { x, gamma, beta, running_mean, running_var, y, .. } => vec![x, gamma, beta, running_mean, running_var, y.loc_mut()],
            BnKernel::Backward { x, dy, gamma, mean, invstd, dx, dx_coef, dgamma, dbeta, .. } => {
                let mut v = vec![x, dy, gamma, mean, invstd];
                v.extend(dx.as_mut().into_iter().chain(dx_coef.as_mut()).chain(dgamma.as_mut()).chain(dbeta.as_mut()));
                v
            }
            BnKernel::BackwardPair { first, second } => {
                let (first_in, first_out) = first.locs_mut();
                let (second_in, second_out) = second.locs_mut();
                first_in.into_iter().chain(second_in).chain(first_out).chain(second_out).collect()
            }
        }
    }

    pub fn outputs(&self) -> usize {
        match self {
            BnKernel::TrainForward { .. } => 5, // running_mean, running_var, y, mean, invstd
            BnKernel::Apply { .. } | BnKernel::EvalForward { .. } => 1,
            BnKernel::Backward { dx, dx_coef, dgamma, dbeta, .. } => [dx, dx_coef, dgamma, dbeta].iter().filter(|l| l.is_some()).count(),
            BnKernel::BackwardPair { first, second } => first.outputs() + second.outputs(),
        }
    }

    pub fn accumulates(&self) -> bool {
        match *self {
            BnKernel::Backward { accumulate, .. } => accumulate,
            _ => true,
        }
    }

    pub(crate) fn run_cpu<T: Float>(&self, m: &CpuView<T>) {
        match *self {
            BnKernel::TrainForward { g, x, gamma, beta, running_mean, running_var, y, mean, invstd, eps, momentum } => {
                let mut scratch = Vec::new();
                let out = normalised_or_scratch(m, y, g.len(), &mut scratch);
                bn_train_forward(&g, m.r(x), m.r(gamma), m.r(beta), eps, momentum, m.w(running_mean), m.w(running_var), out, m.w(mean), m.w(invstd));
                if let BnOutput::Coefficients(coef) = y {
                    let stats = m.r(mean).iter().zip(m.r(invstd)).map(|(&mu, &inv)| (mu.as_f64(), inv.as_f64()));
                    write_coefficients(stats, m.r(gamma), m.r(beta), m.w(coef));
                }
            }
            BnKernel::Apply { g, x, coef, y } => bn_apply(&g, m.r(x), m.r(coef), m.w(y)),
            BnKernel::EvalForward { g, x, gamma, beta, running_mean, running_var, y, eps } => {
                let mut scratch = Vec::new();
                let out = normalised_or_scratch(m, y, g.len(), &mut scratch);
                bn_eval_forward(&g, m.r(x), m.r(gamma), m.r(beta), m.r(running_mean), m.r(running_var), eps, out);
                if let BnOutput::Coefficients(coef) = y {
                    let stats = m.r(running_mean).iter().zip(m.r(running_var)).map(|(&mu, &var)| (mu.as_f64(), 1.0 / (var.as_f64() + eps).sqrt()));
                    write_coefficients(stats, m.r(gamma), m.r(beta), m.w(coef));
                }
            }
            BnKernel::Backward { g, x, dy, gamma, mean, invstd, dx, dx_coef, dgamma, dbeta, accumulate } => {
                let dx = dx.map(|dx| assign_or_add(m.w(dx), accumulate));
                bn_backward(&g, m.r(x), m.r(dy), m.r(gamma), m.r(mean), m.r(invstd), dx, dgamma.map(|l| m.w(l)), dbeta.map(|l| m.w(l)));
                if let Some(coef) = dx_coef {
                    bn_backward_coefficients(&g, m.r(x), m.r(dy), m.r(gamma), m.r(mean), m.r(invstd), m.w(coef));
                }
            }
            BnKernel::BackwardPair { first, second } => {
                first.kernel().run_cpu(m);
                second.kernel().run_cpu(m);
            }
        }
    }
}

/// Where the CPU face writes the normalised tensor: its location, or (when only the
/// coefficients are asked for) `scratch`, sized to `len`.
fn normalised_or_scratch<'a, T: Float>(m: &'a CpuView<T>, y: BnOutput, len: usize, scratch: &'a mut Vec<T>) -> &'a mut [T] {
    match y {
        BnOutput::Normalised(l) => m.w(l),
        BnOutput::Coefficients(_) => {
            scratch.resize(len, T::zero());
            scratch
        }
    }
}

/// Each channel's [`Affine`] coefficients from its (mean, 1 / std), as the GPU's finalize
/// kernels write them (the CPU face, held to them within the self-test's tolerance).
fn write_coefficients<T: Float>(stats: impl Iterator<Item = (f64, f64)>, gamma: &[T], beta: &[T], coef: &mut [T]) {
    for (ch, ((mu, inv), out)) in stats.zip(coef.chunks_exact_mut(4)).enumerate() {
        out.copy_from_slice(&Affine::new(mu, gamma[ch].as_f64() * inv, beta[ch]).coefficients());
    }
}
