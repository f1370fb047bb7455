//! Ops the zero-cost proxies (README, "Zero-cost proxies") need beyond training: a sum of all
//! outputs as the value backward starts from (synflow, jacob_cov), the per-channel Fisher term of a layer's output
//! (fisher), and the Gram matrix of ReLU activation patterns (NASWOT).
use rayon::prelude::*;

use crate::engine::Float;

/// The sum of every element of `x`, accumulated in f64.
pub fn sum_all<T: Float>(x: &[T]) -> T {
    T::from_f64(x.iter().map(|v| v.as_f64()).sum())
}

/// dx += 1: the gradient of `sum_all` (its output's gradient being 1).
pub fn sum_all_backward<T: Float>(dx: &mut [T]) {
    dx.iter_mut().for_each(|d| *d = *d + T::one());
}

/// out[c] = 0.5 * mean over the batch of (sum over hw of x[n, c, hw] * dy[n, c, hw])^2, where x
/// is a layer's output and dy the loss gradient with respect to it (overwrites `out`).
pub fn channel_fisher<T: Float>(n: usize, c: usize, hw: usize, x: &[T], dy: &[T], out: &mut [T]) {
    assert_eq!(x.len(), n * c * hw, "channel_fisher: x length");
    assert_eq!(dy.len(), n * c * hw, "channel_fisher: dy length");
    assert_eq!(out.len(), c, "channel_fisher: out length");
    out.par_iter_mut().enumerate().for_each(|(ch, o)| {
        let mut acc = 0.0f64;
        for i in 0..n {
            let at = (i * c + ch) * hw;
            let g: f64 = x[at..at + hw].iter().zip(&dy[at..at + hw]).map(|(a, b)| a.as_f64() * b.as_f64()).sum();
            acc += g * g;
        }
        *o = T::from_f64(if n > 0 { 0.5 * acc / n as f64 } else { 0.0 });
    });
}

/// k[i, j] += the number of units on which samples i and j agree about `x > 0`, x being `[n, d]`
/// (a ReLU's input): NASWOT's `c c^T + (1 - c)(1 - c)^T` for binary codes c. Codes are packed
/// into 64-bit words, so a pair costs d/64 popcounts.
pub fn binary_code_gram<T: Float>(n: usize, d: usize, x: &[T], k: &mut [T]) {
    assert_eq!(x.len(), n * d, "binary_code_gram: x length");
    assert_eq!(k.len(), n * n, "binary_code_gram: k length");
    let words = d.div_ceil(64);
    let mut codes = vec![0u64; n * words];
    codes.par_chunks_mut(words.max(1)).zip(x.par_chunks(d.max(1))).for_each(|(code, row)| {
        for (u, v) in row.iter().enumerate() {
            if *v > T::zero() {
                code[u / 64] |= 1 << (u % 64);
            }
        }
    });
    k.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, krow)| {
        let ci = &codes[i * words..(i + 1) * words];
        for (j, kv) in krow.iter_mut().enumerate() {
            let cj = &codes[j * words..(j + 1) * words];
            let differ: u32 = ci.iter().zip(cj).map(|(a, b)| (a ^ b).count_ones()).sum();
            *kv = *kv + T::from_f64((d - differ as usize) as f64);
        }
    });
}
