//! The batch norms' self-test cases (see [`crate::engine::cuda::selftest`]).

use super::{BnCoefficientBackward, BnGeom, BnKernel, BnOutput};
use crate::engine::cuda::selftest::{Case, Cases, ELEMENTWISE_TOLERANCE, REDUCTION_TOLERANCE};
use crate::engine::precision::Precision;

/// The storages each case runs at: (name suffix, tensors stored as bfloat16). At bfloat16 the
/// CPU and the GPU round at the same stores, but a value computed a few f32 ulps apart on each
/// (statistics summed in another order) may round to neighbouring bfloat16s: one ulp of the
/// largest output is up to 2^-7 of it, so the tolerance is bfloat16's.
const STORAGES: [(&str, bool); 2] = [("", false), ("_bf16", true)];

/// The tolerance of a case at `tolerance` in f32, stored as `half` says.
fn stored(tolerance: f64, half: bool) -> f64 {
    if half {
        Precision::Bf16.tolerance()
    } else {
        tolerance
    }
}

pub(crate) fn cases(cases: &mut Cases) {
    let positive = |n: usize| (0..n).map(|i| 0.5 + 0.1 * i as f32).collect::<Vec<f32>>();
    // Each channel is split over up to one block per image (batchnorm.cu): 3 images in 3
    // splits; 7 images of 100 channels in 6 uneven splits; planes of 9x9 and of 300 positions (more
    // than a block's threads). Each at both storages: x, y, dy and dx stored as f32 (the cases
    // first, in the order their seeds were drawn in before), then as bfloat16 (the other values
    // stay f32).
    let bns = [
        ("", BnGeom { n: 3, c: 7, hw: 25 }),
        ("_uneven", BnGeom { n: 7, c: 100, hw: 5 }),
        ("_9x9", BnGeom { n: 3, c: 7, hw: 81 }),
        ("_wide", BnGeom { n: 2, c: 3, hw: 300 }),
    ];
    for ((suffix, bn), (storage, half)) in STORAGES.into_iter().flat_map(|s| bns.map(|b| (b, s))) {
        let ch = bn.c;
        // Each forward writing the normalised tensor, and only the coefficients (4 per channel).
        for (out, coefficients) in [("", false), ("_coefficients", true)] {
            let y = move |c: &mut Case| if coefficients { BnOutput::Coefficients(c.loc(4 * ch)) } else { BnOutput::Normalised(c.tensor(bn.len(), half)) };
            cases.add(&format!("bn_train_forward{out}{suffix}{storage}"), stored(REDUCTION_TOLERANCE, half), |c| {
                let (x, gamma, beta) = (c.tensor(bn.len(), half), c.loc(ch), c.loc(ch));
                let (rm, rv) = (c.loc(ch), c.preset(positive(ch)));
                let (y, mean, invstd) = (y(c), c.loc(ch), c.loc(ch));
                BnKernel::TrainForward { g: bn, x, gamma, beta, running_mean: rm, running_var: rv, y, mean, invstd, eps: 1e-5, momentum: 0.1 }.into()
            });
            // An eval forward writing only coefficients launches fear_bn_eval_coefficients alone,
            // which reads no tensor: one instantiation, launched for x in Half too.
            cases.add(&format!("bn_eval_forward{out}{suffix}{storage}"), stored(ELEMENTWISE_TOLERANCE, half), |c| {
                let (x, gamma, beta, rm, rv, y) = (c.tensor(bn.len(), half), c.loc(ch), c.loc(ch), c.loc(ch), c.preset(positive(ch)), y(c));
                BnKernel::EvalForward { g: bn, x, gamma, beta, running_mean: rm, running_var: rv, y, eps: 1e-5 }.into()
            });
        }
        cases.add(&format!("bn_apply{suffix}{storage}"), stored(ELEMENTWISE_TOLERANCE, half), |c| {
            let (x, coef, y) = (c.tensor(bn.len(), half), c.loc(4 * ch), c.tensor(bn.len(), half));
            BnKernel::Apply { g: bn, x, coef, y }.into()
        });
        let modes = [
            ("bn_backward", true, true),
            ("bn_backward_assign", true, false),
            ("bn_backward_dx_only", false, true),
            ("bn_backward_dx_only_assign", false, false),
        ];
        for (name, all, accumulate) in modes {
            cases.add(&format!("{name}{suffix}{storage}"), stored(REDUCTION_TOLERANCE, half), |c| {
                let (x, dy, gamma, mean) = (c.tensor(bn.len(), half), c.tensor(bn.len(), half), c.loc(ch), c.loc(ch));
                let (invstd, dx) = (c.preset(positive(ch)), c.tensor(bn.len(), half));
                let (dgamma, dbeta) = if all { (Some(c.loc(ch)), Some(c.loc(ch))) } else { (None, None) };
                BnKernel::Backward { g: bn, x, dy, gamma, mean, invstd, dx: Some(dx), dx_coef: None, dgamma, dbeta, accumulate }.into()
            });
        }
        cases.add(&format!("bn_backward_coefficients{suffix}{storage}"), stored(REDUCTION_TOLERANCE, half), |c| {
            let (x, dy, gamma, mean) = (c.tensor(bn.len(), half), c.tensor(bn.len(), half), c.loc(ch), c.loc(ch));
            let (invstd, coef) = (c.preset(positive(ch)), c.loc(4 * ch));
            let (dgamma, dbeta) = (Some(c.loc(ch)), Some(c.loc(ch)));
            BnKernel::Backward { g: bn, x, dy, gamma, mean, invstd, dx: None, dx_coef: Some(coef), dgamma, dbeta, accumulate: true }.into()
        });
    }
    // Two batch norms' backwards in one launch each (the batch norms after sibling
    // convolutions): 7 and 5 channels of 5x5 and of 9x9 in batch 3; the second without dgamma
    // and dbeta in one case, so a null output of the second is skipped; and 100 and 5 channels
    // of 7 images, split 6 and 7 ways, so the second's blocks and partials start where the
    // first's end and not where equal splits would put them.
    // Each at both storages, as above.
    let pairs = [("", 3, 25, [7, 5], true), ("_9x9", 3, 81, [7, 5], false), ("_uneven", 7, 5, [100, 5], true)];
    for ((suffix, n, hw, channels, second_grads), (storage, half)) in STORAGES.into_iter().flat_map(|s| pairs.map(|p| (p, s))) {
        cases.add(&format!("bn_backward_pair{suffix}{storage}"), stored(REDUCTION_TOLERANCE, half), |c| {
            let mut one = |ch: usize, grads: bool| {
                let g = BnGeom { n, c: ch, hw };
                let (x, dy, gamma, mean) = (c.tensor(g.len(), half), c.tensor(g.len(), half), c.loc(ch), c.loc(ch));
                let (invstd, dx_coef) = (c.preset(positive(ch)), c.loc(4 * ch));
                let (dgamma, dbeta) = if grads { (Some(c.loc(ch)), Some(c.loc(ch))) } else { (None, None) };
                BnCoefficientBackward { g, x, dy, gamma, mean, invstd, dx_coef, dgamma, dbeta }
            };
            let (first, second) = (one(channels[0], true), one(channels[1], second_grads));
            BnKernel::BackwardPair { first, second }.into()
        });
    }
}
