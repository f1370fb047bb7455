//! The pools' self-test cases (see [`crate::engine::cuda::selftest`]).

use super::{PoolGeom, PoolKernel};
use crate::engine::cuda::selftest::{Cases, ELEMENTWISE_TOLERANCE};
use crate::engine::precision::Precision;

/// Every case at both storages: f32 tensors, and bfloat16 ones (`_bf16`, in `Space::Half`). The
/// 2x2 pool sums in the same order on both sides, so its bfloat16 cases are held to the f32
/// tolerance; the CPU sums a 3x3 window by rows then columns, the kernel in one pass of nine, so
/// sums one f32 ulp apart may round to neighbouring bfloat16s: those cases are held to
/// bfloat16's tolerance.
pub(crate) fn cases(cases: &mut Cases) {
    for (tag, half) in [("", false), ("_bf16", true)] {
        let n = 3 * 7 * 25;
        let g = PoolGeom { n: 3, c: 7, h: 5, w: 5 };
        let name = |op: &str| format!("{op}{tag}");
        let window = if half { Precision::Bf16.tolerance() } else { ELEMENTWISE_TOLERANCE };
        cases.add(&name("avg_pool3_forward"), window, |c| PoolKernel::AvgPool3Forward { g, x: c.tensor(n, half), y: c.tensor(n, half) }.into());
        for (mode, accumulate) in [("", true), ("_assign", false)] {
            cases.add(&name(&format!("avg_pool3_backward{mode}")), window, |c| {
                PoolKernel::AvgPool3Backward { g, dy: c.tensor(n, half), dx: c.tensor(n, half), accumulate }.into()
            });
            cases.add(&name(&format!("avg_pool2_backward{mode}")), ELEMENTWISE_TOLERANCE, |c| {
                PoolKernel::AvgPool2Backward { g, dy: c.tensor(3 * 7 * 4, half), dx: c.tensor(n, half), accumulate }.into()
            });
        }
        cases.add(&name("avg_pool2_forward"), ELEMENTWISE_TOLERANCE, |c| {
            PoolKernel::AvgPool2Forward { g, x: c.tensor(n, half), y: c.tensor(3 * 7 * 4, half) }.into()
        });
    }
}
