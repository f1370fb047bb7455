//! snip, grad_norm and grasp (README, "Zero-cost proxies"): saliencies of the conv and linear
//! weights W from the gradient g = dL/dW of the mean cross-entropy L of one batch (train-mode BN).
//!
//! - snip = sum |W * g|;
//! - grad_norm = sum over layers of the Frobenius norm of g;
//! - grasp = sum -W * Hg, where Hg = d/dW (g_fixed . dL/dW) is the Hessian (over the scored
//!   weights) times g, as autograd's double backward gives it: ReLU's second derivative is 0.
//!
//! Hg comes from central finite differences of the gradient along g,
//! `(grad L(W + e g) - grad L(W - e g)) / 2e`, in float64. The step must be tiny: a ReLU input
//! that changes sign between W - e g and W + e g makes the gradient jump, and the difference
//! divided by 2e then says nothing about the Hessian. A whole network at batch 256 holds some
//! 1e8 ReLU inputs, so at the usual step (e |g| = 6e-6 |W|) many cross, and grasp came out wrong
//! even in sign on NATS-Bench cells (checked against PyTorch's double backward). At
//! `e |g| = 1e-12 |W|` none cross and float64 rounding still leaves about 1e-5 relative error
//! (matched PyTorch to 6e-6 on arch 1 and 15624). [`grasp`] takes that step and checks it against
//! a step four times smaller; where the two disagree (a crossing) it moves ten times smaller.

use anyhow::Result;

use crate::engine::{Device, Float, Session};

use super::scored_weights;

/// One scored layer: its weight's name, values and gradient (f64).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerGrad {
    pub name: String,
    pub w: Vec<f64>,
    pub g: Vec<f64>,
}

/// After a train-mode forward and backward, the scored weights and their gradients.
pub fn layer_grads<T: Float, D: Device<T>>(session: &Session<T, D>) -> Result<Vec<LayerGrad>> {
    let scored = scored_weights(session.graph());
    let widen = |v: Vec<T>| v.into_iter().map(Float::as_f64).collect::<Vec<f64>>();
    let mut out = Vec::new();
    for (spec, _) in session.params().iter().zip(&scored).filter(|(_, s)| **s) {
        let w = widen(session.read_param(&spec.name)?);
        let g = widen(session.read_grad(&spec.name)?);
        out.push(LayerGrad { name: spec.name.clone(), w, g });
    }
    Ok(out)
}

/// sum |W * g|.
pub fn snip(layers: &[LayerGrad]) -> f64 {
    layers.iter().flat_map(|l| l.w.iter().zip(&l.g)).map(|(w, g)| (w * g).abs()).sum()
}

/// Sum over layers of |g|_F.
pub fn grad_norm(layers: &[LayerGrad]) -> f64 {
    layers.iter().map(|l| l.g.iter().map(|g| g * g).sum::<f64>().sqrt()).sum()
}

/// The steps [`grasp`] tries, relative (e |g| = step * max(|W|, 1)); see the module.
pub const GRASP_STEPS: [f64; 3] = [1e-12, 1e-13, 1e-14];

/// grasp = sum -W * Hg for the batch (`images`, `labels`), given `layers` from that batch's
/// gradient, on a float64 session with the scored weights trainable. Hg as the module says; its
/// parameters are restored afterwards (BN running statistics see more train-mode batches).
pub fn grasp<D: Device<f64>>(session: &mut Session<f64, D>, images: &[f64], labels: &[u32], layers: &[LayerGrad]) -> Result<f64> {
    let mut score_at = |step: f64| -> Result<f64> {
        let hg = hessian_gradient(session, images, labels, layers, step)?;
        Ok(layers.iter().zip(&hg).flat_map(|(l, h)| l.w.iter().zip(h)).map(|(w, h)| -w * h).sum())
    };
    let mut best = (f64::INFINITY, 0.0);
    for step in GRASP_STEPS {
        let (a, b) = (score_at(step)?, score_at(step / 4.0)?);
        let disagreement = (a - b).abs() / a.abs().max(b.abs()).max(1e-300);
        if disagreement < 1e-3 {
            return Ok(a);
        }
        if disagreement < best.0 {
            best = (disagreement, a);
        }
    }
    eprintln!("warning: grasp's finite-difference steps disagree by {:.1e} (a ReLU input changes sign); keeping the closest pair", best.0);
    Ok(best.1)
}

/// Hg per scored layer by central finite differences of the gradient along g, with
/// `e |g| = step * max(|W|, 1)` (norms over the scored weights).
pub fn hessian_gradient<T: Float, D: Device<T>>(
    session: &mut Session<T, D>,
    images: &[T],
    labels: &[u32],
    layers: &[LayerGrad],
    step: f64,
) -> Result<Vec<Vec<f64>>> {
    let norm = |f: fn(&LayerGrad) -> &Vec<f64>| layers.iter().flat_map(|l| f(l).iter()).map(|v| v * v).sum::<f64>().sqrt();
    let (w_norm, g_norm) = (norm(|l| &l.w), norm(|l| &l.g));
    if g_norm == 0.0 {
        return Ok(layers.iter().map(|l| vec![0.0; l.g.len()]).collect());
    }
    let e = step * w_norm.max(1.0) / g_norm;
    let original = session.read_all_params()?;
    let offsets: Vec<usize> = layers.iter().map(|l| session.graph().param_by_name(&l.name).unwrap().offset).collect();
    let mut gradient_at = |sign: f64| -> Result<Vec<Vec<f64>>> {
        let mut shifted = original.clone();
        for (l, &off) in layers.iter().zip(&offsets) {
            for (p, g) in shifted[off..off + l.g.len()].iter_mut().zip(&l.g) {
                *p = T::from_f64(p.as_f64() + sign * e * g);
            }
        }
        session.write_all_params(&shifted)?;
        session.forward_backward(images, labels)?;
        let all = session.read_all_grads()?;
        Ok(layers.iter().zip(&offsets).map(|(l, &off)| all[off..off + l.g.len()].iter().map(|v| v.as_f64()).collect()).collect())
    };
    let up = gradient_at(1.0)?;
    let down = gradient_at(-1.0)?;
    session.write_all_params(&original)?;
    Ok(up.iter().zip(&down).map(|(u, d)| u.iter().zip(d).map(|(u, d)| (u - d) / (2.0 * e)).collect()).collect())
}
