//! The batch norms as launches of batchnorm.cu: each channel's statistics are summed in per-block
//! partials (a channel split over up to one block per image, or the blocks of the convolution
//! whose output it is), merged in a fixed order by a finalize kernel that also writes the
//! per-channel coefficients, which an apply kernel (or the consumer) then uses elementwise.

use anyhow::{ensure, Result};

use super::{BnGeom, BnKernel, BnOutput};
use crate::engine::cuda::launch::threads::FEAR_BN_THREADS;
use crate::engine::cuda::launch::{flag, len, Arg, OnGpu};
use crate::engine::kernel::Loc;

/// Blocks a batch norm aims to launch (about four per SM of a 132-SM H100): a channel is split
/// over `ceil(BN_TARGET_BLOCKS / c)` blocks, at most one per image.
const BN_TARGET_BLOCKS: usize = 512;

/// How many blocks split each channel of a batch norm over `n` images of `c` channels.
fn bn_splits(n: usize, c: usize) -> usize {
    BN_TARGET_BLOCKS.div_ceil(c.max(1)).clamp(1, n.max(1))
}

/// The scratch addresses of a batch norm over `c` channels in `parts` partials per channel:
/// (partials: up to 3 doubles each, coefficients: 4 floats per channel), after checking they fit.
pub fn bn_scratch(on: &OnGpu, c: usize, parts: usize) -> Result<(Arg, Arg)> {
    let (base, bytes) = on.mem.reduce_scratch();
    let partial_bytes = (c * parts * 3 * 8).next_multiple_of(256);
    let need = partial_bytes + c * 4 * 4;
    ensure!(need <= bytes, "a batch norm over {c} channels needs {need} bytes of scratch, more than the {bytes} kept");
    Ok((Arg::Ptr(base), Arg::Ptr(base + partial_bytes as u64)))
}

/// (images, channels, positions, splits) as the kernels' `int` arguments.
fn shape(g: &BnGeom, splits: usize) -> Result<[Arg; 4]> {
    Ok([len(g.n)?, len(g.c)?, len(g.hw)?, len(splits)?])
}

/// Where the coefficients go: the scratch for a batch norm that applies them itself, the
/// planned location for one whose consumer does.
fn coefficients_at(on: &OnGpu, y: BnOutput, scratch: Arg) -> Result<Arg> {
    match y {
        BnOutput::Normalised(_) => Ok(scratch),
        BnOutput::Coefficients(coef) => on.p(coef),
    }
}

/// y = x normalised by `coef`, unless the consumer applies them (nothing to launch).
fn apply(on: &OnGpu, g: &BnGeom, splits: usize, x: Loc, coef: Arg, y: BnOutput) -> Result<()> {
    match y {
        BnOutput::Normalised(y) => on.per_item("fear_bn_apply", g.c * splits, FEAR_BN_THREADS, &[&[on.p(x)?, coef, on.p(y)?][..], &shape(g, splits)?].concat()),
        BnOutput::Coefficients(_) => Ok(()),
    }
}

/// Merges the `parts` statistics partials per channel at `partial` (from fear_bn_stats or a
/// convolution's epilogue) into the batch norm's `outputs`: gamma, beta, running mean and
/// variance, mean, invstd, coefficients.
pub fn train_finalize(on: &OnGpu, g: &BnGeom, parts: usize, partial: Arg, outputs: [Arg; 7], eps: f64, momentum: f64) -> Result<()> {
    let args = [&[partial][..], &outputs, &shape(g, parts)?, &[Arg::F64(eps), Arg::F64(momentum)]].concat();
    on.per_item("fear_bn_train_finalize", g.c, FEAR_BN_THREADS, &args)
}

