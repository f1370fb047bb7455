//! Batch-norm pairs: the backwards of the two batch norms after sibling convolutions (the two
//! edges leaving one cell node, run as one wider convolution) as one kernel,
//! [`BnKernel::BackwardPair`], so their statistics and finalize are one launch each instead of
//! two; and the planner pass that pairs them ([`merge_batch_norm_backwards`]).

use std::ops::Range;

use super::{BnGeom, BnKernel};
use crate::engine::kernel::{Kernel, Loc};
use crate::engine::siblings::{commute, merge_pairs};

/// A batch norm's backward whose input gradient the convolution before it applies (the GPU
/// plan, [`super::super::conv::BnGradient`]): [`BnKernel::Backward`] writing only the
/// coefficients of dx (`dx: None`, `dx_coef: Some`), and dgamma and dbeta (+=) where present.
/// Two of these make a [`BnKernel::BackwardPair`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnCoefficientBackward {
    pub g: BnGeom,
    pub x: Loc,
    pub dy: Loc,
    pub gamma: Loc,
    pub mean: Loc,
    pub invstd: Loc,
    pub dx_coef: Loc,
    pub dgamma: Option<Loc>,
    pub dbeta: Option<Loc>,
}

impl BnCoefficientBackward {
    /// `k` as one, when it is a backward writing only the coefficients of dx.
    pub fn of(k: &BnKernel) -> Option<BnCoefficientBackward> {
        match *k {
            BnKernel::Backward { g, x, dy, gamma, mean, invstd, dx: None, dx_coef: Some(dx_coef), dgamma, dbeta, .. } => {
                Some(BnCoefficientBackward { g, x, dy, gamma, mean, invstd, dx_coef, dgamma, dbeta })
            }
            _ => None,
        }
    }

    /// The batch norm's backward on its own (its CPU face). With no dx, `accumulate` (which
    /// says how dx is written) changes nothing; dgamma and dbeta are always added into.
    pub fn kernel(&self) -> BnKernel {
        let BnCoefficientBackward { g, x, dy, gamma, mean, invstd, dx_coef, dgamma, dbeta } = *self;
        BnKernel::Backward { g, x, dy, gamma, mean, invstd, dx: None, dx_coef: Some(dx_coef), dgamma, dbeta, accumulate: true }
    }

    /// (inputs, outputs), in the order of [`BnKernel::Backward`]'s locations.
    pub(super) fn locs_mut(&mut self) -> (Vec<&mut Loc>, Vec<&mut Loc>) {
        let inputs = vec![&mut self.x, &mut self.dy, &mut self.gamma, &mut self.mean, &mut self.invstd];
        let outputs = std::iter::once(&mut self.dx_coef).chain(self.dgamma.as_mut()).chain(self.dbeta.as_mut()).collect();
        (inputs, outputs)
    }

    /// How many locations it writes.
    pub(super) fn outputs(&self) -> usize {
        1 + self.dgamma.is_some() as usize + self.dbeta.is_some() as usize
    }
}

