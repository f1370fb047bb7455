//! Convolutions (no bias, no groups, square kernel): forward, input gradient, weight gradient.
//! CPU face in `cpu.rs`, CUDA face in `conv.cu` (implicit GEMM) launched by `launch.rs`,
//! self-test cases in `check.rs`.

pub(crate) mod check;
mod cpu;
pub mod launch;
#[cfg(test)]
mod stored_rounding;

pub use cpu::*;

use super::batchnorm::{bn_apply, BnGeom, BnKernel, BnOutput, InputGradient};
use super::elementwise::{relu, relu_backward};
use super::pool::{avg_pool3_backward, PoolGeom};
use super::{assign_or_add, CpuView};
use crate::engine::cpu_device::store_rounded;
use crate::engine::kernel::Loc;
use crate::engine::precision::Precision;
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
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }
    pub fn x_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }
    pub fn w_len(&self) -> usize {
        self.c_out * self.c_in * self.k * self.k
    }
    pub fn y_len(&self) -> usize {
        self.n * self.c_out * self.out_h() * self.out_w()
    }
}

/// A batch norm's backward applied by the convolution whose output it normalises (the GPU plan):
/// the gradients read `dy` (the batch norm's output gradient) as the batch norm's input gradient,
/// 0 + (a*dy + (b*(x - mean) + k)), with `x` the batch norm's input (this convolution's output)
/// and `coef` its backward coefficients (a, b, k, mean) per channel
/// ([`super::batchnorm::bn_backward_coefficients`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnGradient {
    pub x: Loc,
    pub coef: Loc,
}

/// A training batch norm's statistics taken by the convolution whose output it alone normalises
/// (the GPU plan): the forward's epilogue sums each block's share of every channel and a finalize
/// merges them, writing what the batch norm's own statistics pass would ([`BnKernel::TrainForward`]
/// with [`BnOutput::Coefficients`]): its batch mean and invstd, its updated running statistics,
/// and the coefficients its consumer normalises with. One pass over the output fewer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnStatistics {
    pub gamma: Loc,
    pub beta: Loc,
    pub running_mean: Loc,
    pub running_var: Loc,
    pub mean: Loc,
    pub invstd: Loc,
    pub coef: Loc,
    pub eps: f64,
    pub momentum: f64,
}

impl BnStatistics {
    /// The batch norm's own forward over the convolution's output `y` (the CPU face).
    fn forward(&self, g: &ConvGeom, y: Loc) -> BnKernel {
        let BnStatistics { gamma, beta, running_mean, running_var, mean, invstd, coef, eps, momentum } = *self;
        let g = BnGeom { n: g.n, c: g.c_out, hw: g.out_h() * g.out_w() };
        BnKernel::TrainForward { g, x: y, gamma, beta, running_mean, running_var, y: BnOutput::Coefficients(coef), mean, invstd, eps, momentum }
    }

    /// Inputs, then outputs (the running statistics are read and written).
    fn locs_mut(&mut self) -> ([&mut Loc; 2], [&mut Loc; 5]) {
        ([&mut self.gamma, &mut self.beta], [&mut self.running_mean, &mut self.running_var, &mut self.mean, &mut self.invstd, &mut self.coef])
    }
}

/// The second convolution of a sibling pair in a forward: another convolution of the same input
/// (with the same shape but its own output channels), computed by the same launch as one wider
/// GEMM (the GPU plan; item 4 of issue 13): x is read once for both. Its output channels come after
/// the first's in the GEMM, so the first's `c_out` must be a multiple of 8 (a thread's channel
/// group never straddles the two outputs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiblingForward {
    pub c_out: usize,
    pub w: Loc,
    pub y: Loc,
    pub bn: Option<BnStatistics>,
}

/// The second convolution of a sibling pair in a backward (see [`SiblingForward`]): its output
/// gradient `dy` (through its batch norm with `bn`), weights and weight gradient. The pair's input
/// gradients are summed in one GEMM (both output gradients' channels as K: dx written once), and
/// its weight gradients are one GEMM (both weights' rows: x staged once).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiblingBackward {
    pub c_out: usize,
    pub dy: Loc,
    pub bn: Option<BnGradient>,
    pub w: Loc,
    pub dw: Loc,
}

