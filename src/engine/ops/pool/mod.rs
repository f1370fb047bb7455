//! Average pools: 3x3 stride 1 pad 1 with count_include_pad = false (the NATS-Bench
//! `avg_pool_3x3`), and 2x2 stride 2 (the reduction block's shortcut). CPU face in `cpu.rs`, CUDA
//! face in `pool.cu` launched by `launch.rs`, self-test cases in `check.rs`.

pub(crate) mod check;
mod cpu;
pub mod launch;

pub use cpu::*;

use super::{assign_or_add, CpuView};
use crate::engine::kernel::Loc;
use crate::engine::Float;

/// Shape of a pooled tensor's input: [n, c, h, w].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

/// The pooling kernels (backward kernels add into dx, or assign it without `accumulate`).
#[derive(Clone, Debug, PartialEq)]
pub enum PoolKernel {
    AvgPool3Forward { g: PoolGeom, x: Loc, y: Loc },
    AvgPool3Backward { g: PoolGeom, dy: Loc, dx: Loc, accumulate: bool },
    AvgPool2Forward { g: PoolGeom, x: Loc, y: Loc },
    AvgPool2Backward { g: PoolGeom, dy: Loc, dx: Loc, accumulate: bool },
}

impl PoolKernel {
    pub fn name(&self) -> &'static str {
        match self {
            PoolKernel::AvgPool3Forward { .. } => "avg_pool3_forward",
            PoolKernel::AvgPool3Backward { .. } => "avg_pool3_backward",
            PoolKernel::AvgPool2Forward { .. } => "avg_pool2_forward",
            PoolKernel::AvgPool2Backward { .. } => "avg_pool2_backward",
        }
    }

    /// The input, then the output.
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        match self {
            PoolKernel::AvgPool3Forward { x, y, .. } | PoolKernel::AvgPool2Forward { x, y, .. } => vec![x, y],
            PoolKernel::AvgPool3Backward { dy, dx, .. } | PoolKernel::AvgPool2Backward { dy, dx, .. } => vec![dy, dx],
        }
    }

    pub fn outputs(&self) -> usize {
        1
    }

    pub fn accumulates(&self) -> bool {
        match *self {
            PoolKernel::AvgPool3Backward { accumulate, .. } | PoolKernel::AvgPool2Backward { accumulate, .. } => accumulate,
            _ => true,
        }
    }

    pub(crate) fn run_cpu<T: Float>(&self, m: &CpuView<T>) {
        match *self {
            PoolKernel::AvgPool3Forward { g, x, y } => avg_pool3_forward(&g, m.r(x), m.w(y)),
            PoolKernel::AvgPool3Backward { g, dy, dx, accumulate } => avg_pool3_backward(&g, m.r(dy), assign_or_add(m.w(dx), accumulate)),
            PoolKernel::AvgPool2Forward { g, x, y } => avg_pool2_forward(&g, m.r(x), m.w(y)),
            PoolKernel::AvgPool2Backward { g, dy, dx, accumulate } => avg_pool2_backward(&g, m.r(dy), assign_or_add(m.w(dx), accumulate)),
        }
    }
}
