//! ReLU, add, zero, accumulate, global average pool.
//!
//! Memory-bound single passes, split into chunks of about 16K elements for rayon.
use rayon::prelude::*;

use crate::engine::ops::batchnorm::Affine;
use crate::engine::Float;

const CHUNK: usize = 1 << 14;

/// y = max(x, 0).
pub fn relu<T: Float>(x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "relu: length mismatch");
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = if x > T::zero() { x } else { T::zero() };
        }
    });
}

/// dx += dy where y > 0 (y is the ReLU output).
pub fn relu_backward<T: Float>(y: &[T], dy: &[T], dx: &mut [T]) {
    assert!(y.len() == dx.len() && dy.len() == dx.len(), "relu_backward: length mismatch");
    dx.par_chunks_mut(CHUNK).zip(dy.par_chunks(CHUNK)).zip(y.par_chunks(CHUNK)).for_each(|((dx, dy), y)| {
        for ((dx, &dy), &y) in dx.iter_mut().zip(dy).zip(y) {
            *dx = *dx + if y > T::zero() { dy } else { T::zero() };
        }
    });
}

/// y = a + b.
pub fn add<T: Float>(a: &[T], b: &[T], y: &mut [T]) {
    assert!(a.len() == y.len() && b.len() == y.len(), "add: length mismatch");
    y.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(|((y, a), b)| {
        for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
            *y = a + b;
        }
    });
}

/// acc += x (the backward of add, and gradient accumulation).
pub fn accumulate<T: Float>(acc: &mut [T], x: &[T]) {
    assert_eq!(acc.len(), x.len(), "accumulate: length mismatch");
    acc.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(acc, x)| {
        for (a, &x) in acc.iter_mut().zip(x) {
            *a = *a + x;
        }
    });
}

/// One term of a [`node_sum`]: a tensor [n, c, hw], and the (mean_hi, mean_lo, scale, beta) of
/// each channel of the batch norm it is the input of, when the sum applies that normalisation.
pub type SumTerm<'a, T> = (&'a [T], Option<&'a [T]>);

/// y = t0 + t1 (+ t2 ...), in that order, each term normalised as it is read where it has
/// coefficients: ((x - mean_hi) - mean_lo) * scale + beta (a cell node's sum of its edges, their
/// batch norms applied here instead of by a pass of their own).
pub fn node_sum<T: Float>(c: usize, hw: usize, terms: &[SumTerm<T>], y: &mut [T]) {
    assert!(terms.len() >= 2 && terms.iter().all(|t| t.0.len() == y.len()), "node_sum: terms");
    assert!(terms.iter().all(|t| t.1.is_none_or(|k| k.len() == 4 * c)), "node_sum: coefficients");
    let term = |(x, coef): &SumTerm<T>, i: usize| match coef {
        Some(k) => {
            let ch = 4 * (i / hw.max(1) % c.max(1));
            Affine::from_coefficients(&k[ch..ch + 4]).normalise(x[i])
        }
        None => x[i],
    };
    y.par_chunks_mut(CHUNK).enumerate().for_each(|(b, y)| {
        for (j, y) in y.iter_mut().enumerate() {
            let i = b * CHUNK + j;
            *y = terms[1..].iter().fold(term(&terms[0], i), |v, t| v + term(t, i));
        }
    });
}

/// y = 0 (the `none` op; its backward contributes nothing).
pub fn zero<T: Float>(y: &mut [T]) {
    y.par_chunks_mut(CHUNK).for_each(|y| y.fill(T::zero()));
}

/// Planes per rayon task: about CHUNK elements each.
fn planes_per_task(hw: usize) -> usize {
    (CHUNK / hw.max(1)).max(1)
}

/// y[n, c] = mean over hw of x[n, c, hw].
pub fn gap_forward<T: Float>(n: usize, c: usize, hw: usize, x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), n * c * hw, "global_avg_pool: x length");
    assert_eq!(y.len(), n * c, "global_avg_pool: y length");
    if hw == 0 {
        y.fill(T::nan()); // the mean of nothing, as PyTorch gives
        return;
    }
    let ppt = planes_per_task(hw);
    y.par_chunks_mut(ppt).zip(x.par_chunks(ppt * hw)).for_each(|(y, x)| {
        for (y, x) in y.iter_mut().zip(x.chunks_exact(hw)) {
            let mut acc = [0.0f64; 4];
            let mut ch = x.chunks_exact(4);
            for v in &mut ch {
                for (a, &v) in acc.iter_mut().zip(v) {
                    *a += v.as_f64();
                }
            }
            let s: f64 = acc.iter().sum::<f64>() + ch.remainder().iter().map(|v| v.as_f64()).sum::<f64>();
            *y = T::from_f64(s / hw as f64);
        }
    });
}

/// dx[n, c, hw] += dy[n, c] / hw.
pub fn gap_backward<T: Float>(n: usize, c: usize, hw: usize, dy: &[T], dx: &mut [T]) {
    assert_eq!(dx.len(), n * c * hw, "global_avg_pool: dx length");
    assert_eq!(dy.len(), n * c, "global_avg_pool: dy length");
    if hw == 0 {
        return;
    }
    let inv = T::from_f64(1.0 / hw as f64);
    let ppt = planes_per_task(hw);
    dx.par_chunks_mut(ppt * hw).zip(dy.par_chunks(ppt)).for_each(|(dx, dy)| {
        for (dx, &dy) in dx.chunks_exact_mut(hw).zip(dy) {
            let v = dy * inv;
            dx.iter_mut().for_each(|d| *d = *d + v);
        }
    });
}
