//! The proxy probes' self-test cases (see [`crate::engine::cuda::selftest`]).

use super::ProbeKernel;
use crate::engine::cuda::selftest::{Cases, ELEMENTWISE_TOLERANCE, REDUCTION_TOLERANCE};

pub(crate) fn cases(cases: &mut Cases) {
    let n = 3 * 7 * 25;
    cases.add("sum_all", REDUCTION_TOLERANCE, |c| ProbeKernel::SumAll { x: c.loc(3001), out: c.loc(1) }.into());
    cases.add("sum_all_backward", ELEMENTWISE_TOLERANCE, |c| ProbeKernel::SumAllBackward { dx: c.loc(301) }.into());
    cases.add("channel_fisher", REDUCTION_TOLERANCE, |c| ProbeKernel::ChannelFisher { n: 3, c: 7, hw: 25, x: c.loc(n), dy: c.loc(n), out: c.loc(7) }.into());
    cases.add("binary_code_gram", ELEMENTWISE_TOLERANCE, |c| ProbeKernel::BinaryCodeGram { n: 5, d: 77, x: c.loc(5 * 77), k: c.loc(25) }.into());
}
