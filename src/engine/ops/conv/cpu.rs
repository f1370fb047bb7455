//! 2-D convolution (no bias, no groups, square kernel): forward, input gradient, weight gradient.
//!
//! Each image is one task (rayon over the batch). Two implementations:
//! - f32 on x86-64 with AVX2+FMA: a direct convolution (module `direct`): padded, polyphase-packed
//!   input and register-blocked micro-kernels, no im2col matrix (forward and weight gradient for any
//!   stride, input gradient for stride 1);
//! - everywhere else (f64, other CPUs, the stride-2 input gradient): `im2col` into a per-thread
//!   scratch buffer, then one GEMM with the weight viewed as a [c_out, c_in*k*k] matrix; a 1x1
//!   stride-1 unpadded convolution is a plain GEMM on the image itself.
//!
//! The weight gradient keeps one accumulator per rayon job and sums them at the end.
use rayon::prelude::*;

use super::ConvGeom;
use crate::engine::ops::with_scratch;
use crate::engine::Float;

impl ConvGeom {
    /// Rows of the im2col matrix: c_in * k * k.
    fn col_rows(&self) -> usize {
        self.c_in * self.k * self.k
    }
    /// True when the convolution is a plain GEMM on each image (1x1, stride 1, no padding).
    fn is_pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }
    fn check(&self, x: usize, w: usize, y: usize) {
        assert!(self.k >= 1 && self.stride >= 1, "conv: k and stride must be positive: {self:?}");
        assert!(self.h + 2 * self.pad >= self.k && self.w + 2 * self.pad >= self.k, "conv: kernel larger than padded input: {self:?}");
        assert_eq!(x, self.x_len(), "conv: x length");
        assert_eq!(w, self.w_len(), "conv: w length");
        assert_eq!(y, self.y_len(), "conv: y length");
    }
}

/// The output columns `[lo, hi)` whose input column `o*stride + kw - pad` lies inside `[0, w)`.
fn valid_range(w: usize, out: usize, kw: usize, stride: usize, pad: usize) -> (usize, usize) {
    let lo = if pad > kw { (pad - kw).div_ceil(stride) } else { 0 };
    let hi = if w + pad > kw { (w + pad - kw - 1) / stride + 1 } else { 0 };
    let lo = lo.min(out);
    (lo, hi.min(out).max(lo))
}

