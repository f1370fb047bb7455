//! The batch norms as launches of batchnorm.cu: each channel's statistics are summed in per-block
//! partials (a channel split over up to one block per image, or the blocks of the convolution
//! whose output it is), merged in a fixed order by a finalize kernel that also writes the
//! per-channel coefficients, which an apply kernel (or the consumer) then uses elementwise.
//! The kernels touching a tensor (x, y, dy, dx) come in two instantiations, f32 and bfloat16
//! storage ([`stored_variant`]), picked by where the batch norm's tensors lie.

use anyhow::{ensure, Result};

use super::{BnCoefficientBackward, BnGeom, BnKernel, BnOutput};
use crate::engine::cuda::launch::threads::FEAR_BN_THREADS;
use crate::engine::cuda::launch::{flag, len, stored_alike, stored_variant, Arg, OnGpu};
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
        BnOutput::Normalised(y) => {
            let name = stored_variant("fear_bn_apply", stored_alike("batch norm", &[x, y])?);
            on.per_item(name, g.c * splits, FEAR_BN_THREADS, &[&[on.p(x)?, coef, on.p(y)?][..], &shape(g, splits)?].concat())
        }
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

/// fear_bn_backward_stats (its instantiation for tensors stored as `stored` is), then
/// fear_bn_backward_finalize, for `first` and (unless it is [`BackwardStats::NONE`]) `second` in
/// the same two launches, both over `n` images of `hw` positions; their partials at `partial`,
/// the second's after the first's.
fn backward_statistics(on: &OnGpu, n: usize, hw: usize, partial: Arg, stored: Loc, first: &BackwardStats, second: &BackwardStats) -> Result<()> {
    let [a, b] = [first, second];
    let stats = [a.x, a.dy, a.mean, partial, len(n)?, len(a.c)?, len(hw)?, len(a.splits)?, b.x, b.dy, b.mean, len(b.c)?, len(b.splits)?];
    on.per_item(stored_variant("fear_bn_backward_stats", stored), a.c * a.splits + b.c * b.splits, FEAR_BN_THREADS, &stats)?;
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
    let stored = stored_alike("batch norm pair", &[first.x, first.dy, second.x, second.dy])?;
    let (a, b) = (first.stats(on)?, second.stats(on)?);
    let (base, bytes) = on.mem.reduce_scratch();
    let need = partials_bytes(a.c * a.splits + b.c * b.splits);
    ensure!(need <= bytes, "a pair of batch-norm backwards over {} and {} channels needs {need} bytes of scratch, more than the {bytes} kept", a.c, b.c);
    backward_statistics(on, g1.n, g1.hw, Arg::Ptr(base), stored, &a, &b)
}

