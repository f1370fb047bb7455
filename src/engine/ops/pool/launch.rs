//! The pools as launches of pool.cu: one thread per output element (forward) or per input
//! element (backward, which gathers the windows covering it: no atomics).

use anyhow::Result;

use super::PoolKernel;
use crate::engine::cuda::launch::{flag, len, stored_variant, OnGpu};

impl PoolKernel {
    /// The CUDA kernel [`PoolKernel::launch`] launches: `fear_` + the op's name, its bfloat16
    /// instantiation where the tensors are stored so (`stored_variant`).
    pub fn launch_names(&self) -> Vec<&'static str> {
        let (base, tensor) = match *self {
            PoolKernel::AvgPool3Forward { y, .. } => ("fear_avg_pool3_forward", y),
            PoolKernel::AvgPool3Backward { dx, .. } => ("fear_avg_pool3_backward", dx),
            PoolKernel::AvgPool2Forward { y, .. } => ("fear_avg_pool2_forward", y),
            PoolKernel::AvgPool2Backward { dx, .. } => ("fear_avg_pool2_backward", dx),
        };
        vec![stored_variant(base, tensor)]
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        let name = self.launch_names()[0];
        match *self {
            PoolKernel::AvgPool3Forward { g, x: from, y: to } | PoolKernel::AvgPool2Forward { g, x: from, y: to } => {
                on.elementwise(name, to.len, &[on.p(from)?, on.p(to)?, len(g.n * g.c)?, len(g.h)?, len(g.w)?])
            }
            PoolKernel::AvgPool3Backward { g, dy, dx, accumulate } | PoolKernel::AvgPool2Backward { g, dy, dx, accumulate } => {
                on.elementwise(name, dx.len, &[on.p(dy)?, on.p(dx)?, len(g.n * g.c)?, len(g.h)?, len(g.w)?, flag(accumulate)])
            }
        }
    }
}
