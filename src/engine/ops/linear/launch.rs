//! The linear layer as launches of linear.cu: in FP32 one thread per output element, on tensor
//! cores (TF32, BF16) one warp per m16n8 tile of the result; the backward is a kernel per gradient
//! asked for, so each thread (or warp) owns the elements it writes.

use anyhow::{bail, Result};

use super::LinearKernel;
use crate::engine::cuda::launch::threads::FEAR_MMA_THREADS;
use crate::engine::cuda::launch::{flag, len, Arg, OnGpu};
use crate::engine::precision::Precision;

impl LinearKernel {
    /// The CUDA kernels [`LinearKernel::launch`] launches, in order.
    pub fn launch_names(&self) -> Vec<&'static str> {
        match *self {
            LinearKernel::Forward { precision: Precision::Fp32, .. } => vec!["fear_linear_forward"],
            LinearKernel::Forward { .. } => vec!["fear_linear_forward_tensor"],
            LinearKernel::Backward { dx, dw, db, precision, .. } => {
                let tensor = precision != Precision::Fp32;
                let input = if tensor { "fear_linear_backward_input_tensor" } else { "fear_linear_backward_input" };
                let weight = if tensor { "fear_linear_backward_weight_tensor" } else { "fear_linear_backward_weight" };
                [dx.map(|_| input), dw.map(|_| weight), db.map(|_| "fear_linear_backward_bias")].into_iter().flatten().collect()
            }
        }
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        match *self {
            LinearKernel::Forward { g, x, w, b, y, precision } => {
                let args = [on.p(x)?, on.p(w)?, on.opt(b)?, on.p(y)?, len(g.n)?, len(g.d_in)?, len(g.d_out)?];
                match bf16_flag(precision)? {
                    None => on.elementwise("fear_linear_forward", g.n * g.d_out, &args),
                    Some(bf16) => on.per_item("fear_linear_forward_tensor", tiles(g.n, g.d_out), FEAR_MMA_THREADS, &[&args[..], &[bf16]].concat()),
                }
            }
            LinearKernel::Backward { g, x, w, dy, dx, dw, db, accumulate, precision } => {
                let bf16 = bf16_flag(precision)?;
                if let Some(dx) = dx {
                    let args = [on.p(dy)?, on.p(w)?, on.p(dx)?, len(g.n)?, len(g.d_in)?, len(g.d_out)?, flag(accumulate)];
                    match bf16 {
                        None => on.elementwise("fear_linear_backward_input", g.n * g.d_in, &args)?,
                        Some(bf16) => {
                            let args = [&args[..], &[bf16]].concat();
                            on.per_item("fear_linear_backward_input_tensor", tiles(g.n, g.d_in), FEAR_MMA_THREADS, &args)?
                        }
                    }
                }
                if let Some(dw) = dw {
                    let args = [on.p(x)?, on.p(dy)?, on.p(dw)?, len(g.n)?, len(g.d_in)?, len(g.d_out)?];
                    match bf16 {
                        None => on.elementwise("fear_linear_backward_weight", g.d_out * g.d_in, &args)?,
                        Some(bf16) => {
                            let args = [&args[..], &[bf16]].concat();
                            on.per_item("fear_linear_backward_weight_tensor", tiles(g.d_out, g.d_in), FEAR_MMA_THREADS, &args)?
                        }
                    }
                }
                if let Some(db) = db {
                    on.elementwise("fear_linear_backward_bias", g.d_out, &[on.p(dy)?, on.p(db)?, len(g.n)?, len(g.d_out)?])?;
                }
                Ok(())
            }
        }
    }
}

/// The tensor-core kernels' `bf16` argument for `precision` (1: bf16 operands, 0: TF32), or None
/// for the FP32 kernels.
fn bf16_flag(precision: Precision) -> Result<Option<Arg>> {
    match precision {
        Precision::Fp32 => Ok(None),
        Precision::Tf32 => Ok(Some(Arg::I32(0))),
        Precision::Bf16 => Ok(Some(Arg::I32(1))),
        Precision::F16 => bail!("the classifier has no fp16 tensor-core kernels (fp32, tf32 and bf16 only)"),
    }
}

/// The m16n8 tiles of an m x n result: the tensor-core kernels' blocks (one warp each).
fn tiles(m: usize, n: usize) -> usize {
    m.div_ceil(16) * n.div_ceil(8)
}
