//! The `ops` test target: every op family's CPU face held to naive f64 references (forward, in
//! f32 and f64) and central finite differences (backward, f64) on small odd shapes, with the
//! accumulation convention of every backward. Each family's tests are its folder's `tests.rs`;
//! the helpers they share are here. (The CUDA faces are held to these CPU faces by the self-test,
//! each family's `check.rs`; tests/cuda_kernels.rs runs it.)

#[path = "batchnorm/tests.rs"]
mod batchnorm;
#[path = "conv/tests.rs"]
mod conv;
#[path = "elementwise/tests.rs"]
mod elementwise;
#[path = "linear/tests.rs"]
mod linear;
#[path = "loss/tests.rs"]
mod loss;
#[path = "mma/tests.rs"]
mod mma;
#[path = "optim/tests.rs"]
mod optim;
#[path = "pool/tests.rs"]
mod pool;
#[path = "probe/tests.rs"]
mod probe;

use fear::engine::Float;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform values in [-1, 1) that are exactly representable in f32, so the f32 and f64 runs of an
/// op see identical inputs and the reference isolates the op's own rounding.
pub fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| (rng.random::<f64>() * 2.0 - 1.0) as f32 as f64).collect()
}

pub fn cast<T: Float>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}
pub fn widen<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.as_f64()).collect()
}

/// max |a - b| / max(max |b|, 1e-3).
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(1e-3, f64::max);
    diff / scale
}

#[track_caller]
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert!(got.iter().all(|v| v.is_finite()), "{what}: non-finite output");
    let e = rel_err(got, want);
    assert!(e < tol, "{what}: relative error {e:e} >= {tol:e}\n got {:?}\nwant {:?}", &got[..got.len().min(8)], &want[..want.len().min(8)]);
}

/// Tolerances: f64 against the reference, f32 against the reference, gradients against finite
/// differences (f64, h = 1e-6).
pub const TOL64: f64 = 1e-12;
pub const TOL32: f64 = 1e-5;
pub const TOL_FD: f64 = 1e-6;
pub const H: f64 = 1e-6;

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Central differences of `f` with respect to every element of `v`.
pub fn finite_diff(v: &[f64], mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
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
pub fn added(start: &[f64], after: &[f64]) -> Vec<f64> {
    after.iter().zip(start).map(|(a, s)| a - s).collect()
}
