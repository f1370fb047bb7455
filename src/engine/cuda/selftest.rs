//! Every CUDA kernel held to its CPU op: the same kernel on the same random memory, run by the
//! CPU device and by a [`Gpu`] (real or emulated), must leave every location equal within a
//! tolerance. Used by the kernel tests and by `fear doctor`.
//!
//! Shapes are small and deliberately odd (batch 3, 5x5 and 9x9 images, 7 channels) so that index
//! arithmetic, partial blocks and tiles, and grid-stride loops are all exercised.

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::gpu::Gpu;
use crate::data::augment::Augment;
use crate::data::dataset::Normalization;
use crate::engine::cpu::{BnGeom, ConvGeom, LinearGeom, PoolGeom};
use crate::engine::device::{Cpu, Device, MemoryLayout};
use crate::engine::kernel::{Kernel, Loc, Space};

/// Tolerance on the relative error of elementwise kernels.
pub const ELEMENTWISE_TOLERANCE: f64 = 1e-5;
/// Tolerance for kernels that sum many terms (convolutions, statistics, matrix products).
pub const REDUCTION_TOLERANCE: f64 = 1e-4;

/// The outcome of one kernel check.
#[derive(Clone, Debug, Serialize)]
pub struct OpCheck {
    pub op: String,
    /// max over locations of max|gpu - cpu| / max|cpu| (0 where both are all zero).
    pub max_rel_error: f64,
    pub tolerance: f64,
    pub passed: bool,
    /// Why the check could not run, if it could not.
    pub error: Option<String>,
}

/// A kernel with its locations laid out one after another in the Work space.
struct Case {
    next: usize,
    locs: Vec<Loc>,
    presets: Vec<(Loc, Vec<f32>)>,
}

impl Case {
    fn new() -> Case {
        Case { next: 0, locs: Vec::new(), presets: Vec::new() }
    }
    /// A new location of `len` elements (with a gap, so an overrun shows as a difference).
    fn loc(&mut self, len: usize) -> Loc {
        let l = Loc::new(Space::Work, self.next, len);
        self.next += len + 7;
        self.locs.push(l);
        l
    }
    /// A location holding `values` instead of random numbers.
    fn preset(&mut self, values: Vec<f32>) -> Loc {
        let l = self.loc(values.len());
        self.presets.push((l, values));
        l
    }
}

fn conv_cases() -> Vec<(String, f64, Kernel)> {
    // 9x9 gives 243 positions per weight: most of a 256-thread reduction block does real work.
    // Every (k, stride) body of conv.cu, on 5x5 and 9x9 images (odd sides: the last stride-2
    // window hangs over the edge). Channel counts that fill no tile evenly: 7 and 3 inputs, 4-7
    // outputs (one partial channel group), 20 (three groups of 8, rounded up to four) and 70
    // (two passes of 64 outputs; nine input chunks of the weight gradient); several 5x5 images
    // share a forward tile, 9x9 ones and the 70-channel ones take one each.
    let shapes = [
        ("conv3x3", 3, 1, 7, 4, 5),
        ("conv3x3_s2", 3, 2, 7, 5, 5),
        ("conv1x1", 1, 1, 7, 6, 5),
        ("conv1x1_s2", 1, 2, 7, 6, 5),
        ("conv3x3_9x9", 3, 1, 7, 3, 9),
        ("conv3x3_s2_9x9", 3, 2, 7, 7, 9),
        ("conv1x1_9x9", 1, 1, 7, 7, 9),
        ("conv1x1_s2_9x9", 1, 2, 3, 7, 9),
        ("conv3x3_20ch", 3, 1, 20, 20, 5),
        ("conv3x3_s2_70ch", 3, 2, 7, 70, 9),
        ("conv3x3_70to7", 3, 1, 70, 7, 5),
    ];
    let mut out = Vec::new();
    for (name, k, stride, c_in, c_out, side) in shapes {
        let g = ConvGeom { n: 3, c_in, h: side, w: side, c_out, k, stride, pad: k / 2 };
        let mut c = Case::new();
        let (x, w, y) = (c.loc(g.x_len()), c.loc(g.w_len()), c.loc(g.y_len()));
        out.push((format!("{name}_forward"), REDUCTION_TOLERANCE, Kernel::ConvForward { g, x, w, y }));
        // Both modes: assign must ignore the random values already in dx.
        for (mode, accumulate) in [("", true), ("_assign", false)] {
            out.push((format!("{name}_backward_input{mode}"), REDUCTION_TOLERANCE, Kernel::ConvBackwardInput { g, dy: y, w, dx: x, accumulate }));
        }
        out.push((format!("{name}_backward_weight"), REDUCTION_TOLERANCE, Kernel::ConvBackwardWeight { g, x, dy: y, dw: w }));
    }
    out
}

