//! The bare tiles on the CPU: the truth the tensor-core kernels are held to. A and B are rounded
//! exactly as the kernels round them (`crate::engine::precision`, the same integer code as
//! kernels/mma.cuh), so the two differ only in the order and width of the accumulation.

use super::MmaKind;
use crate::engine::Float;

/// D = round(A)·round(B) + C for each tile of `kind`'s shape (row-major, tiles one after
/// another), the products summed in f64 and rounded once.
pub fn mma_tile<T: Float>(kind: MmaKind, a: &[T], b: &[T], c: &[T], d: &mut [T]) {
    let s = kind.shape();
    assert_eq!(a.len(), s.a_len(), "{}: a length", kind.name());
    assert_eq!(b.len(), s.b_len(), "{}: b length", kind.name());
    assert_eq!(c.len(), s.c_len(), "{}: c length", kind.name());
    assert_eq!(d.len(), s.c_len(), "{}: d length", kind.name());
    let round = |x: T| kind.precision().round(x.as_f64() as f32) as f64;
    let (ra, rb): (Vec<f64>, Vec<f64>) = (a.iter().map(|&x| round(x)).collect(), b.iter().map(|&x| round(x)).collect());
    for t in 0..s.tiles {
        let (ta, tb) = (&ra[t * s.m * s.k..][..s.m * s.k], &rb[t * s.k * s.n..][..s.k * s.n]);
        for i in 0..s.m {
            for j in 0..s.n {
                let at = t * s.m * s.n + i * s.n + j;
                let sum: f64 = (0..s.k).map(|k| ta[i * s.k + k] * tb[k * s.n + j]).sum();
                d[at] = T::from_f64(c[at].as_f64() + sum);
            }
        }
    }
}
