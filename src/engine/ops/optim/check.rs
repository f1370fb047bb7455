//! The optimiser ops' self-test cases (see [`crate::engine::cuda::selftest`]).

use super::OptimKernel;
use crate::engine::cuda::selftest::{Cases, ELEMENTWISE_TOLERANCE, REDUCTION_TOLERANCE};

pub(crate) fn cases(cases: &mut Cases) {
    cases.add("sum_squares", REDUCTION_TOLERANCE, |c| OptimKernel::SumSquares { x: c.loc(3001), out: c.loc(1) }.into());
    cases.add("clip_by_norm", ELEMENTWISE_TOLERANCE, |c| {
        let grads = c.loc(301);
        OptimKernel::ClipByNorm { grads, sum_sq: c.preset(vec![100.0]), max_norm: 5.0 }.into()
    });
    for (name, nesterov) in [("sgd_nesterov", true), ("sgd", false)] {
        cases.add(name, ELEMENTWISE_TOLERANCE, |c| {
            let (w, g, buf) = (c.loc(301), c.loc(301), c.loc(301));
            OptimKernel::Sgd { w, g, buf, lr: c.preset(vec![0.1]), momentum: 0.9, weight_decay: 5e-4, nesterov }.into()
        });
    }
}
