//! The bare tiles' CPU face against a naive f64 product: exact where the operands are already
//! representable in the kind's precision, within the precision's tolerance (and visibly rounded)
//! where they are not (part of the `ops` test target, src/engine/ops/tests.rs).

use fear::engine::ops::mma::*;
use fear::engine::precision::Precision;

use crate::*;

/// D = A·B + C per tile, in f64, with no rounding.
fn product(kind: MmaKind, a: &[f64], b: &[f64], c: &[f64]) -> Vec<f64> {
    let s = kind.shape();
    let mut d = c.to_vec();
    for t in 0..s.tiles {
        for i in 0..s.m {
            for j in 0..s.n {
                for k in 0..s.k {
                    d[(t * s.m + i) * s.n + j] += a[(t * s.m + i) * s.k + k] * b[(t * s.k + k) * s.n + j];
                }
            }
        }
    }
    d
}

fn tile<T: fear::engine::Float>(kind: MmaKind, a: &[f64], b: &[f64], c: &[f64]) -> Vec<f64> {
    let mut d = vec![T::nan(); kind.shape().c_len()];
    mma_tile(kind, &cast::<T>(a), &cast::<T>(b), &cast::<T>(c), &mut d);
    widen(&d)
}

fn operands(kind: MmaKind, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut r, s) = (rng(seed), kind.shape());
    (rand_vec(&mut r, s.a_len()), rand_vec(&mut r, s.b_len()), rand_vec(&mut r, s.c_len()))
}

#[test]
fn tiles_of_representable_operands_are_exact_products() {
    for kind in MmaKind::ALL {
        let (a, b, c) = operands(kind, 31);
        let round = |v: &[f64]| v.iter().map(|&x| kind.precision().round(x as f32) as f64).collect::<Vec<f64>>();
        let (a, b) = (round(&a), round(&b));
        let want = product(kind, &a, &b, &c);
        assert_close(&format!("{kind:?} f64"), &tile::<f64>(kind, &a, &b, &c), &want, TOL64);
        assert_close(&format!("{kind:?} f32"), &tile::<f32>(kind, &a, &b, &c), &want, TOL32);
    }
}

#[test]
fn tiles_round_their_operands_to_the_kinds_precision() {
    for kind in MmaKind::ALL {
        let (a, b, c) = operands(kind, 32);
        let want = product(kind, &a, &b, &c);
        let got = tile::<f64>(kind, &a, &b, &c);
        let e = rel_err(&got, &want);
        let p = kind.precision();
        assert!(e < p.tolerance(), "{kind:?}: relative error {e:e} beyond {p:?}'s {:e}", p.tolerance());
        // Not the unrounded product: the rounding happened (bf16 keeps 8 bits, tf32 and f16 11).
        let floor = if p == Precision::Bf16 { 1e-4 } else { 1e-6 };
        assert!(e > floor, "{kind:?}: relative error {e:e}: operands not rounded?");
    }
}
