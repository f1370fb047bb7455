//! The pools' self-test cases (see [`crate::engine::cuda::selftest`]).

use super::{PoolGeom, PoolKernel};
use crate::engine::cuda::selftest::{Cases, ELEMENTWISE_TOLERANCE};

pub(crate) fn cases(cases: &mut Cases) {
    let n = 3 * 7 * 25;
    let g = PoolGeom { n: 3, c: 7, h: 5, w: 5 };
    cases.add("avg_pool3_forward", ELEMENTWISE_TOLERANCE, |c| PoolKernel::AvgPool3Forward { g, x: c.loc(n), y: c.loc(n) }.into());
    for (mode, accumulate) in [("", true), ("_assign", false)] {
        cases.add(&format!("avg_pool3_backward{mode}"), ELEMENTWISE_TOLERANCE, |c| {
            PoolKernel::AvgPool3Backward { g, dy: c.loc(n), dx: c.loc(n), accumulate }.into()
        });
        cases.add(&format!("avg_pool2_backward{mode}"), ELEMENTWISE_TOLERANCE, |c| {
            PoolKernel::AvgPool2Backward { g, dy: c.loc(3 * 7 * 4), dx: c.loc(n), accumulate }.into()
        });
    }
    cases.add("avg_pool2_forward", ELEMENTWISE_TOLERANCE, |c| PoolKernel::AvgPool2Forward { g, x: c.loc(n), y: c.loc(3 * 7 * 4) }.into());
}
