//! A kernel: one op applied to fixed locations in device memory (an instruction of a planned
//! step, not one CUDA kernel: an op may take several launches).
//!
//! A training step is a list of these (the forward kernels, the recorded backward kernels, the
//! optimiser kernels). Every location is fixed when the step is planned, so the same list runs
//! every step on the same buffers: on the CPU a loop over the list, on a GPU a sequence of launches
//! that can be captured once as a CUDA graph and replayed.
//!
//! [`Kernel`] has one variant per op family; each family's enum in [`super::ops`] owns its
//! variants' names, locations, CPU run and GPU launch, and `Kernel` only dispatches to it.

use anyhow::{bail, Result};

use super::ops::{
    BnKernel, ConvKernel, CpuView, ElementwiseKernel, FeatureProbeKernel, LinearKernel, LossKernel, MmaKernel, OptimKernel, PoolKernel, ProbeKernel,
};
use super::precision::Precision;
use super::Float;

/// The separately allocated regions of a device's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    /// All parameters, one flat buffer in parameter order.
    Params,
    /// The parameters' gradients, laid out exactly like `Params`.
    ParamGrads,
    /// Optimiser momentum, laid out exactly like `Params`.
    Momentum,
    /// BN running statistics, then a few scalars (loss, correct count, learning rate, grad norm).
    State,
    /// Activations, saved tensors and activation gradients, planned with reuse.
    Work,
    /// The same, for a step that stores its tensors in 16 bits ([`super::PlanOptions::storage`]
    /// `Bf16`): each element a bfloat16 on a GPU (2 bytes); on the CPU an f32 holding a bfloat16's
    /// value (every kernel's output here is rounded to one), so both devices hold the same values.
    Half,
    /// As `Half`, each element an IEEE half (binary16) instead: a step planned with storage `F16`
    /// (`--precision fp16`). The same allocation as `Half` (a step stores its tensors in one
    /// format), told apart so that every location says how its elements are stored.
    HalfF16,
    /// Not yet placed: `offset` is a virtual-buffer id (only while a step is being planned).
    Virtual,
}

/// A contiguous run of `len` elements at `offset` in `space`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub space: Space,
    pub offset: usize,
    pub len: usize,
}

impl Space {
    /// Which of a step's six allocated spaces this is (the index into every device's memory).
    pub fn index(self) -> usize {
        match self {
            Space::Params => 0,
            Space::ParamGrads => 1,
            Space::Momentum => 2,
            Space::State => 3,
            Space::Work => 4,
            Space::Half | Space::HalfF16 => 5,
            Space::Virtual => panic!("a kernel still addresses a virtual buffer: the step was not planned"),
        }
    }
}

/// How many spaces a step's memory allocates (every [`Space`] but `Virtual`).
pub const SPACES: usize = 6;

impl Space {
    /// The spaces a step allocates, in [`Space::index`] order.
    pub const ALLOCATED: [Space; SPACES] = [Space::Params, Space::ParamGrads, Space::Momentum, Space::State, Space::Work, Space::Half];

    /// Bytes an element of this space takes on a GPU: 2 for the 16-bit spaces, else 4 (f32).
    pub fn gpu_bytes(self) -> usize {
        if self.is_16bit() {
            2
        } else {
            4
        }
    }

    /// What an element of this space is stored as: `Bf16` in `Half`, `F16` in `HalfF16`, else
    /// `Fp32`.
    pub fn storage(self) -> Precision {
        match self {
            Space::Half => Precision::Bf16,
            Space::HalfF16 => Precision::F16,
            _ => Precision::Fp32,
        }
    }

    /// Whether elements here are 16 bits on a GPU (`Half` or `HalfF16`).
    pub fn is_16bit(self) -> bool {
        self.storage() != Precision::Fp32
    }

    /// Where a step storing its tensors as `storage` ([`super::PlanOptions::storage`]) puts them:
    /// `Half` (bfloat16), `HalfF16` (IEEE half), else `Work` (f32; TF32 is a products' precision
    /// only, its values f32s).
    pub fn for_tensors(storage: Precision) -> Space {
        match storage {
            Precision::Bf16 => Space::Half,
            Precision::F16 => Space::HalfF16,
            Precision::Fp32 | Precision::Tf32 => Space::Work,
        }
    }

