//! The batch norms' CPU face against naive f64 references (forward, f32 and f64) and central
//! finite differences (backward, f64), on small odd shapes (part of the `ops` test target,
//! src/engine/ops/tests.rs).

use fear::engine::ops::batchnorm::*;
use fear::engine::Float;

use crate::*;

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
