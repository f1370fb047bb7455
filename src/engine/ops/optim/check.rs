//! The optimiser ops' self-test cases (see [`crate::engine::cuda::selftest`]).

use super::OptimKernel;
use crate::engine::cuda::selftest::{Cases, ELEMENTWISE_TOLERANCE, REDUCTION_TOLERANCE};
use crate::engine::loss_scale::{self, LossScaling};

pub(crate) fn cases(cases: &mut Cases) {
    cases.add("sum_squares", REDUCTION_TOLERANCE, |c| OptimKernel::SumSquares { x: c.loc(3001), out: c.loc(1) }.into());
    cases.add("clip_by_norm", ELEMENTWISE_TOLERANCE, |c| {
        let grads = c.loc(301);
        OptimKernel::ClipByNorm { grads, sum_sq: c.preset(vec![100.0]), max_norm: 5.0 }.into()
    });
    for (name, nesterov) in [("sgd_nesterov", true), ("sgd", false)] {
        cases.add(name, ELEMENTWISE_TOLERANCE, |c| {
            let (w, g, buf) = (c.loc(301), c.loc(301), c.loc(301));
            OptimKernel::Sgd { w, g, buf, lr: c.preset(vec![0.1]), momentum: 0.9, weight_decay: 5e-4, nesterov, skip: None }.into()
        });
    }
    // Loss scaling's SGD: updates where the flag is 0, leaves everything where it is 1.
    for (name, flag) in [("sgd_not_skipped", 0.0), ("sgd_skipped", 1.0)] {
        cases.add(name, ELEMENTWISE_TOLERANCE, |c| {
            let (w, g, buf) = (c.loc(301), c.loc(301), c.loc(301));
            let skip = Some(c.preset(vec![flag]));
            OptimKernel::Sgd { w, g, buf, lr: c.preset(vec![0.1]), momentum: 0.9, weight_decay: 5e-4, nesterov: true, skip }.into()
        });
    }
    // Unscaling (exact: S a power of two), finite and with an overflow planted in the middle.
    for (name, planted) in [("unscale_grads", None), ("unscale_grads_overflow", Some(f32::INFINITY)), ("unscale_grads_nan", Some(f32::NAN))] {
        cases.add(name, ELEMENTWISE_TOLERANCE, |c| {
            let grads = c.preset((0..3001).map(|i| if i == 1500 { planted.unwrap_or(0.5) } else { ((i * 37) % 101) as f32 * 1024.0 - 50000.0 }).collect());
            let state = c.preset(scaler(1024.0, 0.0, 0.0));
            OptimKernel::UnscaleGrads { grads, state }.into()
        });
    }
    // The update: a skip halving, a finite step growing at the interval, and a give-up writing
    // the NaN loss.
    let rules = LossScaling { initial: 1024.0, growth_interval: 3, floor: 1.0, max_skips_in_a_row: 4 };
    for (name, state) in [
        ("update_loss_scale_skip", scaler(1024.0, 1.0, 1.0)),
        ("update_loss_scale_grow", scaler(1024.0, 0.0, 2.0)),
        ("update_loss_scale_give_up", scaler(1.0, 1.0, 0.0)),
    ] {
        cases.add(name, ELEMENTWISE_TOLERANCE, |c| {
            let (state, loss) = (c.preset(state), c.preset(vec![2.5]));
            OptimKernel::UpdateLossScale { state, loss, rules }.into()
        });
    }
}

/// A loss-scaling state at scale `s` with its found-inf flag and good-step count.
fn scaler(s: f32, found_inf: f32, good: f32) -> Vec<f32> {
    let mut v: Vec<f32> = LossScaling { initial: s, ..LossScaling::default() }.initial_slots();
    v[loss_scale::FOUND_INF] = found_inf;
    v[loss_scale::GOOD_STEPS] = good;
    v[loss_scale::SKIPPED] = 7.0;
    v
}