impl BnKernel {
    /// The CUDA kernels [`BnKernel::launch`] launches, in order.
    pub fn launch_names(&self) -> Vec<&'static str> {
        match *self {
            BnKernel::TrainForward { g, x, y, .. } if g.n * g.hw > 0 => {
                let mut v = vec![stored_variant("fear_bn_stats", x), "fear_bn_train_finalize"];
                v.extend(matches!(y, BnOutput::Normalised(_)).then(|| stored_variant("fear_bn_apply", x)));
                v
            }
            BnKernel::Apply { g, x, .. } if !g.is_empty() => vec![stored_variant("fear_bn_apply", x)],
            BnKernel::EvalForward { g, x, y, .. } if g.n * g.hw > 0 => {
                let mut v = vec!["fear_bn_eval_coefficients"];
                v.extend(matches!(y, BnOutput::Normalised(_)).then(|| stored_variant("fear_bn_apply", x)));
                v
            }
            BnKernel::Backward { g, x, dx, .. } if g.n * g.hw > 0 => {
                let mut v = vec![stored_variant("fear_bn_backward_stats", x), "fear_bn_backward_finalize"];
                v.extend(dx.map(|_| stored_variant("fear_bn_backward_apply", x)));
                v
            }
            BnKernel::BackwardPair { first, .. } if first.g.n * first.g.hw > 0 => {
                vec![stored_variant("fear_bn_backward_stats", first.x), "fear_bn_backward_finalize"]
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
                let stats = stored_variant("fear_bn_stats", x);
                on.per_item(stats, g.c * splits, FEAR_BN_THREADS, &[&[on.p(x)?, partial][..], &shape].concat())?;
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
                let stored = stored_alike("batch norm backward", &[&[x, dy][..], dx.as_slice()].concat())?;
                backward_statistics(on, g.n, g.hw, partial, stored, &bn, &BackwardStats::NONE)?;
                match dx {
                    Some(dx) => {
                        let apply = [&[on.p(x)?, on.p(dy)?, coef, on.p(dx)?][..], &shape(&g, splits)?, &[flag(accumulate)]].concat();
                        on.per_item(stored_variant("fear_bn_backward_apply", stored), g.c * splits, FEAR_BN_THREADS, &apply)
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
    use crate::engine::kernel::{Kernel, Space};
    use crate::engine::precision::Precision;

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

    /// Lays out a batch norm's locations for [`assert_rounds_only_at_stores`]: its tensors in
    /// Half when `half` (else in Work), its other values in Work, each with a gap.
    struct Layout {
        half: bool,
        next: [usize; 2],
    }

    impl Layout {
        /// A tensor (x, y, dy, dx) of `len` elements.
        fn tensor(&mut self, len: usize) -> Loc {
            self.at(self.half, len)
        }
        /// Anything else (statistics, coefficients, parameters and their gradients).
        fn loc(&mut self, len: usize) -> Loc {
            self.at(false, len)
        }
        fn at(&mut self, half: bool, len: usize) -> Loc {
            let next = &mut self.next[half as usize];
            let l = Loc::new(if half { Space::Half } else { Space::Work }, *next, len);
            *next = (*next + len + 3).next_multiple_of(2);
            l
        }
    }

    /// Runs `build`'s batch norm on the emulated GPU with its tensors stored as f32 and again as
    /// bfloat16, from the same values (the tensors' bfloat16s, so both instantiations load the
    /// same numbers), and asserts every location ends with the same bits in both, each bfloat16
    /// output holding the f32 run's value rounded: the bfloat16 kernels round at their stores,
    /// exactly as `fear_store` does, and nowhere else (statistics from the loaded values in the
    /// f32 kernels' order, an accumulated dx read as stored).
    fn assert_rounds_only_at_stores(build: impl Fn(&mut Layout) -> BnKernel) {
        let gpu = Gpu::emulated();
        let runs = [false, true].map(|half| {
            let mut layout = Layout { half, next: [0; 2] };
            let kernel: Kernel = build(&mut layout).into();
            (kernel, layout.next)
        });
        let tensor: Vec<bool> = runs[1].0.locs().iter().map(|l| l.space == Space::Half).collect();
        assert!(tensor.contains(&true), "a case with no tensor in Half");
        // Tensors in (-1, 1); everything else positive (variances and invstd must be).
        let values: Vec<Vec<f32>> = runs[1]
            .0
            .locs()
            .iter()
            .zip(&tensor)
            .enumerate()
            .map(|(j, (l, &t))| {
                let value = |i: usize| ((i * 7919 + j * 3571) % 1000) as f32 / 500.0 - 1.0;
                (0..l.len).map(|i| if t { Precision::Bf16.round(value(i)) } else { value(i).abs() + 0.5 }).collect()
            })
            .collect();
        let name = runs[0].0.name();
        let [f32_run, bf16_run] = runs.map(|(kernel, next)| {
            let mut mem: GpuMemory = gpu.alloc(&MemoryLayout { params: 0, state: 0, work: next[0], half: next[1], labels: 1 }).unwrap();
            let locs = kernel.locs();
            for (l, v) in locs.iter().zip(&values) {
                gpu.write(&mut mem, *l, v).unwrap();
            }
            gpu.launch(&mut mem, &kernel).unwrap();
            locs.iter().map(|l| gpu.read(&mem, *l).unwrap()).collect::<Vec<_>>()
        });
        for (j, ((f, b), &t)) in f32_run.iter().zip(&bf16_run).zip(&tensor).enumerate() {
            let want: Vec<u32> = f.iter().map(|&v| if t { Precision::Bf16.round(v) } else { v }.to_bits()).collect();
            let got: Vec<u32> = b.iter().map(|v| v.to_bits()).collect();
            let first = got.iter().zip(&want).position(|(g, w)| g != w);
            assert!(first.is_none(), "{name}: location {j} (tensor: {t}) differs first at {first:?}");
        }
    }

    /// An uneven split (7 images of 100 channels in 6 splits) and planes wider than a block.
    const STORED_SHAPES: [BnGeom; 2] = [BnGeom { n: 7, c: 100, hw: 5 }, BnGeom { n: 2, c: 3, hw: 300 }];

    #[test]
    fn bf16_forwards_round_only_at_their_stores() {
        for g in STORED_SHAPES {
            for coefficients in [false, true] {
                let y = |l: &mut Layout| if coefficients { BnOutput::Coefficients(l.loc(4 * g.c)) } else { BnOutput::Normalised(l.tensor(g.len())) };
                assert_rounds_only_at_stores(|l| {
                    let (x, gamma, beta, running_mean, running_var) = (l.tensor(g.len()), l.loc(g.c), l.loc(g.c), l.loc(g.c), l.loc(g.c));
                    let (y, mean, invstd) = (y(l), l.loc(g.c), l.loc(g.c));
                    BnKernel::TrainForward { g, x, gamma, beta, running_mean, running_var, y, mean, invstd, eps: 1e-5, momentum: 0.1 }
                });
            }
            assert_rounds_only_at_stores(|l| {
                let (x, gamma, beta, running_mean, running_var) = (l.tensor(g.len()), l.loc(g.c), l.loc(g.c), l.loc(g.c), l.loc(g.c));
                BnKernel::EvalForward { g, x, gamma, beta, running_mean, running_var, y: BnOutput::Normalised(l.tensor(g.len())), eps: 1e-5 }
            });
            assert_rounds_only_at_stores(|l| BnKernel::Apply { g, x: l.tensor(g.len()), coef: l.loc(4 * g.c), y: l.tensor(g.len()) });
        }
    }

    #[test]
    fn bf16_backwards_round_only_at_their_stores() {
        for g in STORED_SHAPES {
            for (grads, accumulate) in [(true, true), (true, false), (false, true), (false, false)] {
                assert_rounds_only_at_stores(|l| {
                    let (x, dy, gamma, mean, invstd, dx) = (l.tensor(g.len()), l.tensor(g.len()), l.loc(g.c), l.loc(g.c), l.loc(g.c), l.tensor(g.len()));
                    let (dgamma, dbeta) = if grads { (Some(l.loc(g.c)), Some(l.loc(g.c))) } else { (None, None) };
                    BnKernel::Backward { g, x, dy, gamma, mean, invstd, dx: Some(dx), dx_coef: None, dgamma, dbeta, accumulate }
                });
            }
            // Two batch norms' coefficient backwards, one of them alone and both as a pair.
            let one = |l: &mut Layout, c: usize| {
                let g = BnGeom { c, ..g };
                let (x, dy, gamma, mean, invstd, dx_coef) = (l.tensor(g.len()), l.tensor(g.len()), l.loc(c), l.loc(c), l.loc(c), l.loc(4 * c));
                BnCoefficientBackward { g, x, dy, gamma, mean, invstd, dx_coef, dgamma: Some(l.loc(c)), dbeta: Some(l.loc(c)) }
            };
            assert_rounds_only_at_stores(|l| one(l, g.c).kernel());
            assert_rounds_only_at_stores(|l| BnKernel::BackwardPair { first: one(l, g.c), second: one(l, 5) });
        }
    }

    #[test]
    fn a_batch_norm_with_tensors_stored_unalike_is_refused() {
        // x as bfloat16, y as f32: no instantiation reads one and writes the other.
        let g = BnGeom { n: 2, c: 3, hw: 4 };
        let (x, coef, y) = (Loc::new(Space::Half, 0, g.len()), Loc::new(Space::Work, 0, 4 * g.c), Loc::new(Space::Work, 16, g.len()));
        let gpu = Gpu::emulated();
        let mut mem: GpuMemory = gpu.alloc(&MemoryLayout { params: 0, state: 0, work: 64, half: 32, labels: 1 }).unwrap();
        let e = gpu.launch(&mut mem, &BnKernel::Apply { g, x, coef, y }.into()).unwrap_err().to_string();
        assert!(e.contains("stored alike"), "{e}");
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
