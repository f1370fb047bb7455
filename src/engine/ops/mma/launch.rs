//! The bare tiles as launches of mma.cu: one warp, one block. A kind the GPU's architecture
//! lacks is refused here (its kernel is compiled for every target, with a stand-in body below
//! the kind's [`MmaKind::min_sm`]).

use anyhow::{ensure, Result};

use super::{MmaKernel, MmaKind};
use crate::engine::cuda::launch::{launch_bounded_with_shared, threads, Arg, Backend, DevicePtr, Dims, OnGpu};

/// Dynamic shared memory of `fear_mma_bf16_staged_tile`: A, B and C as f32 (256 + 128 + 128
/// floats), then A and B transposed as bf16 (256 + 128 halves).
pub const STAGED_SHARED_BYTES: u32 = (256 + 128 + 128) * 4 + (256 + 128) * 2;

impl MmaKernel {
    /// The CUDA kernel [`MmaKernel::launch`] launches: `fear_` + the op's name.
    pub fn launch_names(&self) -> Vec<&'static str> {
        match self {
            MmaKernel::Tile { kind, .. } => vec![kernel_name(*kind)],
        }
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        let MmaKernel::Tile { kind, a, b, c, d } = *self;
        let at = |l| on.mem.address(l);
        // SAFETY: every address is a bounds-checked location of the kernel's shape (its CPU face
        // asserts the lengths; Gpu::launch checked each location against its space).
        unsafe { launch_tile(on.backend, kind, [at(a)?, at(b)?, at(c)?, at(d)?], true) }
    }
}

fn kernel_name(kind: MmaKind) -> &'static str {
    match kind {
        MmaKind::Bf16 => "fear_mma_bf16_tile",
        MmaKind::Tf32 => "fear_mma_tf32_tile",
        MmaKind::F16 => "fear_mma_f16_tile",
        MmaKind::Bf16Staged => "fear_mma_bf16_staged_tile",
    }
}

/// Launches `kind`'s tile on the device addresses of A, B, C and D; `wait` false leaves out the
/// staged tile's `cp.async` waits (for the test that the emulation shows a missing wait).
///
/// # Safety
/// The addresses hold `kind.shape()`'s operands on `backend`.
pub unsafe fn launch_tile(backend: &dyn Backend, kind: MmaKind, [a, b, c, d]: [DevicePtr; 4], wait: bool) -> Result<()> {
    let name = kernel_name(kind);
    let sm = backend.sm();
    ensure!(sm >= kind.min_sm(), "{name} needs sm_{} or newer; this GPU is sm_{sm}", kind.min_sm());
    let mut args = vec![Arg::Ptr(a), Arg::Ptr(b), Arg::Ptr(c), Arg::Ptr(d)];
    let mut shared = 0;
    if kind == MmaKind::Bf16Staged {
        // cp.async copies 16-, 8- and 4-byte pieces of A, B and C: a misaligned one faults.
        ensure!(a % 16 == 0 && b % 8 == 0 && c % 4 == 0, "{name}: A, B and C must be aligned to 16, 8 and 4 bytes");
        args.push(Arg::I32(wait as i32));
        shared = STAGED_SHARED_BYTES;
    }
    let dims = Dims { grid: [1, 1, 1], block: [threads::FEAR_MMA_THREADS, 1, 1] };
    launch_bounded_with_shared(backend, name, dims, shared, &args)
}