/// Merges, in `kernels[range]`, pairs of [`BnCoefficientBackward`]s over the same images and
/// positions into [`BnKernel::BackwardPair`]s (with [`merge_pairs`]: one moves next to the other
/// only past kernels it commutes with), each with the first later one it can pair with; a
/// pair is never merged with a third, and two that touch each other's outputs are never
/// paired (the pair runs them at once). Returns how many kernels were removed.
pub fn merge_batch_norm_backwards(kernels: &mut Vec<Kernel>, range: Range<usize>) -> usize {
    merge_pairs(kernels, range, |a, b, _up| {
        let (Kernel::Bn(ka), Kernel::Bn(kb)) = (a, b) else { return None };
        let (first, second) = (BnCoefficientBackward::of(ka)?, BnCoefficientBackward::of(kb)?);
        let same_plane = (first.g.n, first.g.hw) == (second.g.n, second.g.hw);
        (same_plane && commute(a, b)).then_some(Kernel::Bn(BnKernel::BackwardPair { first, second }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kernel::Space;
    use crate::engine::ops::{BnGradient, ConvGeom, ConvKernel, ElementwiseKernel};

    /// Virtual buffers by id, as the planner names them before placing them.
    fn v(id: usize, len: usize) -> Loc {
        Loc::new(Space::Virtual, id, len)
    }

    /// A statistics-only batch-norm backward over 7 channels of 5x5 in batch 3, its buffers
    /// numbered from `id` (dx_coef is `id + 5`), its dgamma and dbeta in the parameter gradients
    /// at `param`.
    fn bn_backward(id: usize, param: usize) -> BnCoefficientBackward {
        let g = BnGeom { n: 3, c: 7, hw: 25 };
        let grad = |i: usize| Some(Loc::new(Space::ParamGrads, param + 7 * i, 7));
        let (x, dy, gamma, mean, invstd) = (v(id, g.len()), v(id + 1, g.len()), Loc::new(Space::Params, param, 7), v(id + 3, 7), v(id + 4, 7));
        BnCoefficientBackward { g, x, dy, gamma, mean, invstd, dx_coef: v(id + 5, 28), dgamma: grad(0), dbeta: grad(1) }
    }

    fn kernel(b: BnCoefficientBackward) -> Kernel {
        Kernel::Bn(b.kernel())
    }

    /// The convolution whose output the batch norm `b` normalises, applying its backward.
    fn conv_backward(b: &BnCoefficientBackward, dx: usize) -> Kernel {
        let g = ConvGeom { n: 3, c_in: 7, h: 5, w: 5, c_out: 7, k: 3, stride: 1, pad: 1 };
        let bn = Some(BnGradient { x: b.x, coef: b.dx_coef });
        Kernel::Conv(ConvKernel::BackwardInput {
            g,
            dy: b.dy,
            bn,
            w: Loc::new(Space::Params, 1000, 441),
            mask: None,
            mask_norm: None,
            dx: v(dx, g.x_len()),
            accumulate: true,
            precision: crate::engine::precision::Precision::Fp32,
        })
    }

    #[test]
    fn two_coefficient_backwards_pair_past_an_unrelated_kernel() {
        let (a, b) = (bn_backward(10, 0), bn_backward(20, 100));
        let unrelated = Kernel::Elementwise(ElementwiseKernel::Accumulate { acc: v(31, 50), x: v(30, 50), accumulate: false });
        let mut ks = vec![kernel(a), unrelated.clone(), kernel(b)];
        assert_eq!(merge_batch_norm_backwards(&mut ks, 0..3), 1);
        assert_eq!(ks, vec![Kernel::Bn(BnKernel::BackwardPair { first: a, second: b }), unrelated]);
        // Its locations: both inputs, then both outputs (what the planner and the aliasing
        // checks read).
        let pair = &ks[0];
        let (first, second) = (kernel(a).locs(), kernel(b).locs());
        assert_eq!(pair.locs(), [&first[..5], &second[..5], &first[5..], &second[5..]].concat());
        assert_eq!(pair.outputs(), 6);
        assert_eq!(pair.launch_names(), ["fear_bn_backward_stats", "fear_bn_backward_finalize"]);
    }

    #[test]
    fn a_kernel_reading_the_first_coefficients_between_keeps_them_apart() {
        // The first batch norm's convolution reads its coefficients: the first cannot move down
        // past it; and the second cannot move up past it when the convolution writes what the
        // second reads (its dy, the gradient the convolution adds into).
        let (a, mut b) = (bn_backward(10, 0), bn_backward(20, 100));
        b.dy = v(40, b.g.len());
        let mut ks = vec![kernel(a), conv_backward(&a, 40), kernel(b)];
        let before = ks.clone();
        assert_eq!(merge_batch_norm_backwards(&mut ks, 0..3), 0);
        assert_eq!(ks, before);
        // Reading only the first's coefficients (writing elsewhere), the convolution lets the
        // second move up to the first.
        let mut ks = vec![kernel(a), conv_backward(&a, 41), kernel(b)];
        assert_eq!(merge_batch_norm_backwards(&mut ks, 0..3), 1);
        assert_eq!(ks[0], Kernel::Bn(BnKernel::BackwardPair { first: a, second: b }));
    }

    #[test]
    fn only_coefficient_backwards_of_one_plane_pair_and_never_three() {
        let (a, b, c) = (bn_backward(10, 0), bn_backward(20, 100), bn_backward(30, 200));
        // Three: the first two pair, the third stays alone.
        let mut ks = vec![kernel(a), kernel(b), kernel(c)];
        assert_eq!(merge_batch_norm_backwards(&mut ks, 0..3), 1);
        assert_eq!(ks, vec![Kernel::Bn(BnKernel::BackwardPair { first: a, second: b }), kernel(c)]);
        // Another plane size, or a backward writing dx, does not pair.
        let mut other = b;
        other.g.hw = 81;
        let BnCoefficientBackward { g, x, dy, gamma, mean, invstd, .. } = b;
        let with_dx = BnKernel::Backward { g, x, dy, gamma, mean, invstd, dx: Some(v(50, 525)), dx_coef: None, dgamma: None, dbeta: None, accumulate: true };
        for k in [kernel(other), Kernel::Bn(with_dx)] {
            let mut ks = vec![kernel(a), k];
            assert_eq!(merge_batch_norm_backwards(&mut ks, 0..2), 0);
        }
        // Two adding into the same parameter gradients do not commute: not paired.
        let mut ks = vec![kernel(a), kernel(bn_backward(20, 0))];
        assert_eq!(merge_batch_norm_backwards(&mut ks, 0..2), 0);
        // Outside the range nothing moves.
        let mut ks = vec![kernel(a), kernel(b)];
        assert_eq!(merge_batch_norm_backwards(&mut ks, 1..2), 0);
    }
}
