//! Convolutions (no bias, no groups, square kernel): forward, input gradient, weight gradient.
//! CPU face in `cpu.rs`, CUDA face in `conv.cu` (implicit GEMM) launched by `launch.rs`,
//! self-test cases in `check.rs`.

pub(crate) mod check;
mod cpu;
pub mod launch;

pub use cpu::*;

use super::{assign_or_add, CpuView};
use crate::engine::kernel::Loc;
use crate::engine::Float;

/// Shape of one convolution: input [n, c_in, h, w], weight [c_out, c_in, k, k], output
/// [n, c_out, out_h, out_w] with `out = (in + 2*pad - k) / stride + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvGeom {
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }
    pub fn x_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }
    pub fn w_len(&self) -> usize {
        self.c_out * self.c_in * self.k * self.k
    }
    pub fn y_len(&self) -> usize {
        self.n * self.c_out * self.out_h() * self.out_w()
    }
}

/// The convolution kernels.
#[derive(Clone, Debug, PartialEq)]
pub enum ConvKernel {
    /// y = conv(x, w).
    Forward { g: ConvGeom, x: Loc, w: Loc, y: Loc },
    /// dx (+)= the input gradient of dy.
    BackwardInput { g: ConvGeom, dy: Loc, w: Loc, dx: Loc, accumulate: bool },
    /// dw += the weight gradient of dy.
    BackwardWeight { g: ConvGeom, x: Loc, dy: Loc, dw: Loc },
}

impl ConvKernel {
    pub fn name(&self) -> &'static str {
        match self {
            ConvKernel::Forward { .. } => "conv_forward",
            ConvKernel::BackwardInput { .. } => "conv_backward_input",
            ConvKernel::BackwardWeight { .. } => "conv_backward_weight",
        }
    }

    /// Inputs, then the one output.
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        match self {
            ConvKernel::Forward { x, w, y, .. } => vec![x, w, y],
            ConvKernel::BackwardInput { dy, w, dx, .. } => vec![dy, w, dx],
            ConvKernel::BackwardWeight { x, dy, dw, .. } => vec![x, dy, dw],
        }
    }

    pub fn outputs(&self) -> usize {
        1
    }

    pub fn accumulates(&self) -> bool {
        match *self {
            ConvKernel::BackwardInput { accumulate, .. } => accumulate,
            _ => true,
        }
    }

    pub(crate) fn run_cpu<T: Float>(&self, m: &CpuView<T>) {
        match *self {
            ConvKernel::Forward { g, x, w, y } => conv_forward(&g, m.r(x), m.r(w), m.w(y)),
            ConvKernel::BackwardInput { g, dy, w, dx, accumulate } => conv_backward_input(&g, m.r(dy), m.r(w), assign_or_add(m.w(dx), accumulate)),
            ConvKernel::BackwardWeight { g, x, dy, dw } => conv_backward_weight(&g, m.r(x), m.r(dy), m.w(dw)),
        }
    }
}
