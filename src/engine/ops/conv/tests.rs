//! The convolutions' CPU face against naive f64 references (forward, f32 and f64) and central
//! finite differences (backward, f64), on small odd shapes (part of the `ops` test target,
//! src/engine/ops/tests.rs).

use fear::engine::ops::conv::*;
use fear::engine::Float;

use crate::*;

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
