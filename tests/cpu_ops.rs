//! The CPU ops against naive f64 references (forward, f32 and f64) and against central finite
//! differences (backward, f64), on small odd shapes; plus the accumulation convention of every
//! backward and the BatchNorm running statistics by hand.

use fear::engine::ops::{batchnorm::*, conv::*, elementwise::*, linear::*, loss::*, pool::*};
use fear::engine::Float;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------------------------
// Helpers

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform values in [-1, 1) that are exactly representable in f32, so the f32 and f64 runs of an
/// op see identical inputs and the reference isolates the op's own rounding.
fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| (rng.random::<f64>() * 2.0 - 1.0) as f32 as f64).collect()
}

fn cast<T: Float>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}
fn widen<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.as_f64()).collect()
}

/// max |a - b| / max(max |b|, 1e-3).
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(1e-3, f64::max);
    diff / scale
}

#[track_caller]
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert!(got.iter().all(|v| v.is_finite()), "{what}: non-finite output");
    let e = rel_err(got, want);
    assert!(e < tol, "{what}: relative error {e:e} >= {tol:e}\n got {:?}\nwant {:?}", &got[..got.len().min(8)], &want[..want.len().min(8)]);
}

/// Tolerances: f64 against the reference, f32 against the reference, gradients against finite
/// differences (f64, h = 1e-6).
const TOL64: f64 = 1e-12;
const TOL32: f64 = 1e-5;
const TOL_FD: f64 = 1e-6;
const H: f64 = 1e-6;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central differences of `f` with respect to every element of `v`.
fn finite_diff(v: &[f64], mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let mut p = v.to_vec();
    (0..v.len())
        .map(|i| {
            p[i] = v[i] + H;
            let up = f(&p);
            p[i] = v[i] - H;
            let down = f(&p);
            p[i] = v[i];
            (up - down) / (2.0 * H)
        })
        .collect()
}

/// Runs a backward into a buffer holding `start` and returns what it added (checks +=, not =).
fn added(start: &[f64], after: &[f64]) -> Vec<f64> {
    after.iter().zip(start).map(|(a, s)| a - s).collect()
}

// ---------------------------------------------------------------------------------------------
// Convolution

fn conv_ref(g: &ConvGeom, x: &[f64], w: &[f64]) -> Vec<f64> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = vec![0.0; g.n * g.c_out * oh * ow];
    for n in 0..g.n {
        for co in 0..g.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0.0;
                    for ci in 0..g.c_in {
                        for kh in 0..g.k {
                            for kw in 0..g.k {
                                let iy = (oy * g.stride + kh) as isize - g.pad as isize;
                                let ix = (ox * g.stride + kw) as isize - g.pad as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let xv = x[((n * g.c_in + ci) * g.h + iy as usize) * g.w + ix as usize];
                                s += xv * w[((co * g.c_in + ci) * g.k + kh) * g.k + kw];
                            }
                        }
                    }
                    y[((n * g.c_out + co) * oh + oy) * ow + ox] = s;
                }
            }
        }
    }
    y
}

fn conv_fwd<T: Float>(g: &ConvGeom, x: &[f64], w: &[f64]) -> Vec<f64> {
    let mut y = vec![T::nan(); g.y_len()]; // forward must overwrite
    conv_forward(g, &cast::<T>(x), &cast::<T>(w), &mut y);
    widen(&y)
}

/// (dx0 + input gradient, dw0 + weight gradient) in T, from the dispatching functions or the
/// im2col ones; starting from nonzero buffers checks that both accumulate.
fn conv_grads<T: Float>(g: &ConvGeom, x: &[f64], w: &[f64], dy: &[f64], start: (&[f64], &[f64]), im2col: bool) -> (Vec<f64>, Vec<f64>) {
    let (x, w, dy): (Vec<T>, Vec<T>, Vec<T>) = (cast(x), cast(w), cast(dy));
    let (mut dx, mut dw): (Vec<T>, Vec<T>) = (cast(start.0), cast(start.1));
    if im2col {
        conv_backward_input_im2col(g, &dy, &w, &mut dx);
        conv_backward_weight_im2col(g, &x, &dy, &mut dw);
    } else {
        conv_backward_input(g, &dy, &w, &mut dx);
        conv_backward_weight(g, &x, &dy, &mut dw);
    }
    (widen(&dx), widen(&dw))
}

fn conv_geoms() -> Vec<ConvGeom> {
    let g = |n, c_in, h, w, c_out, k, stride, pad| ConvGeom { n, c_in, h, w, c_out, k, stride, pad };
    vec![
        g(3, 7, 5, 5, 4, 3, 1, 1),   // 3x3 same
        g(3, 7, 5, 5, 4, 3, 2, 1),   // 3x3 stride 2 on an odd size
        g(3, 7, 5, 5, 4, 1, 1, 0),   // 1x1: the plain-GEMM path
        g(3, 7, 5, 5, 4, 1, 2, 0),   // 1x1 stride 2: the im2col path
        g(2, 3, 7, 6, 5, 3, 2, 1),   // non-square, stride 2
        g(2, 4, 5, 4, 3, 3, 1, 0),   // no padding
        g(2, 3, 6, 7, 2, 5, 2, 2),   // 5x5 kernel
        g(2, 3, 1, 2, 4, 3, 1, 1),   // image smaller than the kernel
        g(2, 3, 4, 4, 2, 1, 1, 1),   // 1x1 with padding (input gradient falls back to im2col)
        g(3, 5, 9, 9, 6, 3, 3, 1),   // stride 3: three polyphase planes per axis
        g(5, 16, 8, 8, 16, 3, 1, 1), // NATS-like channel count, longer dot products
    ]
}

#[test]
fn conv_forward_matches_reference() {
    let mut r = rng(1);
    for g in conv_geoms() {
        let (x, w) = (rand_vec(&mut r, g.x_len()), rand_vec(&mut r, g.w_len()));
        let want = conv_ref(&g, &x, &w);
        assert_close(&format!("conv f64 {g:?}"), &conv_fwd::<f64>(&g, &x, &w), &want, TOL64);
        assert_close(&format!("conv f32 {g:?}"), &conv_fwd::<f32>(&g, &x, &w), &want, TOL32);
    }
}

