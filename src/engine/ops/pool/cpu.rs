//! Average pools: 3x3 stride 1 pad 1 with count_include_pad = false (the NATS-Bench `avg_pool_3x3`),
//! and 2x2 stride 2 (the reduction block's shortcut; odd sizes floor like PyTorch).
//!
//! Parallel over groups of (n, c) planes. The 3x3 pool is separable: a horizontal 3-sum into a
//! per-thread scratch plane, then a vertical 3-sum scaled by 1/count.
use rayon::prelude::*;

use super::PoolGeom;
use crate::engine::ops::with_scratch;
use crate::engine::Float;

impl PoolGeom {
    fn planes(&self) -> usize {
        self.n * self.c
    }
}

/// Planes per rayon task: about 16K elements each.
fn planes_per_task(plane: usize) -> usize {
    ((1 << 14) / plane.max(1)).max(1)
}

/// dst[j] = src[j-1] + src[j] + src[j+1] (terms outside the row omitted).
fn hsum3<T: Float>(src: &[T], dst: &mut [T]) {
    let w = src.len();
    match w {
        0 => {}
        1 => dst[0] = src[0],
        _ => {
            dst[0] = src[0] + src[1];
            for (d, s) in dst[1..w - 1].iter_mut().zip(src.windows(3)) {
                *d = s[0] + s[1] + s[2];
            }
            dst[w - 1] = src[w - 2] + src[w - 1];
        }
    }
}

/// For each row i of a [h, w] plane: out[i] (op)= (hs[i-1] + hs[i] + hs[i+1]) * fac[i] (rows outside
/// omitted); `ACC` chooses += over =.
fn vsum3<T: Float, const ACC: bool>(hs: &[T], fac: &[T], w: usize, out: &mut [T]) {
    let h = hs.len() / w;
    let emit = |o: &mut T, v: T| *o = if ACC { *o + v } else { v };
    for i in 0..h {
        let row = |r: usize| &hs[r * w..(r + 1) * w];
        let f = &fac[i * w..(i + 1) * w];
        let o = &mut out[i * w..(i + 1) * w];
        match (i > 0, i + 1 < h) {
            (true, true) => {
                for ((((o, &a), &b), &c), &f) in o.iter_mut().zip(row(i - 1)).zip(row(i)).zip(row(i + 1)).zip(f) {
                    emit(o, (a + b + c) * f);
                }
            }
            (up, down) => {
                let other = if up {
                    Some(row(i - 1))
                } else if down {
                    Some(row(i + 1))
                } else {
                    None
                };
                match other {
                    Some(other) => {
                        for (((o, &a), &b), &f) in o.iter_mut().zip(other).zip(row(i)).zip(f) {
                            emit(o, (a + b) * f);
                        }
                    }
                    None => {
                        for ((o, &b), &f) in o.iter_mut().zip(row(i)).zip(f) {
                            emit(o, b * f);
                        }
                    }
                }
            }
        }
    }
}

/// 1 / (number of in-bounds cells of the 3x3 window centred at each position), [h, w].
fn inv_counts<T: Float>(h: usize, w: usize) -> Vec<T> {
    let span = |i: usize, len: usize| 1 + (i > 0) as usize + (i + 1 < len) as usize;
    (0..h).flat_map(|i| (0..w).map(move |j| T::from_f64(1.0 / (span(i, h) * span(j, w)) as f64))).collect()
}

/// y[n,c,h,w] = mean of x over the in-bounds part of the 3x3 window centred at (h, w).
pub fn avg_pool3_forward<T: Float>(g: &PoolGeom, x: &[T], y: &mut [T]) {
    let hw = g.h * g.w;
    let len = g.planes() * hw;
    assert_eq!(x.len(), len, "avg_pool3x3: x length");
    assert_eq!(y.len(), len, "avg_pool3x3: y length");
    if hw == 0 {
        return;
    }
    let fac = inv_counts::<T>(g.h, g.w);
    let chunk = planes_per_task(hw) * hw;
    y.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).for_each(|(y, x)| {
        with_scratch(hw, |hs: &mut [T]| {
            for (y, x) in y.chunks_exact_mut(hw).zip(x.chunks_exact(hw)) {
                for (d, s) in hs.chunks_exact_mut(g.w).zip(x.chunks_exact(g.w)) {
                    hsum3(s, d);
                }
                vsum3::<T, false>(hs, &fac, g.w, y);
            }
        })
    });
}

