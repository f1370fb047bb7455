//! ReLU, add, zero, accumulate, global average pool.
//!
//! Memory-bound single passes, split into chunks of about 16K elements for rayon.
use rayon::prelude::*;

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