    /// The suffix of a kernel's instantiation over this space's storage (kernels/storage.cuh):
    /// `""` (f32), `"_bf16"` or `"_f16"`.
    pub fn kernel_suffix(self) -> &'static str {
        match self.storage() {
            Precision::Bf16 => "_bf16",
            Precision::F16 => "_f16",
            _ => "",
        }
    }
}

impl Loc {
    pub fn new(space: Space, offset: usize, len: usize) -> Loc {
        Loc { space, offset, len }
    }
    pub fn end(&self) -> usize {
        self.offset + self.len
    }
    pub fn overlaps(&self, other: &Loc) -> bool {
        self.space == other.space && self.offset < other.end() && other.offset < self.end()
    }
}

/// One op on fixed locations, by family. (A convolution pair with both batch norms' statistics is
/// the largest variant by far; a step plans a few hundred kernels once, so size is no concern.)
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Kernel {
    Conv(ConvKernel),
    Bn(BnKernel),
    Pool(PoolKernel),
    Elementwise(ElementwiseKernel),
    Linear(LinearKernel),
    Loss(LossKernel),
    Optim(OptimKernel),
    Probe(ProbeKernel),
    FeatureProbe(FeatureProbeKernel),
    /// Bare tensor-core tiles (checked by `fear doctor`, in no network).
    Mma(MmaKernel),
}

/// `$body` with `$k` bound to the family kernel inside `$kernel`, whatever its family.
macro_rules! per_family {
    ($kernel:expr, $k:ident => $body:expr) => {
        match $kernel {
            Kernel::Conv($k) => $body,
            Kernel::Bn($k) => $body,
            Kernel::Pool($k) => $body,
            Kernel::Elementwise($k) => $body,
            Kernel::Linear($k) => $body,
            Kernel::Loss($k) => $body,
            Kernel::Optim($k) => $body,
            Kernel::Probe($k) => $body,
            Kernel::FeatureProbe($k) => $body,
            Kernel::Mma($k) => $body,
        }
    };
}
pub(crate) use per_family;

macro_rules! from_family {
    ($($family:ident($t:ty)),*) => {
        $(impl From<$t> for Kernel {
            fn from(k: $t) -> Kernel {
                Kernel::$family(k)
            }
        })*
    };
}
from_family!(
    Conv(ConvKernel),
    Bn(BnKernel),
    Pool(PoolKernel),
    Elementwise(ElementwiseKernel),
    Linear(LinearKernel),
    Loss(LossKernel),
    Optim(OptimKernel),
    Probe(ProbeKernel),
    FeatureProbe(FeatureProbeKernel),
    Mma(MmaKernel)
);

impl Kernel {
    /// The op's name (for profiles and node counts): its CPU function's, and its CUDA kernel's
    /// after `fear_`.
    pub fn name(&self) -> &'static str {
        per_family!(self, k => k.name())
    }

    /// Every location the kernel reads or writes, the ones it writes last: the trailing
    /// [`Kernel::outputs`] entries. Used by the memory planner (lifetimes) and by the devices'
    /// overlap checks.
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        per_family!(self, k => k.locs_mut())
    }

    /// How many trailing entries of [`Kernel::locs_mut`] the kernel writes.
    pub fn outputs(&self) -> usize {
        per_family!(self, k => k.outputs())
    }

    /// Whether the kernel adds into (rather than assigns) its activation gradient; true for every
    /// kernel without an `accumulate` flag.
    pub fn accumulates(&self) -> bool {
        per_family!(self, k => k.accumulates())
    }

    /// Copies of every location (see [`Kernel::locs_mut`]).
    pub fn locs(&self) -> Vec<Loc> {
        self.clone().locs_mut().into_iter().map(|l| *l).collect()
    }

    /// Runs the kernel's CPU face on `mem`.
    pub(crate) fn run_cpu<T: Float>(&self, mem: &CpuView<T>) {
        per_family!(self, k => k.run_cpu(mem))
    }

    /// Fails unless every output is disjoint from every other location the kernel touches (the
    /// planner guarantees it; this check turns a planner bug into an error instead of silent
    /// corruption). `locs` is [`Kernel::locs`].
    pub(crate) fn check_no_aliasing(&self, locs: &[Loc]) -> Result<()> {
        let (ins, outs) = locs.split_at(locs.len() - self.outputs());
        for (i, o) in outs.iter().enumerate() {
            if let Some(other) = ins.iter().chain(&outs[i + 1..]).find(|l| l.overlaps(o)) {
                bail!("{} writes {o:?}, which overlaps {other:?}", self.name());
            }
        }
        Ok(())
    }
}
