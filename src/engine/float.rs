//! The element types the engine computes in: f32 for training, f64 for gradient checks and synflow.

use std::fmt::{Debug, Display};
use std::iter::Sum;

/// A floating-point element type the CPU ops are generic over.
///
/// `gemm` dispatches to the matching `matrixmultiply` kernel, so every op that reduces to a matrix
/// product (convolutions, linear layers) is written once for both precisions.
pub trait Float: num_traits::Float + Default + Debug + Display + Sum + Send + Sync + 'static {
    /// Bytes per element (for saved-activation accounting).
    const BYTES: usize;

    /// `C = alpha * A * B + beta * C` on strided row/column layouts (matrixmultiply semantics:
    /// A is m x k, B is k x n, C is m x n; `rs*`/`cs*` are row and column strides in elements).
    ///
    /// # Safety
    /// The pointers must address matrices of the given shapes and strides.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );

    /// Conversion from f64 (rounding to nearest for f32).
    fn from_f64(v: f64) -> Self;
    /// Exact widening to f64 (named apart from `num_traits::ToPrimitive::to_f64`, which returns
    /// an Option).
    fn as_f64(self) -> f64;
}

impl Float for f32 {
    const BYTES: usize = 4;
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        csb: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
    }
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    const BYTES: usize = 8;
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: f64,
        a: *const f64,
        rsa: isize,
        csa: isize,
        b: *const f64,
        rsb: isize,
        csb: isize,
        beta: f64,
        c: *mut f64,
        rsc: isize,
        csc: isize,
    ) {
        matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
    }
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn as_f64(self) -> f64 {
        self
    }
}
