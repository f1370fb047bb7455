//! Batch normalisation over [n, c, hw] (PyTorch BatchNorm2d semantics).
//!
//! Parallel over channels: one task reads a channel's n planes for its statistics and then writes
//! the same planes while they are still in cache. Sums run in the element type over independent
//! lanes (so they vectorise) within blocks of 256 values, and in f64 across blocks.
use rayon::prelude::*;

use super::BnGeom;
use crate::engine::Float;

/// A raw pointer that channel tasks share to write their own (disjoint) planes.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);
// SAFETY: only used to hand disjoint regions of one slice to parallel tasks.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}
impl<T> SharedMut<T> {
    /// # Safety
    /// `off..off+len` must be in bounds and touched by no other live reference.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, off: usize, len: usize) -> &mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(off), len)
    }
}

const LANES: usize = 8;
/// Values summed in T (over LANES independent lanes, so it vectorises) before each partial sum is
/// added into an f64 total: bounds the rounding of the T sums whatever the plane size.
const BLOCK: usize = 256;

/// Sum over x (and y) of f(x, y), accumulated in T within blocks and in f64 across them.
#[inline(always)]
fn blocked_sum<T: Float>(x: &[T], y: &[T], f: impl Fn(T, T) -> T) -> f64 {
    let mut total = 0.0f64;
    for (xb, yb) in x.chunks(BLOCK).zip(y.chunks(BLOCK)) {
        let mut acc = [T::zero(); LANES];
        let mut xc = xb.chunks_exact(LANES);
        let mut yc = yb.chunks_exact(LANES);
        for (xs, ys) in (&mut xc).zip(&mut yc) {
            for l in 0..LANES {
                acc[l] = acc[l] + f(xs[l], ys[l]);
            }
        }
        let tail = xc.remainder().iter().zip(yc.remainder()).fold(T::zero(), |a, (&x, &y)| a + f(x, y));
        total += acc.iter().fold(tail, |a, &b| a + b).as_f64();
    }
    total
}

/// sum(x - shift) in f64.
fn sum_shifted<T: Float>(x: &[T], shift: T) -> f64 {
    blocked_sum(x, x, |v, _| v - shift)
}

/// sum((x - mean)^2) in f64.
fn sum_sq_dev<T: Float>(x: &[T], mean: T) -> f64 {
    blocked_sum(x, x, |v, _| {
        let d = v - mean;
        d * d
    })
}

/// (sum(dy), sum(dy * (x - mean))) in f64.
fn sum_dy_dyxc<T: Float>(x: &[T], dy: &[T], mean: T) -> (f64, f64) {
    (blocked_sum(dy, dy, |d, _| d), blocked_sum(x, dy, |v, d| d * (v - mean)))
}

/// How a channel is normalised: y = ((x - mean_hi) - mean_lo) * scale + beta. The mean is split
/// into two T parts so the subtraction stays exact when |mean| >> std (x*scale + (beta -
/// mean*scale) would cancel two large terms). Its 4 coefficients, in this order, are what a
/// batch norm writes for the node sum that applies it ([`super::BnOutput::Coefficients`]).
#[derive(Clone, Copy)]
pub(crate) struct Affine<T> {
    mean_hi: T,
    mean_lo: T,
    scale: T,
    beta: T,
}

impl<T: Float> Affine<T> {
    pub(crate) fn new(mean: f64, scale: f64, beta: T) -> Self {
        let mean_hi = T::from_f64(mean);
        Affine { mean_hi, mean_lo: T::from_f64(mean - mean_hi.as_f64()), scale: T::from_f64(scale), beta }
    }

    /// From (mean_hi, mean_lo, scale, beta).
    pub(crate) fn from_coefficients(k: &[T]) -> Self {
        Affine { mean_hi: k[0], mean_lo: k[1], scale: k[2], beta: k[3] }
    }

