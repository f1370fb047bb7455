//! 2-D convolution (no bias, no groups, square kernel): forward, input gradient, weight gradient.
use crate::engine::Float;

/// Shape of one convolution: input [n, c_in, h, w], weight [c_out, c_in, k, k], output
/// [n, c_out, out_h, out_w] with `out = (in + 2*pad - k) / stride + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvGeom {
    pub fn out_h(&self) -> usize { (self.h + 2 * self.pad - self.k) / self.stride + 1 }
    pub fn out_w(&self) -> usize { (self.w + 2 * self.pad - self.k) / self.stride + 1 }
    pub fn x_len(&self) -> usize { self.n * self.c_in * self.h * self.w }
    pub fn w_len(&self) -> usize { self.c_out * self.c_in * self.k * self.k }
    pub fn y_len(&self) -> usize { self.n * self.c_out * self.out_h() * self.out_w() }
}

/// y = conv(x, w).
pub fn conv2d_forward<T: Float>(_g: &ConvGeom, _x: &[T], _w: &[T], _y: &mut [T]) { unimplemented!() }
/// dx += conv_transpose(dy, w).
pub fn conv2d_backward_input<T: Float>(_g: &ConvGeom, _dy: &[T], _w: &[T], _dx: &mut [T]) { unimplemented!() }
/// dw += sum over the batch of dy (x) x.
pub fn conv2d_backward_weight<T: Float>(_g: &ConvGeom, _x: &[T], _dy: &[T], _dw: &mut [T]) { unimplemented!() }
