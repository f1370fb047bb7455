//! Fully connected layer y = x w^T + b (PyTorch nn.Linear layout: w is [d_out, d_in]).
//!
//! The head is tiny (64 x 64 -> 10), so these are single GEMM calls without rayon.
use crate::engine::Float;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinearGeom {
    pub n: usize,
    pub d_in: usize,
    pub d_out: usize,
}

pub fn linear_forward<T: Float>(g: &LinearGeom, x: &[T], w: &[T], b: Option<&[T]>, y: &mut [T]) {
    let LinearGeom { n, d_in, d_out } = *g;
    assert_eq!(x.len(), n * d_in, "linear: x length");
    assert_eq!(w.len(), d_out * d_in, "linear: w length");
    assert_eq!(y.len(), n * d_out, "linear: y length");
    let beta = match b {
        Some(b) => {
            assert_eq!(b.len(), d_out, "linear: b length");
            if d_out > 0 {
                y.chunks_exact_mut(d_out).for_each(|row| row.copy_from_slice(b));
            }
            T::one()
        }
        None => T::zero(),
    };
    // y [n, d_out] = x [n, d_in] * w^T [d_in, d_out] (+ b)
    unsafe {
        T::gemm(
            n, d_in, d_out, T::one(),
            x.as_ptr(), d_in as isize, 1,
            w.as_ptr(), 1, d_in as isize,
            beta, y.as_mut_ptr(), d_out as isize, 1,
        )
    }
}

/// Accumulates dx = dy w, dw = dy^T x, db = sum_n dy, each only when requested.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<T: Float>(
    g: &LinearGeom, x: &[T], w: &[T], dy: &[T],
    dx: Option<&mut [T]>, dw: Option<&mut [T]>, db: Option<&mut [T]>,
) {
    let LinearGeom { n, d_in, d_out } = *g;
    assert_eq!(x.len(), n * d_in, "linear: x length");
    assert_eq!(w.len(), d_out * d_in, "linear: w length");
    assert_eq!(dy.len(), n * d_out, "linear: dy length");
    if let Some(dx) = dx {
        assert_eq!(dx.len(), n * d_in, "linear: dx length");
        // dx [n, d_in] += dy [n, d_out] * w [d_out, d_in]
        unsafe {
            T::gemm(
                n, d_out, d_in, T::one(),
                dy.as_ptr(), d_out as isize, 1,
                w.as_ptr(), d_in as isize, 1,
                T::one(), dx.as_mut_ptr(), d_in as isize, 1,
            )
        }
    }
    if let Some(dw) = dw {
        assert_eq!(dw.len(), d_out * d_in, "linear: dw length");
        // dw [d_out, d_in] += dy^T [d_out, n] * x [n, d_in]
        unsafe {
            T::gemm(
                d_out, n, d_in, T::one(),
                dy.as_ptr(), 1, d_out as isize,
                x.as_ptr(), d_in as isize, 1,
                T::one(), dw.as_mut_ptr(), d_in as isize, 1,
            )
        }
    }
    if let Some(db) = db {
        assert_eq!(db.len(), d_out, "linear: db length");
        if d_out > 0 {
            for row in dy.chunks_exact(d_out) {
                db.iter_mut().zip(row).for_each(|(d, &v)| *d = *d + v);
            }
        }
    }
}