/// col[(ci*k + kh)*k + kw, oy*ow + ox] = x[ci, oy*s + kh - pad, ox*s + kw - pad] (0 outside).
fn im2col<T: Float>(g: &ConvGeom, x: &[T], col: &mut [T]) {
    let (oh, ow, s, pad) = (g.out_h(), g.out_w(), g.stride, g.pad);
    let ohw = oh * ow;
    let plane = g.h * g.w;
    let mut rows = col.chunks_exact_mut(ohw);
    for ci in 0..g.c_in {
        let xp = &x[ci * plane..(ci + 1) * plane];
        for kh in 0..g.k {
            for kw in 0..g.k {
                let row = rows.next().unwrap();
                let (lo, hi) = valid_range(g.w, ow, kw, s, pad);
                for (oy, out) in row.chunks_exact_mut(ow).enumerate() {
                    let iy = (oy * s + kh) as isize - pad as isize;
                    if iy < 0 || iy >= g.h as isize {
                        out.fill(T::zero());
                        continue;
                    }
                    let xr = &xp[iy as usize * g.w..(iy as usize + 1) * g.w];
                    out[..lo].fill(T::zero());
                    out[hi..].fill(T::zero());
                    if lo == hi {
                        continue;
                    }
                    let ix0 = lo * s + kw - pad;
                    if s == 1 {
                        out[lo..hi].copy_from_slice(&xr[ix0..ix0 + (hi - lo)]);
                    } else {
                        for (o, &v) in out[lo..hi].iter_mut().zip(xr[ix0..].iter().step_by(s)) {
                            *o = v;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col`: dx[ci, iy, ix] += every col entry that was read from it.
fn col2im_add<T: Float>(g: &ConvGeom, col: &[T], dx: &mut [T]) {
    let (oh, ow, s, pad) = (g.out_h(), g.out_w(), g.stride, g.pad);
    let ohw = oh * ow;
    let plane = g.h * g.w;
    let mut rows = col.chunks_exact(ohw);
    for ci in 0..g.c_in {
        let xp = &mut dx[ci * plane..(ci + 1) * plane];
        for kh in 0..g.k {
            for kw in 0..g.k {
                let row = rows.next().unwrap();
                let (lo, hi) = valid_range(g.w, ow, kw, s, pad);
                if lo == hi {
                    continue;
                }
                let ix0 = lo * s + kw - pad;
                for (oy, out) in row.chunks_exact(ow).enumerate() {
                    let iy = (oy * s + kh) as isize - pad as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let xr = &mut xp[iy as usize * g.w..(iy as usize + 1) * g.w];
                    if s == 1 {
                        for (d, &v) in xr[ix0..ix0 + (hi - lo)].iter_mut().zip(&out[lo..hi]) {
                            *d = *d + v;
                        }
                    } else {
                        for (d, &v) in xr[ix0..].iter_mut().step_by(s).zip(&out[lo..hi]) {
                            *d = *d + v;
                        }
                    }
                }
            }
        }
    }
}

/// The im2col + GEMM implementation of [`conv_forward`] (any element type, any CPU).
pub fn conv_forward_im2col<T: Float>(g: &ConvGeom, x: &[T], w: &[T], y: &mut [T]) {
    g.check(x.len(), w.len(), y.len());
    let ohw = g.out_h() * g.out_w();
    let (xs, ys, kk) = (g.c_in * g.h * g.w, g.c_out * ohw, g.col_rows());
    if ys == 0 {
        return;
    }
    if xs == 0 {
        y.fill(T::zero());
        return;
    }
    let pointwise = g.is_pointwise();
    y.par_chunks_mut(ys).zip(x.par_chunks(xs)).for_each(|(yi, xi)| {
        // y_i [c_out, ohw] = W [c_out, kk] * col_i [kk, ohw]
        let gemm = |col: &[T], yi: &mut [T]| unsafe {
            T::gemm(g.c_out, kk, ohw, T::one(), w.as_ptr(), kk as isize, 1, col.as_ptr(), ohw as isize, 1, T::zero(), yi.as_mut_ptr(), ohw as isize, 1)
        };
        if pointwise {
            gemm(xi, yi);
        } else {
            with_scratch(kk * ohw, |col: &mut [T]| {
                im2col(g, xi, col);
                gemm(col, yi);
            });
        }
    });
}

/// The im2col + GEMM implementation of [`conv_backward_input`].
pub fn conv_backward_input_im2col<T: Float>(g: &ConvGeom, dy: &[T], w: &[T], dx: &mut [T]) {
    g.check(dx.len(), w.len(), dy.len());
    let ohw = g.out_h() * g.out_w();
    let (xs, ys, kk) = (g.c_in * g.h * g.w, g.c_out * ohw, g.col_rows());
    if xs == 0 || ys == 0 {
        return;
    }
    let pointwise = g.is_pointwise();
    dx.par_chunks_mut(xs).zip(dy.par_chunks(ys)).for_each(|(dxi, dyi)| {
        // dcol [kk, ohw] = W^T [kk, c_out] * dy_i [c_out, ohw]  (+ the old value when beta = 1)
        let gemm = |beta: T, out: &mut [T]| unsafe {
            T::gemm(kk, g.c_out, ohw, T::one(), w.as_ptr(), 1, kk as isize, dyi.as_ptr(), ohw as isize, 1, beta, out.as_mut_ptr(), ohw as isize, 1)
        };
        if pointwise {
            gemm(T::one(), dxi);
        } else {
            with_scratch(kk * ohw, |dcol: &mut [T]| {
                gemm(T::zero(), dcol);
                col2im_add(g, dcol, dxi);
            });
        }
    });
}

/// The im2col + GEMM implementation of [`conv_backward_weight`].
pub fn conv_backward_weight_im2col<T: Float>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    g.check(x.len(), dw.len(), dy.len());
    let ohw = g.out_h() * g.out_w();
    let (xs, ys, kk) = (g.c_in * g.h * g.w, g.c_out * ohw, g.col_rows());
    if xs == 0 || ys == 0 || dw.is_empty() {
        return;
    }
    let pointwise = g.is_pointwise();
    let per_job = images_per_job(g.n, 1);
    let partials: Vec<Vec<T>> = x
        .par_chunks(per_job * xs)
        .zip(dy.par_chunks(per_job * ys))
        .map(|(xj, dyj)| {
            let mut acc = vec![T::zero(); dw.len()];
            for (xi, dyi) in xj.chunks(xs).zip(dyj.chunks(ys)) {
                // acc [c_out, kk] += dy_i [c_out, ohw] * col_i^T [ohw, kk]
                let gemm = |col: &[T], acc: &mut [T]| unsafe {
                    T::gemm(
                        g.c_out,
                        ohw,
                        kk,
                        T::one(),
                        dyi.as_ptr(),
                        ohw as isize,
                        1,
                        col.as_ptr(),
                        1,
                        ohw as isize,
                        T::one(),
                        acc.as_mut_ptr(),
                        kk as isize,
                        1,
                    )
                };
                if pointwise {
                    gemm(xi, &mut acc);
                } else {
                    with_scratch(kk * ohw, |col: &mut [T]| {
                        im2col(g, xi, col);
                        gemm(col, &mut acc);
                    });
                }
            }
            acc
        })
        .collect();
    for part in &partials {
        dw.iter_mut().zip(part).for_each(|(d, &t)| *d = *d + t);
    }
}

/// Images per parallel job of a weight gradient: a multiple of `unit` that depends on the batch
/// alone (never on the thread count or on work stealing), so the partial sums, added in job
/// order, give bit-identical gradients on every run and every machine.
fn images_per_job(n: usize, unit: usize) -> usize {
    const JOBS: usize = 16;
    n.div_ceil(unit).div_ceil(JOBS).max(1) * unit
}

/// The slice as f32 when T is f32.
#[cfg(target_arch = "x86_64")]
fn as_f32<T: Float>(s: &[T]) -> Option<&[f32]> {
    // SAFETY: T is f32, so the cast is the identity.
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| unsafe { std::slice::from_raw_parts(s.as_ptr() as *const f32, s.len()) })
}

/// The slice as f32 when T is f32.
#[cfg(target_arch = "x86_64")]
fn as_f32_mut<T: Float>(s: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: T is f32, so the cast is the identity.
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut f32, s.len()) })
}

/// Whether the direct f32 kernels run for element type T on this CPU. A 1x1 stride-1 unpadded
/// convolution stays a plain GEMM (faster there: no padding, no taps to shift).
#[cfg(target_arch = "x86_64")]
fn direct_f32<T: Float>(g: &ConvGeom) -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && !g.is_pointwise() && g.n * g.c_in * g.c_out * g.h * g.w > 0 && direct::available()
}

/// y = conv(x, w).
pub fn conv_forward<T: Float>(g: &ConvGeom, x: &[T], w: &[T], y: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if direct_f32::<T>(g) {
        g.check(x.len(), w.len(), y.len());
        if let (Some(x), Some(w), Some(y)) = (as_f32(x), as_f32(w), as_f32_mut(y)) {
            return direct::forward(g, x, w, y);
        }
    }
    conv_forward_im2col(g, x, w, y)
}

/// dx += conv_transpose(dy, w).
pub fn conv_backward_input<T: Float>(g: &ConvGeom, dy: &[T], w: &[T], dx: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if direct_f32::<T>(g) && direct::backward_input_supported(g) {
        g.check(dx.len(), w.len(), dy.len());
        if let (Some(dy), Some(w), Some(dx)) = (as_f32(dy), as_f32(w), as_f32_mut(dx)) {
            return direct::backward_input(g, dy, w, dx);
        }
    }
    conv_backward_input_im2col(g, dy, w, dx)
}

/// dw += sum over the batch of dy (x) x.
pub fn conv_backward_weight<T: Float>(g: &ConvGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if direct_f32::<T>(g) {
        g.check(x.len(), dw.len(), dy.len());
        if let (Some(x), Some(dy), Some(dw)) = (as_f32(x), as_f32(dy), as_f32_mut(dw)) {
            return direct::backward_weight(g, x, dy, dw);
        }
    }
    conv_backward_weight_im2col(g, x, dy, dw)
}

/// The f32 fast path on x86-64 with AVX2 and FMA: a direct convolution as a "shifted GEMM".
///
/// The image is zero-padded and, for stride s > 1, split into s*s polyphase planes, so that every
/// tap (ci, kh, kw) is a constant offset into the packed input: output (oy, ox) reads
/// `xq[offset(tap) + oy*wq + ox]`. Outputs are taken 8 at a time along a row ("vectors"; a row
/// whose width is not a multiple of 8 computes a few lanes that are dropped; images with fewer
/// than MIN_VECS vectors are grouped). The micro-kernels multiply contiguous (unaligned) vector
/// loads of the input by weights stored pre-broadcast, with no im2col matrix and no GEMM packing:
/// - forward: MR output channels x NV vectors, accumulated over all taps;
/// - weight gradient: MR output channels x MT taps, accumulated over all vectors;
/// - input gradient (stride 1): the forward of dy with the flipped, transposed kernel.
#[cfg(target_arch = "x86_64")]
mod direct {
    use std::arch::x86_64::*;

    use super::{with_scratch, ConvGeom};
    use rayon::prelude::*;

    /// Output channels per block.
    const MR: usize = 4;
    /// Output vectors (8 positions each) per forward block.
    const NV: usize = 3;
    /// Taps per weight-gradient block.
    const MT: usize = 3;
    /// Small images are processed several at a time, so that a kernel sweep has this many vectors.
    const MIN_VECS: usize = 32;

    pub fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// One convolution of a group of `imgs` images, laid out for the kernels.
    struct Plan {
        imgs: usize,
        c_in: usize,
        c_out: usize,
        h: usize,
        w: usize,
        s: usize,
        pad: usize,
        /// Output channels rounded up to MR.
        cop: usize,
        /// Polyphase plane size.
        hq: usize,
        wq: usize,
        oh: usize,
        ow: usize,
        /// Offset of each tap (ci, kh, kw) in the packed input.
        offs: Vec<usize>,
        /// Position `img*xq_img + oy*wq + ox0` of each output vector, images and rows in order,
        /// ox0 = 0, 8, ...; padded to a multiple of NV by repeating the last (results dropped).
        vecs: Vec<usize>,
        /// Vectors per image.
        nvec: usize,
        /// Packed length of one image (its planes).
        xq_img: usize,
        /// Packed input length of the group (covers every plane and every read of every tap).
        xq_len: usize,
    }

    impl Plan {
        /// Images per group for this geometry.
        fn group(h: usize, w: usize, k: usize, s: usize, pad: usize) -> usize {
            let (oh, ow) = ((h + 2 * pad - k) / s + 1, (w + 2 * pad - k) / s + 1);
            MIN_VECS.div_ceil(oh * ow.div_ceil(8)).max(1)
        }

        #[allow(clippy::too_many_arguments)]
        fn new(imgs: usize, c_in: usize, c_out: usize, h: usize, w: usize, k: usize, s: usize, pad: usize) -> Plan {
            let (hp, wp) = (h + 2 * pad, w + 2 * pad);
            let (oh, ow) = ((hp - k) / s + 1, (wp - k) / s + 1);
            let (hq, wq) = (hp.div_ceil(s), wp.div_ceil(s));
            let mut offs = Vec::with_capacity(c_in * k * k);
            for ci in 0..c_in {
                for kh in 0..k {
                    for kw in 0..k {
                        let phase = (ci * s + kh % s) * s + kw % s;
                        offs.push(phase * hq * wq + (kh / s) * wq + kw / s);
                    }
                }
            }
            let xq_img = c_in * s * s * hq * wq;
            let mut vecs: Vec<usize> =
                (0..imgs).flat_map(|i| (0..oh).flat_map(move |oy| (0..ow).step_by(8).map(move |ox| i * xq_img + oy * wq + ox))).collect();
            let nvec = oh * ow.div_ceil(8);
            let last = vecs.last().copied().unwrap_or(0);
            vecs.resize(vecs.len().div_ceil(NV) * NV, last);
            let max_read = offs.iter().max().copied().unwrap_or(0) + last + 8;
            let xq_len = (imgs * xq_img).max(max_read);
            Plan { imgs, c_in, c_out, h, w, s, pad, cop: c_out.div_ceil(MR) * MR, hq, wq, oh, ow, offs, vecs, nvec, xq_img, xq_len }
        }

        fn taps(&self) -> usize {
            self.offs.len()
        }

        /// Length of a per-image output (or dy) buffer: [cop, vectors, 8].
        fn out_len(&self) -> usize {
            self.cop * self.vecs.len() * 8
        }

        /// Weights as [cop / MR, taps, MR, 8], each value repeated over the 8 lanes (a vector load
        /// is cheaper than a broadcast in the kernel); `w(co, tap)` gives the value, channels >=
        /// c_out are 0.
        fn pack_weights(&self, w: impl Fn(usize, usize) -> f32) -> Vec<f32> {
            let taps = self.taps();
            let mut wt = vec![0.0f32; self.cop * taps * 8];
            for co in 0..self.c_out {
                for t in 0..taps {
                    wt[(((co / MR) * taps + t) * MR + co % MR) * 8..][..8].fill(w(co, t));
                }
            }
            wt
        }

        /// xq[img, ci, a, b, i, j] = x[img, ci, s*i + a - pad, s*j + b - pad] (0 outside); zero beyond.
        fn pack_input(&self, x: &[f32], xq: &mut [f32]) {
            let (s, hq, wq, h, w) = (self.s, self.hq, self.wq, self.h, self.w);
            debug_assert_eq!(x.len(), self.imgs * self.c_in * h * w);
            xq.fill(0.0);
            for (ci, xp) in x.chunks_exact(h * w).enumerate() {
                let xq = &mut xq[(ci / self.c_in) * self.xq_img..];
                let ci = ci % self.c_in;
                for a in 0..s {
                    for b in 0..s {
                        let plane = &mut xq[((ci * s + a) * s + b) * hq * wq..][..hq * wq];
                        // Columns j with 0 <= s*j + b - pad < w.
                        let j0 = self.pad.saturating_sub(b).div_ceil(s);
                        let j1 = if w + self.pad > b { ((w + self.pad - b - 1) / s + 1).min(wq) } else { 0 };
                        if j0 >= j1 {
                            continue;
                        }
                        for i in 0..hq {
                            let r = (s * i + a) as isize - self.pad as isize;
                            if r < 0 || r >= h as isize {
                                continue;
                            }
                            let src = &xp[r as usize * w..(r as usize + 1) * w];
                            let dst = &mut plane[i * wq..(i + 1) * wq];
                            let c0 = s * j0 + b - self.pad;
                            if s == 1 {
                                dst[j0..j1].copy_from_slice(&src[c0..c0 + (j1 - j0)]);
                            } else {
                                for (d, &v) in dst[j0..j1].iter_mut().zip(src[c0..].iter().step_by(s)) {
                                    *d = v;
                                }
                            }
                        }
                    }
                }
            }
        }

        /// The lanes of each output row of one image: (vector index in the image, output offset in
        /// the channel, lanes).
        fn row_lanes(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
            let per_row = self.ow.div_ceil(8);
            (0..self.nvec).map(move |v| {
                let (oy, ox) = (v / per_row, (v % per_row) * 8);
                (v, oy * self.ow + ox, (self.ow - ox).min(8))
            })
        }

        /// Where plane (img, co) of a [imgs, c_out, oh*ow] tensor lives in a [cop, vectors, 8] buffer.
        fn plane_start(&self, plane: usize) -> usize {
            let (img, co) = (plane / self.c_out, plane % self.c_out);
            (co * self.vecs.len() + img * self.nvec) * 8
        }

        /// dyv[co, v, lane] = dy[img, co, output of lane]; zero for dropped lanes and padding.
        fn pack_dy(&self, dy: &[f32], dyv: &mut [f32]) {
            debug_assert_eq!(dy.len(), self.imgs * self.c_out * self.oh * self.ow);
            dyv.fill(0.0);
            for (plane, src) in dy.chunks_exact(self.oh * self.ow).enumerate() {
                let dst = &mut dyv[self.plane_start(plane)..];
                for (v, o, lanes) in self.row_lanes() {
                    dst[v * 8..v * 8 + lanes].copy_from_slice(&src[o..o + lanes]);
                }
            }
        }

        /// y[img, co, output of lane] (+)= out[co, v, lane] for co < c_out.
        fn store(&self, out: &[f32], y: &mut [f32], accumulate: bool) {
            debug_assert_eq!(y.len(), self.imgs * self.c_out * self.oh * self.ow);
            for (plane, dst) in y.chunks_exact_mut(self.oh * self.ow).enumerate() {
                let src = &out[self.plane_start(plane)..];
                for (v, o, lanes) in self.row_lanes() {
                    let (d, s) = (&mut dst[o..o + lanes], &src[v * 8..v * 8 + lanes]);
                    if accumulate {
                        d.iter_mut().zip(s).for_each(|(d, &s)| *d += s);
                    } else {
                        d.copy_from_slice(s);
                    }
                }
            }
        }

        /// out[co, v, lane] = sum over taps of wt(co, tap) * xq[offs[tap] + vecs[v] + lane].
        fn forward_image(&self, xq: &[f32], wt: &[f32], out: &mut [f32]) {
            let (taps, nv) = (self.taps(), self.vecs.len() * 8);
            assert!(xq.len() >= self.xq_len && wt.len() >= self.cop * taps * 8 && out.len() >= self.out_len());
            // Channel blocks outside: a block's weights (taps * MR * 8 floats) stay in cache
            // while the image's vectors stream past.
            for cb in 0..self.cop / MR {
                for v0 in (0..self.vecs.len()).step_by(NV) {
                    let xs: [*const f32; NV] = std::array::from_fn(|v| xq[self.vecs[v0 + v]..].as_ptr());
                    // SAFETY: lengths checked above; every read is below max(offs) + max(vecs) + 8
                    // <= xq_len, weights below cop*taps*8, writes below out_len. The CPU features
                    // were checked by `available`.
                    unsafe {
                        forward_kernel(taps, self.offs.as_ptr(), wt.as_ptr().add(cb * taps * MR * 8), xs, out.as_mut_ptr().add(cb * MR * nv + v0 * 8), nv)
                    }
                }
            }
        }

        /// acc[co, tap] += sum over vectors and lanes of dyv[co, v, lane] * xq[offs[tap] + vecs[v] + lane];
        /// acc is [cop, taps rounded up to MT].
        fn weight_grad_image(&self, xq: &[f32], dyv: &[f32], acc: &mut [f32]) {
            let (taps, nv) = (self.taps(), self.vecs.len() * 8);
            let tp = taps.div_ceil(MT) * MT;
            assert!(xq.len() >= self.xq_len && dyv.len() >= self.out_len() && acc.len() >= self.cop * tp);
            for cb in 0..self.cop / MR {
                for t0 in (0..tp).step_by(MT) {
                    // Taps past the end read offset 0 and land in padding columns of acc.
                    let offs: [usize; MT] = std::array::from_fn(|t| self.offs.get(t0 + t).copied().unwrap_or(0));
                    // SAFETY: as in forward_image: reads below max(offs) + max(vecs) + 8 and
                    // cop*nv, writes below cop*tp.
                    unsafe {
                        weight_grad_kernel(&self.vecs, dyv.as_ptr().add(cb * MR * nv), nv, xq.as_ptr(), offs, acc.as_mut_ptr().add(cb * MR * tp + t0), tp)
                    }
                }
            }
        }
    }

    /// out[m, v*8 + lane] = sum_t w[(t*MR + m)*8 + lane] * x_v[offs[t] + lane] for m < MR, v < NV.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_kernel(taps: usize, offs: *const usize, w: *const f32, xs: [*const f32; NV], out: *mut f32, ostride: usize) {
        let mut acc = [[_mm256_setzero_ps(); NV]; MR];
        for t in 0..taps {
            let o = *offs.add(t);
            let xv: [__m256; NV] = std::array::from_fn(|v| _mm256_loadu_ps(xs[v].add(o)));
            let wp = w.add(t * MR * 8);
            for (m, acc) in acc.iter_mut().enumerate() {
                let b = _mm256_loadu_ps(wp.add(m * 8));
                for v in 0..NV {
                    acc[v] = _mm256_fmadd_ps(b, xv[v], acc[v]);
                }
            }
        }
        for (m, acc) in acc.iter().enumerate() {
            for (v, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.add(m * ostride + 8 * v), *a);
            }
        }
    }

    /// out[m * ostride + t] += sum_v sum_lane dy[m * dstride + v*8 + lane] * x[offs[t] + vecs[v] + lane].
    #[target_feature(enable = "avx2,fma")]
    unsafe fn weight_grad_kernel(vecs: &[usize], dy: *const f32, dstride: usize, x: *const f32, offs: [usize; MT], out: *mut f32, ostride: usize) {
        let mut acc = [[_mm256_setzero_ps(); MT]; MR];
        let xs: [*const f32; MT] = std::array::from_fn(|t| x.add(offs[t]));
        for (v, &pos) in vecs.iter().enumerate() {
            let d: [__m256; MR] = std::array::from_fn(|m| _mm256_loadu_ps(dy.add(m * dstride + v * 8)));
            let xv: [__m256; MT] = std::array::from_fn(|t| _mm256_loadu_ps(xs[t].add(pos)));
            for m in 0..MR {
                for t in 0..MT {
                    acc[m][t] = _mm256_fmadd_ps(d[m], xv[t], acc[m][t]);
                }
            }
        }
        for (m, acc) in acc.iter().enumerate() {
            for (t, a) in acc.iter().enumerate() {
                let s = _mm_add_ps(_mm256_castps256_ps128(*a), _mm256_extractf128_ps(*a, 1));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
                *out.add(m * ostride + t) += _mm_cvtss_f32(s);
            }
        }
    }

    /// Plans for full groups of images and for the last, partial group.
    struct Plans {
        group: usize,
        full: Plan,
        tail: Option<Plan>,
    }

    impl Plans {
        #[allow(clippy::too_many_arguments)]
        fn new(n: usize, c_in: usize, c_out: usize, h: usize, w: usize, k: usize, s: usize, pad: usize) -> Plans {
            let group = Plan::group(h, w, k, s, pad).min(n.max(1));
            let full = Plan::new(group, c_in, c_out, h, w, k, s, pad);
            let tail = (!n.is_multiple_of(group)).then(|| Plan::new(n % group, c_in, c_out, h, w, k, s, pad));
            Plans { group, full, tail }
        }

        /// The plan for a chunk of `imgs` images.
        fn get(&self, imgs: usize) -> &Plan {
            if imgs == self.group {
                &self.full
            } else {
                self.tail.as_ref().expect("partial group without a plan")
            }
        }
    }

    /// y = conv(x, w), any stride.
    pub fn forward(g: &ConvGeom, x: &[f32], w: &[f32], y: &mut [f32]) {
        let plans = Plans::new(g.n, g.c_in, g.c_out, g.h, g.w, g.k, g.stride, g.pad);
        let kk = plans.full.taps();
        let wt = plans.full.pack_weights(|co, t| w[co * kk + t]);
        let (xs, ys, gr) = (g.c_in * g.h * g.w, g.c_out * g.out_h() * g.out_w(), plans.group);
        y.par_chunks_mut(gr * ys).zip(x.par_chunks(gr * xs)).for_each(|(yi, xi)| {
            let plan = plans.get(xi.len() / xs);
            with_scratch(plan.xq_len + plan.out_len(), |buf: &mut [f32]| {
                let (xq, out) = buf.split_at_mut(plan.xq_len);
                plan.pack_input(xi, xq);
                plan.forward_image(xq, &wt, out);
                plan.store(out, yi, false);
            })
        });
    }

    /// Whether `backward_input` handles this geometry.
    pub fn backward_input_supported(g: &ConvGeom) -> bool {
        g.stride == 1 && g.pad < g.k
    }

    /// dx += conv_transpose(dy, w) for stride 1: the stride-1 convolution of dy, padded by
    /// k-1-pad, with weights w'[ci, (co, kh, kw)] = w[co, ci, k-1-kh, k-1-kw].
    pub fn backward_input(g: &ConvGeom, dy: &[f32], w: &[f32], dx: &mut [f32]) {
        debug_assert!(backward_input_supported(g));
        let (oh, ow, k) = (g.out_h(), g.out_w(), g.k);
        let plans = Plans::new(g.n, g.c_out, g.c_in, oh, ow, k, 1, k - 1 - g.pad);
        debug_assert!(plans.full.oh == g.h && plans.full.ow == g.w);
        // flipped[ci, (co, kh, kw)] = w[co, ci, k-1-kh, k-1-kw]
        let taps = g.c_out * k * k;
        let mut flipped = vec![0.0f32; g.c_in * taps];
        for (co, wc) in w.chunks_exact(g.c_in * k * k).enumerate() {
            for (ci, wk) in wc.chunks_exact(k * k).enumerate() {
                let dst = &mut flipped[ci * taps + co * k * k..][..k * k];
                dst.iter_mut().zip(wk.iter().rev()).for_each(|(d, &v)| *d = v);
            }
        }
        let wt = plans.full.pack_weights(|ci, tap| flipped[ci * taps + tap]);
        let (xs, ys, gr) = (g.c_in * g.h * g.w, g.c_out * oh * ow, plans.group);
        dx.par_chunks_mut(gr * xs).zip(dy.par_chunks(gr * ys)).for_each(|(dxi, dyi)| {
            let plan = plans.get(dyi.len() / ys);
            with_scratch(plan.xq_len + plan.out_len(), |buf: &mut [f32]| {
                let (dyq, out) = buf.split_at_mut(plan.xq_len);
                plan.pack_input(dyi, dyq);
                plan.forward_image(dyq, &wt, out);
                plan.store(out, dxi, true);
            })
        });
    }

    /// dw += sum over the batch of dy (x) x, any stride.
    pub fn backward_weight(g: &ConvGeom, x: &[f32], dy: &[f32], dw: &mut [f32]) {
        let plans = Plans::new(g.n, g.c_in, g.c_out, g.h, g.w, g.k, g.stride, g.pad);
        let kk = plans.full.taps();
        let tp = kk.div_ceil(MT) * MT;
        let (xs, ys, gr) = (g.c_in * g.h * g.w, g.c_out * g.out_h() * g.out_w(), plans.group);
        let per_job = super::images_per_job(g.n, gr);
        let partials: Vec<Vec<f32>> = x
            .par_chunks(per_job * xs)
            .zip(dy.par_chunks(per_job * ys))
            .map(|(xj, dyj)| {
                let mut acc = vec![0.0f32; plans.full.cop * tp];
                for (xi, dyi) in xj.chunks(gr * xs).zip(dyj.chunks(gr * ys)) {
                    let plan = plans.get(xi.len() / xs);
                    with_scratch(plan.xq_len + plan.out_len(), |buf: &mut [f32]| {
                        let (xq, dyv) = buf.split_at_mut(plan.xq_len);
                        plan.pack_input(xi, xq);
                        plan.pack_dy(dyi, dyv);
                        plan.weight_grad_image(xq, dyv, &mut acc);
                    });
                }
                acc
            })
            .collect();
        let total = partials.into_iter().reduce(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        });
        if let Some(total) = total {
            for (co, row) in dw.chunks_exact_mut(kk).enumerate() {
                row.iter_mut().zip(&total[co * tp..co * tp + kk]).for_each(|(d, t)| *d += t);
            }
        }
    }
}
