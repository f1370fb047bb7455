//! The linear layer as launches of linear.cu: in FP32 one thread per output element, on tensor
//! cores (TF32, BF16, FP16) one warp per m16n8 tile of the result; the backward is a kernel per
//! gradient asked for, so each thread (or warp) owns the elements it writes.

use anyhow::Result;

use super::LinearKernel;
use crate::engine::cuda::launch::threads::FEAR_MMA_THREADS;
use crate::engine::cuda::launch::{flag, len, Arg, OnGpu};
use crate::engine::precision::Precision;

/// One of the layer's products: its FP32 kernel (a thread per element of the m x n result) and
/// its tensor-core twin (a warp per m16n8 tile, taking the product's operand type after the FP32
/// one's arguments).
struct Product {
    fp32: &'static str,
    tensor: &'static str,
}

const FORWARD: Product = Product { fp32: "fear_linear_forward", tensor: "fear_linear_forward_tensor" };
const INPUT_GRADIENT: Product = Product { fp32: "fear_linear_backward_input", tensor: "fear_linear_backward_input_tensor" };
const WEIGHT_GRADIENT: Product = Product { fp32: "fear_linear_backward_weight", tensor: "fear_linear_backward_weight_tensor" };

impl Product {
    /// The kernel that computes it at `precision`.
    fn kernel(&self, precision: Precision) -> &'static str {
        if precision == Precision::Fp32 {
            self.fp32
        } else {
            self.tensor
        }
    }

    /// Launches that kernel over an `m` x `n` result.
    fn launch(&self, on: &OnGpu, precision: Precision, (m, n): (usize, usize), args: &[Arg]) -> Result<()> {
        match tensor_product(precision) {
            None => on.elementwise(self.fp32, m * n, args),
            Some(product) => on.per_item(self.tensor, tiles(m, n), FEAR_MMA_THREADS, &[args, &[product]].concat()),
        }
    }
}

impl LinearKernel {
    /// The CUDA kernels [`LinearKernel::launch`] launches, in order.
    pub fn launch_names(&self) -> Vec<&'static str> {
        match *self {
            LinearKernel::Forward { precision, .. } => vec![FORWARD.kernel(precision)],
            LinearKernel::Backward { dx, dw, db, precision, .. } => {
                let (input, weight) = (INPUT_GRADIENT.kernel(precision), WEIGHT_GRADIENT.kernel(precision));
                [dx.map(|_| input), dw.map(|_| weight), db.map(|_| "fear_linear_backward_bias")].into_iter().flatten().collect()
            }
        }
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        match *self {
            LinearKernel::Forward { g, x, w, b, y, precision } => {
                let args = [on.p(x)?, on.p(w)?, on.opt(b)?, on.p(y)?, len(g.n)?, len(g.d_in)?, len(g.d_out)?];
                FORWARD.launch(on, precision, (g.n, g.d_out), &args)
            }
            LinearKernel::Backward { g, x, w, dy, dx, dw, db, accumulate, precision } => {
                if let Some(dx) = dx {
                    let args = [on.p(dy)?, on.p(w)?, on.p(dx)?, len(g.n)?, len(g.d_in)?, len(g.d_out)?, flag(accumulate)];
                    INPUT_GRADIENT.launch(on, precision, (g.n, g.d_in), &args)?;
                }
                if let Some(dw) = dw {
                    let args = [on.p(x)?, on.p(dy)?, on.p(dw)?, len(g.n)?, len(g.d_in)?, len(g.d_out)?];
                    WEIGHT_GRADIENT.launch(on, precision, (g.d_out, g.d_in), &args)?;
                }
                if let Some(db) = db {
                    on.elementwise("fear_linear_backward_bias", g.d_out, &[on.p(dy)?, on.p(db)?, len(g.n)?, len(g.d_out)?])?;
                }
                Ok(())
            }
        }
    }
}

/// The tensor-core kernels' `product` argument for `precision` (linear.cu's FearLinearProduct:
/// 0 TF32, 1 BF16, 2 FP16 operands), or None for the FP32 kernels.
fn tensor_product(precision: Precision) -> Option<Arg> {
    match precision {
        Precision::Fp32 => None,
        Precision::Tf32 => Some(Arg::I32(0)),
        Precision::Bf16 => Some(Arg::I32(1)),
        Precision::F16 => Some(Arg::I32(2)),
    }
}

/// The m16n8 tiles of an m x n result: the tensor-core kernels' blocks (one warp each).
fn tiles(m: usize, n: usize) -> usize {
    m.div_ceil(16) * n.div_ceil(8)
}