/// One case: op name, tolerance, kernel, and the values preset at some locations.
type SelfTestCase = (String, f64, Kernel, Vec<(Loc, Vec<f32>)>);

/// Every case.
fn cases() -> Vec<SelfTestCase> {
    let mut out: Vec<SelfTestCase> = conv_cases().into_iter().map(|(n, t, k)| (n, t, k, Vec::new())).collect();
    let mut add = |name: &str, tol: f64, build: &dyn Fn(&mut Case) -> Kernel| {
        let mut c = Case::new();
        let k = build(&mut c);
        out.push((name.to_string(), tol, k, c.presets));
    };
    let positive = |n: usize| (0..n).map(|i| 0.5 + 0.1 * i as f32).collect::<Vec<f32>>();
    // Each channel is split over up to one block per image (kernels/batchnorm.cu): 3 images in 3
    // splits; 7 images of 100 channels in 6 uneven splits; planes of 9x9 and of 300 positions (more
    // than a block's threads).
    let bns = [
        ("", BnGeom { n: 3, c: 7, hw: 25 }),
        ("_uneven", BnGeom { n: 7, c: 100, hw: 5 }),
        ("_9x9", BnGeom { n: 3, c: 7, hw: 81 }),
        ("_wide", BnGeom { n: 2, c: 3, hw: 300 }),
    ];
    for (suffix, bn) in bns {
        let ch = bn.c;
        add(&format!("bn_train_forward{suffix}"), REDUCTION_TOLERANCE, &|c| {
            let (x, gamma, beta) = (c.loc(bn.len()), c.loc(ch), c.loc(ch));
            let (rm, rv) = (c.loc(ch), c.preset(positive(ch)));
            let (y, mean, invstd) = (c.loc(bn.len()), c.loc(ch), c.loc(ch));
            Kernel::BnTrainForward { g: bn, x, gamma, beta, running_mean: rm, running_var: rv, y, mean, invstd, eps: 1e-5, momentum: 0.1 }
        });
        add(&format!("bn_eval_forward{suffix}"), ELEMENTWISE_TOLERANCE, &|c| {
            let (x, gamma, beta, rm, rv, y) = (c.loc(bn.len()), c.loc(ch), c.loc(ch), c.loc(ch), c.preset(positive(ch)), c.loc(bn.len()));
            Kernel::BnEvalForward { g: bn, x, gamma, beta, running_mean: rm, running_var: rv, y, eps: 1e-5 }
        });
        let modes = [
            ("bn_backward", true, true),
            ("bn_backward_assign", true, false),
            ("bn_backward_dx_only", false, true),
            ("bn_backward_dx_only_assign", false, false),
        ];
        for (name, all, accumulate) in modes {
            add(&format!("{name}{suffix}"), REDUCTION_TOLERANCE, &|c| {
                let (x, dy, gamma, mean) = (c.loc(bn.len()), c.loc(bn.len()), c.loc(ch), c.loc(ch));
                let (invstd, dx) = (c.preset(positive(ch)), c.loc(bn.len()));
                let (dgamma, dbeta) = if all { (Some(c.loc(ch)), Some(c.loc(ch))) } else { (None, None) };
                Kernel::BnBackward { g: bn, x, dy, gamma, mean, invstd, dx: Some(dx), dgamma, dbeta, accumulate }
            });
        }
    }
    let n = 3 * 7 * 25;
    add("relu", ELEMENTWISE_TOLERANCE, &|c| Kernel::Relu { x: c.loc(n), y: c.loc(n) });
    for (mode, accumulate) in [("", true), ("_assign", false)] {
        add(&format!("relu_backward{mode}"), ELEMENTWISE_TOLERANCE, &|c| Kernel::ReluBackward { y: c.loc(n), dy: c.loc(n), dx: c.loc(n), accumulate });
        add(&format!("accumulate{mode}"), ELEMENTWISE_TOLERANCE, &|c| Kernel::Accumulate { acc: c.loc(n), x: c.loc(n), accumulate });
    }
    add("add", ELEMENTWISE_TOLERANCE, &|c| Kernel::Add { a: c.loc(n), b: c.loc(n), y: c.loc(n) });
    add("zero", ELEMENTWISE_TOLERANCE, &|c| Kernel::Zero { y: c.loc(n) });
    let pg = PoolGeom { n: 3, c: 7, h: 5, w: 5 };
    add("avg_pool3_forward", ELEMENTWISE_TOLERANCE, &|c| Kernel::AvgPool3Forward { g: pg, x: c.loc(n), y: c.loc(n) });
    add("avg_pool3_backward", ELEMENTWISE_TOLERANCE, &|c| Kernel::AvgPool3Backward { g: pg, dy: c.loc(n), dx: c.loc(n) });
    add("avg_pool2_forward", ELEMENTWISE_TOLERANCE, &|c| Kernel::AvgPool2Forward { g: pg, x: c.loc(n), y: c.loc(3 * 7 * 4) });
    add("avg_pool2_backward", ELEMENTWISE_TOLERANCE, &|c| Kernel::AvgPool2Backward { g: pg, dy: c.loc(3 * 7 * 4), dx: c.loc(n) });
    add("gap_forward", REDUCTION_TOLERANCE, &|c| Kernel::GapForward { n: 3, c: 7, hw: 25, x: c.loc(n), y: c.loc(21) });
    add("gap_backward", ELEMENTWISE_TOLERANCE, &|c| Kernel::GapBackward { n: 3, c: 7, hw: 25, dy: c.loc(21), dx: c.loc(n) });
    let lg = LinearGeom { n: 3, d_in: 7, d_out: 10 };
    for (name, bias) in [("linear_forward", true), ("linear_forward_no_bias", false)] {
        add(name, REDUCTION_TOLERANCE, &|c| {
            let (x, w) = (c.loc(21), c.loc(70));
            let b = bias.then(|| c.loc(10));
            Kernel::LinearForward { g: lg, x, w, b, y: c.loc(30) }
        });
    }
    add("linear_backward", REDUCTION_TOLERANCE, &|c| {
        let (x, w, dy) = (c.loc(21), c.loc(70), c.loc(30));
        Kernel::LinearBackward { g: lg, x, w, dy, dx: Some(c.loc(21)), dw: Some(c.loc(70)), db: Some(c.loc(10)) }
    });
    add("softmax_xent_forward", REDUCTION_TOLERANCE, &|c| Kernel::SoftmaxXentForward {
        n: 5,
        classes: 10,
        logits: c.loc(50),
        probs: c.loc(50),
        loss: c.loc(1),
        correct: c.loc(1),
    });
    add("softmax_xent_backward", ELEMENTWISE_TOLERANCE, &|c| {
        let probs = c.preset((0..50).map(|i| (i % 10) as f32 / 45.0).collect());
        Kernel::SoftmaxXentBackward { n: 5, classes: 10, probs, dlogits: c.loc(50) }
    });
    add("sum_squares", REDUCTION_TOLERANCE, &|c| Kernel::SumSquares { x: c.loc(3001), out: c.loc(1) });
    add("clip_by_norm", ELEMENTWISE_TOLERANCE, &|c| {
        let grads = c.loc(301);
        Kernel::ClipByNorm { grads, sum_sq: c.preset(vec![100.0]), max_norm: 5.0 }
    });
    for (name, nesterov) in [("sgd_nesterov", true), ("sgd", false)] {
        add(name, ELEMENTWISE_TOLERANCE, &|c| {
            let (w, g, buf) = (c.loc(301), c.loc(301), c.loc(301));
            Kernel::Sgd { w, g, buf, lr: c.preset(vec![0.1]), momentum: 0.9, weight_decay: 5e-4, nesterov }
        });
    }
    add("sum_all", REDUCTION_TOLERANCE, &|c| Kernel::SumAll { x: c.loc(3001), out: c.loc(1) });
    add("sum_all_backward", ELEMENTWISE_TOLERANCE, &|c| Kernel::SumAllBackward { dx: c.loc(301) });
    add("channel_fisher", REDUCTION_TOLERANCE, &|c| Kernel::ChannelFisher { n: 3, c: 7, hw: 25, x: c.loc(n), dy: c.loc(n), out: c.loc(7) });
    add("binary_code_gram", ELEMENTWISE_TOLERANCE, &|c| Kernel::BinaryCodeGram { n: 5, d: 77, x: c.loc(5 * 77), k: c.loc(25) });
    add("feature_covariance", REDUCTION_TOLERANCE, &|c| Kernel::FeatureCovariance { n: 3, c: 7, hw: 25, x: c.loc(3 * 7 * 25), out: c.loc(49) });
    add("random_signs", ELEMENTWISE_TOLERANCE, &|c| Kernel::RandomSigns { seed: 0xfeed_beef_1234, y: c.loc(3001) });
    for (name, h_in) in [("grad_cross_covariance", 5), ("grad_cross_covariance_unshuffled", 10)] {
        add(name, REDUCTION_TOLERANCE, &|c| {
            let g = crate::engine::cpu::CrossGeom { n: 3, c_in: 4, h_in, w_in: h_in, c_out: 6, h_out: 5, w_out: 5 };
            Kernel::GradCrossCovariance { g, g_in: c.loc(g.in_len()), g_out: c.loc(g.out_grad_len()), out: c.loc(g.out_len()) }
        });
    }
    add("grad_cross_covariance_identity", ELEMENTWISE_TOLERANCE, &|c| {
        let g = crate::engine::cpu::CrossGeom { n: 2, c_in: 3, h_in: 4, w_in: 4, c_out: 3, h_out: 4, w_out: 4 };
        let same: Vec<f32> = (0..g.in_len()).map(|i| (i % 7) as f32 - 3.0).collect();
        Kernel::GradCrossCovariance { g, g_in: c.preset(same.clone()), g_out: c.preset(same), out: c.loc(g.out_len()) }
    });
    add("activation_patterns", ELEMENTWISE_TOLERANCE, &|c| Kernel::ActivationPatterns { n: 16, d: 301, x: c.loc(16 * 301), out: c.loc(301) });
    out
}