#[test]
fn conv_backward_matches_finite_differences() {
    let mut r = rng(2);
    for g in conv_geoms().into_iter().filter(|g| g.x_len() < 1000) {
        let (x, w, dy) = (rand_vec(&mut r, g.x_len()), rand_vec(&mut r, g.w_len()), rand_vec(&mut r, g.y_len()));
        let fd_x = finite_diff(&x, |x| dot(&conv_fwd::<f64>(&g, x, &w), &dy));
        let fd_w = finite_diff(&w, |w| dot(&conv_fwd::<f64>(&g, &x, w), &dy));

        // Accumulation: start from random buffers and check what was added.
        let (dx0, dw0) = (rand_vec(&mut r, g.x_len()), rand_vec(&mut r, g.w_len()));
        let mut dx = dx0.clone();
        conv_backward_input(&g, &dy, &w, &mut dx);
        assert_close(&format!("conv dx {g:?}"), &added(&dx0, &dx), &fd_x, TOL_FD);
        let mut dw = dw0.clone();
        conv_backward_weight(&g, &x, &dy, &mut dw);
        assert_close(&format!("conv dw {g:?}"), &added(&dw0, &dw), &fd_w, TOL_FD);
    }
}

#[test]
fn conv_backward_f32_matches_f64() {
    let mut r = rng(3);
    for g in conv_geoms() {
        let (x, w, dy) = (rand_vec(&mut r, g.x_len()), rand_vec(&mut r, g.w_len()), rand_vec(&mut r, g.y_len()));
        let (dx0, dw0) = (rand_vec(&mut r, g.x_len()), rand_vec(&mut r, g.w_len()));
        let (dx64, dw64) = conv_grads::<f64>(&g, &x, &w, &dy, (&dx0, &dw0), false);
        let (dx32, dw32) = conv_grads::<f32>(&g, &x, &w, &dy, (&dx0, &dw0), false);
        assert_close(&format!("conv dx f32 {g:?}"), &dx32, &dx64, TOL32);
        assert_close(&format!("conv dw f32 {g:?}"), &dw32, &dw64, TOL32);
    }
}

#[test]
fn conv_im2col_path_matches_reference_in_f32() {
    // The dispatching functions take the direct kernels for f32 where the CPU has AVX2+FMA; the
    // im2col path must hold for f32 too (other CPUs, stride-2 input gradients).
    let mut r = rng(14);
    for g in conv_geoms() {
        let (x, w, dy) = (rand_vec(&mut r, g.x_len()), rand_vec(&mut r, g.w_len()), rand_vec(&mut r, g.y_len()));
        let mut y = vec![f32::NAN; g.y_len()];
        conv_forward_im2col(&g, &cast(&x), &cast(&w), &mut y);
        assert_close(&format!("conv im2col f32 {g:?}"), &widen(&y), &conv_ref(&g, &x, &w), TOL32);
        let (dx0, dw0) = (rand_vec(&mut r, g.x_len()), rand_vec(&mut r, g.w_len()));
        let (dx64, dw64) = conv_grads::<f64>(&g, &x, &w, &dy, (&dx0, &dw0), false);
        let (dx, dw) = conv_grads::<f32>(&g, &x, &w, &dy, (&dx0, &dw0), true);
        assert_close(&format!("conv im2col dx f32 {g:?}"), &dx, &dx64, TOL32);
        assert_close(&format!("conv im2col dw f32 {g:?}"), &dw, &dw64, TOL32);
    }
}

#[test]
fn conv_f32_at_network_shapes() {
    // The shapes the network runs (at batch 2), so the direct kernels' blocking (4 output
    // channels x 24 positions, 4 channels x 3 taps) is exercised with full blocks and tails.
    let mut r = rng(15);
    let g = |c_in, hw, c_out, k, stride| ConvGeom { n: 2, c_in, h: hw, w: hw, c_out, k, stride, pad: k / 2 };
    for g in [g(3, 32, 16, 3, 1), g(16, 32, 16, 3, 1), g(16, 32, 16, 1, 1), g(16, 32, 32, 3, 2), g(32, 16, 64, 3, 2), g(64, 8, 64, 3, 1), g(32, 8, 64, 1, 1)] {
        let (x, w, dy) = (rand_vec(&mut r, g.x_len()), rand_vec(&mut r, g.w_len()), rand_vec(&mut r, g.y_len()));
        assert_close(&format!("conv f32 {g:?}"), &conv_fwd::<f32>(&g, &x, &w), &conv_ref(&g, &x, &w), TOL32);
        let (dx0, dw0) = (rand_vec(&mut r, g.x_len()), rand_vec(&mut r, g.w_len()));
        let (dx64, dw64) = conv_grads::<f64>(&g, &x, &w, &dy, (&dx0, &dw0), false);
        let (dx, dw) = conv_grads::<f32>(&g, &x, &w, &dy, (&dx0, &dw0), false);
        assert_close(&format!("conv dx f32 {g:?}"), &dx, &dx64, TOL32);
        assert_close(&format!("conv dw f32 {g:?}"), &dw, &dw64, TOL32);
    }
}

#[test]
fn conv_backward_is_the_adjoint_at_batch_scale() {
    // A larger batch, so rayon really splits the batch and the weight-gradient partial sums are
    // reduced across jobs: <conv(x, w), dy> = <x, dx> = <w, dw>.
    let g = ConvGeom { n: 16, c_in: 8, h: 9, w: 9, c_out: 8, k: 3, stride: 2, pad: 1 };
    let mut r = rng(4);
    let (x, w, dy) = (rand_vec(&mut r, g.x_len()), rand_vec(&mut r, g.w_len()), rand_vec(&mut r, g.y_len()));
    let lhs = dot(&conv_fwd::<f64>(&g, &x, &w), &dy);
    let mut dx = vec![0.0; g.x_len()];
    conv_backward_input(&g, &dy, &w, &mut dx);
    let mut dw = vec![0.0; g.w_len()];
    conv_backward_weight(&g, &x, &dy, &mut dw);
    assert!((dot(&x, &dx) - lhs).abs() < 1e-9 * lhs.abs().max(1.0));
    assert!((dot(&w, &dw) - lhs).abs() < 1e-9 * lhs.abs().max(1.0));
}

