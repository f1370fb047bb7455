//! The linear layer as launches of linear.cu: one thread per output element; the backward is a
//! kernel per gradient asked for, so each thread owns one element it writes.

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
            LinearKernel::Backward { dx, dw, db, .. } => {
                [dx.map(|_| "fear_linear_backward_input"), dw.map(|_| "fear_linear_backward_weight"), db.map(|_| "fear_linear_backward_bias")]
                    .into_iter()
                    .flatten()
                    .collect()
            }
        }
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        match *self {
            LinearKernel::Forward { g, x, w, b, y, precision } => {
                let args = [on.p(x)?, on.p(w)?, on.opt(b)?, on.p(y)?, len(g.n)?, len(g.d_in)?, len(g.d_out)?];
                let bf16 = match precision {
                    Precision::Fp32 => return on.elementwise("fear_linear_forward", g.n * g.d_out, &args),
                    Precision::Tf32 => 0,
                    Precision::Bf16 => 1,
                    Precision::F16 => bail!("the classifier has no fp16 tensor-core forward"),
                };
                // One warp per 16 rows of y.
                on.per_item("fear_linear_forward_tensor", g.n.div_ceil(16), FEAR_MMA_THREADS, &[&args[..], &[Arg::I32(bf16)]].concat())
            }
            LinearKernel::Backward { g, x, w, dy, dx, dw, db, accumulate } => {
                if let Some(dx) = dx {
                    let args = [on.p(dy)?, on.p(w)?, on.p(dx)?, len(g.n)?, len(g.d_in)?, len(g.d_out)?, flag(accumulate)];
                    on.elementwise("fear_linear_backward_input", g.n * g.d_in, &args)?;
                }
                if let Some(dw) = dw {
                    let args = [on.p(x)?, on.p(dy)?, on.p(dw)?, len(g.n)?, len(g.d_in)?, len(g.d_out)?];
                    on.elementwise("fear_linear_backward_weight", g.d_out * g.d_in, &args)?;
                }
                if let Some(db) = db {
                    on.elementwise("fear_linear_backward_bias", g.d_out, &[on.p(dy)?, on.p(db)?, len(g.n)?, len(g.d_out)?])?;
                }
                Ok(())
            }
        }
    }
}
