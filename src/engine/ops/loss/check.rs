//! The loss's self-test cases (see [`crate::engine::cuda::selftest`]).

use super::LossKernel;
use crate::engine::cuda::selftest::{Cases, ELEMENTWISE_TOLERANCE, REDUCTION_TOLERANCE};

pub(crate) fn cases(cases: &mut Cases) {
    cases.add("softmax_xent_forward", REDUCTION_TOLERANCE, |c| {
        LossKernel::SoftmaxXentForward { n: 5, classes: 10, logits: c.loc(50), probs: c.loc(50), loss: c.loc(1), correct: c.loc(1) }.into()
    });
    for (mode, accumulate, scale) in [("", true, None), ("_assign", false, None), ("_scaled", true, Some(65536.0)), ("_scaled_assign", false, Some(0.25))] {
        cases.add(&format!("softmax_xent_backward{mode}"), ELEMENTWISE_TOLERANCE, |c| {
            let probs = c.preset((0..50).map(|i| (i % 10) as f32 / 45.0).collect());
            let scale = scale.map(|s| c.preset(vec![s]));
            LossKernel::SoftmaxXentBackward { n: 5, classes: 10, probs, dlogits: c.loc(50), accumulate, scale }.into()
        });
    }
}
