//! Ops of AZ-NAS (Lee & Ham, CVPR 2024) on the tape: the channel covariance of a cell's output
//! (expressivity), random-sign cotangents, and the cross-covariance of a cell's input gradient
//! with its output cotangent (trainability). Mirrored by feature_probe.cu.
use rayon::prelude::*;

use super::CrossGeom;
use crate::engine::Float;

/// out [c, c] = the covariance of the channels of x [n, c, hw] over its n * hw positions,
/// divided by n * hw (AZ-NAS's `feat.T feat / N` after centring; overwrites `out`).
pub fn feature_covariance<T: Float>(n: usize, c: usize, hw: usize, x: &[T], out: &mut [T]) {
    assert_eq!(x.len(), n * c * hw, "feature_covariance: x length");
    assert_eq!(out.len(), c * c, "feature_covariance: out length");
    let count = (n * hw) as f64;
    // Each channel's values gathered and centred, so a pair is one contiguous dot product.
    let centred: Vec<Vec<f64>> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let v: Vec<f64> = (0..n).flat_map(|i| x[(i * c + ch) * hw..][..hw].iter().map(|v| v.as_f64())).collect();
            let mean = v.iter().sum::<f64>() / count.max(1.0);
            v.into_iter().map(|v| v - mean).collect()
        })
        .collect();
    out.par_chunks_mut(c.max(1)).enumerate().for_each(|(a, row)| {
        for (b, o) in row.iter_mut().enumerate() {
            let s: f64 = centred[a].iter().zip(&centred[b]).map(|(p, q)| p * q).sum();
            *o = T::from_f64(if count > 0.0 { s / count } else { 0.0 });
        }
    });
}

/// out[row, o] = mean over (n, y, x) of unshuffle(g_in)[n, row, y, x] * g_out[n, o, y, x], where
/// unshuffle is PyTorch's pixel_unshuffle by r (row = (c * r + i) * r + j takes input pixel
/// (y r + i, x r + j) of channel c); then out[last] = 1 when g_in and g_out have one shape and are
/// equal element by element (an identity cell, which AZ-NAS scores -inf), else 0. Overwrites.
pub fn grad_cross_covariance<T: Float>(g: &CrossGeom, g_in: &[T], g_out: &[T], out: &mut [T]) {
    assert_eq!(g_in.len(), g.in_len(), "grad_cross_covariance: g_in length");
    assert_eq!(g_out.len(), g.out_grad_len(), "grad_cross_covariance: g_out length");
    assert_eq!(out.len(), g.out_len(), "grad_cross_covariance: out length");
    let r = g.ratio();
    assert!(r >= 1 && g.h_in == g.h_out * r && g.w_in == g.w_out * r, "grad_cross_covariance: input sides must be the output's times r");
    let (hw_in, hw_out) = (g.h_in * g.w_in, g.h_out * g.w_out);
    let count = (g.n * hw_out) as f64;
    let (matrix, flag) = out.split_at_mut(g.rows() * g.c_out);
    matrix.par_chunks_mut(g.c_out.max(1)).enumerate().for_each(|(row, orow)| {
        let (c, i, j) = (row / (r * r), row / r % r, row % r);
        for (o, v) in orow.iter_mut().enumerate() {
            let mut s = 0.0f64;
            for b in 0..g.n {
                let gi = &g_in[(b * g.c_in + c) * hw_in..][..hw_in];
                let go = &g_out[(b * g.c_out + o) * hw_out..][..hw_out];
                for y in 0..g.h_out {
                    for x in 0..g.w_out {
                        s += gi[(y * r + i) * g.w_in + x * r + j].as_f64() * go[y * g.w_out + x].as_f64();
                    }
                }
            }
            *v = T::from_f64(if count > 0.0 { s / count } else { 0.0 });
        }
    });
    let identical = g_in.len() == g_out.len() && r == 1 && g.c_in == g.c_out && g_in.iter().zip(g_out).all(|(a, b)| a == b);
    flag[0] = if identical { T::one() } else { T::zero() };
}

/// The sign of element `i` of the random-sign tensor drawn from `seed`: a counter-based hash
/// (SplitMix64's finaliser), so every device draws the same signs without a generator state.
pub fn random_sign(seed: u64, i: usize) -> f64 {
    let mut z = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    if z >> 63 == 1 {
        1.0
    } else {
        -1.0
    }
}

/// y[i] = random_sign(seed, i): AZ-NAS's Rademacher cotangent (overwrites).
pub fn random_signs<T: Float>(seed: u64, y: &mut [T]) {
    y.par_iter_mut().enumerate().for_each(|(i, v)| *v = T::from_f64(random_sign(seed, i)));
}

/// out[u] = sum over samples s < n of 2^s * (x[s, u] > 0), x being `[n, d]` (a ReLU's input):
/// each unit's sample-wise activation pattern as an integer (SWAP; overwrites). At most 24
/// samples, so every pattern is exact in float32.
pub fn activation_patterns<T: Float>(n: usize, d: usize, x: &[T], out: &mut [T]) {
    assert!(n <= 24, "activation_patterns: at most 24 samples, not {n}");
    assert_eq!(x.len(), n * d, "activation_patterns: x length");
    assert_eq!(out.len(), d, "activation_patterns: out length");
    out.par_iter_mut().enumerate().for_each(|(u, o)| {
        let code: u32 = (0..n).filter(|&s| x[s * d + u] > T::zero()).map(|s| 1 << s).sum();
        *o = T::from_f64(code as f64);
    });
}
