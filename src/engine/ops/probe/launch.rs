//! The proxy probes as launches of probe.cu: whole-tensor sums are one block (a fixed-order
//! sum), per-channel sums a block per channel, the rest one thread per output element.

use anyhow::Result;

use super::ProbeKernel;
use crate::engine::cuda::launch::threads::FEAR_PROBE_THREADS;
use crate::engine::cuda::launch::{len, OnGpu};

impl ProbeKernel {
    /// The CUDA kernel [`ProbeKernel::launch`] launches: `fear_` + the op's name.
    pub fn launch_names(&self) -> Vec<&'static str> {
        vec![match self {
            ProbeKernel::SumAll { .. } => "fear_sum_all",
            ProbeKernel::SumAllBackward { .. } => "fear_sum_all_backward",
            ProbeKernel::ChannelFisher { .. } => "fear_channel_fisher",
            ProbeKernel::BinaryCodeGram { .. } => "fear_binary_code_gram",
        }]
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        match *self {
            ProbeKernel::SumAll { x, out } => on.per_item("fear_sum_all", 1, FEAR_PROBE_THREADS, &[on.p(x)?, on.p(out)?, len(x.len)?]),
            ProbeKernel::SumAllBackward { dx } => on.elementwise("fear_sum_all_backward", dx.len, &[on.p(dx)?, len(dx.len)?]),
            ProbeKernel::ChannelFisher { n, c, hw, x, dy, out } => {
                on.per_item("fear_channel_fisher", c, FEAR_PROBE_THREADS, &[on.p(x)?, on.p(dy)?, on.p(out)?, len(n)?, len(c)?, len(hw)?])
            }
            ProbeKernel::BinaryCodeGram { n, d, x, k } => on.elementwise("fear_binary_code_gram", n * n, &[on.p(x)?, on.p(k)?, len(n)?, len(d)?]),
        }
    }
}