/// max|a - b| / max|b| (0 when both are all zero; infinite on a NaN mismatch).
pub fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let mut worst = 0f64;
    for (&g, &w) in got.iter().zip(want) {
        if g.is_nan() != w.is_nan() {
            return f64::INFINITY;
        }
        if !w.is_nan() {
            worst = worst.max((g as f64 - w as f64).abs());
        }
    }
    if scale > 0.0 {
        worst / scale
    } else {
        worst
    }
}

fn check_case(gpu: &Gpu, kernel: &Kernel, presets: &[(Loc, Vec<f32>)], seed: u64) -> Result<f64> {
    let locs = kernel.locs();
    let work = locs.iter().map(|l| l.end()).max().unwrap_or(0) + 7;
    let layout = MemoryLayout { params: 0, state: 0, work, labels: 8 };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut init: Vec<f32> = (0..work).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    for (l, v) in presets {
        init[l.offset..l.end()].copy_from_slice(v);
    }
    let labels: Vec<u32> = (0..8).map(|_| rng.random_range(0..10)).collect();
    let all = Loc::new(Space::Work, 0, work);

    let cpu = Cpu;
    let mut cm = <Cpu as Device<f32>>::alloc(&cpu, &layout)?;
    cpu.write(&mut cm, all, &init)?;
    <Cpu as Device<f32>>::write_labels(&cpu, &mut cm, &labels)?;
    cpu.launch(&mut cm, kernel)?;
    let want = cpu.read(&cm, all)?;

    let run_on_gpu = || -> Result<Vec<f32>> {
        let mut gm = gpu.alloc(&layout)?;
        gpu.write(&mut gm, all, &init)?;
        gpu.write_labels(&mut gm, &labels)?;
        gpu.launch(&mut gm, kernel)?;
        gpu.read(&gm, all)
    };
    let got = run_on_gpu()?;
    // The launches the plan statistics count for this kernel are the ones it makes.
    let mut gm = gpu.alloc(&layout)?;
    let captured = gpu.capture(&mut gm, &[kernel])?.map_or(0, |c| c.launches());
    let named = super::ops::launch_names(kernel);
    if captured != named.len() {
        anyhow::bail!("the kernel makes {captured} launches but ops::launch_names lists {named:?}");
    }
    // Reductions merge partial sums in a fixed order, so a second run gives the same bits.
    let again = run_on_gpu()?;
    if got.iter().zip(&again).any(|(a, b)| a.to_bits() != b.to_bits()) {
        anyhow::bail!("two runs of the kernel on the same input differ");
    }

    // Per location (so a large tensor does not hide a small one's error); the gaps between
    // locations must keep their bits.
    let worst = locs.iter().map(|l| relative_error(&got[l.offset..l.end()], &want[l.offset..l.end()])).fold(0f64, f64::max);
    let outside: Vec<usize> = (0..work).filter(|i| !locs.iter().any(|l| (l.offset..l.end()).contains(i))).collect();
    if outside.iter().any(|&i| got[i].to_bits() != init[i].to_bits()) {
        anyhow::bail!("the kernel wrote outside its locations");
    }
    Ok(worst)
}

