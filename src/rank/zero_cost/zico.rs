//! ZiCo (Li et al., ICLR 2023, arXiv 2301.11300): the gradients g of the mean cross-entropy with
//! respect to every conv and linear weight θ over B batches (train-mode BN; here the one data
//! batch split into two halves, as the released NATS-Bench code takes two loader batches);
//! per layer, the sum over θ with nonzero standard deviation σ_θ (NumPy's, over the batches) of
//! mean_b |g| / σ_θ; score = the sum over layers of the log of that sum, a layer whose sum is 0
//! (no gradient, e.g. behind a disconnected cell) adding nothing.

use super::saliency::LayerGrad;

/// ZiCo from the scored layers' gradients of each batch (`batches[b][layer]`, one layer order).
pub fn zico_score(batches: &[Vec<LayerGrad>]) -> f64 {
    let Some(first) = batches.first() else { return 0.0 };
    let b = batches.len() as f64;
    let mut score = 0.0;
    for (l, layer) in first.iter().enumerate() {
        let mut sum = 0.0;
        for i in 0..layer.g.len() {
            let mean = batches.iter().map(|x| x[l].g[i]).sum::<f64>() / b;
            let var = batches.iter().map(|x| (x[l].g[i] - mean).powi(2)).sum::<f64>() / b;
            if var > 0.0 {
                sum += batches.iter().map(|x| x[l].g[i].abs()).sum::<f64>() / b / var.sqrt();
            }
        }
        if sum != 0.0 {
            score += sum.ln();
        }
    }
    score
}