impl BnKernel {
    /// The CUDA kernels [`BnKernel::launch`] launches, in order.
    pub fn launch_names(&self) -> Vec<&'static str> {
        match *self {
            BnKernel::TrainForward { g, y, .. } if g.n * g.hw > 0 => {
                let mut v = vec!["fear_bn_stats", "fear_bn_train_finalize"];
                v.extend(matches!(y, BnOutput::Normalised(_)).then_some("fear_bn_apply"));
                v
            }
            BnKernel::Apply { g, .. } if !g.is_empty() => vec!["fear_bn_apply"],
            BnKernel::EvalForward { g, y, .. } if g.n * g.hw > 0 => {
                let mut v = vec!["fear_bn_eval_coefficients"];
                v.extend(matches!(y, BnOutput::Normalised(_)).then_some("fear_bn_apply"));
                v
            }
            BnKernel::Backward { g, dx, .. } if g.n * g.hw > 0 => {
                let mut v = vec!["fear_bn_backward_stats", "fear_bn_backward_finalize"];
                v.extend(dx.map(|_| "fear_bn_backward_apply"));
                v
            }
            _ => vec![],
        }
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        match *self {
            BnKernel::TrainForward { g, x, gamma, beta, running_mean, running_var, y, mean, invstd, eps, momentum } => {
                if g.n * g.hw == 0 {
                    return Ok(());
                }
                let splits = bn_splits(g.n, g.c);
                let (partial, scratch_coef) = bn_scratch(on, g.c, splits)?;
                let coef = coefficients_at(on, y, scratch_coef)?;
                let shape = shape(&g, splits)?;
                on.per_item("fear_bn_stats", g.c * splits, FEAR_BN_THREADS, &[&[on.p(x)?, partial][..], &shape].concat())?;
                let stats = [on.p(gamma)?, on.p(beta)?, on.p(running_mean)?, on.p(running_var)?, on.p(mean)?, on.p(invstd)?, coef];
                train_finalize(on, &g, splits, partial, stats, eps, momentum)?;
                apply(on, &g, splits, x, coef, y)
            }
            BnKernel::Apply { g, x, coef, y } => {
                if g.is_empty() {
                    return Ok(());
                }
                apply(on, &g, bn_splits(g.n, g.c), x, on.p(coef)?, BnOutput::Normalised(y))
            }
            BnKernel::EvalForward { g, x, gamma, beta, running_mean, running_var, y, eps } => {
                if g.is_empty() {
                    return Ok(());
                }
                let splits = bn_splits(g.n, g.c);
                let (_, scratch_coef) = bn_scratch(on, g.c, splits)?;
                let coef = coefficients_at(on, y, scratch_coef)?;
                let coefficients = [on.p(gamma)?, on.p(beta)?, on.p(running_mean)?, on.p(running_var)?, coef, len(g.c)?, Arg::F64(eps)];
                on.elementwise("fear_bn_eval_coefficients", g.c, &coefficients)?;
                apply(on, &g, splits, x, coef, y)
            }
            BnKernel::Backward { g, x, dy, gamma, mean, invstd, dx, dx_coef, dgamma, dbeta, accumulate } => {
                if g.n * g.hw == 0 {
                    return Ok(());
                }
                let splits = bn_splits(g.n, g.c);
                let (partial, scratch_coef) = bn_scratch(on, g.c, splits)?;
                // Coefficients the convolution applies go where it reads them.
                let coef = match dx_coef {
                    Some(l) => on.p(l)?,
                    None => scratch_coef,
                };
                let shape = shape(&g, splits)?;
                let stats = [&[on.p(x)?, on.p(dy)?, on.p(mean)?, partial][..], &shape].concat();
                on.per_item("fear_bn_backward_stats", g.c * splits, FEAR_BN_THREADS, &stats)?;
                let finalize = [&[partial, on.p(gamma)?, on.p(mean)?, on.p(invstd)?, on.opt(dgamma)?, on.opt(dbeta)?, coef][..], &shape].concat();
                on.elementwise("fear_bn_backward_finalize", g.c, &finalize)?;
                match dx {
                    Some(dx) => {
                        let apply = [&[on.p(x)?, on.p(dy)?, coef, on.p(dx)?][..], &shape, &[flag(accumulate)]].concat();
                        on.per_item("fear_bn_backward_apply", g.c * splits, FEAR_BN_THREADS, &apply)
                    }
                    None => Ok(()),
                }
            }
        }
    }
}
