//! snip, grad_norm and grasp (SPEC 5): saliencies of the conv and linear weights W from the
//! gradient g = dL/dW of the mean cross-entropy L of one batch (train-mode BN).
//!
//! - snip = sum |W * g|;
//! - grad_norm = sum over layers of the Frobenius norm of g;
//! - grasp = sum -W * Hg, where Hg = d/dW (g_fixed . dL/dW) is the Hessian (over the scored
//!   weights) times g. Here Hg comes from central finite differences of the gradient along g,
//!   `(grad L(W + e g) - grad L(W - e g)) / 2e`, with `e = cbrt(machine epsilon) * max(|W|, 1) / |g|`
//!   (norms over the scored weights), the step that balances truncation against rounding;
//!   tests hold it to the exact product on networks small enough to differentiate twice.

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

/// grasp = sum -W * Hg for the batch (`images`, `labels`), given `layers` from that batch's
/// gradient. The session must have the scored weights trainable; its parameters are restored
/// afterwards (BN running statistics see three more train-mode batches).
pub fn grasp<T: Float, D: Device<T>>(session: &mut Session<T, D>, images: &[T], labels: &[u32], layers: &[LayerGrad]) -> Result<f64> {
    let hg = hessian_gradient(session, images, labels, layers)?;
    Ok(layers.iter().zip(&hg).flat_map(|(l, h)| l.w.iter().zip(h)).map(|(w, h)| -w * h).sum())
}

/// Hg per scored layer by central finite differences of the gradient along g (see the module).
pub fn hessian_gradient<T: Float, D: Device<T>>(session: &mut Session<T, D>, images: &[T], labels: &[u32], layers: &[LayerGrad]) -> Result<Vec<Vec<f64>>> {
    let norm = |f: fn(&LayerGrad) -> &Vec<f64>| layers.iter().flat_map(|l| f(l).iter()).map(|v| v * v).sum::<f64>().sqrt();
    let (w_norm, g_norm) = (norm(|l| &l.w), norm(|l| &l.g));
    if g_norm == 0.0 {
        return Ok(layers.iter().map(|l| vec![0.0; l.g.len()]).collect());
    }
    let e = T::epsilon().as_f64().cbrt() * w_norm.max(1.0) / g_norm;
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
