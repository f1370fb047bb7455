//! Fully connected layer y = x w^T + b (PyTorch nn.Linear layout: w is [d_out, d_in]).
//!
//! TinyNetwork's head is tiny (64 -> 10): one GEMM call. Large layers (the threshold learner's
//! 324-2048-2048 MLP at batch 1024) are split into blocks of `ROWS` output rows run in parallel
//! (rayon); the block size is fixed, so results do not depend on the number of threads.
use rayon::prelude::*;

use super::LinearGeom;
use crate::engine::Float;

/// Multiply-adds below which a layer runs as one GEMM call.
const PARALLEL_WORK: usize = 1 << 22;
/// Output rows per parallel block.
const ROWS: usize = 64;

/// Runs `block(b, rows)` over the blocks of `ROWS` rows (of `row_len` values each) of `out`: in
/// parallel for a large layer, else once over all of `out` as block 0.
fn by_row_blocks<T: Float>(g: &LinearGeom, out: &mut [T], row_len: usize, block: impl Fn(usize, &mut [T]) + Sync) {
    if g.n * g.d_in * g.d_out >= PARALLEL_WORK {
        // Every dimension is positive here, so the chunks are not empty.
        out.par_chunks_mut(ROWS * row_len).enumerate().for_each(|(b, rows)| block(b, rows));
    } else if row_len > 0 {
        block(0, out);
    }
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
    // y [n, d_out] = x [n, d_in] * w^T [d_in, d_out] (+ b), by blocks of rows of x and y.
    by_row_blocks(g, y, d_out, |b, y| {
        let (rows, x) = (y.len() / d_out, &x[b * ROWS * d_in..]);
        // SAFETY: x holds at least rows x d_in from here, w d_out x d_in, y rows x d_out.
        unsafe { T::gemm(rows, d_in, d_out, T::one(), x.as_ptr(), d_in as isize, 1, w.as_ptr(), 1, d_in as isize, beta, y.as_mut_ptr(), d_out as isize, 1) }
    });
}

/// Accumulates dx = dy w, dw = dy^T x, db = sum_n dy, each only when requested.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<T: Float>(g: &LinearGeom, x: &[T], w: &[T], dy: &[T], dx: Option<&mut [T]>, dw: Option<&mut [T]>, db: Option<&mut [T]>) {
    let LinearGeom { n, d_in, d_out } = *g;
    assert_eq!(x.len(), n * d_in, "linear: x length");
    assert_eq!(w.len(), d_out * d_in, "linear: w length");
    assert_eq!(dy.len(), n * d_out, "linear: dy length");
    if let Some(dx) = dx {
        assert_eq!(dx.len(), n * d_in, "linear: dx length");
        // dx [n, d_in] += dy [n, d_out] * w [d_out, d_in], by blocks of rows of dy and dx.
        by_row_blocks(g, dx, d_in, |b, dx| {
            let (rows, dy) = (dx.len() / d_in, &dy[b * ROWS * d_out..]);
            // SAFETY: dy holds at least rows x d_out from here, w d_out x d_in, dx rows x d_in.
            unsafe {
                T::gemm(rows, d_out, d_in, T::one(), dy.as_ptr(), d_out as isize, 1, w.as_ptr(), d_in as isize, 1, T::one(), dx.as_mut_ptr(), d_in as isize, 1)
            }
        });
    }
    if let Some(dw) = dw {
        assert_eq!(dw.len(), d_out * d_in, "linear: dw length");
        // dw [d_out, d_in] += dy^T [d_out, n] * x [n, d_in], by blocks of rows of dw: block
        // `b` reads columns b*ROWS.. of dy, so it starts at that offset of dy.
        by_row_blocks(g, dw, d_in, |b, dw| {
            let (rows, dy) = (dw.len() / d_in, &dy[b * ROWS..]);
            // SAFETY: the block reads dy[i + j * d_out] for i < rows, j < n, which lies inside
            // the slice (rows <= d_out - b * ROWS); x holds n x d_in; dw rows x d_in.
            unsafe {
                T::gemm(rows, n, d_in, T::one(), dy.as_ptr(), 1, d_out as isize, x.as_ptr(), d_in as isize, 1, T::one(), dw.as_mut_ptr(), d_in as isize, 1)
            }
        });
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
