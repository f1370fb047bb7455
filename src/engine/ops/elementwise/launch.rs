//! The elementwise ops as launches of elementwise.cu: one grid-stride kernel each.

use anyhow::{ensure, Result};

use super::{ElementwiseKernel, NODE_SUM_TERMS};
use crate::engine::cuda::launch::{flag, len, stored_variant, Arg, OnGpu};

impl ElementwiseKernel {
    /// The CUDA kernel [`ElementwiseKernel::launch`] launches: `fear_` + the op's name, its
    /// bfloat16 instantiation where the op's tensors are stored so (`stored_variant`).
    pub fn launch_names(&self) -> Vec<&'static str> {
        let (base, tensor) = match *self {
            ElementwiseKernel::Relu { y, .. } => ("fear_relu", y),
            ElementwiseKernel::ReluBackward { dx, .. } => ("fear_relu_backward", dx),
            ElementwiseKernel::Add { y, .. } => ("fear_add", y),
            ElementwiseKernel::Accumulate { acc, .. } => ("fear_accumulate", acc),
            ElementwiseKernel::Zero { y } => ("fear_zero", y),
            ElementwiseKernel::NodeSum { y, .. } => ("fear_node_sum", y),
            ElementwiseKernel::GapForward { x, .. } => ("fear_gap_forward", x),
            ElementwiseKernel::GapBackward { dx, .. } => ("fear_gap_backward", dx),
        };
        vec![stored_variant(base, tensor)]
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        let name = self.launch_names()[0];
        match *self {
            ElementwiseKernel::Relu { x, y } => on.elementwise(name, y.len, &[on.p(x)?, on.p(y)?, len(y.len)?]),
            ElementwiseKernel::ReluBackward { y, dy, dx, accumulate } => {
                on.elementwise(name, dx.len, &[on.p(y)?, on.p(dy)?, on.p(dx)?, len(dx.len)?, flag(accumulate)])
            }
            ElementwiseKernel::Add { a, b, y } => on.elementwise(name, y.len, &[on.p(a)?, on.p(b)?, on.p(y)?, len(y.len)?]),
            ElementwiseKernel::Accumulate { acc, x, accumulate } => on.elementwise(name, acc.len, &[on.p(acc)?, on.p(x)?, len(acc.len)?, flag(accumulate)]),
            ElementwiseKernel::Zero { y } => on.elementwise(name, y.len, &[on.p(y)?, len(y.len)?]),
            ElementwiseKernel::NodeSum { c, h, w, ref terms, y } => {
                ensure!((2..=NODE_SUM_TERMS).contains(&terms.len()), "a node sum of {} terms (2 to {NODE_SUM_TERMS})", terms.len());
                let mut args = Vec::with_capacity(2 * NODE_SUM_TERMS + 7);
                for i in 0..NODE_SUM_TERMS {
                    let t = terms.get(i);
                    args.extend([on.opt(t.map(|t| t.x))?, on.opt(t.and_then(|t| t.coef))?]);
                }
                // Bit i: term i is read through a 3x3 average pool.
                let pools = terms.iter().enumerate().fold(0, |bits, (i, t)| bits | ((t.pool3 as i32) << i));
                args.extend([Arg::I32(terms.len() as i32), Arg::I32(pools), on.p(y)?, len(y.len)?, len(c)?, len(h)?, len(w)?]);
                on.elementwise(name, y.len, &args)
            }
            ElementwiseKernel::GapForward { n, c, hw, x, y } => on.elementwise(name, n * c, &[on.p(x)?, on.p(y)?, len(n * c)?, len(hw)?]),
            ElementwiseKernel::GapBackward { n, c, hw, dy, dx, accumulate } => {
                on.elementwise(name, n * c * hw, &[on.p(dy)?, on.p(dx)?, len(n * c)?, len(hw)?, flag(accumulate)])
            }
        }
    }
}
