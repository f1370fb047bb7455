//! The batch norms as launches of batchnorm.cu: each channel's statistics are summed in per-block
//! partials (a channel split over up to one block per image, or the blocks of the convolution
//! whose output it is), merged in a fixed order by a finalize kernel that also writes the
//! per-channel coefficients, which an apply kernel (or the consumer) then uses elementwise.

use anyhow::{ensure, Result};

use super::{BnCoefficientBackward, BnGeom, BnKernel, BnOutput};
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
    let partial_bytes = partials_bytes(c * parts);
    let need = partial_bytes + c * 4 * 4;
    ensure!(need <= bytes, "a batch norm over {c} channels needs {need} bytes of scratch, more than the {bytes} kept");
    Ok((Arg::Ptr(base), Arg::Ptr(base + partial_bytes as u64)))
}

/// The bytes `partials` statistics partials take in the scratch (up to 3 doubles each; the
/// coefficients after them start 256-byte aligned).
fn partials_bytes(partials: usize) -> usize {
    (partials * 3 * 8).next_multiple_of(256)
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
    let none = [&[Arg::Ptr(0); 7][..], &[len(0)?, Arg::F64(eps), Arg::F64(momentum)]].concat();
    let args = [&[partial][..], &outputs, &shape(g, parts)?, &[Arg::F64(eps), Arg::F64(momentum)], &none].concat();
    on.per_item("fear_bn_train_finalize", g.c, FEAR_BN_THREADS, &args)
}

/// [`train_finalize`] for two batch norms over the same images and positions in one launch of
/// fear_bn_train_finalize (the batch norms after two sibling convolutions run as one): their
/// partials lie one after the other at `partial`, `parts` per channel over the `g[0].c + g[1].c`
/// channels of both (the second's channel j is channel `g[0].c + j`; the scratch of
/// [`bn_scratch`] over that many channels holds them); each batch norm has its own 7 `outputs`
/// (as `train_finalize`), `eps` and `momentum`. Each gets the bits `train_finalize` gives it.
pub fn train_finalize_pair(on: &OnGpu, g: [&BnGeom; 2], parts: usize, partial: Arg, outputs: [[Arg; 7]; 2], eps: [f64; 2], momentum: [f64; 2]) -> Result<()> {
    ensure!((g[0].n, g[0].hw) == (g[1].n, g[1].hw), "a pair of batch norms finalized together must share images and positions: {:?} and {:?}", g[0], g[1]);
    let second = [&outputs[1][..], &[len(g[1].c)?, Arg::F64(eps[1]), Arg::F64(momentum[1])]].concat();
    let args = [&[partial][..], &outputs[0], &shape(g[0], parts)?, &[Arg::F64(eps[0]), Arg::F64(momentum[0])], &second].concat();
    on.per_item("fear_bn_train_finalize", g[0].c + g[1].c, FEAR_BN_THREADS, &args)
}

/// What the backward's statistics and finalize launches take of one batch norm: its channels,
/// splits, and pointers (the output pointers null where not wanted).
#[derive(Clone, Copy)]
struct BackwardStats {
    c: usize,
    splits: usize,
    x: Arg,
    dy: Arg,
    gamma: Arg,
    mean: Arg,
    invstd: Arg,
    dgamma: Arg,
    dbeta: Arg,
    coef: Arg,
}

impl BackwardStats {
    /// No batch norm: the second of a launch for one.
    const NONE: BackwardStats = {
        let null = Arg::Ptr(0);
        BackwardStats { c: 0, splits: 1, x: null, dy: null, gamma: null, mean: null, invstd: null, dgamma: null, dbeta: null, coef: null }
    };
}

/// fear_bn_backward_stats, then fear_bn_backward_finalize, for `first` and (unless it is
/// [`BackwardStats::NONE`]) `second` in the same two launches, both over `n` images of `hw`
/// positions; their partials at `partial`, the second's after the first's.
fn backward_statistics(on: &OnGpu, n: usize, hw: usize, partial: Arg, first: &BackwardStats, second: &BackwardStats) -> Result<()> {
    let [a, b] = [first, second];
    let stats = [a.x, a.dy, a.mean, partial, len(n)?, len(a.c)?, len(hw)?, len(a.splits)?, b.x, b.dy, b.mean, len(b.c)?, len(b.splits)?];
    on.per_item("fear_bn_backward_stats", a.c * a.splits + b.c * b.splits, FEAR_BN_THREADS, &stats)?;
    let finalize = [
        [partial, a.gamma, a.mean, a.invstd, a.dgamma, a.dbeta, a.coef, len(n)?, len(a.c)?, len(hw)?, len(a.splits)?].as_slice(),
        &[b.gamma, b.mean, b.invstd, b.dgamma, b.dbeta, b.coef, len(b.c)?, len(b.splits)?],
    ]
    .concat();
    on.elementwise("fear_bn_backward_finalize", a.c + b.c, &finalize)
}

