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
use crate::engine::cpu_device::Cpu;
use crate::engine::device::{Device, MemoryLayout};
use crate::engine::kernel::{Kernel, Loc, Space};
use crate::engine::ops;

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

/// A kernel (or a sequence of kernels) with its locations laid out one after another in the
/// Work space.
pub(crate) struct Case {
    next: usize,
    locs: Vec<Loc>,
    presets: Vec<(Loc, Vec<f32>)>,
}

impl Case {
    fn new() -> Case {
        Case { next: 0, locs: Vec::new(), presets: Vec::new() }
    }
    /// A new location of `len` elements (with a gap, so an overrun shows as a difference).
    pub fn loc(&mut self, len: usize) -> Loc {
        let l = Loc::new(Space::Work, self.next, len);
        self.next += len + 7;
        self.locs.push(l);
        l
    }
    /// [`Case::loc`] starting at a multiple of `align` elements (for kernels that copy in
    /// aligned pieces).
    pub fn aligned_loc(&mut self, len: usize, align: usize) -> Loc {
        self.next = self.next.next_multiple_of(align);
        self.loc(len)
    }
    /// A location holding `values` instead of random numbers.
    pub fn preset(&mut self, values: Vec<f32>) -> Loc {
        let l = self.loc(values.len());
        self.presets.push((l, values));
        l
    }
}

/// The cases of every op family, in family order: (op name, tolerance, kernels, the values preset
/// at some locations).
pub(crate) struct Cases {
    out: Vec<SelfTestCase>,
}

/// One case: op name, tolerance, the kernels run in order, and the values preset at some locations.
type SelfTestCase = (String, f64, Vec<Kernel>, Vec<(Loc, Vec<f32>)>);

impl Cases {
    /// A case named `name` held to `tolerance`; `build` lays out the kernel's locations with
    /// [`Case::loc`] and [`Case::preset`].
    pub fn add(&mut self, name: &str, tolerance: f64, build: impl FnOnce(&mut Case) -> Kernel) {
        self.add_sequence(name, tolerance, |c| vec![build(c)]);
    }

    /// A case of several kernels run in order (kernels that only together do what their CPU
    /// faces do, such as a deferred weight-gradient sum and the launch performing it): the CPU
    /// faces in order against the GPU launches in order, all memory compared after the last.
    pub fn add_sequence(&mut self, name: &str, tolerance: f64, build: impl FnOnce(&mut Case) -> Vec<Kernel>) {
        let mut c = Case::new();
        let ks = build(&mut c);
        self.out.push((name.to_string(), tolerance, ks, c.presets));
    }
}

/// Every case.
fn cases() -> Cases {
    let mut cases = Cases { out: Vec::new() };
    ops::conv::check::cases(&mut cases);
    ops::batchnorm::check::cases(&mut cases);
    ops::elementwise::check::cases(&mut cases);
    ops::pool::check::cases(&mut cases);
    ops::linear::check::cases(&mut cases);
    ops::loss::check::cases(&mut cases);
    ops::optim::check::cases(&mut cases);
    ops::probe::check::cases(&mut cases);
    ops::feature_probe::check::cases(&mut cases);
    cases
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

fn check_case(gpu: &Gpu, kernels: &[Kernel], presets: &[(Loc, Vec<f32>)], seed: u64) -> Result<f64> {
    let locs: Vec<Loc> = kernels.iter().flat_map(Kernel::locs).collect();
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
    for kernel in kernels {
        cpu.launch(&mut cm, kernel)?;
    }
    let want = cpu.read(&cm, all)?;

    let run_on_gpu = || -> Result<Vec<f32>> {
        let mut gm = gpu.alloc(&layout)?;
        gpu.write(&mut gm, all, &init)?;
        gpu.write_labels(&mut gm, &labels)?;
        for kernel in kernels {
            gpu.launch(&mut gm, kernel)?;
        }
        gpu.read(&gm, all)
    };
    let got = run_on_gpu()?;
    // The launches the plan statistics count for this kernel are the ones it makes.
    let mut gm = gpu.alloc(&layout)?;
    let captured = gpu.capture(&mut gm, &kernels.iter().collect::<Vec<_>>())?.map_or(0, |c| c.launches());
    let named: Vec<_> = kernels.iter().flat_map(Kernel::launch_names).collect();
    if captured != named.len() {
        anyhow::bail!("the kernel makes {captured} launches but its launch_names lists {named:?}");
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

fn record(results: &mut Vec<OpCheck>, op: String, tolerance: f64, r: Result<f64>) {
    let (max_rel_error, error) = match r {
        Ok(e) => (e, None),
        Err(e) => (f64::INFINITY, Some(format!("{e:#}"))),
    };
    results.push(OpCheck { op, passed: error.is_none() && max_rel_error < tolerance, max_rel_error, tolerance, error });
}

fn run_cases(gpu: &Gpu, cases: Cases, seed: u64, results: &mut Vec<OpCheck>) {
    for (i, (op, tol, kernels, presets)) in cases.out.into_iter().enumerate() {
        record(results, op, tol, check_case(gpu, &kernels, &presets, seed + i as u64));
    }
}

/// Runs every check on `gpu`.
pub fn run(gpu: &Gpu, seed: u64) -> Vec<OpCheck> {
    let mut results = Vec::new();
    run_cases(gpu, cases(), seed, &mut results);
    record(&mut results, "augment".into(), ELEMENTWISE_TOLERANCE, ops::augment::check::check(gpu, seed));
    results
}

/// One bare tensor-core tile of each kind `gpu`'s architecture has (`ops::mma`), against the
/// CPU: what `fear doctor` checks before the kernels, since a fragment layout wrong the same
/// way in a kernel and in the emulation shows only on hardware. The kinds left out are those
/// above [`crate::engine::cuda::Backend::sm`].
pub fn mma_tiles(gpu: &Gpu, seed: u64) -> Vec<OpCheck> {
    let mut cases = Cases { out: Vec::new() };
    ops::mma::check::cases(&mut cases, gpu.backend().sm());
    let mut results = Vec::new();
    run_cases(gpu, cases, seed, &mut results);
    results
}
