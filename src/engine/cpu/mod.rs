//! The CPU face of every op: plain functions over contiguous NCHW slices, parallel with rayon.
//!
//! Conventions, shared with the CUDA kernels that mirror these functions:
//! - tensors are contiguous, row-major, NCHW for images, [N, D] for features;
//! - forward functions overwrite their outputs;
//! - backward functions *accumulate* (`+=`) into their gradient outputs, so a value used by several
//!   ops gathers its gradient without extra buffers; the caller zeroes a gradient before its first use;
//! - an `Option<&mut [T]>` gradient output that is `None` is not computed (frozen or not needed).

pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod feature_probe;
pub mod linear;
pub mod loss;
pub mod optim;
pub mod pool;
pub mod probe;

pub use batchnorm::*;
pub use conv::*;
pub use elementwise::*;
pub use feature_probe::*;
pub use linear::*;
pub use loss::*;
pub use optim::*;
pub use pool::*;
pub use probe::*;