#[test]
fn conv_f32_at_batch_scale() {
    // 16 images of 16x16 (one image per group in the direct kernels), on 1 and 2 threads: with one
    // thread a single rayon job runs every group and the weight gradient must accumulate across
    // them; with two, partial sums from several jobs are reduced.
    let mut r = rng(16);
    let pools = [1, 2].map(|t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap());
    for (k, stride) in [(3, 1), (3, 2), (1, 1)] {
        let g = ConvGeom { n: 16, c_in: 8, h: 16, w: 16, c_out: 8, k, stride, pad: k / 2 };
        let (x, w, dy) = (rand_vec(&mut r, g.x_len()), rand_vec(&mut r, g.w_len()), rand_vec(&mut r, g.y_len()));
        let want_y = conv_fwd::<f64>(&g, &x, &w);
        let (dx0, dw0) = (rand_vec(&mut r, g.x_len()), rand_vec(&mut r, g.w_len()));
        let (dx64, dw64) = conv_grads::<f64>(&g, &x, &w, &dy, (&dx0, &dw0), false);
        for pool in &pools {
            pool.install(|| {
                assert_close(&format!("conv f32 {g:?}"), &conv_fwd::<f32>(&g, &x, &w), &want_y, TOL32);
                let (dx, dw) = conv_grads::<f32>(&g, &x, &w, &dy, (&dx0, &dw0), false);
                assert_close(&format!("conv dx f32 {g:?}"), &dx, &dx64, TOL32);
                assert_close(&format!("conv dw f32 {g:?}"), &dw, &dw64, TOL32);
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Batch normalisation

struct BnRef {
    y: Vec<f64>,
    mean: Vec<f64>,
    invstd: Vec<f64>,
    var_biased: Vec<f64>,
    var_unbiased: Vec<f64>,
}

fn bn_ref(g: &BnGeom, x: &[f64], gamma: &[f64], beta: &[f64], eps: f64) -> BnRef {
    let m = (g.n * g.hw) as f64;
    let at = |n: usize, c: usize, i: usize| (n * g.c + c) * g.hw + i;
    let mut out = BnRef { y: vec![0.0; x.len()], mean: vec![], invstd: vec![], var_biased: vec![], var_unbiased: vec![] };
    for c in 0..g.c {
        let vals: Vec<f64> = (0..g.n).flat_map(|n| (0..g.hw).map(move |i| (n, i))).map(|(n, i)| x[at(n, c, i)]).collect();
        let mean = vals.iter().sum::<f64>() / m;
        let ss = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
        let var = ss / m;
        let invstd = 1.0 / (var + eps).sqrt();
        for n in 0..g.n {
            for i in 0..g.hw {
                out.y[at(n, c, i)] = (x[at(n, c, i)] - mean) * invstd * gamma[c] + beta[c];
            }
        }
        out.mean.push(mean);
        out.invstd.push(invstd);
        out.var_biased.push(var);
        out.var_unbiased.push(ss / (m - 1.0));
    }
    out
}

struct BnOut {
    y: Vec<f64>,
    mean: Vec<f64>,
    invstd: Vec<f64>,
    running_mean: Vec<f64>,
    running_var: Vec<f64>,
}

#[allow(clippy::too_many_arguments)]
fn bn_train<T: Float>(g: &BnGeom, x: &[f64], gamma: &[f64], beta: &[f64], eps: f64, momentum: f64, rm: &[f64], rv: &[f64]) -> BnOut {
    let (mut rm, mut rv) = (cast::<T>(rm), cast::<T>(rv));
    let mut y = vec![T::nan(); x.len()];
    let (mut mean, mut invstd) = (vec![T::nan(); g.c], vec![T::nan(); g.c]);
    bn_train_forward(g, &cast::<T>(x), &cast::<T>(gamma), &cast::<T>(beta), eps, momentum, &mut rm, &mut rv, &mut y, &mut mean, &mut invstd);
    BnOut { y: widen(&y), mean: widen(&mean), invstd: widen(&invstd), running_mean: widen(&rm), running_var: widen(&rv) }
}

fn bn_geoms() -> Vec<BnGeom> {
    vec![
        BnGeom { n: 3, c: 7, hw: 25 },  // batch 3, 7 channels, 5x5
        BnGeom { n: 5, c: 4, hw: 1 },   // [n, c] features
        BnGeom { n: 4, c: 16, hw: 64 }, // 8x8, several lanes per plane
        BnGeom { n: 2, c: 3, hw: 13 },  // planes that are not a multiple of the lane count
    ]
}

#[test]
fn bn_train_forward_matches_reference() {
    let mut r = rng(5);
    for g in bn_geoms() {
        let len = g.n * g.c * g.hw;
        // An offset on x checks that the variance does not cancel catastrophically.
        let x: Vec<f64> = rand_vec(&mut r, len).iter().map(|v| (v * 3.0 + 2.0) as f32 as f64).collect();
        let gamma = rand_vec(&mut r, g.c);
        let beta = rand_vec(&mut r, g.c);
        let rm = rand_vec(&mut r, g.c);
        let rv: Vec<f64> = rand_vec(&mut r, g.c).iter().map(|v| v.abs() + 0.5).collect();
        let (eps, mom) = (1e-5, 0.1);
        let want = bn_ref(&g, &x, &gamma, &beta, eps);
        let want_rm: Vec<f64> = (0..g.c).map(|c| 0.9 * rm[c] + 0.1 * want.mean[c]).collect();
        let want_rv: Vec<f64> = (0..g.c).map(|c| 0.9 * rv[c] + 0.1 * want.var_unbiased[c]).collect();
        for (tol, got, name) in [
            (TOL64, bn_train::<f64>(&g, &x, &gamma, &beta, eps, mom, &rm, &rv), "f64"),
            (TOL32, bn_train::<f32>(&g, &x, &gamma, &beta, eps, mom, &rm, &rv), "f32"),
        ] {
            assert_close(&format!("bn y {name} {g:?}"), &got.y, &want.y, tol);
            assert_close(&format!("bn mean {name} {g:?}"), &got.mean, &want.mean, tol);
            assert_close(&format!("bn invstd {name} {g:?}"), &got.invstd, &want.invstd, tol);
            assert_close(&format!("bn running_mean {name} {g:?}"), &got.running_mean, &want_rm, tol);
            assert_close(&format!("bn running_var {name} {g:?}"), &got.running_var, &want_rv, tol);
        }
        // The biased variance is what normalises.
        let var_from_invstd: Vec<f64> = want.invstd.iter().map(|i| 1.0 / (i * i) - eps).collect();
        assert_close("bn biased var", &var_from_invstd, &want.var_biased, 1e-9);
    }
}

#[test]
fn bn_variance_does_not_cancel() {
    // mean / std = 1e4: E[x^2] - E[x]^2 in f32 would lose every digit of the variance.
    let mut r = rng(17);
    let g = BnGeom { n: 4, c: 3, hw: 300 };
    let x: Vec<f64> = rand_vec(&mut r, g.n * g.c * g.hw).iter().map(|v| (1000.0 + 0.1 * v) as f32 as f64).collect();
    let (gamma, beta) = (vec![1.0; g.c], vec![0.0; g.c]);
    let want = bn_ref(&g, &x, &gamma, &beta, 1e-5);
    let got = bn_train::<f32>(&g, &x, &gamma, &beta, 1e-5, 0.1, &[0.0; 3], &[1.0; 3]);
    assert_close("bn invstd, large offset", &got.invstd, &want.invstd, TOL32);
    assert_close("bn y, large offset", &got.y, &want.y, TOL32);

    // Eval mode at the same offset, against the reference on the f32 running statistics it gets.
    let (rm, rv): (Vec<f64>, Vec<f64>) = (widen(&cast::<f32>(&want.mean)), widen(&cast::<f32>(&want.var_biased)));
    let want_eval: Vec<f64> = (0..x.len()).map(|i| (x[i] - rm[i / g.hw % g.c]) / (rv[i / g.hw % g.c] + 1e-5).sqrt()).collect();
    let mut y = vec![f32::NAN; x.len()];
    bn_eval_forward(&g, &cast(&x), &cast(&gamma), &cast(&beta), &cast(&rm), &cast(&rv), 1e-5, &mut y);
    assert_close("bn eval y, large offset", &widen(&y), &want_eval, TOL32);

    // Backward: f32 (on its own saved statistics) against f64. The saved f32 mean is off by up
    // to half an ulp of 1000 (3e-5, 5e-4 of the std), as in PyTorch, which bounds what dx can do.
    let dy = rand_vec(&mut r, x.len());
    let f64fwd = bn_train::<f64>(&g, &x, &gamma, &beta, 1e-5, 0.1, &[0.0; 3], &[1.0; 3]);
    let mut dx64 = vec![0.0; x.len()];
    bn_backward(&g, &x, &dy, &gamma, &f64fwd.mean, &f64fwd.invstd, Some(&mut dx64), None, None);
    let mut dx32 = vec![0.0f32; x.len()];
    bn_backward(&g, &cast(&x), &cast(&dy), &cast(&gamma), &cast(&got.mean), &cast(&got.invstd), Some(&mut dx32), None, None);
    assert_close("bn dx, large offset", &widen(&dx32), &dx64, 2e-4);
}

#[test]
fn bn_running_stats_by_hand() {
    // One channel, values 1, 2, 3, 4 over [n=2, c=1, hw=2]: mean 2.5, biased var 1.25,
    // unbiased var 5/3. Running mean 0.5 -> 0.9*0.5 + 0.1*2.5 = 0.7; running var 2.0 ->
    // 0.9*2 + 0.1*5/3 = 1.9666...; y = (x - 2.5) / sqrt(1.25 + eps) * gamma + beta.
    let g = BnGeom { n: 2, c: 1, hw: 2 };
    let x = [1.0, 2.0, 3.0, 4.0];
    let eps = 1e-5;
    let out = bn_train::<f64>(&g, &x, &[2.0], &[0.5], eps, 0.1, &[0.5], &[2.0]);
    assert!((out.running_mean[0] - 0.7).abs() < 1e-15);
    assert!((out.running_var[0] - (1.8 + 0.5 / 3.0)).abs() < 1e-15);
    assert!((out.mean[0] - 2.5).abs() < 1e-15);
    let inv = 1.0 / (1.25f64 + eps).sqrt();
    assert!((out.invstd[0] - inv).abs() < 1e-14);
    for (y, x) in out.y.iter().zip(x) {
        assert!((y - ((x - 2.5) * inv * 2.0 + 0.5)).abs() < 1e-14);
    }
    // Momentum is an argument, not a constant.
    let out = bn_train::<f32>(&g, &x, &[2.0], &[0.5], eps, 0.5, &[0.5], &[2.0]);
    assert!((out.running_mean[0] - 1.5).abs() < 1e-6);
    assert!((out.running_var[0] - (1.0 + 2.5 / 3.0)).abs() < 1e-6);
}

#[test]
fn bn_eval_forward_matches_reference() {
    let mut r = rng(6);
    for g in bn_geoms() {
        let len = g.n * g.c * g.hw;
        let x = rand_vec(&mut r, len);
        let (gamma, beta, rm) = (rand_vec(&mut r, g.c), rand_vec(&mut r, g.c), rand_vec(&mut r, g.c));
        let rv: Vec<f64> = rand_vec(&mut r, g.c).iter().map(|v| v.abs() + 0.1).collect();
        let eps = 1e-5;
        let want: Vec<f64> = (0..len)
            .map(|i| {
                let c = (i / g.hw) % g.c;
                (x[i] - rm[c]) / (rv[c] + eps).sqrt() * gamma[c] + beta[c]
            })
            .collect();
        let mut y64 = vec![f64::NAN; len];
        bn_eval_forward(&g, &x, &gamma, &beta, &rm, &rv, eps, &mut y64);
        assert_close("bn eval f64", &y64, &want, TOL64);
        let mut y32 = vec![f32::NAN; len];
        bn_eval_forward(&g, &cast(&x), &cast(&gamma), &cast(&beta), &cast(&rm), &cast(&rv), eps, &mut y32);
        assert_close("bn eval f32", &widen(&y32), &want, TOL32);
    }
}

#[test]
fn bn_backward_matches_finite_differences() {
    let mut r = rng(7);
    for g in bn_geoms().into_iter().filter(|g| g.n * g.c * g.hw < 1000) {
        let len = g.n * g.c * g.hw;
        let x = rand_vec(&mut r, len);
        let gamma: Vec<f64> = rand_vec(&mut r, g.c).iter().map(|v| v + 1.5).collect();
        let beta = rand_vec(&mut r, g.c);
        let dy = rand_vec(&mut r, len);
        let eps = 1e-5;
        let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| {
            let rs = vec![0.0; g.c];
            dot(&bn_train::<f64>(&g, x, gamma, beta, eps, 0.1, &rs, &rs).y, &dy)
        };
        let fd_x = finite_diff(&x, |x| loss(x, &gamma, &beta));
        let fd_g = finite_diff(&gamma, |gm| loss(&x, gm, &beta));
        let fd_b = finite_diff(&beta, |b| loss(&x, &gamma, b));

        let fwd = bn_train::<f64>(&g, &x, &gamma, &beta, eps, 0.1, &vec![0.0; g.c], &vec![1.0; g.c]);
        let (dx0, dg0, db0) = (rand_vec(&mut r, len), rand_vec(&mut r, g.c), rand_vec(&mut r, g.c));
        let (mut dx, mut dg, mut db) = (dx0.clone(), dg0.clone(), db0.clone());
        bn_backward(&g, &x, &dy, &gamma, &fwd.mean, &fwd.invstd, Some(&mut dx), Some(&mut dg), Some(&mut db));
        assert_close(&format!("bn dx {g:?}"), &added(&dx0, &dx), &fd_x, TOL_FD);
        assert_close(&format!("bn dgamma {g:?}"), &added(&dg0, &dg), &fd_g, TOL_FD);
        assert_close(&format!("bn dbeta {g:?}"), &added(&db0, &db), &fd_b, TOL_FD);

        // Requested gradients are independent of the skipped ones.
        let mut dx_only = dx0.clone();
        bn_backward(&g, &x, &dy, &gamma, &fwd.mean, &fwd.invstd, Some(&mut dx_only), None, None);
        assert_close("bn dx alone", &dx_only, &dx, 1e-14);
        let mut dg_only = dg0.clone();
        bn_backward(&g, &x, &dy, &gamma, &fwd.mean, &fwd.invstd, None, Some(&mut dg_only), None);
        assert_close("bn dgamma alone", &dg_only, &dg, 1e-14);

        // f32 against f64, on the f32 forward's saved statistics.
        let f32fwd = bn_train::<f32>(&g, &x, &gamma, &beta, eps, 0.1, &vec![0.0; g.c], &vec![1.0; g.c]);
        let (mut dx32, mut dg32, mut db32) = (vec![0f32; len], vec![0f32; g.c], vec![0f32; g.c]);
        bn_backward(&g, &cast(&x), &cast(&dy), &cast(&gamma), &cast(&f32fwd.mean), &cast(&f32fwd.invstd), Some(&mut dx32), Some(&mut dg32), Some(&mut db32));
        assert_close("bn dx f32", &widen(&dx32), &fd_x, 1e-4);
        assert_close("bn dgamma f32", &widen(&dg32), &fd_g, TOL32);
        assert_close("bn dbeta f32", &widen(&db32), &fd_b, TOL32);
    }
}

// ---------------------------------------------------------------------------------------------
// Pools

fn pool3_ref(g: &PoolGeom, x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for p in 0..g.n * g.c {
        for i in 0..g.h as isize {
            for j in 0..g.w as isize {
                let (mut s, mut cnt) = (0.0, 0.0);
                for di in -1..=1 {
                    for dj in -1..=1 {
                        let (a, b) = (i + di, j + dj);
                        if a >= 0 && b >= 0 && a < g.h as isize && b < g.w as isize {
                            s += x[(p * g.h + a as usize) * g.w + b as usize];
                            cnt += 1.0;
                        }
                    }
                }
                y[(p * g.h + i as usize) * g.w + j as usize] = s / cnt;
            }
        }
    }
    y
}

fn pool2_ref(g: &PoolGeom, x: &[f64]) -> Vec<f64> {
    let (oh, ow) = (g.h / 2, g.w / 2);
    let mut y = vec![0.0; g.n * g.c * oh * ow];
    for p in 0..g.n * g.c {
        for i in 0..oh {
            for j in 0..ow {
                let at = |a: usize, b: usize| x[(p * g.h + a) * g.w + b];
                y[(p * oh + i) * ow + j] = (at(2 * i, 2 * j) + at(2 * i, 2 * j + 1) + at(2 * i + 1, 2 * j) + at(2 * i + 1, 2 * j + 1)) / 4.0;
            }
        }
    }
    y
}

fn pool_geoms() -> Vec<PoolGeom> {
    let g = |n, c, h, w| PoolGeom { n, c, h, w };
    vec![g(3, 7, 5, 5), g(2, 3, 7, 6), g(2, 2, 1, 1), g(1, 3, 1, 4), g(2, 2, 2, 3), g(2, 3, 6, 1), g(4, 16, 8, 8)]
}

fn pool3<T: Float>(g: &PoolGeom, x: &[f64]) -> Vec<f64> {
    let mut y = vec![T::nan(); x.len()];
    avg_pool3_forward(g, &cast::<T>(x), &mut y);
    widen(&y)
}

fn pool2<T: Float>(g: &PoolGeom, x: &[f64]) -> Vec<f64> {
    let mut y = vec![T::nan(); g.n * g.c * (g.h / 2) * (g.w / 2)];
    avg_pool2_forward(g, &cast::<T>(x), &mut y);
    widen(&y)
}

#[test]
fn pools_forward_match_reference() {
    let mut r = rng(8);
    for g in pool_geoms() {
        let x = rand_vec(&mut r, g.n * g.c * g.h * g.w);
        let want3 = pool3_ref(&g, &x);
        assert_close(&format!("pool3 f64 {g:?}"), &pool3::<f64>(&g, &x), &want3, TOL64);
        assert_close(&format!("pool3 f32 {g:?}"), &pool3::<f32>(&g, &x), &want3, TOL32);
        let want2 = pool2_ref(&g, &x);
        assert_close(&format!("pool2 f64 {g:?}"), &pool2::<f64>(&g, &x), &want2, TOL64);
        assert_close(&format!("pool2 f32 {g:?}"), &pool2::<f32>(&g, &x), &want2, TOL32);
    }
}

#[test]
fn pools_backward_match_finite_differences() {
    let mut r = rng(9);
    for g in pool_geoms().into_iter().filter(|g| g.n * g.c * g.h * g.w < 1000) {
        let len = g.n * g.c * g.h * g.w;
        let x = rand_vec(&mut r, len);
        let dy3 = rand_vec(&mut r, len);
        let dy2 = rand_vec(&mut r, g.n * g.c * (g.h / 2) * (g.w / 2));
        let fd3 = finite_diff(&x, |x| dot(&pool3::<f64>(&g, x), &dy3));
        let fd2 = finite_diff(&x, |x| dot(&pool2::<f64>(&g, x), &dy2));
        let dx0 = rand_vec(&mut r, len);

        let mut dx = dx0.clone();
        avg_pool3_backward(&g, &dy3, &mut dx);
        assert_close(&format!("pool3 dx {g:?}"), &added(&dx0, &dx), &fd3, TOL_FD);
        let mut dx32 = cast::<f32>(&dx0);
        avg_pool3_backward(&g, &cast(&dy3), &mut dx32);
        assert_close(&format!("pool3 dx f32 {g:?}"), &widen(&dx32), &dx, TOL32);

        let mut dx = dx0.clone();
        avg_pool2_backward(&g, &dy2, &mut dx);
        assert_close(&format!("pool2 dx {g:?}"), &added(&dx0, &dx), &fd2, TOL_FD);
        let mut dx32 = cast::<f32>(&dx0);
        avg_pool2_backward(&g, &cast(&dy2), &mut dx32);
        assert_close(&format!("pool2 dx f32 {g:?}"), &widen(&dx32), &dx, TOL32);
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise and global pool

#[test]
fn elementwise_ops() {
    let mut r = rng(10);
    // Longer than one parallel chunk, and not a multiple of it.
    let len = 40_000 + 7;
    let (a, b) = (rand_vec(&mut r, len), rand_vec(&mut r, len));
    let relu_want: Vec<f64> = a.iter().map(|v| v.max(0.0)).collect();
    let add_want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();

    let mut y = vec![f64::NAN; len];
    relu(&a, &mut y);
    assert_close("relu f64", &y, &relu_want, 0.0 + 1e-300);
    let mut y32 = vec![f32::NAN; len];
    relu(&cast::<f32>(&a), &mut y32);
    assert_close("relu f32", &widen(&y32), &relu_want, 1e-300);

    // relu backward: dx += dy * [y > 0], on the forward's output.
    let dx0 = rand_vec(&mut r, len);
    let mut dx = dx0.clone();
    relu_backward(&relu_want, &b, &mut dx);
    let want: Vec<f64> = (0..len).map(|i| dx0[i] + if a[i] > 0.0 { b[i] } else { 0.0 }).collect();
    assert_close("relu backward", &dx, &want, 1e-15);
    // ... which is the finite-difference gradient away from the kink.
    let xs: Vec<f64> = rand_vec(&mut r, 50).iter().map(|v| if v.abs() < 0.01 { 0.5 } else { *v }).collect();
    let dys = rand_vec(&mut r, 50);
    let relu64 = |x: &[f64]| {
        let mut y = vec![0.0; x.len()];
        relu(x, &mut y);
        y
    };
    let fd = finite_diff(&xs, |x| dot(&relu64(x), &dys));
    let mut g = vec![0.0; 50];
    relu_backward(&relu64(&xs), &dys, &mut g);
    assert_close("relu fd", &g, &fd, TOL_FD);

    let mut y = vec![f64::NAN; len];
    add(&a, &b, &mut y);
    assert_close("add f64", &y, &add_want, 1e-15);
    let mut y32 = vec![f32::NAN; len];
    add(&cast::<f32>(&a), &cast::<f32>(&b), &mut y32);
    assert_close("add f32", &widen(&y32), &add_want, 1e-7);

    let mut acc = a.clone();
    accumulate(&mut acc, &b);
    assert_close("accumulate", &acc, &add_want, 1e-15);

    let mut z = b.clone();
    zero(&mut z);
    assert!(z.iter().all(|&v| v == 0.0));
    let mut z32 = vec![f32::NAN; len];
    zero(&mut z32);
    assert!(z32.iter().all(|&v| v == 0.0));
}

#[test]
fn global_avg_pool() {
    let mut r = rng(11);
    for (n, c, hw) in [(3, 7, 25), (2, 5, 1), (64, 64, 64), (2, 3, 1001)] {
        let x = rand_vec(&mut r, n * c * hw);
        let want: Vec<f64> = x.chunks(hw).map(|p| p.iter().sum::<f64>() / hw as f64).collect();
        let mut y = vec![f64::NAN; n * c];
        gap_forward(n, c, hw, &x, &mut y);
        assert_close("gap f64", &y, &want, TOL64);
        let mut y32 = vec![f32::NAN; n * c];
        gap_forward(n, c, hw, &cast::<f32>(&x), &mut y32);
        assert_close("gap f32", &widen(&y32), &want, TOL32);

        let dy = rand_vec(&mut r, n * c);
        let gap64 = |x: &[f64]| {
            let mut y = vec![0.0; n * c];
            gap_forward(n, c, hw, x, &mut y);
            y
        };
        let dx0 = rand_vec(&mut r, n * c * hw);
        let mut dx = dx0.clone();
        gap_backward(n, c, hw, &dy, &mut dx);
        let want: Vec<f64> = (0..n * c * hw).map(|i| dy[i / hw] / hw as f64).collect();
        assert_close("gap backward", &added(&dx0, &dx), &want, 1e-12);
        if n * c * hw < 1000 {
            let fd = finite_diff(&x, |x| dot(&gap64(x), &dy));
            assert_close("gap fd", &added(&dx0, &dx), &fd, TOL_FD);
        }
        // f32: compare the accumulated totals (subtracting the start in f32 would swamp dy / hw).
        let mut dx32 = cast::<f32>(&dx0);
        gap_backward(n, c, hw, &cast(&dy), &mut dx32);
        assert_close("gap backward f32", &widen(&dx32), &dx, TOL32);
    }
}

// ---------------------------------------------------------------------------------------------
// Linear

fn linear_ref(g: &LinearGeom, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
    let mut y = vec![0.0; g.n * g.d_out];
    for i in 0..g.n {
        for o in 0..g.d_out {
            let mut s = b.map_or(0.0, |b| b[o]);
            for k in 0..g.d_in {
                s += x[i * g.d_in + k] * w[o * g.d_in + k];
            }
            y[i * g.d_out + o] = s;
        }
    }
    y
}

fn linear<T: Float>(g: &LinearGeom, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
    let mut y = vec![T::nan(); g.n * g.d_out];
    let b = b.map(cast::<T>);
    linear_forward(g, &cast::<T>(x), &cast::<T>(w), b.as_deref(), &mut y);
    widen(&y)
}

#[test]
fn linear_forward_and_backward() {
    let mut r = rng(12);
    for g in [LinearGeom { n: 3, d_in: 7, d_out: 5 }, LinearGeom { n: 64, d_in: 64, d_out: 10 }, LinearGeom { n: 1, d_in: 1, d_out: 1 }] {
        let (x, w, b) = (rand_vec(&mut r, g.n * g.d_in), rand_vec(&mut r, g.d_out * g.d_in), rand_vec(&mut r, g.d_out));
        for bias in [Some(&b[..]), None] {
            let want = linear_ref(&g, &x, &w, bias);
            assert_close("linear f64", &linear::<f64>(&g, &x, &w, bias), &want, TOL64);
            assert_close("linear f32", &linear::<f32>(&g, &x, &w, bias), &want, TOL32);
        }

        let dy = rand_vec(&mut r, g.n * g.d_out);
        let fd_x = finite_diff(&x, |x| dot(&linear::<f64>(&g, x, &w, Some(&b)), &dy));
        let fd_w = finite_diff(&w, |w| dot(&linear::<f64>(&g, &x, w, Some(&b)), &dy));
        let fd_b = finite_diff(&b, |b| dot(&linear::<f64>(&g, &x, &w, Some(b)), &dy));
        let (dx0, dw0, db0) = (rand_vec(&mut r, x.len()), rand_vec(&mut r, w.len()), rand_vec(&mut r, b.len()));
        let (mut dx, mut dw, mut db) = (dx0.clone(), dw0.clone(), db0.clone());
        linear_backward(&g, &x, &w, &dy, Some(&mut dx), Some(&mut dw), Some(&mut db));
        assert_close("linear dx", &added(&dx0, &dx), &fd_x, TOL_FD);
        assert_close("linear dw", &added(&dw0, &dw), &fd_w, TOL_FD);
        assert_close("linear db", &added(&db0, &db), &fd_b, TOL_FD);

        let mut dw_only = dw0.clone();
        linear_backward(&g, &x, &w, &dy, None, Some(&mut dw_only), None);
        assert_close("linear dw alone", &dw_only, &dw, 1e-14);

        let (mut dx32, mut dw32, mut db32) = (cast::<f32>(&dx0), cast::<f32>(&dw0), cast::<f32>(&db0));
        linear_backward(&g, &cast(&x), &cast(&w), &cast(&dy), Some(&mut dx32), Some(&mut dw32), Some(&mut db32));
        assert_close("linear dx f32", &widen(&dx32), &dx, TOL32);
        assert_close("linear dw f32", &widen(&dw32), &dw, TOL32);
        assert_close("linear db f32", &widen(&db32), &db, TOL32);
    }
}

/// A layer large enough to run in parallel blocks of rows (70 rows and 230 outputs: partial
/// blocks on both sides), against naive f64 products: y = x w^T + b, dx = dy w, dw = dy^T x.
#[test]
fn a_large_linear_layer_in_parallel_blocks_matches_the_naive_products() {
    let mut r = rng(13);
    let g = LinearGeom { n: 70, d_in: 300, d_out: 230 };
    let (x, w, b, dy) = (rand_vec(&mut r, g.n * g.d_in), rand_vec(&mut r, g.d_out * g.d_in), rand_vec(&mut r, g.d_out), rand_vec(&mut r, g.n * g.d_out));
    let want = linear_ref(&g, &x, &w, Some(&b));
    assert_close("large linear f64", &linear::<f64>(&g, &x, &w, Some(&b)), &want, TOL64);
    assert_close("large linear f32", &linear::<f32>(&g, &x, &w, Some(&b)), &want, TOL32);
    let mut dx_ref = vec![0.0; g.n * g.d_in];
    let mut dw_ref = vec![0.0; g.d_out * g.d_in];
    for i in 0..g.n {
        for o in 0..g.d_out {
            for k in 0..g.d_in {
                dx_ref[i * g.d_in + k] += dy[i * g.d_out + o] * w[o * g.d_in + k];
                dw_ref[o * g.d_in + k] += dy[i * g.d_out + o] * x[i * g.d_in + k];
            }
        }
    }
    let (mut dx, mut dw) = (vec![0.0; dx_ref.len()], vec![0.0; dw_ref.len()]);
    linear_backward(&g, &x, &w, &dy, Some(&mut dx), Some(&mut dw), None);
    assert_close("large linear dx", &dx, &dx_ref, TOL64);
    assert_close("large linear dw", &dw, &dw_ref, TOL64);
    let (mut dx32, mut dw32) = (vec![0f32; dx_ref.len()], vec![0f32; dw_ref.len()]);
    linear_backward(&g, &cast(&x), &cast(&w), &cast(&dy), Some(&mut dx32), Some(&mut dw32), None);
    assert_close("large linear dx f32", &widen(&dx32), &dx_ref, TOL32);
    assert_close("large linear dw f32", &widen(&dw32), &dw_ref, TOL32);
}

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy and top-1

fn xent_ref(n: usize, k: usize, logits: &[f64], labels: &[u32]) -> (f64, Vec<f64>) {
    let mut loss = 0.0;
    let mut probs = vec![0.0; n * k];
    for i in 0..n {
        let row = &logits[i * k..(i + 1) * k];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        for j in 0..k {
            probs[i * k + j] = (row[j] - lse).exp();
        }
        loss += lse - row[labels[i] as usize];
    }
    (loss / n as f64, probs)
}

fn xent<T: Float>(n: usize, k: usize, logits: &[f64], labels: &[u32]) -> (f64, usize, Vec<f64>) {
    let mut probs = vec![T::nan(); n * k];
    let (l, c) = softmax_xent_forward(n, k, &cast::<T>(logits), labels, &mut probs);
    (l.as_f64(), c, widen(&probs))
}

#[test]
fn softmax_cross_entropy() {
    let mut r = rng(13);
    let (n, k) = (7, 10);
    for offset in [0.0, 1000.0, -1000.0] {
        // Large offsets: a naive exp would overflow (or underflow to 0/0).
        let logits: Vec<f64> = rand_vec(&mut r, n * k).iter().map(|v| v * 4.0 + offset).collect();
        let labels: Vec<u32> = (0..n).map(|_| r.random_range(0..k as u32)).collect();
        let (want_loss, want_probs) = xent_ref(n, k, &logits, &labels);
        let want_correct = (0..n)
            .filter(|&i| {
                let row = &logits[i * k..(i + 1) * k];
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                row.iter().position(|&v| v == m).unwrap() == labels[i] as usize
            })
            .count();
        let (l64, c64, p64) = xent::<f64>(n, k, &logits, &labels);
        assert!((l64 - want_loss).abs() < 1e-12 * want_loss.abs().max(1.0), "loss f64 {l64} vs {want_loss}");
        assert_close("probs f64", &p64, &want_probs, TOL64);
        assert_eq!(c64, want_correct);
        // f32: the logits themselves carry ~1e-4 absolute rounding at |x| ~ 1000, so compare with
        // the reference on the f32-rounded logits.
        let l32in: Vec<f64> = logits.iter().map(|&v| v as f32 as f64).collect();
        let (want_loss32, want_probs32) = xent_ref(n, k, &l32in, &labels);
        let (l32, c32, p32) = xent::<f32>(n, k, &l32in, &labels);
        assert!((l32 - want_loss32).abs() < 1e-5 * want_loss32.abs().max(1.0), "loss f32 {l32} vs {want_loss32}");
        assert_close("probs f32", &p32, &want_probs32, 1e-5);
        assert_eq!(c32, top1_correct(n, k, &cast::<f32>(&l32in), &labels));
        assert_eq!(c64, top1_correct(n, k, &logits, &labels));

        // Backward: dlogits += dloss * (p - onehot) / n, the gradient of dloss * mean loss.
        let fd = finite_diff(&logits, |z| 2.5 * xent::<f64>(n, k, z, &labels).0);
        let d0 = rand_vec(&mut r, n * k);
        let mut d = d0.clone();
        softmax_xent_backward(n, k, &p64, &labels, 2.5, &mut d);
        assert_close("xent dlogits", &added(&d0, &d), &fd, if offset == 0.0 { TOL_FD } else { 1e-4 });
        let mut d32 = cast::<f32>(&d0);
        softmax_xent_backward(n, k, &cast::<f32>(&p64), &labels, 2.5f32, &mut d32);
        assert_close("xent dlogits f32", &widen(&d32), &d, TOL32);
    }
}

#[test]
fn top1_first_maximum_wins_ties() {
    let logits = [1.0, 3.0, 3.0, 0.0, /**/ 5.0, 5.0, 5.0, 5.0, /**/ -1.0, -2.0, -0.5, -3.0];
    assert_eq!(top1_correct(3, 4, &logits, &[1, 0, 2]), 3);
    assert_eq!(top1_correct(3, 4, &logits, &[2, 1, 2]), 1);
    let mut probs = [0.0f32; 12];
    let logits32: Vec<f32> = logits.iter().map(|&v| v as f32).collect();
    let (_, correct) = softmax_xent_forward(3, 4, &logits32, &[2, 3, 2], &mut probs);
    assert_eq!(correct, 1);
    // Probabilities sum to one; the tied row is uniform.
    for row in probs.chunks(4) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    assert!(probs[4..8].iter().all(|&p| (p - 0.25).abs() < 1e-7));
}
