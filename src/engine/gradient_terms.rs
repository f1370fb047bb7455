//! Terms of an activation gradient folded into the convolution backward that writes it (the GPU
//! plan). In a cell, a node's gradient gets terms from several edges: a skip edge copies the
//! gradient of the node sum it feeds (an `Accumulate` launch, assigning it first), a 3x3 average
//! pool edge adds its backward (an `AvgPool3Backward` launch), and the convolution edges add their
//! input gradients. Each of those launches reads and writes the whole gradient once more; folded
//! into the convolution's input-gradient epilogue ([`DxTerms`]) they cost a read of their own
//! input only. The epilogue adds them in the unfused kernels' order, so the floats are the same.
//!
//! Like [`super::siblings`], a fold moves a kernel next to the convolution only where it
//! commutes with every kernel it passes.

use super::kernel::Kernel;
use super::ops::{ConvKernel, DxTerms, ElementwiseKernel, PoolKernel};
use super::siblings::merge_pairs;

/// Folds, in `kernels[range]`, each 3x3 average pool backward adding into the gradient a
/// convolution backward wrote just before (moved up to it), then each `Accumulate` assigning or
/// adding a gradient that a later convolution backward adds to (moved down to it). Returns how
/// many kernels were removed.
pub fn fold_gradient_terms(kernels: &mut Vec<Kernel>, range: std::ops::Range<usize>) -> usize {
    let pools = |a: &Kernel, b: &Kernel, up: bool| match (a, b, up) {
        (Kernel::Conv(conv), Kernel::Pool(pool), true) => with_pooled(conv, pool).map(Kernel::Conv),
        _ => None,
    };
    let folded = merge_pairs(kernels, range.clone(), pools);
    let copies = |a: &Kernel, b: &Kernel, up: bool| match (a, b, up) {
        (Kernel::Elementwise(copy), Kernel::Conv(conv), false) => with_added(conv, copy).map(Kernel::Conv),
        _ => None,
    };
    folded + merge_pairs(kernels, range.start..range.end - folded, copies)
}

/// The convolution backward `conv` with `pool` (the pool's backward adding into `conv`'s dx,
/// run after it) as its pooled term.
fn with_pooled(conv: &ConvKernel, pool: &PoolKernel) -> Option<ConvKernel> {
    let ConvKernel::Backward { g, dx, dx_terms: DxTerms { added, pooled: None }, .. } = *conv else { return None };
    let PoolKernel::AvgPool3Backward { g: pg, dy, dx: pool_dx, accumulate: true } = *pool else { return None };
    let same_tensor = pool_dx == dx && (pg.n, pg.c, pg.h, pg.w) == (g.n, g.c_in, g.h, g.w);
    (same_tensor && g.x_len() > 0 && g.w_len() > 0).then(|| with_terms(conv, DxTerms { added, pooled: Some(dy) }))
}

/// The convolution backward `conv` (adding into its dx) with `copy` (an `Accumulate` writing
/// that dx, run before it) as its added term, writing dx in `copy`'s mode.
fn with_added(conv: &ConvKernel, copy: &ElementwiseKernel) -> Option<ConvKernel> {
    let ConvKernel::Backward { g, dx, accumulate: true, dx_terms: DxTerms { added: None, pooled }, .. } = *conv else { return None };
    let ElementwiseKernel::Accumulate { acc, x, accumulate } = *copy else { return None };
    if acc != dx || g.x_len() == 0 || g.w_len() == 0 {
        return None;
    }
    let mut folded = with_terms(conv, DxTerms { added: Some(x), pooled });
    if let ConvKernel::Backward { accumulate: mode, .. } = &mut folded {
        *mode = accumulate;
    }
    Some(folded)
}

fn with_terms(conv: &ConvKernel, new: DxTerms) -> ConvKernel {
    let mut folded = conv.clone();
    if let ConvKernel::Backward { dx_terms, .. } = &mut folded {
        *dx_terms = new;
    }
    folded
}