/// Other terms of the activation gradient a two-gradient backward writes, added in its input
/// gradient's epilogue (the GPU plan folds their own kernels into it: [`crate::engine::gradient_terms`]):
/// dx = ((dx, or 0 without `accumulate`) + `added`) + the input gradient + the 3x3 average pool's
/// adjoint of `pooled` (a node-sum gradient reaching dx through a pool edge). In that order, the
/// unfused kernels' (an accumulate, the convolution, the pool's backward), each optional.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DxTerms {
    pub added: Option<Loc>,
    pub pooled: Option<Loc>,
}

impl DxTerms {
    pub fn is_empty(&self) -> bool {
        self.added.is_none() && self.pooled.is_none()
    }
}

/// A weight-gradient sum left pending by a two-gradient backward (the GPU plan defers them:
/// `engine::deferred_sums`): the partials that backward's launch left in slot `slot` of the
/// scratch, to be added into `dw` (the sibling's rows into `sibling_dw`) by a later launch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PendingSum {
    /// The GEMM the partials are of: the first convolution's shape with both convolutions'
    /// output channels ([`ConvKernel::gemm_geom`]).
    pub g: ConvGeom,
    /// The first convolution's output channels: rows from here on are the sibling's.
    pub split: usize,
    pub dw: Loc,
    pub sibling_dw: Option<Loc>,
    pub slot: usize,
}

/// What a two-gradient backward's launch does about weight-gradient sums. The default (no
/// deferral, nothing pending) is the backward as planned: its own reduce launch sums its partials.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WeightSums {
    /// The scratch slot its partials are left in for a later launch to sum ([`PendingSum`]); None:
    /// its own reduce launch sums them.
    pub defer_to: Option<usize>,
    /// An earlier backward's pending sum, performed by extra blocks of this launch.
    pub performs: Option<PendingSum>,
}

/// The convolution kernels. A ReLU whose only consumer is the convolution can be fused into it
/// (the GPU plan does, `PlanOptions::fuse`): the forward and the weight gradient then read
/// `x` through the ReLU (`relu`), and the input gradient, given the ReLU's input as `mask`, is the
/// gradient of the ReLU's input (kept where the mask is positive): one launch and two passes over
/// the activation fewer each way. A batch norm whose output only such fused ReLUs and node sums
/// read is applied by them too (the GPU plan): with `x_norm` (that batch norm's coefficients,
/// [`BnOutput::Coefficients`]), `x` is the batch norm's input and the kernels read its output
/// (x normalised, then through the ReLU; the mask normalised), as the batch norm's apply kernel
/// would have written it: the same floats, without that pass.
#[derive(Clone, Debug, PartialEq)]
pub enum ConvKernel {
    /// y = conv(x, w), or conv(relu(x), w); with `bn`, also that batch norm's statistics of y.
    /// `precision`: what the product's operands (x after the ReLU, and w) are rounded to first
    /// (`Fp32`: nothing; `Tf32`, `Bf16` or `F16`: the tensor-core kernels, `fear_conv_forward_tf32`,
    /// `_bf16mma` or `_f16mma`); the sums stay f32, and y is stored as the tensors are.
    /// With `sibling`, also that convolution of x in the same launch.
    Forward {
        g: ConvGeom,
        x: Loc,
        x_norm: Option<Loc>,
        w: Loc,
        y: Loc,
        relu: bool,
        bn: Option<BnStatistics>,
        precision: Precision,
        sibling: Option<SiblingForward>,
    },
    /// dx (+)= the input gradient of dy (through `bn` with one), where mask > 0 with a mask
    /// (normalised by `mask_norm` with one). `precision`: what the product's operands (dy as read,
    /// after the batch norm's backward, and w) are rounded to first, as the forward's.
    BackwardInput {
        g: ConvGeom,
        dy: Loc,
        bn: Option<BnGradient>,
        w: Loc,
        mask: Option<Loc>,
        mask_norm: Option<Loc>,
        dx: Loc,
        accumulate: bool,
        precision: Precision,
    },
    /// dw += the weight gradient of dy (through `bn` with one), x read as relu(x) with `relu`.
    /// `precision`: what the product's operands (dy as read, and x as read: normalised, after the
    /// ReLU) are rounded to first, as the forward's.
    BackwardWeight { g: ConvGeom, x: Loc, x_norm: Option<Loc>, dy: Loc, bn: Option<BnGradient>, dw: Loc, relu: bool, precision: Precision },
    /// Both gradients in one kernel (the GPU plan, when both are needed): [`ConvKernel::BackwardWeight`]
    /// into `dw`, and [`ConvKernel::BackwardInput`] into `dx` (masked by x with `relu`). With
    /// `sibling`, also that convolution's weight gradient, and its input gradient summed into dx;
    /// with `dx_terms`, those terms of dx too. `sums`: whether the launch leaves its weight
    /// gradients' sum to a later launch, and which earlier one's it performs. The CPU face ignores
    /// them: it writes dw in full (what the deferral and the later sum leave together), and a
    /// performed sum is its deferrer's. `precision`: both products' (and the sibling's), as
    /// [`ConvKernel::BackwardInput`]'s and [`ConvKernel::BackwardWeight`]'s.
    Backward {
        g: ConvGeom,
        x: Loc,
        x_norm: Option<Loc>,
        dy: Loc,
        bn: Option<BnGradient>,
        w: Loc,
        relu: bool,
        dw: Loc,
        dx: Loc,
        accumulate: bool,
        sibling: Option<SiblingBackward>,
        dx_terms: DxTerms,
        sums: WeightSums,
        precision: Precision,
    },
    /// The last pending weight-gradient sum of a backward, in a launch of its own (the GPU plan:
    /// no later backward to perform it). Its CPU face does nothing: the deferring backward's wrote
    /// dw in full.
    WeightSum { sum: PendingSum },
}

