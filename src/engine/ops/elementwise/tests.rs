//! The elementwise ops and the global average pool' CPU face against naive f64 references (forward, f32 and f64) and central
//! finite differences (backward, f64), on small odd shapes (part of the `ops` test target,
//! src/engine/ops/tests.rs).

use fear::engine::ops::elementwise::*;

use crate::*;

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