    pub(crate) fn coefficients(&self) -> [T; 4] {
        [self.mean_hi, self.mean_lo, self.scale, self.beta]
    }

    pub(crate) fn normalise(&self, x: T) -> T {
        ((x - self.mean_hi) - self.mean_lo) * self.scale + self.beta
    }

    fn apply(&self, x: &[T], y: &mut [T]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = self.normalise(x);
        }
    }
}

/// A channel's input gradient in train mode: dx = a*dy + (b*(x - mean) + k), with a =
/// gamma*invstd, b = -a*invstd^2*sum(dy*(x-mean))/m, k = -a*sum(dy)/m. Its 4 coefficients
/// (a, b, k, mean) are what a batch norm's backward writes for the convolution that applies it
/// ([`bn_backward_coefficients`]).
#[derive(Clone, Copy)]
pub(crate) struct InputGradient<T> {
    a: T,
    b: T,
    k: T,
    mean: T,
}

impl<T: Float> InputGradient<T> {
    /// From the channel's gamma, invstd, sums (sum dy, sum dy*(x - mean)) over its m values.
    fn new(gamma: T, invstd: T, mean: T, (sdy, sdyx): (f64, f64), m: f64) -> Self {
        let inv = invstd.as_f64();
        let a = gamma.as_f64() * inv;
        let (b, k) = if m > 0.0 { (-a * inv * inv * sdyx / m, -a * sdy / m) } else { (0.0, 0.0) };
        InputGradient { a: T::from_f64(a), b: T::from_f64(b), k: T::from_f64(k), mean }
    }

    /// From (a, b, k, mean).
    pub(crate) fn from_coefficients(c: &[T]) -> Self {
        InputGradient { a: c[0], b: c[1], k: c[2], mean: c[3] }
    }

    fn coefficients(&self) -> [T; 4] {
        [self.a, self.b, self.k, self.mean]
    }

    /// The input gradient at a value x whose output gradient is dy.
    pub(crate) fn at(&self, dy: T, x: T) -> T {
        self.a * dy + (self.b * (x - self.mean) + self.k)
    }
}

/// Channel `ch`'s (sum dy, sum dy*(x - mean)) over the batch, in f64.
fn channel_dy_sums<T: Float>(g: &BnGeom, x: &[T], dy: &[T], mean: T, ch: usize) -> (f64, f64) {
    let at = |i: usize| (i * g.c + ch) * g.hw..(i * g.c + ch + 1) * g.hw;
    (0..g.n).fold((0.0, 0.0), |(a, b), i| {
        let (da, db) = sum_dy_dyxc(&x[at(i)], &dy[at(i)], mean);
        (a + da, b + db)
    })
}

/// y = x normalised by each channel's affine coefficients `coef` (4 per channel, [`Affine`]'s
/// order), as written by a batch norm's statistics: the apply half of a training forward whose
/// statistics were taken elsewhere (the GPU plan takes them in the convolution's epilogue).
pub fn bn_apply<T: Float>(g: &BnGeom, x: &[T], coef: &[T], y: &mut [T]) {
    assert_eq!(x.len(), g.len(), "bn_apply: x length");
    assert_eq!(y.len(), g.len(), "bn_apply: y length");
    assert_eq!(coef.len(), 4 * g.c, "bn_apply: coef length");
    if g.hw == 0 {
        return;
    }
    for (i, (xs, ys)) in x.chunks(g.hw).zip(y.chunks_mut(g.hw)).enumerate() {
        let ch = 4 * (i % g.c);
        Affine::from_coefficients(&coef[ch..ch + 4]).apply(xs, ys);
    }
}

