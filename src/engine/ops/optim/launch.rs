//! The optimiser ops as launches of optim.cu: the squared norm is one block (a fixed-order sum),
//! the rest one thread per parameter.

use anyhow::{ensure, Result};

use super::OptimKernel;
use crate::engine::cuda::launch::threads::FEAR_SUMSQ_THREADS;
use crate::engine::cuda::launch::{len, Arg, OnGpu};
use crate::engine::loss_scale;

impl OptimKernel {
    /// The CUDA kernel [`OptimKernel::launch`] launches: `fear_` + the op's name.
    pub fn launch_names(&self) -> Vec<&'static str> {
        vec![match self {
            OptimKernel::SumSquares { .. } => "fear_sum_squares",
            OptimKernel::ClipByNorm { .. } => "fear_clip_by_norm",
            OptimKernel::Sgd { .. } => "fear_sgd",
            OptimKernel::UnscaleGrads { .. } => "fear_unscale_grads",
            OptimKernel::UpdateLossScale { .. } => "fear_update_loss_scale",
        }]
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        match *self {
            OptimKernel::SumSquares { x, out } => on.per_item("fear_sum_squares", 1, FEAR_SUMSQ_THREADS, &[on.p(x)?, on.p(out)?, len(x.len)?]),
            OptimKernel::ClipByNorm { grads, sum_sq, max_norm } => {
                on.elementwise("fear_clip_by_norm", grads.len, &[on.p(grads)?, on.p(sum_sq)?, len(grads.len)?, Arg::F64(max_norm)])
            }
            OptimKernel::Sgd { w, g, buf, lr, momentum, weight_decay, nesterov, skip } => {
                let args = [
                    on.p(w)?,
                    on.p(g)?,
                    on.p(buf)?,
                    on.p(lr)?,
                    len(w.len)?,
                    Arg::F32(momentum as f32),
                    Arg::F32(weight_decay as f32),
                    Arg::I32(nesterov as i32),
                    on.opt(skip)?,
                ];
                on.elementwise("fear_sgd", w.len, &args)
            }
            OptimKernel::UnscaleGrads { grads, state } => {
                ensure!(state.len == loss_scale::SLOTS, "unscale_grads: a loss-scaling state of {} slots, not {}", state.len, loss_scale::SLOTS);
                on.elementwise("fear_unscale_grads", grads.len, &[on.p(grads)?, on.p(state)?, len(grads.len)?])
            }
            OptimKernel::UpdateLossScale { state, loss, rules } => {
                ensure!(state.len == loss_scale::SLOTS, "update_loss_scale: a loss-scaling state of {} slots, not {}", state.len, loss_scale::SLOTS);
                let args = [
                    on.p(state)?,
                    on.p(loss)?,
                    Arg::I32(rules.growth_interval.min(i32::MAX as u32) as i32),
                    Arg::F32(rules.floor),
                    Arg::I32(rules.max_skips_in_a_row.min(i32::MAX as u32) as i32),
                    Arg::F32(loss_scale::MAX_SCALE),
                ];
                // One thread's work; the grid-stride shape keeps the elementwise launch bounds.
                on.elementwise("fear_update_loss_scale", 1, &args)
            }
        }
    }
}
