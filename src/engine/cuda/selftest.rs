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
/// Work space (f32) and one 16-bit space: Half (tensors stored as bfloat16; [`add_f16_twins`]
/// moves a case's Half locations to `HalfF16` to check the IEEE-half kernels) or HalfF16.
pub(crate) struct Case {
    /// The next free element of Work and of the 16-bit space.
    next: [usize; 2],
    locs: Vec<Loc>,
    presets: Vec<(Loc, Vec<f32>)>,
}

impl Case {
    fn new() -> Case {
        Case { next: [0; 2], locs: Vec::new(), presets: Vec::new() }
    }
    /// A new location of `len` f32 elements (with a gap, so an overrun shows as a difference).
    pub fn loc(&mut self, len: usize) -> Loc {
        self.tensor_in(Space::Work, len)
    }
    /// A new location of `len` elements stored as bfloat16 (`Space::Half`), with a gap.
    pub fn half(&mut self, len: usize) -> Loc {
        self.tensor_in(Space::Half, len)
    }
    /// [`Case::loc`] or [`Case::half`] as `half` says: a tensor of a case run at both storages.
    pub fn tensor(&mut self, len: usize, half: bool) -> Loc {
        if half {
            self.half(len)
        } else {
            self.loc(len)
        }
    }
    /// A new location of `len` elements in `space` (Work, or the case's one 16-bit space), with a gap.
    pub fn tensor_in(&mut self, space: Space, len: usize) -> Loc {
        let next = &mut self.next[space.is_16bit() as usize];
        // Even offsets in Half keep its 4-byte words aligned, as the planner's are.
        *next = next.next_multiple_of(2);
        let l = Loc::new(space, *next, len);
        *next += len + 7;
        self.locs.push(l);
        l
    }
    /// [`Case::loc`] starting at a multiple of `align` elements (for kernels that copy in
    /// aligned pieces).
    pub fn aligned_loc(&mut self, len: usize, align: usize) -> Loc {
        self.next[0] = self.next[0].next_multiple_of(align);
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
    add_f16_twins(&mut cases);
    cases
}

/// Every case with tensors stored as bfloat16 (in `Space::Half`), again with them stored as IEEE
/// half (`Space::HalfF16`, `--precision fp16`): the `_f16` instantiations of the same kernels on
/// the same shapes, named with `_f16` for the storage's `_bf16`, held to the same tolerance (an
/// IEEE half keeps 11 significant bits to bfloat16's 8, and the cases' values lie well inside its
/// range). Left out: the cases of a tensor-core product (TF32, BF16), whose kernels exist for
/// bfloat16 tensors only; every other case gets its twin, so a kernel missing its `_f16`
/// instantiation fails its check. (The FP16 products' cases on halves are laid out in HalfF16
/// by their families, as they have no bfloat16 instantiation to twin.)
fn add_f16_twins(cases: &mut Cases) {
    let mut twins = Vec::new();
    for (name, tolerance, kernels, presets) in &cases.out {
        let mut kernels = kernels.clone();
        let mut half = false;
        for loc in kernels.iter_mut().flat_map(Kernel::locs_mut) {
            if loc.space == Space::Half {
                loc.space = Space::HalfF16;
                half = true;
            }
        }
        let product = kernels.iter().flat_map(Kernel::launch_names).any(|n| n.contains("_tf32") || n.contains("mma"));
        if !half || product {
            continue;
        }
        let at = name.rfind("_bf16").unwrap_or(name.len());
        let twin = format!("{}_f16{}", &name[..at], name[at..].strip_prefix("_bf16").unwrap_or(""));
        twins.push((twin, *tolerance, kernels, presets.clone()));
    }
    cases.out.extend(twins);
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
    // The Work space and the 16-bit one (`Half` or `HalfF16`, as the case's tensors are stored)
    // the case's memory spans; index 1 is the 16-bit one.
    let half_space = locs.iter().map(|l| l.space).find(|s| s.is_16bit()).unwrap_or(Space::Half);
    let case_spaces = [Space::Work, half_space];
    let index = |l: &Loc| l.space.is_16bit() as usize;
    let extent = |space: Space| locs.iter().filter(|l| l.space == space).map(|l| l.end() + 7).max().unwrap_or(0);
    let (work, half) = (extent(Space::Work).max(7), extent(half_space));
    let layout = MemoryLayout { params: 0, state: 0, work, half, labels: 8 };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Each space's initial values; the 16-bit space's as the 16-bit values both devices store.
    let mut init: Vec<Vec<f32>> = case_spaces.iter().map(|&s| (0..layout.len(s)).map(|_| rng.random_range(-1.0f32..1.0)).collect()).collect();
    for (l, v) in presets {
        init[index(l)][l.offset..l.end()].copy_from_slice(v);
    }
    for v in &mut init[1] {
        *v = half_space.storage().round(*v);
    }
    let labels: Vec<u32> = (0..8).map(|_| rng.random_range(0..10)).collect();
    let whole = |i: usize| Loc::new(case_spaces[i], 0, layout.len(case_spaces[i]));

    let cpu = Cpu;
    let mut cm = <Cpu as Device<f32>>::alloc(&cpu, &layout)?;
    for (i, v) in init.iter().enumerate() {
        cpu.write(&mut cm, whole(i), v)?;
    }
    <Cpu as Device<f32>>::write_labels(&cpu, &mut cm, &labels)?;
    for kernel in kernels {
        cpu.launch(&mut cm, kernel)?;
    }
    let want: Vec<Vec<f32>> = (0..2).map(|i| cpu.read(&cm, whole(i))).collect::<Result<_>>()?;

    let run_on_gpu = || -> Result<Vec<Vec<f32>>> {
        let mut gm = gpu.alloc(&layout)?;
        for (i, v) in init.iter().enumerate() {
            gpu.write(&mut gm, whole(i), v)?;
        }
        gpu.write_labels(&mut gm, &labels)?;
        for kernel in kernels {
            gpu.launch(&mut gm, kernel)?;
        }
        (0..2).map(|i| gpu.read(&gm, whole(i))).collect()
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
    if got.iter().flatten().zip(again.iter().flatten()).any(|(a, b)| a.to_bits() != b.to_bits()) {
        anyhow::bail!("two runs of the kernel on the same input differ");
    }

    // Per location (so a large tensor does not hide a small one's error); the gaps between
    // locations must keep their bits.
    let worst = locs.iter().map(|l| relative_error(&got[index(l)][l.offset..l.end()], &want[index(l)][l.offset..l.end()])).fold(0f64, f64::max);
    for (i, &space) in case_spaces.iter().enumerate() {
        let inside = |e: &usize| locs.iter().any(|l| l.space == space && (l.offset..l.end()).contains(e));
        if (0..init[i].len()).filter(|e| !inside(e)).any(|e| got[i][e].to_bits() != init[i][e].to_bits()) {
            anyhow::bail!("the kernel wrote outside its locations in {space:?}");
        }
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
