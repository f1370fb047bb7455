//! The proxy probes' CPU face against naive f64 references (f32 and f64 runs), central finite
//! differences for the one with a backward, and the accumulate-vs-overwrite convention (part of
//! the `ops` test target, src/engine/ops/tests.rs).

use fear::engine::ops::probe::*;
use fear::engine::Float;

use crate::{assert_close, cast, rng, widen};

/// `n` values in [-1, 1) exact in f32, from `seed`.
fn rand_vec(seed: u64, n: usize) -> Vec<f64> {
    crate::rand_vec(&mut rng(seed), n)
}

#[test]
fn sum_all_forward_and_its_gradient() {
    for len in [0, 1, 7, 1000] {
        let x = rand_vec(len as u64, len);
        let want: f64 = x.iter().sum();
        assert_close("sum_all f64", &[sum_all(&cast::<f64>(&x)).as_f64()], &[want], 1e-12);
        assert_close("sum_all f32", &[sum_all(&cast::<f32>(&x)).as_f64()], &[want], 1e-5);
        // Backward: d(sum)/dx_i by central differences is 1; the op adds it to what is there.
        let h = 1e-6;
        let fd: Vec<f64> = (0..len)
            .map(|i| {
                let (mut up, mut down) = (x.clone(), x.clone());
                up[i] += h;
                down[i] -= h;
                (sum_all(&up) - sum_all(&down)) / (2.0 * h)
            })
            .collect();
        let start = rand_vec(99, len);
        let mut dx = start.clone();
        sum_all_backward(&mut dx);
        let added: Vec<f64> = dx.iter().zip(&start).map(|(a, s)| a - s).collect();
        assert_close("sum_all_backward", &added, &fd, 1e-6);
    }
}

fn channel_fisher_ref(n: usize, c: usize, hw: usize, x: &[f64], dy: &[f64]) -> Vec<f64> {
    (0..c)
        .map(|ch| {
            let mut acc = 0.0;
            for i in 0..n {
                let mut g = 0.0;
                for p in 0..hw {
                    let at = (i * c + ch) * hw + p;
                    g += x[at] * dy[at];
                }
                acc += g * g;
            }
            0.5 * acc / n as f64
        })
        .collect()
}

fn fisher_run<T: Float>(n: usize, c: usize, hw: usize, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let mut out = vec![T::nan(); c]; // must overwrite
    channel_fisher(n, c, hw, &cast::<T>(x), &cast::<T>(dy), &mut out);
    widen(&out)
}

#[test]
fn channel_fisher_against_the_naive_formula() {
    for (n, c, hw) in [(1, 1, 1), (3, 5, 7), (4, 2, 64), (2, 10, 1)] {
        let (x, dy) = (rand_vec(1, n * c * hw), rand_vec(2, n * c * hw));
        let want = channel_fisher_ref(n, c, hw, &x, &dy);
        assert_close("channel_fisher f64", &fisher_run::<f64>(n, c, hw, &x, &dy), &want, 1e-12);
        assert_close("channel_fisher f32", &fisher_run::<f32>(n, c, hw, &x, &dy), &want, 1e-5);
    }
}

fn code_gram_ref(n: usize, d: usize, x: &[f64]) -> Vec<f64> {
    let c: Vec<f64> = x.iter().map(|v| (*v > 0.0) as u8 as f64).collect();
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            k[i * n + j] = (0..d).map(|u| c[i * d + u] * c[j * d + u] + (1.0 - c[i * d + u]) * (1.0 - c[j * d + u])).sum();
        }
    }
    k
}

#[test]
fn binary_code_gram_against_c_ct_plus_its_complement_and_accumulates() {
    for (n, d) in [(1, 1), (3, 63), (4, 64), (5, 65), (6, 300)] {
        let mut x = rand_vec(n as u64 * 31 + d as u64, n * d);
        x[0] = 0.0; // zero is "off", as (x > 0) says
        let want = code_gram_ref(n, d, &x);
        let start = rand_vec(5, n * n).iter().map(|v| (v * 10.0).round()).collect::<Vec<f64>>();
        for f32_run in [false, true] {
            let got = if f32_run {
                let mut k = cast::<f32>(&start);
                binary_code_gram(n, d, &cast::<f32>(&x), &mut k);
                widen(&k)
            } else {
                let mut k = start.clone();
                binary_code_gram(n, d, &x, &mut k);
                k
            };
            let added: Vec<f64> = got.iter().zip(&start).map(|(a, s)| a - s).collect();
            assert_eq!(added, want, "n {n} d {d} f32 {f32_run}");
        }
    }
}
