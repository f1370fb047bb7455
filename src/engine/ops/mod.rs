//! The ops, one folder per family. Each folder holds everything about its kernels:
//!
//! - `mod.rs`: the family's geometry and its [`crate::engine::Kernel`] variants (the family enum),
//!   with each variant's name, the locations it reads and writes, and which of them it writes;
//! - `cpu.rs`: the CPU face, plain functions over contiguous slices, parallel with rayon; the
//!   truth every other face is held to;
//! - `<family>.cu`: the CUDA face (build.rs compiles every `src/engine/ops/*/*.cu`, after the
//!   shared headers in `kernels/`);
//! - `launch.rs`: how a variant becomes launches of those CUDA kernels (grid, arguments);
//! - `check.rs`: the self-test cases that hold each CUDA kernel to the CPU function
//!   ([`crate::engine::cuda::selftest`], run by the tests and `fear doctor`);
//! - `tests.rs`: the CPU functions against naive f64 references and finite differences (the
//!   `ops` test target, `src/engine/ops/tests.rs`).
//!
//! One name per op: the variant's [`crate::engine::Kernel::name`], the CPU function and the CUDA
//! kernel (`fear_` + the name; an op that takes several launches names them `fear_<name>_<stage>`
//! or after the stage they share with a sibling, as batchnorm's `fear_bn_apply`).
//!
//! Conventions, shared by both faces:
//! - tensors are contiguous, row-major, NCHW for images, [N, D] for features;
//! - forward functions overwrite their outputs;
//! - backward functions *accumulate* (`+=`) into their gradient outputs, so a value used by several
//!   ops gathers its gradient without extra buffers; a backward kernel with an `accumulate` flag
//!   assigns instead when the flag is clear (the planner clears it on a gradient's first writer);
//! - an `Option<&mut [T]>` gradient output that is `None` is not computed (frozen or not needed).

use std::any::Any;
use std::cell::Cell;

use super::kernel::{Loc, Space};
use super::Float;

pub mod augment;
pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod feature_probe;
pub mod linear;
pub mod loss;
pub mod mma;
pub mod optim;
pub mod pool;
pub mod probe;

pub use batchnorm::{BnGeom, BnKernel, BnOutput};
pub use conv::{BnGradient, BnStatistics, ConvGeom, ConvKernel, DxTerms, PendingSum, SiblingBackward, SiblingForward, WeightSums};
pub use elementwise::ElementwiseKernel;
pub use feature_probe::{CrossGeom, FeatureProbeKernel};
pub use linear::{LinearGeom, LinearKernel};
pub use loss::LossKernel;
pub use mma::MmaKernel;
pub use optim::OptimKernel;
pub use pool::{PoolGeom, PoolKernel};
pub use probe::ProbeKernel;

/// A step's memory as the CPU face sees it: the slice at each location, and the labels.
pub struct CpuView<'a, T> {
    bases: [*mut T; crate::engine::kernel::SPACES],
    pub labels: &'a [u32],
}

impl<'a, T> CpuView<'a, T> {
    /// # Safety
    /// Every location a kernel run on this view reads or writes must lie inside its space
    /// (`bases[space.index()]` points at that many elements), and every location it writes must
    /// be disjoint from every other it touches (`Kernel::check_no_aliasing`); the memory must
    /// outlive the view.
    pub(crate) unsafe fn new(bases: [*mut T; crate::engine::kernel::SPACES], labels: &'a [u32]) -> CpuView<'a, T> {
        CpuView { bases, labels }
    }

    /// The elements at `l`, to read.
    pub fn r(&self, l: Loc) -> &[T] {
        // SAFETY: in bounds and not written by the same kernel (the contract of `new`).
        unsafe { std::slice::from_raw_parts(self.base(l.space).add(l.offset), l.len) }
    }

    /// The elements at `l`, to write.
    #[allow(clippy::mut_from_ref)] // disjoint from everything else the kernel touches (see `new`)
    pub fn w(&self, l: Loc) -> &mut [T] {
        // SAFETY: in bounds and disjoint from every other location of the kernel (see `new`).
        unsafe { std::slice::from_raw_parts_mut(self.base(l.space).add(l.offset), l.len) }
    }

    fn base(&self, space: Space) -> *mut T {
        self.bases[space.index()]
    }
}

/// The destination of an accumulating CPU op in a kernel's mode: zeroed first when the kernel
/// assigns, so that assign mode is `0 + ...`, bit for bit what a `zero` kernel before it gave.
pub(crate) fn assign_or_add<T: Float>(dx: &mut [T], accumulate: bool) -> &mut [T] {
    if !accumulate {
        elementwise::zero(dx);
    }
    dx
}

thread_local! {
    static SCRATCH: Cell<Option<Box<dyn Any>>> = const { Cell::new(None) };
}

/// Runs `f` on a per-thread scratch slice of `len` elements (contents unspecified: `f` must write
/// before it reads). The buffer is kept between calls, so hot loops do not allocate; a nested call
/// on the same thread gets a fresh buffer instead of aliasing the outer one.
pub(crate) fn with_scratch<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buf: Vec<T> = SCRATCH.with(|s| s.take()).and_then(|b| b.downcast::<Vec<T>>().ok()).map(|b| *b).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, T::zero());
    }
    let r = f(&mut buf[..len]);
    SCRATCH.with(|s| s.set(Some(Box::new(buf))));
    r
}
