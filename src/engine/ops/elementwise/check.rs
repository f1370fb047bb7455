//! The elementwise ops' self-test cases (see [`crate::engine::cuda::selftest`]).

use super::{ElementwiseKernel, NodeSumTerm};
use crate::engine::cuda::selftest::{Cases, ELEMENTWISE_TOLERANCE, REDUCTION_TOLERANCE};

pub(crate) fn cases(cases: &mut Cases) {
    let n = 3 * 7 * 25;
    cases.add("relu", ELEMENTWISE_TOLERANCE, |c| ElementwiseKernel::Relu { x: c.loc(n), y: c.loc(n) }.into());
    for (mode, accumulate) in [("", true), ("_assign", false)] {
        cases.add(&format!("relu_backward{mode}"), ELEMENTWISE_TOLERANCE, |c| {
            ElementwiseKernel::ReluBackward { y: c.loc(n), dy: c.loc(n), dx: c.loc(n), accumulate }.into()
        });
        cases.add(&format!("accumulate{mode}"), ELEMENTWISE_TOLERANCE, |c| ElementwiseKernel::Accumulate { acc: c.loc(n), x: c.loc(n), accumulate }.into());
    }
    cases.add("add", ELEMENTWISE_TOLERANCE, |c| ElementwiseKernel::Add { a: c.loc(n), b: c.loc(n), y: c.loc(n) }.into());
    cases.add("zero", ELEMENTWISE_TOLERANCE, |c| ElementwiseKernel::Zero { y: c.loc(n) }.into());
    // 2, 3 and 4 terms of [3, 7, 5, 5]: plain (' '), normalised by coefficients (mean_hi,
    // mean_lo, scale, beta: 'n'), read through a 3x3 average pool ('p'), or both: the pool of the
    // normalised tensor ('q').
    for (name, kinds) in [("node_sum_2", "n "), ("node_sum_3", " nn"), ("node_sum_4", "nnpn"), ("node_sum_pools", "p p"), ("node_sum_pooled_bn", "nq q")] {
        cases.add(name, ELEMENTWISE_TOLERANCE, |c| {
            let terms =
                kinds.chars().map(|k| NodeSumTerm { x: c.loc(n), coef: matches!(k, 'n' | 'q').then(|| c.loc(4 * 7)), pool3: matches!(k, 'p' | 'q') }).collect();
            ElementwiseKernel::NodeSum { c: 7, h: 5, w: 5, terms, y: c.loc(n) }.into()
        });
    }
    cases.add("gap_forward", REDUCTION_TOLERANCE, |c| ElementwiseKernel::GapForward { n: 3, c: 7, hw: 25, x: c.loc(n), y: c.loc(21) }.into());
    for (mode, accumulate) in [("", true), ("_assign", false)] {
        cases.add(&format!("gap_backward{mode}"), ELEMENTWISE_TOLERANCE, |c| {
            ElementwiseKernel::GapBackward { n: 3, c: 7, hw: 25, dy: c.loc(21), dx: c.loc(n), accumulate }.into()
        });
    }
}