/// The data kernel against [`Augment::apply`] with the same counter-drawn choices (must be exact).
fn check_augment(gpu: &Gpu, seed: u64) -> Result<f64> {
    let (size, count) = (8, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let images: Vec<u8> = (0..count * 3 * size * size).map(|_| rng.random()).collect();
    let aug = Augment { size, pad: 3, flip: true, cutout: 4, fill: 7, norm: Normalization::CIFAR10 };
    let indices = [4u32, 0, 2, 2];
    let (aug_seed, epoch, first) = (seed ^ 0x5eed, 3, 11);
    let lut = aug.norm.lut();
    let floats = aug.image_floats();
    let mut want = vec![0f32; indices.len() * floats];
    for (r, &i) in indices.iter().enumerate() {
        let a = aug.params(aug_seed, epoch, first + r as u64);
        let img = &images[i as usize * floats..(i as usize + 1) * floats];
        aug.apply(img, &a, &lut, &mut want[r * floats..(r + 1) * floats]);
    }
    let mut resident = gpu.upload_split(&images, &aug)?;
    // Positions before `first` hold image 0; the batch is positions first..first+4.
    let order: Vec<u32> = std::iter::repeat_n(0, first as usize).chain(indices).collect();
    resident.set_order(&order)?;
    let out = Loc::new(Space::Work, 0, want.len());
    let mem = gpu.alloc(&MemoryLayout { params: 0, state: 0, work: want.len(), labels: 0 })?;
    gpu.augment_batch(&resident, aug_seed, epoch, first as usize, indices.len(), &mem, out)?;
    Ok(relative_error(&gpu.read(&mem, out)?, &want))
}

/// Runs every check on `gpu`.
pub fn run(gpu: &Gpu, seed: u64) -> Vec<OpCheck> {
    let mut results = Vec::new();
    let mut record = |op: String, tolerance: f64, r: Result<f64>| {
        let (max_rel_error, error) = match r {
            Ok(e) => (e, None),
            Err(e) => (f64::INFINITY, Some(format!("{e:#}"))),
        };
        results.push(OpCheck { op, passed: error.is_none() && max_rel_error < tolerance, max_rel_error, tolerance, error });
    };
    for (i, (op, tol, kernel, presets)) in cases().into_iter().enumerate() {
        record(op, tol, check_case(gpu, &kernel, &presets, seed + i as u64));
    }
    record("augment".into(), ELEMENTWISE_TOLERANCE, check_augment(gpu, seed));
    results
}
