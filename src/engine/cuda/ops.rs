//! The GPU face of a planned [`Kernel`]: the launches of its family's CUDA kernels (each family's
//! `launch.rs` in [`crate::engine::ops`]).

use anyhow::Result;

use super::launch::OnGpu;
use crate::engine::kernel::{per_family, Kernel};

impl Kernel {
    /// The CUDA kernels [`Kernel::launch`] launches, in order (for non-empty tensors): what a
    /// planned step costs in launches on a GPU. Held to the launches by the self-test, which
    /// counts the launches a capture of each case records.
    pub fn launch_names(&self) -> Vec<&'static str> {
        per_family!(self, k => k.launch_names())
    }

    /// Launches the kernel on `on` (its locations bounds-checked as they are turned into
    /// addresses).
    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        per_family!(self, k => k.launch(on))
    }
}
