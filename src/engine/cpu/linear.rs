//! Fully connected layer y = x w^T + b (PyTorch nn.Linear layout: w is [d_out, d_in]).
use crate::engine::Float;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinearGeom {
    pub n: usize,
    pub d_in: usize,
    pub d_out: usize,
}

pub fn linear_forward<T: Float>(_g: &LinearGeom, _x: &[T], _w: &[T], _b: Option<&[T]>, _y: &mut [T]) { unimplemented!() }

/// Accumulates dx = dy w, dw = dy^T x, db = sum_n dy, each only when requested.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<T: Float>(
    _g: &LinearGeom, _x: &[T], _w: &[T], _dy: &[T],
    _dx: Option<&mut [T]>, _dw: Option<&mut [T]>, _db: Option<&mut [T]>,
) { unimplemented!() }