/// dx += adjoint of the above.
pub fn avg_pool3_backward<T: Float>(g: &PoolGeom, dy: &[T], dx: &mut [T]) {
    let hw = g.h * g.w;
    let len = g.planes() * hw;
    assert_eq!(dy.len(), len, "avg_pool3x3: dy length");
    assert_eq!(dx.len(), len, "avg_pool3x3: dx length");
    if hw == 0 {
        return;
    }
    // The window is symmetric, so the adjoint is a box sum of dy / count with all factors 1.
    let fac = inv_counts::<T>(g.h, g.w);
    let ones = vec![T::one(); hw];
    let chunk = planes_per_task(hw) * hw;
    dx.par_chunks_mut(chunk).zip(dy.par_chunks(chunk)).for_each(|(dx, dy)| {
        with_scratch(2 * hw, |s: &mut [T]| {
            let (z, hs) = s.split_at_mut(hw);
            for (dx, dy) in dx.chunks_exact_mut(hw).zip(dy.chunks_exact(hw)) {
                for ((z, &d), &f) in z.iter_mut().zip(dy).zip(&fac) {
                    *z = d * f;
                }
                for (d, s) in hs.chunks_exact_mut(g.w).zip(z.chunks_exact(g.w)) {
                    hsum3(s, d);
                }
                vsum3::<T, true>(hs, &ones, g.w, dx);
            }
        })
    });
}

/// y[n,c,i,j] = mean of x[n,c,2i..2i+2,2j..2j+2]; y is [n, c, h/2, w/2].
pub fn avg_pool2_forward<T: Float>(g: &PoolGeom, x: &[T], y: &mut [T]) {
    let (oh, ow) = (g.h / 2, g.w / 2);
    let (hw, ohw) = (g.h * g.w, oh * ow);
    assert_eq!(x.len(), g.planes() * hw, "avg_pool2x2: x length");
    assert_eq!(y.len(), g.planes() * ohw, "avg_pool2x2: y length");
    if ohw == 0 {
        return;
    }
    let quarter = T::from_f64(0.25);
    let ppt = planes_per_task(hw);
    y.par_chunks_mut(ppt * ohw).zip(x.par_chunks(ppt * hw)).for_each(|(y, x)| {
        for (y, x) in y.chunks_exact_mut(ohw).zip(x.chunks_exact(hw)) {
            for (i, yr) in y.chunks_exact_mut(ow).enumerate() {
                let r0 = &x[2 * i * g.w..][..2 * ow];
                let r1 = &x[(2 * i + 1) * g.w..][..2 * ow];
                for ((o, a), b) in yr.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                    *o = (a[0] + a[1] + b[0] + b[1]) * quarter;
                }
            }
        }
    });
}

/// dx += adjoint of the above.
pub fn avg_pool2_backward<T: Float>(g: &PoolGeom, dy: &[T], dx: &mut [T]) {
    let (oh, ow) = (g.h / 2, g.w / 2);
    let (hw, ohw) = (g.h * g.w, oh * ow);
    assert_eq!(dx.len(), g.planes() * hw, "avg_pool2x2: dx length");
    assert_eq!(dy.len(), g.planes() * ohw, "avg_pool2x2: dy length");
    if ohw == 0 {
        return;
    }
    let quarter = T::from_f64(0.25);
    let ppt = planes_per_task(hw);
    dx.par_chunks_mut(ppt * hw).zip(dy.par_chunks(ppt * ohw)).for_each(|(dx, dy)| {
        for (dx, dy) in dx.chunks_exact_mut(hw).zip(dy.chunks_exact(ohw)) {
            for (i, dyr) in dy.chunks_exact(ow).enumerate() {
                let (r0, r1) = dx[2 * i * g.w..(2 * i + 2) * g.w].split_at_mut(g.w);
                for (rr, &d) in r0[..2 * ow].chunks_exact_mut(2).zip(dyr) {
                    let v = d * quarter;
                    rr[0] = rr[0] + v;
                    rr[1] = rr[1] + v;
                }
                for (rr, &d) in r1[..2 * ow].chunks_exact_mut(2).zip(dyr) {
                    let v = d * quarter;
                    rr[0] = rr[0] + v;
                    rr[1] = rr[1] + v;
                }
            }
        }
    });
}