impl BnCoefficientBackward {
    /// Its part of the backward launches, `splits` blocks per channel, its coefficients at
    /// `dx_coef`.
    fn stats(&self, on: &OnGpu) -> Result<BackwardStats> {
        Ok(BackwardStats {
            c: self.g.c,
            splits: bn_splits(self.g.n, self.g.c),
            x: on.p(self.x)?,
            dy: on.p(self.dy)?,
            gamma: on.p(self.gamma)?,
            mean: on.p(self.mean)?,
            invstd: on.p(self.invstd)?,
            dgamma: on.opt(self.dgamma)?,
            dbeta: on.opt(self.dbeta)?,
            coef: on.p(self.dx_coef)?,
        })
    }
}

/// Two batch norms' statistics-only backwards in one launch each of fear_bn_backward_stats and
/// fear_bn_backward_finalize, each with the splits (and so the bits) of a launch of its own.
fn backward_pair(on: &OnGpu, first: &BnCoefficientBackward, second: &BnCoefficientBackward) -> Result<()> {
    let (g1, g2) = (first.g, second.g);
    ensure!((g1.n, g1.hw) == (g2.n, g2.hw), "a pair of batch-norm backwards must share images and positions: {g1:?} and {g2:?}");
    if g1.n * g1.hw == 0 {
        return Ok(());
    }
    let (a, b) = (first.stats(on)?, second.stats(on)?);
    let (base, bytes) = on.mem.reduce_scratch();
    let need = partials_bytes(a.c * a.splits + b.c * b.splits);
    ensure!(need <= bytes, "a pair of batch-norm backwards over {} and {} channels needs {need} bytes of scratch, more than the {bytes} kept", a.c, b.c);
    backward_statistics(on, g1.n, g1.hw, Arg::Ptr(base), &a, &b)
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
            BnKernel::BackwardPair { first, .. } if first.g.n * first.g.hw > 0 => vec!["fear_bn_backward_stats", "fear_bn_backward_finalize"],
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
                let bn = BackwardStats {
                    c: g.c,
                    splits,
                    x: on.p(x)?,
                    dy: on.p(dy)?,
                    gamma: on.p(gamma)?,
                    mean: on.p(mean)?,
                    invstd: on.p(invstd)?,
                    dgamma: on.opt(dgamma)?,
                    dbeta: on.opt(dbeta)?,
                    coef,
                };
                backward_statistics(on, g.n, g.hw, partial, &bn, &BackwardStats::NONE)?;
                match dx {
                    Some(dx) => {
                        let apply = [&[on.p(x)?, on.p(dy)?, coef, on.p(dx)?][..], &shape(&g, splits)?, &[flag(accumulate)]].concat();
                        on.per_item("fear_bn_backward_apply", g.c * splits, FEAR_BN_THREADS, &apply)
                    }
                    None => Ok(()),
                }
            }
            BnKernel::BackwardPair { first, second } => backward_pair(on, &first, &second),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cuda::launch::GpuAddresses;
    use crate::engine::cuda::{Gpu, GpuMemory};
    use crate::engine::device::{Device, MemoryLayout};
    use crate::engine::kernel::Space;

    /// One batch norm's tensors in the Work space: x, then the 7 finalize outputs (gamma, beta,
    /// running mean and variance, mean, invstd, coefficients).
    struct Bn {
        g: BnGeom,
        x: Loc,
        outputs: [Loc; 7],
    }

    fn lay_out(g: BnGeom, next: &mut usize) -> Bn {
        let mut loc = |len: usize| {
            let l = Loc::new(Space::Work, *next, len);
            *next += len + 3;
            l
        };
        let x = loc(g.len());
        let outputs = [g.c, g.c, g.c, g.c, g.c, g.c, 4 * g.c].map(&mut loc);
        Bn { g, x, outputs }
    }

    #[test]
    fn a_pair_finalize_gives_the_bits_of_two_single_finalizes() {
        // Batch 3 of 5x5 planes, 7 and 5 channels: both split 3 ways (one block per image).
        let gpu = Gpu::emulated();
        let mut next = 0;
        let bns = [lay_out(BnGeom { n: 3, c: 7, hw: 25 }, &mut next), lay_out(BnGeom { n: 3, c: 5, hw: 25 }, &mut next)];
        let parts = bn_splits(3, 7);
        assert_eq!(parts, bn_splits(3, 5));
        let (eps, momentum) = ([1e-5, 1e-3], [0.1, 0.25]);
        let all = Loc::new(Space::Work, 0, next);
        // x and gamma, beta, running statistics (variance positive) random; mean, invstd and the
        // coefficients NaN, so an output left unwritten shows.
        let mut init: Vec<f32> = (0..next).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        for bn in &bns {
            for l in &bn.outputs[4..] {
                init[l.offset..l.end()].fill(f32::NAN);
            }
            init[bn.outputs[3].offset..bn.outputs[3].end()].iter_mut().for_each(|v| *v = v.abs() + 0.5);
        }
        let run = |pair: bool| -> Vec<f32> {
            let layout = MemoryLayout { params: 0, state: 0, work: next, half: 0, labels: 1 };
            let mut mem: GpuMemory = gpu.alloc(&layout).unwrap();
            gpu.write(&mut mem, all, &init).unwrap();
            let on = OnGpu { backend: gpu.backend(), mem: &mem };
            let (base, _) = mem.reduce_scratch();
            let second_partials = base + (3 * 8 * bns[0].g.c * parts) as u64;
            // Each batch norm's statistics partials, the second's after the first's.
            for (bn, partial) in bns.iter().zip([base, second_partials]) {
                let args = [&[on.p(bn.x).unwrap(), Arg::Ptr(partial)][..], &shape(&bn.g, parts).unwrap()].concat();
                on.per_item("fear_bn_stats", bn.g.c * parts, FEAR_BN_THREADS, &args).unwrap();
            }
            let outputs = bns.each_ref().map(|bn| bn.outputs.map(|l| on.p(l).unwrap()));
            if pair {
                train_finalize_pair(&on, [&bns[0].g, &bns[1].g], parts, Arg::Ptr(base), outputs, eps, momentum).unwrap();
            } else {
                for (i, partial) in [base, second_partials].into_iter().enumerate() {
                    train_finalize(&on, &bns[i].g, parts, Arg::Ptr(partial), outputs[i], eps[i], momentum[i]).unwrap();
                }
            }
            gpu.read(&mem, all).unwrap()
        };
        let (pair, singles) = (run(true), run(false));
        assert!(pair.iter().zip(&singles).all(|(a, b)| a.to_bits() == b.to_bits()), "the pair's bits differ from the single finalizes'");
        for bn in &bns {
            for l in &bn.outputs {
                assert!(pair[l.offset..l.end()].iter().all(|v| v.is_finite()), "{l:?} left unwritten");
            }
        }
        // The second's own eps and momentum count: its running mean moved by a quarter of the
        // way to the batch mean.
        let (rm, mean) = (bns[1].outputs[2], bns[1].outputs[4]);
        for ch in 0..bns[1].g.c {
            let want = 0.75 * init[rm.offset + ch] as f64 + 0.25 * pair[mean.offset + ch] as f64;
            assert!((pair[rm.offset + ch] as f64 - want).abs() < 1e-6, "channel {ch}: running mean {} not {want}", pair[rm.offset + ch]);
        }
    }

    #[test]
    fn a_backward_pair_whose_partials_overflow_the_scratch_is_refused() {
        // 2 x 200000 channels of one value, one split each: 400000 partials of 24 bytes, more
        // than the 8 MB of scratch.
        let g = BnGeom { n: 1, c: 200_000, hw: 1 };
        let mut next = 0;
        let mut loc = |len: usize| {
            next += len;
            Loc::new(Space::Work, next - len, len)
        };
        let mut half = || BnCoefficientBackward {
            g,
            x: loc(g.c),
            dy: loc(g.c),
            gamma: loc(g.c),
            mean: loc(g.c),
            invstd: loc(g.c),
            dx_coef: loc(4 * g.c),
            dgamma: None,
            dbeta: None,
        };
        let (first, second) = (half(), half());
        let gpu = Gpu::emulated();
        let mut mem: GpuMemory = gpu.alloc(&MemoryLayout { params: 0, state: 0, work: next, half: 0, labels: 1 }).unwrap();
        let e = gpu.launch(&mut mem, &BnKernel::BackwardPair { first, second }.into()).unwrap_err().to_string();
        assert!(e.contains("a pair of batch-norm backwards over 200000 and 200000 channels needs") && e.contains("scratch"), "{e}");
    }

    #[test]
    fn a_pair_finalize_refuses_batch_norms_of_other_planes() {
        let gpu = Gpu::emulated();
        let mem: GpuMemory = gpu.alloc(&MemoryLayout { params: 0, state: 0, work: 16, half: 0, labels: 1 }).unwrap();
        let on = OnGpu { backend: gpu.backend(), mem: &mem };
        let (a, b) = (BnGeom { n: 3, c: 7, hw: 25 }, BnGeom { n: 3, c: 5, hw: 81 });
        let e = train_finalize_pair(&on, [&a, &b], 3, Arg::Ptr(0), [[Arg::Ptr(0); 7]; 2], [1e-5; 2], [0.1; 2]).unwrap_err().to_string();
        assert!(e.contains("share images and positions"), "{e}");
    }
}