/// Train mode: normalise with the biased batch variance; running_mean/var updated in place with
/// `running = (1 - momentum) * running + momentum * batch` (the variance update uses the unbiased
/// variance). Writes the batch `mean` and `invstd = 1/sqrt(var_biased + eps)` (length c) for backward.
///
/// With a single value per channel (n*hw = 1, which PyTorch rejects in train mode) the running
/// variance is updated with the biased variance (0) instead of dividing by zero.
#[allow(clippy::too_many_arguments)]
pub fn bn_train_forward<T: Float>(
    g: &BnGeom,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    eps: f64,
    momentum: f64,
    running_mean: &mut [T],
    running_var: &mut [T],
    y: &mut [T],
    mean: &mut [T],
    invstd: &mut [T],
) {
    let (n, c, hw) = (g.n, g.c, g.hw);
    assert_eq!(x.len(), g.len(), "batch_norm: x length");
    assert_eq!(y.len(), g.len(), "batch_norm: y length");
    for (name, v) in [
        ("gamma", gamma.len()),
        ("beta", beta.len()),
        ("running_mean", running_mean.len()),
        ("running_var", running_var.len()),
        ("mean", mean.len()),
        ("invstd", invstd.len()),
    ] {
        assert_eq!(v, c, "batch_norm: {name} length");
    }
    let m = g.count();
    if m == 0 {
        return;
    }
    let yp = SharedMut(y.as_mut_ptr());
    // Per channel: (mean, biased variance), computed two-pass while the channel is in cache, then y.
    let stats: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let plane = |i: usize| &x[(i * c + ch) * hw..(i * c + ch + 1) * hw];
            // Two passes (the second while the channel is still in cache); the first is shifted by
            // the channel's first value, the second by the mean, so large offsets do not cancel.
            let shift = plane(0)[0];
            let mu = shift.as_f64() + (0..n).map(|i| sum_shifted(plane(i), shift)).sum::<f64>() / m as f64;
            let mu_t = T::from_f64(mu);
            let var = (0..n).map(|i| sum_sq_dev(plane(i), mu_t)).sum::<f64>() / m as f64 - (mu - mu_t.as_f64()).powi(2);
            let affine = Affine::new(mu, gamma[ch].as_f64() / (var + eps).sqrt(), beta[ch]);
            for i in 0..n {
                // SAFETY: plane (i, ch) belongs to this task alone and lies inside y.
                let yi = unsafe { yp.slice((i * c + ch) * hw, hw) };
                affine.apply(plane(i), yi);
            }
            (mu, var)
        })
        .collect();
    let unbias = if m > 1 { m as f64 / (m - 1) as f64 } else { 1.0 };
    for (ch, &(mu, var)) in stats.iter().enumerate() {
        mean[ch] = T::from_f64(mu);
        invstd[ch] = T::from_f64(1.0 / (var + eps).sqrt());
        running_mean[ch] = T::from_f64((1.0 - momentum) * running_mean[ch].as_f64() + momentum * mu);
        running_var[ch] = T::from_f64((1.0 - momentum) * running_var[ch].as_f64() + momentum * var * unbias);
    }
}

/// Eval mode: normalise with the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn bn_eval_forward<T: Float>(g: &BnGeom, x: &[T], gamma: &[T], beta: &[T], running_mean: &[T], running_var: &[T], eps: f64, y: &mut [T]) {
    let (c, hw) = (g.c, g.hw);
    assert_eq!(x.len(), g.len(), "batch_norm: x length");
    assert_eq!(y.len(), g.len(), "batch_norm: y length");
    assert!(gamma.len() == c && beta.len() == c && running_mean.len() == c && running_var.len() == c, "batch_norm: parameter lengths must be c = {c}");
    if hw == 0 || c == 0 {
        return;
    }
    let coef: Vec<Affine<T>> =
        (0..c).map(|ch| Affine::new(running_mean[ch].as_f64(), gamma[ch].as_f64() / (running_var[ch].as_f64() + eps).sqrt(), beta[ch])).collect();
    let planes_per_task = (1 << 14) / hw + 1;
    y.par_chunks_mut(planes_per_task * hw).zip(x.par_chunks(planes_per_task * hw)).enumerate().for_each(|(t, (y, x))| {
        for (j, (y, x)) in y.chunks_exact_mut(hw).zip(x.chunks_exact(hw)).enumerate() {
            coef[(t * planes_per_task + j) % c].apply(x, y);
        }
    });
}

