//! Bare tensor-core tiles: one warp's D = A·B + C through each kind of `mma.sync` the kernels
//! will use (the wrappers of `kernels/mma.cuh`), with A and B rounded to the kind's precision.
//! Not part of any network: they are the first thing `fear doctor` checks on a GPU, because a
//! fragment-layout error shared by a kernel and the host emulation passes CI and only hardware
//! shows it. CPU face in `cpu.rs`, CUDA face in `mma.cu` launched by `launch.rs`, self-test
//! cases in `check.rs` (run by [`crate::engine::cuda::selftest::mma_tiles`]).

pub(crate) mod check;
mod cpu;
pub mod launch;

pub use cpu::*;

use super::CpuView;
use crate::engine::kernel::Loc;
use crate::engine::precision::Precision;
use crate::engine::Float;

/// One kind of tensor-core product, as a bare tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MmaKind {
    /// `mma.m16n8k8` with bf16 inputs (sm_80+).
    Bf16,
    /// `mma.m16n8k8` with tf32 inputs (sm_80+).
    Tf32,
    /// `mma.m8n8k4` with f16 inputs: four independent tiles, one per quadpair (sm_70+).
    F16,
    /// Two bf16 `mma.m16n8k8` (k = 16) on operands staged through shared memory by `cp.async`
    /// and read back by `ldmatrix` (sm_80+).
    Bf16Staged,
}

/// The shape of a tile kind: `tiles` independent products of an m x k A and a k x n B, all
/// row-major and one after another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileShape {
    pub tiles: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl TileShape {
    pub fn a_len(&self) -> usize {
        self.tiles * self.m * self.k
    }
    pub fn b_len(&self) -> usize {
        self.tiles * self.k * self.n
    }
    /// Of C, and of D.
    pub fn c_len(&self) -> usize {
        self.tiles * self.m * self.n
    }
}

impl MmaKind {
    pub const ALL: [MmaKind; 4] = [MmaKind::Bf16, MmaKind::Tf32, MmaKind::F16, MmaKind::Bf16Staged];

    /// The op's name (its CUDA kernel's after `fear_`).
    pub fn name(self) -> &'static str {
        match self {
            MmaKind::Bf16 => "mma_bf16_tile",
            MmaKind::Tf32 => "mma_tf32_tile",
            MmaKind::F16 => "mma_f16_tile",
            MmaKind::Bf16Staged => "mma_bf16_staged_tile",
        }
    }

    pub fn shape(self) -> TileShape {
        match self {
            MmaKind::Bf16 | MmaKind::Tf32 => TileShape { tiles: 1, m: 16, n: 8, k: 8 },
            MmaKind::F16 => TileShape { tiles: 4, m: 8, n: 8, k: 4 },
            MmaKind::Bf16Staged => TileShape { tiles: 1, m: 16, n: 8, k: 16 },
        }
    }

    /// What A and B are rounded to before the product.
    pub fn precision(self) -> Precision {
        match self {
            MmaKind::Bf16 | MmaKind::Bf16Staged => Precision::Bf16,
            MmaKind::Tf32 => Precision::Tf32,
            MmaKind::F16 => Precision::F16,
        }
    }

    /// The oldest architecture (sm number) with the instructions: a GPU below it never
    /// launches the kernel (its body is compiled there as a stand-in that gives NaN).
    pub fn min_sm(self) -> u32 {
        match self {
            MmaKind::F16 => 70,
            MmaKind::Bf16 | MmaKind::Tf32 | MmaKind::Bf16Staged => 80,
        }
    }
}

/// The tile kernels: D = A·B + C of one [`MmaKind`].
#[derive(Clone, Debug, PartialEq)]
pub enum MmaKernel {
    Tile { kind: MmaKind, a: Loc, b: Loc, c: Loc, d: Loc },
}

impl MmaKernel {
    pub fn name(&self) -> &'static str {
        match self {
            MmaKernel::Tile { kind, .. } => kind.name(),
        }
    }

    /// A, B and C, then D.
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        match self {
            MmaKernel::Tile { a, b, c, d, .. } => vec![a, b, c, d],
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
            MmaKernel::Tile { kind, a, b, c, d } => mma_tile(kind, m.r(a), m.r(b), m.r(c), m.w(d)),
        }
    }
}
