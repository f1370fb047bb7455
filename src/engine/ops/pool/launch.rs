//! The pools as launches of pool.cu: one thread per output element (forward) or per input
//! element (backward, which gathers the windows covering it: no atomics).

use anyhow::Result;

use super::PoolKernel;
use crate::engine::cuda::launch::{flag, len, OnGpu};

impl PoolKernel {
    /// The CUDA kernel [`PoolKernel::launch`] launches: `fear_` + the op's name.
    pub fn launch_names(&self) -> Vec<&'static str> {
        vec![match self {
            PoolKernel::AvgPool3Forward { .. } => "fear_avg_pool3_forward",
            PoolKernel::AvgPool3Backward { .. } => "fear_avg_pool3_backward",
            PoolKernel::AvgPool2Forward { .. } => "fear_avg_pool2_forward",
            PoolKernel::AvgPool2Backward { .. } => "fear_avg_pool2_backward",
        }]
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
