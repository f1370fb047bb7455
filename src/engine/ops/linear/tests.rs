//! The linear layer' CPU face against naive f64 references (forward, f32 and f64) and central
//! finite differences (backward, f64), on small odd shapes (part of the `ops` test target,
//! src/engine/ops/tests.rs).

use fear::engine::ops::linear::*;
use fear::engine::Float;

use crate::*;

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
