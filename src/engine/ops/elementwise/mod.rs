//! Elementwise ops (ReLU, add, accumulate, zero) and the global average pool: memory-bound single
//! passes. CPU face in `cpu.rs`, CUDA face in `elementwise.cu` launched by `launch.rs`, self-test
//! cases in `check.rs`.

pub(crate) mod check;
mod cpu;
pub mod launch;

pub use cpu::*;

use super::batchnorm::{bn_apply, BnGeom};
use super::pool::{avg_pool3_forward, PoolGeom};
use super::{assign_or_add, CpuView};
use crate::engine::cpu_device::store_rounded;
use crate::engine::kernel::Loc;
use crate::engine::Float;

/// The most terms one [`ElementwiseKernel::NodeSum`] adds (the CUDA kernel's arguments).
pub const NODE_SUM_TERMS: usize = 4;

/// A term of a node sum: its tensor, and its batch norm's coefficients when the sum applies it,
/// or (`pool3`) the sum reads the term as the 3x3 average pool of `x` (stride 1, padding 1,
/// count_include_pad false: the NATS-Bench `avg_pool_3x3` edge, computed as it is read): of x
/// normalised first when it has coefficients too (a pool edge after a batch norm the sum applies).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeSumTerm {
    pub x: Loc,
    pub coef: Option<Loc>,
    pub pool3: bool,
}

/// The elementwise kernels.
#[derive(Clone, Debug, PartialEq)]
pub enum ElementwiseKernel {
    /// y = max(x, 0).
    Relu { x: Loc, y: Loc },
    /// dx (+)= dy where y > 0 (y: the ReLU's output).
    ReluBackward { y: Loc, dy: Loc, dx: Loc, accumulate: bool },
    /// y = a + b.
    Add { a: Loc, b: Loc, y: Loc },
    /// acc += x (acc = x without `accumulate`).
    Accumulate { acc: Loc, x: Loc, accumulate: bool },
    /// y = 0.
    Zero { y: Loc },
    /// y = the sum of the terms (2 to [`NODE_SUM_TERMS`]), in order, each [n, c, h, w] and
    /// normalised (or pooled) as it is read (see [`node_sum`] and [`NodeSumTerm`]).
    NodeSum { c: usize, h: usize, w: usize, terms: Vec<NodeSumTerm>, y: Loc },
    /// y [n, c] = the mean over hw of x [n, c, hw].
    GapForward { n: usize, c: usize, hw: usize, x: Loc, y: Loc },
    /// dx [n, c, hw] += dy [n, c] / hw (dx = 0 + that without `accumulate`).
    GapBackward { n: usize, c: usize, hw: usize, dy: Loc, dx: Loc, accumulate: bool },
}

impl ElementwiseKernel {
    pub fn name(&self) -> &'static str {
        match self {
            ElementwiseKernel::Relu { .. } => "relu",
            ElementwiseKernel::ReluBackward { .. } => "relu_backward",
            ElementwiseKernel::Add { .. } => "add",
            ElementwiseKernel::Accumulate { .. } => "accumulate",
            ElementwiseKernel::Zero { .. } => "zero",
            ElementwiseKernel::NodeSum { .. } => "node_sum",
            ElementwiseKernel::GapForward { .. } => "gap_forward",
            ElementwiseKernel::GapBackward { .. } => "gap_backward",
        }
    }

    /// Inputs, then the one output (`acc` of an accumulate is read and written).
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        match self {
            ElementwiseKernel::Relu { x, y } => vec![x, y],
            ElementwiseKernel::ReluBackward { y, dy, dx, .. } => vec![y, dy, dx],
            ElementwiseKernel::Add { a, b, y } => vec![a, b, y],
            ElementwiseKernel::Accumulate { acc, x, .. } => vec![x, acc],
            ElementwiseKernel::Zero { y } => vec![y],
            ElementwiseKernel::NodeSum { terms, y, .. } => {
                let mut v: Vec<&mut Loc> = terms.iter_mut().flat_map(|t| std::iter::once(&mut t.x).chain(t.coef.as_mut())).collect();
                v.push(y);
                v
            }
            ElementwiseKernel::GapForward { x, y, .. } => vec![x, y],
            ElementwiseKernel::GapBackward { dy, dx, .. } => vec![dy, dx],
        }
    }

    pub fn outputs(&self) -> usize {
        1
    }

    pub fn accumulates(&self) -> bool {
        match *self {
            ElementwiseKernel::ReluBackward { accumulate, .. }
            | ElementwiseKernel::Accumulate { accumulate, .. }
            | ElementwiseKernel::GapBackward { accumulate, .. } => accumulate,
            _ => true,
        }
    }

    pub(crate) fn run_cpu<T: Float>(&self, m: &CpuView<T>) {
        match *self {
            ElementwiseKernel::NodeSum { c, h, w, ref terms, y } => {
                // The CPU face is the unfused ops: a term with coefficients is the batch norm's
                // output (applied first), a pooled term the pool into a buffer, each rounded as
                // its space stores it (as the kernel's fear_stored does), then the sum.
                let n = y.len / (c * h * w).max(1);
                let stored = |mut v: Vec<T>, space| {
                    store_rounded(space, &mut v);
                    v
                };
                let materialised: Vec<Option<Vec<T>>> = terms
                    .iter()
                    .map(|t| {
                        let normalised = t.coef.map(|k| {
                            let mut v = vec![T::zero(); t.x.len];
                            bn_apply(&BnGeom { n, c, hw: h * w }, m.r(t.x), m.r(k), &mut v);
                            stored(v, t.x.space)
                        });
                        if !t.pool3 {
                            return normalised;
                        }
                        let mut p = vec![T::zero(); t.x.len];
                        avg_pool3_forward(&PoolGeom { n, c, h, w }, normalised.as_deref().unwrap_or(m.r(t.x)), &mut p);
                        Some(stored(p, t.x.space))
                    })
                    .collect();
                let terms: Vec<SumTerm<T>> = terms.iter().zip(&materialised).map(|(t, v)| (v.as_deref().unwrap_or(m.r(t.x)), None)).collect();
                node_sum(c, h * w, &terms, m.w(y))
            }
            ElementwiseKernel::Relu { x, y } => relu(m.r(x), m.w(y)),
            ElementwiseKernel::ReluBackward { y, dy, dx, accumulate } => relu_backward(m.r(y), m.r(dy), assign_or_add(m.w(dx), accumulate)),
            ElementwiseKernel::Add { a, b, y } => add(m.r(a), m.r(b), m.w(y)),
            ElementwiseKernel::Accumulate { acc, x, accumulate } => self::accumulate(assign_or_add(m.w(acc), accumulate), m.r(x)),
            ElementwiseKernel::Zero { y } => zero(m.w(y)),
            ElementwiseKernel::GapForward { n, c, hw, x, y } => gap_forward(n, c, hw, m.r(x), m.w(y)),
            ElementwiseKernel::GapBackward { n, c, hw, dy, dx, accumulate } => gap_backward(n, c, hw, m.r(dy), assign_or_add(m.w(dx), accumulate)),
        }
    }
}
