//! The CUDA runtime of the engine: the kernels of every op family (`src/engine/ops/*/*.cu`)
//! launched on a GPU through cudarc, or on the CPU through the host emulation of the same sources
//! (`kernels/emulate/`; for tests and `fear doctor` on machines with no GPU). How each op becomes
//! launches is its family's `launch.rs`.
//!
//! - [`artifacts`]: what build.rs embedded (sources, cubins/PTX per target, ptxas reports).
//! - [`launch`]: the one launch path: argument arrays, grid sizes, the [`Backend`] trait.
//! - [`capture`]: recording launches once and replaying them (CUDA graphs).
//! - [`emulated`] and [`driver`]: the two backends (host fibers; the CUDA driver via cudarc).
//! - [`gpu`]: [`Gpu`], the [`crate::engine::Device`] that runs a planned step's kernels.
//! - [`ops`]: a [`crate::engine::Kernel`]'s launches (its family's).
//! - [`resident`]: images kept on the device for the augmentation kernel.
//! - [`selftest`]: every kernel against the CPU op on small random shapes (the cases are each
//!   family's `check.rs`).
pub mod artifacts;
pub mod capture;
pub mod driver;
pub mod emulated;
pub mod gpu;
pub mod launch;
pub mod ops;
pub mod resident;
pub mod selftest;

pub use capture::CapturedLaunches;
pub use gpu::{Gpu, GpuCapture, GpuMemory};
pub use launch::{Arg, Backend, Dims, OnGpu};
pub use resident::ResidentSplit;
