//! Fully connected layer y = x w^T + b (PyTorch nn.Linear layout: w is [d_out, d_in]). CPU face
//! in `cpu.rs`, CUDA face in `linear.cu` launched by `launch.rs`, self-test cases in `check.rs`.

pub(crate) mod check;
mod cpu;
pub mod launch;

pub use cpu::*;

use super::{assign_or_add, CpuView};
use std::borrow::Cow;

use crate::engine::kernel::Loc;
use crate::engine::precision::Precision;
use crate::engine::Float;

/// Shape of a fully connected layer: x [n, d_in], w [d_out, d_in], y [n, d_out].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinearGeom {
    pub n: usize,
    pub d_in: usize,
    pub d_out: usize,
}

/// The linear-layer kernels.
#[derive(Clone, Debug, PartialEq)]
pub enum LinearKernel {
    /// y = x w^T (+ b), x and w rounded to `precision` for the product (`Fp32`: none; `Tf32`
    /// and `Bf16`: the tensor-core kernel, FP32 accumulate).
    Forward { g: LinearGeom, x: Loc, w: Loc, b: Option<Loc>, y: Loc, precision: Precision },
    /// dx += dy w (dx = 0 + that without `accumulate`), dw += dy^T x, db += the column sums of
    /// dy (each when present). The two products' operands are rounded to `precision` as the
    /// forward's are (the tensor-core kernels); the bias gradient sums dy as it is.
    Backward { g: LinearGeom, x: Loc, w: Loc, dy: Loc, dx: Option<Loc>, dw: Option<Loc>, db: Option<Loc>, accumulate: bool, precision: Precision },
}

impl LinearKernel {
    pub fn name(&self) -> &'static str {
        match self {
            LinearKernel::Forward { .. } => "linear_forward",
            LinearKernel::Backward { .. } => "linear_backward",
        }
    }

    /// Inputs, then the outputs present.
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        match self {
            LinearKernel::Forward { x, w, b, y, .. } => {
                let mut v = vec![x, w];
                v.extend(b.as_mut());
                v.push(y);
                v
            }
            LinearKernel::Backward { x, w, dy, dx, dw, db, .. } => {
                let mut v = vec![x, w, dy];
                v.extend(dx.as_mut().into_iter().chain(dw.as_mut()).chain(db.as_mut()));
                v
            }
        }
    }

    pub fn outputs(&self) -> usize {
        match self {
            LinearKernel::Forward { .. } => 1,
            LinearKernel::Backward { dx, dw, db, .. } => dx.is_some() as usize + dw.is_some() as usize + db.is_some() as usize,
        }
    }

    pub fn accumulates(&self) -> bool {
        match *self {
            LinearKernel::Backward { accumulate, .. } => accumulate,
            _ => true,
        }
    }

    pub(crate) fn run_cpu<T: Float>(&self, m: &CpuView<T>) {
        match *self {
            LinearKernel::Forward { g, x, w, b, y, precision } => {
                let (x, w) = (precision.round_all(Cow::Borrowed(m.r(x))), precision.round_all(Cow::Borrowed(m.r(w))));
                linear_forward(&g, &x, &w, b.map(|l| m.r(l)), m.w(y))
            }
            LinearKernel::Backward { g, x, w, dy, dx, dw, db, accumulate, precision } => {
                let dx = dx.map(|l| assign_or_add(m.w(l), accumulate));
                let rounded = |l: Loc| precision.round_all(Cow::Borrowed(m.r(l)));
                linear_backward(&g, &rounded(x), &rounded(w), &rounded(dy), dx, dw.map(|l| m.w(l)), None);
                linear_backward(&g, m.r(x), m.r(w), m.r(dy), None, None, db.map(|l| m.w(l)))
            }
        }
    }
}