/// Backward of train mode; accumulates into whichever gradients are requested.
#[allow(clippy::too_many_arguments)]
pub fn bn_backward<T: Float>(
    g: &BnGeom,
    x: &[T],
    dy: &[T],
    gamma: &[T],
    mean: &[T],
    invstd: &[T],
    dx: Option<&mut [T]>,
    dgamma: Option<&mut [T]>,
    dbeta: Option<&mut [T]>,
) {
    let (n, c, hw) = (g.n, g.c, g.hw);
    assert_eq!(x.len(), g.len(), "batch_norm: x length");
    assert_eq!(dy.len(), g.len(), "batch_norm: dy length");
    assert!(gamma.len() == c && mean.len() == c && invstd.len() == c, "batch_norm: parameter lengths must be c = {c}");
    let m = g.count();
    if m == 0 {
        return;
    }
    let dxp = dx.map(|d| {
        assert_eq!(d.len(), g.len(), "batch_norm: dx length");
        SharedMut(d.as_mut_ptr())
    });
    // Per channel: (sum dy, sum dy * (x - mean)); then dx += a*dy + b*(x - mean) + k with
    // a = gamma*invstd, b = -a*invstd^2*sum(dy*(x-mean))/m, k = -a*sum(dy)/m.
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let at = |i: usize| (i * c + ch) * hw..(i * c + ch + 1) * hw;
            let sums = channel_dy_sums(g, x, dy, mean[ch], ch);
            if let Some(dxp) = dxp {
                let grad = InputGradient::new(gamma[ch], invstd[ch], mean[ch], sums, m as f64);
                for i in 0..n {
                    // SAFETY: plane (i, ch) belongs to this task alone and lies inside dx.
                    let d = unsafe { dxp.slice(at(i).start, hw) };
                    for ((d, &g), &x) in d.iter_mut().zip(&dy[at(i)]).zip(&x[at(i)]) {
                        *d = *d + grad.at(g, x);
                    }
                }
            }
            sums
        })
        .collect();
    if let Some(dgamma) = dgamma {
        assert_eq!(dgamma.len(), c, "batch_norm: dgamma length");
        for (ch, d) in dgamma.iter_mut().enumerate() {
            *d = *d + T::from_f64(sums[ch].1 * invstd[ch].as_f64());
        }
    }
    if let Some(dbeta) = dbeta {
        assert_eq!(dbeta.len(), c, "batch_norm: dbeta length");
        for (d, s) in dbeta.iter_mut().zip(&sums) {
            *d = *d + T::from_f64(s.0);
        }
    }
}

/// The backward's per-channel coefficients, 4 per channel: (a, b, k, mean) with a =
/// gamma*invstd, b = -a*invstd^2*sum(dy*(x-mean))/m, k = -a*sum(dy)/m, so that the input
/// gradient is a*dy + (b*(x - mean) + k) (what the GPU's finalize kernel writes for the
/// convolution that applies them as it loads, instead of a written gradient).
#[allow(clippy::too_many_arguments)]
pub fn bn_backward_coefficients<T: Float>(g: &BnGeom, x: &[T], dy: &[T], gamma: &[T], mean: &[T], invstd: &[T], coef: &mut [T]) {
    assert!(x.len() == g.len() && dy.len() == g.len() && coef.len() == 4 * g.c, "batch_norm: lengths");
    for (ch, out) in coef.chunks_exact_mut(4).enumerate() {
        let sums = channel_dy_sums(g, x, dy, mean[ch], ch);
        out.copy_from_slice(&InputGradient::new(gamma[ch], invstd[ch], mean[ch], sums, g.count() as f64).coefficients());
    }
}
