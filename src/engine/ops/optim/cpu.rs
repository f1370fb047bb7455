//! Optimiser ops: PyTorch SGD (momentum, Nesterov, weight decay) and global-norm clipping.
use rayon::prelude::*;

use crate::engine::Float;

const CHUNK: usize = 1 << 14;

/// One SGD step in place, PyTorch semantics (dampening 0): `g += wd*w; buf = m*buf + g;
/// g = g + m*buf` (Nesterov) or `g = buf`; `w -= lr*g`. A zero `buf` makes the first step
/// `buf = g`, as PyTorch does. Leaves the decayed, momentum-adjusted gradient in `g`.
pub fn sgd<T: Float>(w: &mut [T], g: &mut [T], buf: &mut [T], lr: T, momentum: f64, weight_decay: f64, nesterov: bool) {
    let (m, wd) = (T::from_f64(momentum), T::from_f64(weight_decay));
    w.par_chunks_mut(CHUNK).zip(g.par_chunks_mut(CHUNK)).zip(buf.par_chunks_mut(CHUNK)).for_each(|((w, g), buf)| {
        for ((w, g), b) in w.iter_mut().zip(g.iter_mut()).zip(buf.iter_mut()) {
            let mut d = *g + wd * *w;
            *b = m * *b + d;
            d = if nesterov { d + m * *b } else { *b };
            *g = d;
            *w = *w - lr * d;
        }
    });
}

/// Sum of squares, accumulated in f64, deterministically.
pub fn sum_squares<T: Float>(x: &[T]) -> T {
    // Partials collected in chunk order and added sequentially: the same sum on every run.
    let partials: Vec<f64> = x.par_chunks(CHUNK).map(|c| c.iter().map(|v| v.as_f64() * v.as_f64()).sum::<f64>()).collect();
    let s: f64 = partials.iter().sum();
    T::from_f64(s)
}

/// PyTorch `clip_grad_norm_`: scales `g` by `max_norm / (norm + 1e-6)` when that is below 1,
/// where `norm = sqrt(sum_sq)` over all gradients.
pub fn clip_by_norm<T: Float>(g: &mut [T], sum_sq: T, max_norm: f64) {
    let coef = max_norm / (sum_sq.as_f64().sqrt() + 1e-6);
    if coef < 1.0 {
        let c = T::from_f64(coef);
        g.par_chunks_mut(CHUNK).for_each(|g| g.iter_mut().for_each(|v| *v = *v * c));
    }
}
