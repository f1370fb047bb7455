//! The CUDA face of the engine: the kernels of `kernels/*.cu` launched on a GPU through cudarc,
//! or on the CPU through the host emulation of the same sources (for tests and `fear doctor` on
//! machines with no GPU).
//!
//! - [`artifacts`]: what build.rs embedded (sources, cubins/PTX per target, ptxas reports).
//! - [`launch`]: the one launch path: argument arrays, grid sizes, the [`Backend`] trait.
//! - [`capture`]: recording launches once and replaying them (CUDA graphs).
//! - [`emulated`] and [`driver`]: the two backends (host fibers; the CUDA driver via cudarc).
//! - [`gpu`]: [`Gpu`], the [`crate::engine::Device`] that runs a planned step's kernels.
//! - [`conv`]: the implicit-GEMM convolutions' tiles, splits and launches.
//! - [`ops`]: how each [`crate::engine::Kernel`] maps onto kernel launches.
//! - [`data`]: images resident on the device and the augmentation kernel.
//! - [`selftest`]: every kernel against the CPU op on small random shapes.
pub mod artifacts;
pub mod capture;
pub mod conv;
pub mod data;
pub mod driver;
pub mod emulated;
pub mod gpu;
pub mod launch;
pub mod ops;
pub mod selftest;

pub use capture::CapturedLaunches;
pub use gpu::{Gpu, GpuCapture, GpuMemory};
pub use launch::{Arg, Backend, Dims};
