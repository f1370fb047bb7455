//! The optimiser ops as launches of optim.cu: the squared norm is one block (a fixed-order sum),
//! the rest one thread per parameter.

use anyhow::Result;

use super::OptimKernel;
use crate::engine::cuda::launch::threads::FEAR_SUMSQ_THREADS;
use crate::engine::cuda::launch::{len, Arg, OnGpu};

impl OptimKernel {
    /// The CUDA kernel [`OptimKernel::launch`] launches: `fear_` + the op's name.
    pub fn launch_names(&self) -> Vec<&'static str> {
        vec![match self {
            OptimKernel::SumSquares { .. } => "fear_sum_squares",
            OptimKernel::ClipByNorm { .. } => "fear_clip_by_norm",
            OptimKernel::Sgd { .. } => "fear_sgd",
        }]
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        match *self {
            OptimKernel::SumSquares { x, out } => on.per_item("fear_sum_squares", 1, FEAR_SUMSQ_THREADS, &[on.p(x)?, on.p(out)?, len(x.len)?]),
            OptimKernel::ClipByNorm { grads, sum_sq, max_norm } => {
                on.elementwise("fear_clip_by_norm", grads.len, &[on.p(grads)?, on.p(sum_sq)?, len(grads.len)?, Arg::F64(max_norm)])
            }
            OptimKernel::Sgd { w, g, buf, lr, momentum, weight_decay, nesterov } => {
                let args = [
                    on.p(w)?,
                    on.p(g)?,
                    on.p(buf)?,
                    on.p(lr)?,
                    len(w.len)?,
                    Arg::F32(momentum as f32),
                    Arg::F32(weight_decay as f32),
                    Arg::I32(nesterov as i32),
                ];
                on.elementwise("fear_sgd", w.len, &args)
            }
        }
    }
}
