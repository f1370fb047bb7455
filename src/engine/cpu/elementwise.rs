//! ReLU, add, zero, accumulate, global average pool.
use crate::engine::Float;

/// y = max(x, 0).
pub fn relu_forward<T: Float>(_x: &[T], _y: &mut [T]) { unimplemented!() }
/// dx += dy where y > 0 (y is the ReLU output).
pub fn relu_backward<T: Float>(_y: &[T], _dy: &[T], _dx: &mut [T]) { unimplemented!() }
/// y = a + b.
pub fn add_forward<T: Float>(_a: &[T], _b: &[T], _y: &mut [T]) { unimplemented!() }
/// acc += x (the backward of add, and gradient accumulation).
pub fn accumulate<T: Float>(_acc: &mut [T], _x: &[T]) { unimplemented!() }
/// y = 0 (the `none` op; its backward contributes nothing).
pub fn fill_zero<T: Float>(_y: &mut [T]) { unimplemented!() }
/// y[n, c] = mean over hw of x[n, c, hw].
pub fn global_avg_pool_forward<T: Float>(_n: usize, _c: usize, _hw: usize, _x: &[T], _y: &mut [T]) { unimplemented!() }
/// dx[n, c, hw] += dy[n, c] / hw.
pub fn global_avg_pool_backward<T: Float>(_n: usize, _c: usize, _hw: usize, _dy: &[T], _dx: &mut [T]) { unimplemented!() }
