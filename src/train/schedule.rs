//! Learning-rate schedules.

/// Cosine annealing held constant within an epoch: `eta_min + (lr0 - eta_min) (1 + cos(pi e / T)) / 2`
/// for epoch `e` of `total` (PyTorch's CosineAnnealingLR stepped once per epoch).
pub fn cosine_lr(lr0: f64, eta_min: f64, epoch: usize, total: usize) -> f64 {
    let t = total.max(1) as f64;
    eta_min + 0.5 * (lr0 - eta_min) * (1.0 + (std::f64::consts::PI * epoch as f64 / t).cos())
}
