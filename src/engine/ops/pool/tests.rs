//! The average pools' CPU face against naive f64 references (forward, f32 and f64) and central
//! finite differences (backward, f64), on small odd shapes (part of the `ops` test target,
//! src/engine/ops/tests.rs).

use fear::engine::ops::pool::*;
use fear::engine::Float;

use crate::*;

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
