//! The feature probes' self-test cases (see [`crate::engine::cuda::selftest`]).

use super::{CrossGeom, FeatureProbeKernel};
use crate::engine::cuda::selftest::{Cases, ELEMENTWISE_TOLERANCE, REDUCTION_TOLERANCE};

pub(crate) fn cases(cases: &mut Cases) {
    cases.add("feature_covariance", REDUCTION_TOLERANCE, |c| {
        FeatureProbeKernel::FeatureCovariance { n: 3, c: 7, hw: 25, x: c.loc(3 * 7 * 25), out: c.loc(49) }.into()
    });
    cases.add("random_signs", ELEMENTWISE_TOLERANCE, |c| FeatureProbeKernel::RandomSigns { seed: 0xfeed_beef_1234, y: c.loc(3001) }.into());
    for (name, h_in) in [("grad_cross_covariance", 5), ("grad_cross_covariance_unshuffled", 10)] {
        cases.add(name, REDUCTION_TOLERANCE, |c| {
            let g = CrossGeom { n: 3, c_in: 4, h_in, w_in: h_in, c_out: 6, h_out: 5, w_out: 5 };
            FeatureProbeKernel::GradCrossCovariance { g, g_in: c.loc(g.in_len()), g_out: c.loc(g.out_grad_len()), out: c.loc(g.out_len()) }.into()
        });
    }
    cases.add("grad_cross_covariance_identity", ELEMENTWISE_TOLERANCE, |c| {
        let g = CrossGeom { n: 2, c_in: 3, h_in: 4, w_in: 4, c_out: 3, h_out: 4, w_out: 4 };
        let same: Vec<f32> = (0..g.in_len()).map(|i| (i % 7) as f32 - 3.0).collect();
        FeatureProbeKernel::GradCrossCovariance { g, g_in: c.preset(same.clone()), g_out: c.preset(same), out: c.loc(g.out_len()) }.into()
    });
    cases.add("activation_patterns", ELEMENTWISE_TOLERANCE, |c| {
        FeatureProbeKernel::ActivationPatterns { n: 16, d: 301, x: c.loc(16 * 301), out: c.loc(301) }.into()
    });
}
