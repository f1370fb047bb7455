//! Average pools: 3x3 stride 1 pad 1 with count_include_pad = false (the NATS-Bench `avg_pool_3x3`),
//! and 2x2 stride 2 (the reduction block's shortcut; odd sizes floor like PyTorch).
use crate::engine::Float;

/// Shape of a pooled tensor's input: [n, c, h, w].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

/// y[n,c,h,w] = mean of x over the in-bounds part of the 3x3 window centred at (h, w).
pub fn avg_pool3x3_forward<T: Float>(_g: &PoolGeom, _x: &[T], _y: &mut [T]) { unimplemented!() }
/// dx += adjoint of the above.
pub fn avg_pool3x3_backward<T: Float>(_g: &PoolGeom, _dy: &[T], _dx: &mut [T]) { unimplemented!() }
/// y[n,c,i,j] = mean of x[n,c,2i..2i+2,2j..2j+2]; y is [n, c, h/2, w/2].
pub fn avg_pool2x2_forward<T: Float>(_g: &PoolGeom, _x: &[T], _y: &mut [T]) { unimplemented!() }
/// dx += adjoint of the above.
pub fn avg_pool2x2_backward<T: Float>(_g: &PoolGeom, _dy: &[T], _dx: &mut [T]) { unimplemented!() }