impl ConvKernel {
    pub fn name(&self) -> &'static str {
        match self {
            ConvKernel::Forward { .. } => "conv_forward",
            ConvKernel::BackwardInput { .. } => "conv_backward_input",
            ConvKernel::BackwardWeight { .. } => "conv_backward_weight",
            ConvKernel::Backward { .. } => "conv_backward",
            ConvKernel::WeightSum { .. } => "conv_weight_sum",
        }
    }

    /// Inputs, then the outputs.
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        match self {
            ConvKernel::Forward { x, x_norm, w, y, bn, sibling, .. } => {
                let (mut ins, mut outs) = (vec![x, w], vec![y]);
                ins.extend(x_norm.as_mut());
                if let Some(bn) = bn {
                    let (i, o) = bn.locs_mut();
                    ins.extend(i);
                    outs.extend(o);
                }
                if let Some(s) = sibling {
                    ins.push(&mut s.w);
                    outs.push(&mut s.y);
                    if let Some(bn) = &mut s.bn {
                        let (i, o) = bn.locs_mut();
                        ins.extend(i);
                        outs.extend(o);
                    }
                }
                ins.into_iter().chain(outs).collect()
            }
            ConvKernel::BackwardInput { dy, bn, w, mask, mask_norm, dx, .. } => {
                let mut v = vec![dy];
                v.extend(bn.as_mut().into_iter().flat_map(|b| [&mut b.x, &mut b.coef]));
                v.push(w);
                v.extend(mask.as_mut().into_iter().chain(mask_norm.as_mut()));
                v.push(dx);
                v
            }
            ConvKernel::BackwardWeight { x, x_norm, dy, bn, dw, .. } => {
                let mut v = vec![x];
                v.extend(x_norm.as_mut());
                v.push(dy);
                v.extend(bn.as_mut().into_iter().flat_map(|b| [&mut b.x, &mut b.coef]));
                v.push(dw);
                v
            }
            ConvKernel::Backward { x, x_norm, dy, bn, w, dw, dx, sibling, dx_terms, sums, .. } => {
                let mut v = vec![x];
                v.extend(x_norm.as_mut());
                v.push(dy);
                v.extend(bn.as_mut().into_iter().flat_map(|b| [&mut b.x, &mut b.coef]));
                v.push(w);
                v.extend(dx_terms.added.as_mut().into_iter().chain(dx_terms.pooled.as_mut()));
                match sibling {
                    None => v.extend([dw, dx]),
                    Some(s) => {
                        v.push(&mut s.dy);
                        v.extend(s.bn.as_mut().into_iter().flat_map(|b| [&mut b.x, &mut b.coef]));
                        v.extend([&mut s.w, dw, &mut s.dw, dx]);
                    }
                }
                // The pending sum it performs writes (adds into) that backward's weight gradients.
                v.extend(sums.performs.as_mut().into_iter().flat_map(PendingSum::dws_mut));
                v
            }
            ConvKernel::WeightSum { sum } => sum.dws_mut().collect(),
        }
    }

    pub fn outputs(&self) -> usize {
        // y and its batch norm's 5, per convolution of the forward; dw per convolution and dx.
        let forward = |bn: &Option<BnStatistics>| 1 + 5 * bn.is_some() as usize;
        match self {
            ConvKernel::Forward { bn, sibling, .. } => forward(bn) + sibling.as_ref().map_or(0, |s| forward(&s.bn)),
            ConvKernel::Backward { sibling, sums, .. } => 2 + sibling.is_some() as usize + sums.performs.map_or(0, |p| p.dws()),
            ConvKernel::WeightSum { sum } => sum.dws(),
            _ => 1,
        }
    }

    /// The (batch, channel, height, width) tensors it reads or writes (x, y, dy, dx, the mask, a
    /// batch norm's x, dx's terms, the sibling's): one storage for all (f32, or bfloat16 in
    /// `Space::Half`), the type its CUDA kernel is instantiated over. Weights, their gradients and
    /// batch-norm statistics and coefficients stay f32.
    pub fn tensors(&self) -> Vec<Loc> {
        let bn_x = |bn: Option<BnGradient>| bn.map(|b| b.x);
        let found: Vec<Option<Loc>> = match *self {
            ConvKernel::Forward { x, y, sibling, .. } => vec![Some(x), Some(y), sibling.map(|s| s.y)],
            ConvKernel::BackwardInput { dy, bn, mask, dx, .. } => vec![Some(dy), bn_x(bn), mask, Some(dx)],
            ConvKernel::BackwardWeight { x, dy, bn, .. } => vec![Some(x), Some(dy), bn_x(bn)],
            ConvKernel::Backward { x, dy, bn, dx, sibling, dx_terms, .. } => {
                let (sibling_dy, sibling_bn_x) = (sibling.map(|s| s.dy), sibling.and_then(|s| bn_x(s.bn)));
                vec![Some(x), Some(dy), bn_x(bn), Some(dx), dx_terms.added, dx_terms.pooled, sibling_dy, sibling_bn_x]
            }
            ConvKernel::WeightSum { .. } => vec![],
        };
        found.into_iter().flatten().collect()
    }

    pub fn accumulates(&self) -> bool {
        match *self {
            ConvKernel::BackwardInput { accumulate, .. } | ConvKernel::Backward { accumulate, .. } => accumulate,
            _ => true,
        }
    }

    pub(crate) fn run_cpu<T: Float>(&self, m: &CpuView<T>) {
        match *self {
            ConvKernel::Forward { g, x, x_norm, w, y, relu, bn, precision, sibling } => {
                // The kernel's rounding points: x after the ReLU, and w, just before the product.
                let x_in = relu_if(normalised(m, &g, x, x_norm), relu);
                conv_forward(&g, &precision.round_all(x_in), &precision.round_all(m.r(w).into()), m.w(y));
                if let Some(bn) = bn {
                    // The statistics of y as stored (the kernel's epilogue takes them so).
                    store_rounded(y.space, m.w(y));
                    bn.forward(&g, y).run_cpu(m);
                }
                if let Some(s) = sibling {
                    // The sibling: the same forward of x on its own weights.
                    let g = ConvGeom { c_out: s.c_out, ..g };
                    ConvKernel::Forward { g, x, x_norm, w: s.w, y: s.y, relu, bn: s.bn, precision, sibling: None }.run_cpu(m);
                }
            }
            ConvKernel::BackwardInput { g, dy, bn, w, mask: None, dx, accumulate, precision, .. } => {
                input_gradient(m, &g, dy, bn, w, precision, assign_or_add(m.w(dx), accumulate))
            }
            ConvKernel::BackwardInput { g, dy, bn, w, mask: Some(mask), mask_norm, dx, accumulate, precision } => {
                // The unfused pair: the convolution's input gradient into a zeroed buffer, then
                // the ReLU's backward (relu(mask) > 0 exactly where mask > 0).
                let mut t = vec![T::zero(); g.x_len()];
                input_gradient(m, &g, dy, bn, w, precision, &mut t);
                relu_backward(&normalised(m, &g, mask, mask_norm), &t, assign_or_add(m.w(dx), accumulate));
            }
            ConvKernel::BackwardWeight { g, x, x_norm, dy, bn, dw, relu, precision } => {
                // The kernel's rounding points: x as read (normalised, after the ReLU), and dy as
                // read (after the batch norm's backward), just before the product.
                let x_in = precision.round_all(relu_if(normalised(m, &g, x, x_norm), relu));
                conv_backward_weight(&g, &x_in, &precision.round_all(through_bn(m, &g, dy, bn)), m.w(dw))
            }
            ConvKernel::Backward { sibling: None, dx_terms, .. } if dx_terms.is_empty() => {
                let (weight, input) = self.halves();
                weight.run_cpu(m);
                input.run_cpu(m);
            }
            ConvKernel::Backward { g, x, x_norm, dy, bn, w, relu, dw, dx, accumulate, sibling, dx_terms, precision, .. } => {
                ConvKernel::BackwardWeight { g, x, x_norm, dy, bn, dw, relu, precision }.run_cpu(m);
                // The input gradient (with a sibling, the two summed) into a zeroed buffer.
                let mut t = vec![T::zero(); g.x_len()];
                input_gradient(m, &g, dy, bn, w, precision, &mut t);
                if let Some(s) = sibling {
                    let gs = ConvGeom { c_out: s.c_out, ..g };
                    ConvKernel::BackwardWeight { g: gs, x, x_norm, dy: s.dy, bn: s.bn, dw: s.dw, relu, precision }.run_cpu(m);
                    input_gradient(m, &gs, s.dy, s.bn, s.w, precision, &mut t);
                }
                // dx's terms in the kernel's order: added, the input gradient (masked by x with
                // a fused ReLU), the pooled term's adjoint; stored as bfloat16, dx is rounded once,
                // after the last (by the device, as the kernel's one store does).
                let out = assign_or_add(m.w(dx), accumulate);
                if let Some(a) = dx_terms.added {
                    out.iter_mut().zip(m.r(a)).for_each(|(d, v)| *d = *d + *v);
                }
                match relu {
                    true => relu_backward(&normalised(m, &g, x, x_norm), &t, out),
                    false => out.iter_mut().zip(&t).for_each(|(d, v)| *d = *d + *v),
                }
                if let Some(p) = dx_terms.pooled {
                    avg_pool3_backward(&PoolGeom { n: g.n, c: g.c_in, h: g.h, w: g.w }, m.r(p), out);
                }
            }
            ConvKernel::WeightSum { .. } => {}
        }
    }

    /// `self` with `later`, a forward of the same input planned after it, as its sibling (one
    /// launch where `later` would have run at `self`'s place: the planner checks it may move up).
    /// None unless both are single forwards of the same input, ReLU, precision and shape but
    /// their output channels, both or neither take batch-norm statistics, and `self`'s output
    /// channels are whole groups of 8 (conv.cu's split of the forward's N).
    pub fn with_later_sibling(&self, later: &ConvKernel) -> Option<ConvKernel> {
        let ConvKernel::Forward { g, x, x_norm, w, y, relu, bn, precision, sibling: None } = *self else { return None };
        let ConvKernel::Forward { g: g2, x: x2, x_norm: x_norm2, w: w2, y: y2, relu: relu2, bn: bn2, precision: precision2, sibling: None } = *later else {
            return None;
        };
        let same =
            x == x2 && x_norm == x_norm2 && relu == relu2 && precision == precision2 && bn.is_some() == bn2.is_some() && ConvGeom { c_out: g.c_out, ..g2 } == g;
        let whole_groups = g.c_out % 8 == 0 && g.y_len() > 0;
        let sibling = SiblingForward { c_out: g2.c_out, w: w2, y: y2, bn: bn2 };
        (same && whole_groups).then_some(ConvKernel::Forward { g, x, x_norm, w, y, relu, bn, precision, sibling: Some(sibling) })
    }

    /// `self` (a two-gradient backward) with `earlier`, one of a sibling planned before it, as
    /// its sibling (one launch at `self`'s place: the planner checks `earlier` may move down).
    /// None unless both compute both gradients of convolutions of the same input (same ReLU and
    /// shape but their output channels, and at the same precision) into the same dx, which `self` adds to (it comes after
    /// `earlier`'s write, or whatever wrote first); the pair writes dx in `earlier`'s mode.
    pub fn with_earlier_sibling(&self, earlier: &ConvKernel) -> Option<ConvKernel> {
        let ConvKernel::Backward { g, x, x_norm, dy, bn, w, relu, dw, dx, accumulate: true, sibling: None, dx_terms, sums, precision } = *self else {
            return None;
        };
        let no_terms = dx_terms.is_empty();
        let ConvKernel::Backward {
            g: g1,
            x: x1,
            x_norm: x_norm1,
            dy: dy1,
            bn: bn1,
            w: w1,
            relu: relu1,
            dw: dw1,
            dx: dx1,
            accumulate,
            sibling: None,
            dx_terms: DxTerms { added: None, pooled: None },
            sums: sums1,
            precision: precision1,
        } = *earlier
        else {
            return None;
        };
        let same = x == x1
            && x_norm == x_norm1
            && relu == relu1
            && precision == precision1
            && dx == dx1
            && ConvGeom { c_out: g.c_out, ..g1 } == g
            && g.x_len() > 0
            && g.w_len() > 0
            && g1.w_len() > 0;
        let unsummed = sums == WeightSums::default() && sums1 == WeightSums::default();
        let sibling = SiblingBackward { c_out: g1.c_out, dy: dy1, bn: bn1, w: w1, dw: dw1 };
        (same && no_terms && unsummed).then_some(ConvKernel::Backward {
            g,
            x,
            x_norm,
            dy,
            bn,
            w,
            relu,
            dw,
            dx,
            accumulate,
            sibling: Some(sibling),
            dx_terms,
            sums,
            precision,
        })
    }

    /// `self` (a two-gradient backward, neither gradient empty, not yet deferring) with its weight
    /// gradients' partials left in scratch slot `slot`, and the sum it so leaves pending.
    pub fn deferring_to(&self, slot: usize) -> Option<(ConvKernel, PendingSum)> {
        let ConvKernel::Backward { g, dw, sibling, sums, .. } = *self else { return None };
        if g.x_len() == 0 || g.w_len() == 0 || sums.defer_to.is_some() {
            return None;
        }
        let sum = PendingSum { g: ConvKernel::gemm_geom(&g, sibling.map(|s| s.c_out)), split: g.c_out, dw, sibling_dw: sibling.map(|s| s.dw), slot };
        Some((self.with_sums(WeightSums { defer_to: Some(slot), ..sums }), sum))
    }

    /// `self` (a two-gradient backward, neither gradient empty, performing no sum yet) also
    /// performing `sum`, which an earlier backward left in the other slot than its own partials'.
    pub fn performing(&self, sum: PendingSum) -> Option<ConvKernel> {
        let ConvKernel::Backward { g, sums, .. } = *self else { return None };
        let apart = sums.defer_to != Some(sum.slot);
        (g.x_len() > 0 && g.w_len() > 0 && sums.performs.is_none() && apart).then(|| self.with_sums(WeightSums { performs: Some(sum), ..sums }))
    }

    fn with_sums(&self, new: WeightSums) -> ConvKernel {
        let mut k = self.clone();
        if let ConvKernel::Backward { sums, .. } = &mut k {
            *sums = new;
        }
        k
    }

    /// The pair's GEMM: the first convolution's shape with both convolutions' output channels.
    pub fn gemm_geom(g: &ConvGeom, sibling_c_out: Option<usize>) -> ConvGeom {
        ConvGeom { c_out: g.c_out + sibling_c_out.unwrap_or(0), ..*g }
    }

    /// A [`ConvKernel::Backward`] as its two gradients' kernels (weight, input).
    pub fn halves(&self) -> (ConvKernel, ConvKernel) {
        let ConvKernel::Backward {
            g,
            x,
            x_norm,
            dy,
            bn,
            w,
            relu,
            dw,
            dx,
            accumulate,
            sibling: None,
            dx_terms: DxTerms { added: None, pooled: None },
            precision,
            ..
        } = *self
        else {
            unreachable!("only the two-gradient kernel of one convolution has halves")
        };
        let weight = ConvKernel::BackwardWeight { g, x, x_norm, dy, bn, dw, relu, precision };
        let (mask, mask_norm) = (relu.then_some(x), x_norm.filter(|_| relu));
        (weight, ConvKernel::BackwardInput { g, dy, bn, w, mask, mask_norm, dx, accumulate, precision })
    }
}

