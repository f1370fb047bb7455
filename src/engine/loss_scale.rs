//! Dynamic loss scaling, for steps that store activation gradients as IEEE half
//! (`--precision fp16`): an f16 gradient below 6.1e-5 loses bits and one below 6e-8 is zero, and
//! the gradients of a batch-256 mean loss lie there. PyTorch's `GradScaler` rules: the loss
//! kernel multiplies the gradient it seeds by the scale S, so every activation gradient carries
//! S; before the optimiser the parameter gradients are multiplied by 1/S and checked finite; a
//! non-finite one skips the update (parameters and momentum unchanged) and halves S; after
//! `growth_interval` finite steps in a row S doubles.
//!
//! The scale is a power of two, so unscaling is exact: the state keeps S and 1/S, each moved by
//! the same power of two (exact products), so neither device divides. All of it lives in
//! `Space::State` and is updated by kernels ([`crate::engine::ops::OptimKernel::UnscaleGrads`],
//! [`crate::engine::ops::OptimKernel::UpdateLossScale`]), so a captured step replays it and the
//! CPU and GPU faces skip the same steps.
//!
//! A scale that falls below [`LossScaling::floor`], or [`LossScaling::max_skips_in_a_row`] steps
//! skipped in a row, means the gradients overflow at every scale: the run is diverging, and the
//! update kernel writes a NaN loss, which stops the run as any non-finite loss does (the
//! architecture is recorded as diverged; [`LossScaleState::gave_up`] says why).

use super::Float;

/// How the scale moves. Growth and backoff are x2 and x0.5 (powers of two keep unscaling exact).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScaling {
    /// The scale before the first step.
    pub initial: f32,
    /// Finite steps in a row after which the scale doubles.
    pub growth_interval: u32,
    /// A scale below this gives up (the run diverges).
    pub floor: f32,
    /// So many skipped steps in a row give up too.
    pub max_skips_in_a_row: u32,
}

impl Default for LossScaling {
    /// PyTorch's `GradScaler` defaults (2^16, doubled every 2000 finite steps; about ten CIFAR-10
    /// epochs at batch 256), a floor of 2^-10 (26 halvings from the start: a scale below 1 only
    /// shrinks the gradients further towards f16's underflow) and 32 skips in a row.
    fn default() -> Self {
        LossScaling { initial: 65536.0, growth_interval: 2000, floor: 1.0 / 1024.0, max_skips_in_a_row: 32 }
    }
}

/// The scale never grows past this (2^64), so 1/S stays a normal f32 and the products exact.
pub const MAX_SCALE: f32 = 18446744073709551616.0;

/// The state's slots in `Space::State` (a [`SLOTS`]-element location), as f32s.
pub const SCALE: usize = 0;
/// 1/S.
pub const INV_SCALE: usize = 1;
/// 1 after a non-finite gradient this step (reset by the update).
pub const FOUND_INF: usize = 2;
/// Finite steps since the scale last moved.
pub const GOOD_STEPS: usize = 3;
/// Skipped steps in a row.
pub const SKIPS_IN_A_ROW: usize = 4;
/// Skipped steps since the state was initialised.
pub const SKIPPED: usize = 5;
/// Slots of the state.
pub const SLOTS: usize = 6;

impl LossScaling {
    /// The state before the first step.
    pub fn initial_slots<T: Float>(&self) -> Vec<T> {
        let mut s = vec![T::zero(); SLOTS];
        s[SCALE] = T::from_f64(self.initial as f64);
        s[INV_SCALE] = T::from_f64(1.0 / self.initial as f64);
        s
    }
}

/// The update after a step's unscaled gradients were checked (`state`: the [`SLOTS`] slots);
/// returns whether the run gave up. kernels/optim.cu's `fear_update_loss_scale` line for line.
pub fn update<T: Float>(state: &mut [T], rules: &LossScaling) -> bool {
    let (one, two, half) = (T::one(), T::from_f64(2.0), T::from_f64(0.5));
    let (mut s, mut inv) = (state[SCALE], state[INV_SCALE]);
    if state[FOUND_INF] != T::zero() {
        s = s * half;
        inv = inv * two;
        state[GOOD_STEPS] = T::zero();
        state[SKIPS_IN_A_ROW] = state[SKIPS_IN_A_ROW] + one;
        state[SKIPPED] = state[SKIPPED] + one;
    } else {
        state[SKIPS_IN_A_ROW] = T::zero();
        let mut good = state[GOOD_STEPS] + one;
        if good >= T::from_f64(rules.growth_interval as f64) {
            if s * two <= T::from_f64(MAX_SCALE as f64) {
                s = s * two;
                inv = inv * half;
            }
            good = T::zero();
        }
        state[GOOD_STEPS] = good;
    }
    state[SCALE] = s;
    state[INV_SCALE] = inv;
    state[FOUND_INF] = T::zero();
    s < T::from_f64(rules.floor as f64) || state[SKIPS_IN_A_ROW] >= T::from_f64(rules.max_skips_in_a_row as f64)
}

