//! Learning-rate schedules.

/// Cosine annealing held constant within an epoch: `eta_min + (lr0 - eta_min) (1 + cos(pi e / T)) / 2`
/// for epoch `e` of `total` (PyTorch's CosineAnnealingLR stepped once per epoch).
pub fn cosine_lr(lr0: f64, eta_min: f64, epoch: usize, total: usize) -> f64 {
    let t = total.max(1) as f64;
    eta_min + 0.5 * (lr0 - eta_min) * (1.0 + (std::f64::consts::PI * epoch as f64 / t).cos())
}

#[cfg(test)]
mod tests {
    use super::cosine_lr;

    #[test]
    fn cosine_starts_at_lr0_halves_midway_and_ends_at_eta_min() {
        assert_eq!(cosine_lr(0.1, 0.0, 0, 200), 0.1);
        assert!((cosine_lr(0.1, 0.0, 100, 200) - 0.05).abs() < 1e-15);
        assert!(cosine_lr(0.1, 0.0, 200, 200).abs() < 1e-15);
        assert!((cosine_lr(0.5, 0.001, 200, 200) - 0.001).abs() < 1e-15);
        // FEAR's stage 1 (T = 200): the learning rate stays near 0.1 for the first epochs.
        assert!(cosine_lr(0.1, 0.0, 10, 200) > 0.099);
    }
}