impl PendingSum {
    /// The weight gradients it adds into: dw, then the sibling's.
    fn dws_mut(&mut self) -> impl Iterator<Item = &mut Loc> {
        std::iter::once(&mut self.dw).chain(self.sibling_dw.as_mut())
    }

    fn dws(&self) -> usize {
        1 + self.sibling_dw.is_some() as usize
    }
}

/// out += the input gradient of dy (through `bn` with one) by w, both operands rounded to
/// `precision` first: the kernels' rounding points (dy as read, and w, as staged).
fn input_gradient<T: Float>(m: &CpuView<T>, g: &ConvGeom, dy: Loc, bn: Option<BnGradient>, w: Loc, precision: Precision, out: &mut [T]) {
    let w = precision.round_all(std::borrow::Cow::Borrowed(m.r(w)));
    conv_backward_input(g, &precision.round_all(through_bn(m, g, dy, bn)), &w, out)
}

/// `x`, or relu(x) in a new buffer: the CPU face of a fused ReLU is the unfused pair.
fn relu_if<T: Float>(x: std::borrow::Cow<'_, [T]>, apply: bool) -> std::borrow::Cow<'_, [T]> {
    if !apply {
        return x;
    }
    let mut y = vec![T::zero(); x.len()];
    relu(&x, &mut y);
    std::borrow::Cow::Owned(y)
}

/// `x`, or with a batch norm's coefficients `norm` its output (the apply kernel's CPU face, into
/// a new buffer, rounded as that kernel would store it): what a convolution reads when it applies
/// the batch norm.
fn normalised<'a, T: Float>(m: &'a CpuView<T>, g: &ConvGeom, x: Loc, norm: Option<Loc>) -> std::borrow::Cow<'a, [T]> {
    let Some(coef) = norm else { return std::borrow::Cow::Borrowed(m.r(x)) };
    let mut y = vec![T::zero(); x.len];
    bn_apply(&BnGeom { n: g.n, c: g.c_in, hw: g.h * g.w }, m.r(x), m.r(coef), &mut y);
    store_rounded(x.space, &mut y);
    std::borrow::Cow::Owned(y)
}

/// The output gradient `dy`, or with a batch norm's backward applied by the convolution, the
/// batch norm's input gradient from it (the unfused batch norm's apply, in a new buffer, rounded
/// as it would store it: like dy).
fn through_bn<'a, T: Float>(m: &'a CpuView<T>, g: &ConvGeom, dy: Loc, bn: Option<BnGradient>) -> std::borrow::Cow<'a, [T]> {
    let Some(BnGradient { x, coef }) = bn else { return std::borrow::Cow::Borrowed(m.r(dy)) };
    let (dy_at, dy, x, k) = (dy, m.r(dy), m.r(x), m.r(coef));
    let plane = g.out_h() * g.out_w();
    let grad = (0..dy.len()).map(|i| {
        let ch = 4 * (i / plane.max(1) % g.c_out.max(1));
        T::zero() + InputGradient::from_coefficients(&k[ch..ch + 4]).at(dy[i], x[i])
    });
    let mut grad: Vec<T> = grad.collect();
    store_rounded(dy_at.space, &mut grad);
    std::borrow::Cow::Owned(grad)
}