/// `g *= 1/S` for each gradient; returns whether any result is not finite.
pub fn unscale<T: Float>(g: &mut [T], inv_scale: T) -> bool {
    let mut bad = false;
    for v in g {
        *v = *v * inv_scale;
        bad |= !v.as_f64().is_finite();
    }
    bad
}

/// The state as read back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScaleState {
    pub scale: f64,
    /// Finite steps since the scale last moved.
    pub good_steps: u64,
    pub skips_in_a_row: u64,
    /// Skipped steps since the state was initialised.
    pub skipped: u64,
}

impl LossScaleState {
    pub fn from_slots<T: Float>(s: &[T]) -> LossScaleState {
        LossScaleState {
            scale: s[SCALE].as_f64(),
            good_steps: s[GOOD_STEPS].as_f64() as u64,
            skips_in_a_row: s[SKIPS_IN_A_ROW].as_f64() as u64,
            skipped: s[SKIPPED].as_f64() as u64,
        }
    }

    /// Why loss scaling gave up, if it did (the run is diverging).
    pub fn gave_up(&self, rules: &LossScaling) -> Option<String> {
        (self.scale < rules.floor as f64 || self.skips_in_a_row >= rules.max_skips_in_a_row as u64).then(|| {
            format!(
                "fp16 loss scaling gave up: the scale fell to {:e} after {} skipped steps in a row (the gradients overflow at every scale)",
                self.scale, self.skips_in_a_row
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules on their own: a non-finite step halves the scale and counts a skip, finite steps
    /// double it every `growth_interval`, and the floor or a run of skips gives up.
    #[test]
    fn skip_halve_grow_and_give_up() {
        let rules = LossScaling { initial: 8.0, growth_interval: 3, floor: 1.0, max_skips_in_a_row: 5 };
        let mut s: Vec<f32> = rules.initial_slots();
        assert_eq!((s[SCALE], s[INV_SCALE]), (8.0, 0.125));
        s[FOUND_INF] = 1.0;
        assert!(!update(&mut s, &rules));
        assert_eq!((s[SCALE], s[INV_SCALE], s[FOUND_INF], s[SKIPS_IN_A_ROW], s[SKIPPED]), (4.0, 0.25, 0.0, 1.0, 1.0));
        for step in 1..=3 {
            assert!(!update(&mut s, &rules));
            assert_eq!(s[SKIPS_IN_A_ROW], 0.0);
            assert_eq!(s[SCALE], if step < 3 { 4.0 } else { 8.0 }, "after {step} finite steps");
        }
        assert_eq!((s[INV_SCALE], s[GOOD_STEPS], s[SKIPPED]), (0.125, 0.0, 1.0));
        // Halvings to below the floor: 8 -> 4 -> 2 -> 1 -> 0.5 gives up at the fourth.
        for k in 1..=4 {
            s[FOUND_INF] = 1.0;
            assert_eq!(update(&mut s, &rules), k == 4, "skip {k}");
        }
        let state = LossScaleState::from_slots(&s);
        assert_eq!((state.scale, state.skips_in_a_row, state.skipped), (0.5, 4, 5));
        assert!(state.gave_up(&rules).unwrap().contains("scale fell to 5e-1 after 4 skipped steps"));
        // A run of skips gives up whatever the scale.
        let rules = LossScaling { initial: 1e6, growth_interval: 3, floor: 1.0, max_skips_in_a_row: 2 };
        let mut s: Vec<f32> = rules.initial_slots();
        for k in 1..=2 {
            s[FOUND_INF] = 1.0;
            assert_eq!(update(&mut s, &rules), k == 2);
        }
    }

    #[test]
    fn unscaling_is_exact_and_finds_overflow() {
        let mut g = vec![3.0f32 * 65536.0, -1e-3 * 65536.0];
        assert!(!unscale(&mut g, 1.0 / 65536.0));
        assert_eq!(g, vec![3.0, -1e-3 * 65536.0 / 65536.0]);
        let mut g = vec![1.0f32, f32::INFINITY];
        assert!(unscale(&mut g, 0.5));
        assert!(unscale(&mut [f32::NAN], 1.0));
        // The scale stops growing at MAX_SCALE, whose inverse is an exact f32.
        let rules = LossScaling { initial: MAX_SCALE, growth_interval: 1, ..LossScaling::default() };
        let mut s: Vec<f32> = rules.initial_slots();
        update(&mut s, &rules);
        assert_eq!((s[SCALE], s[INV_SCALE] * MAX_SCALE), (MAX_SCALE, 1.0));
    }
}
