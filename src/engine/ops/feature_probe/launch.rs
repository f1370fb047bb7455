//! The feature probes as launches of feature_probe.cu: a block per covariance entry (a
//! fixed-order sum over the samples), one thread per element otherwise.

use anyhow::{ensure, Result};

use super::FeatureProbeKernel;
use crate::engine::cuda::launch::threads::FEAR_PROBE_THREADS;
use crate::engine::cuda::launch::{len, Arg, OnGpu};

impl FeatureProbeKernel {
    /// The CUDA kernel [`FeatureProbeKernel::launch`] launches: `fear_` + the op's name.
    pub fn launch_names(&self) -> Vec<&'static str> {
        vec![match self {
            FeatureProbeKernel::FeatureCovariance { .. } => "fear_feature_covariance",
            FeatureProbeKernel::RandomSigns { .. } => "fear_random_signs",
            FeatureProbeKernel::GradCrossCovariance { .. } => "fear_grad_cross_covariance",
            FeatureProbeKernel::ActivationPatterns { .. } => "fear_activation_patterns",
        }]
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        match *self {
            FeatureProbeKernel::FeatureCovariance { n, c, hw, x, out } => {
                on.per_item("fear_feature_covariance", c * c, FEAR_PROBE_THREADS, &[on.p(x)?, on.p(out)?, len(n)?, len(c)?, len(hw)?])
            }
            FeatureProbeKernel::RandomSigns { seed, y } => on.elementwise("fear_random_signs", y.len, &[on.p(y)?, Arg::U64(seed), len(y.len)?]),
            FeatureProbeKernel::GradCrossCovariance { g, g_in, g_out, out } => {
                let dims = [g.n, g.c_in, g.h_in, g.w_in, g.c_out, g.h_out, g.w_out].into_iter().map(len).collect::<Result<Vec<_>>>()?;
                on.per_item("fear_grad_cross_covariance", g.out_len(), FEAR_PROBE_THREADS, &[vec![on.p(g_in)?, on.p(g_out)?, on.p(out)?], dims].concat())
            }
            FeatureProbeKernel::ActivationPatterns { n, d, x, out } => {
                ensure!(n <= 24, "activation patterns take at most 24 samples, not {n}");
                on.elementwise("fear_activation_patterns", d, &[on.p(x)?, on.p(out)?, len(n)?, len(d)?])
            }
        }
    }
}
