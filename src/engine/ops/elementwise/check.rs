//! The elementwise ops' self-test cases (see [`crate::engine::cuda::selftest`]).

use super::{ElementwiseKernel, NodeSumTerm};
use crate::engine::cuda::selftest::{Cases, ELEMENTWISE_TOLERANCE, REDUCTION_TOLERANCE};
use crate::engine::precision::Precision;

/// Every case at both storages: f32 tensors, and bfloat16 ones (`_bf16`, in `Space::Half`). The
/// CPU face does the same f32 arithmetic and rounds at the same stores, so the bfloat16 cases are
/// held to the f32 tolerance too (one rounding apart would be a relative error of 2^-8), but for
/// node sums with pooled terms (see pool/check.rs).
pub(crate) fn cases(cases: &mut Cases) {
    for (tag, half) in [("", false), ("_bf16", true)] {
        storage_cases(cases, tag, half);
    }
}

fn storage_cases(cases: &mut Cases, tag: &str, half: bool) {
    let n = 3 * 7 * 25;
    let name = |op: &str| format!("{op}{tag}");
    cases.add(&name("relu"), ELEMENTWISE_TOLERANCE, |c| ElementwiseKernel::Relu { x: c.tensor(n, half), y: c.tensor(n, half) }.into());
    for (mode, accumulate) in [("", true), ("_assign", false)] {
        cases.add(&name(&format!("relu_backward{mode}")), ELEMENTWISE_TOLERANCE, |c| {
            ElementwiseKernel::ReluBackward { y: c.tensor(n, half), dy: c.tensor(n, half), dx: c.tensor(n, half), accumulate }.into()
        });
        cases.add(&name(&format!("accumulate{mode}")), ELEMENTWISE_TOLERANCE, |c| {
            ElementwiseKernel::Accumulate { acc: c.tensor(n, half), x: c.tensor(n, half), accumulate }.into()
        });
    }
    cases.add(&name("add"), ELEMENTWISE_TOLERANCE, |c| ElementwiseKernel::Add { a: c.tensor(n, half), b: c.tensor(n, half), y: c.tensor(n, half) }.into());
    cases.add(&name("zero"), ELEMENTWISE_TOLERANCE, |c| ElementwiseKernel::Zero { y: c.tensor(n, half) }.into());
    // 2, 3 and 4 terms of [3, 7, 5, 5]: plain (' '), normalised by coefficients (mean_hi,
    // mean_lo, scale, beta: 'n'), read through a 3x3 average pool ('p'), or both: the pool of the
    // normalised tensor ('q').
    for (op, kinds) in [("node_sum_2", "n "), ("node_sum_3", " nn"), ("node_sum_4", "nnpn"), ("node_sum_pools", "p p"), ("node_sum_pooled_bn", "nq q")] {
        // A pooled term's window is summed in another order on the CPU (pool/check.rs).
        let tolerance = if half && kinds.contains(['p', 'q']) { Precision::Bf16.tolerance() } else { ELEMENTWISE_TOLERANCE };
        cases.add(&name(op), tolerance, |c| {
            let terms = kinds
                .chars()
                .map(|k| NodeSumTerm { x: c.tensor(n, half), coef: matches!(k, 'n' | 'q').then(|| c.loc(4 * 7)), pool3: matches!(k, 'p' | 'q') })
                .collect();
            ElementwiseKernel::NodeSum { c: 7, h: 5, w: 5, terms, y: c.tensor(n, half) }.into()
        });
    }
    cases.add(&name("gap_forward"), REDUCTION_TOLERANCE, |c| ElementwiseKernel::GapForward { n: 3, c: 7, hw: 25, x: c.tensor(n, half), y: c.loc(21) }.into());
    for (mode, accumulate) in [("", true), ("_assign", false)] {
        cases.add(&name(&format!("gap_backward{mode}")), ELEMENTWISE_TOLERANCE, |c| {
            ElementwiseKernel::GapBackward { n: 3, c: 7, hw: 25, dy: c.loc(21), dx: c.tensor(n, half), accumulate }.into()
        });
    }
}
