//! A kernel launch: one op applied to fixed locations in device memory.
//!
//! A training step is a list of these (the forward kernels, the recorded backward kernels, the
//! optimiser kernels). Every location is fixed when the step is planned, so the same list runs
//! every step on the same buffers: on the CPU a loop over the list, on a GPU a sequence of launches
//! that can be captured once as a CUDA graph and replayed.

use super::cpu::{BnGeom, ConvGeom, CrossGeom, LinearGeom, PoolGeom};

/// The separately allocated regions of a device's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    /// All parameters, one flat buffer in parameter order.
    Params,
    /// The parameters' gradients, laid out exactly like `Params`.
    ParamGrads,
    /// Optimiser momentum, laid out exactly like `Params`.
    Momentum,
    /// BN running statistics, then a few scalars (loss, correct count, learning rate, grad norm).
    State,
    /// Activations, saved tensors and activation gradients, planned with reuse.
    Work,
    /// Not yet placed: `offset` is a virtual-buffer id (only while a step is being planned).
    Virtual,
}

/// A contiguous run of `len` elements at `offset` in `space`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub space: Space,
    pub offset: usize,
    pub len: usize,
}

impl Loc {
    pub fn new(space: Space, offset: usize, len: usize) -> Loc {
        Loc { space, offset, len }
    }
    pub fn end(&self) -> usize {
        self.offset + self.len
    }
    pub fn overlaps(&self, other: &Loc) -> bool {
        self.space == other.space && self.offset < other.end() && other.offset < self.end()
    }
}

/// One op launch. Field meanings follow the CPU function [`super::device`]'s `run_on_cpu` calls
/// for the variant in [`super::cpu`] (forward kernels overwrite, backward kernels accumulate). A
/// backward kernel with an `accumulate` flag adds into its activation gradient `dx` when it is set
/// and assigns it otherwise (`dx = 0 + ...`, the same bits as zeroing first): the planner clears
/// the flag on the first writer of a gradient, which saves a `Zero` launch and a read of `dx`.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    ConvForward {
        g: ConvGeom,
        x: Loc,
        w: Loc,
        y: Loc,
    },
    ConvBackwardInput {
        g: ConvGeom,
        dy: Loc,
        w: Loc,
        dx: Loc,
        accumulate: bool,
    },
    ConvBackwardWeight {
        g: ConvGeom,
        x: Loc,
        dy: Loc,
        dw: Loc,
    },
    BnTrainForward {
        g: BnGeom,
        x: Loc,
        gamma: Loc,
        beta: Loc,
        running_mean: Loc,
        running_var: Loc,
        y: Loc,
        mean: Loc,
        invstd: Loc,
        eps: f64,
        momentum: f64,
    },
    BnEvalForward {
        g: BnGeom,
        x: Loc,
        gamma: Loc,
        beta: Loc,
        running_mean: Loc,
        running_var: Loc,
        y: Loc,
        eps: f64,
    },
    BnBackward {
        g: BnGeom,
        x: Loc,
        dy: Loc,
        gamma: Loc,
        mean: Loc,
        invstd: Loc,
        dx: Option<Loc>,
        dgamma: Option<Loc>,
        dbeta: Option<Loc>,
        accumulate: bool,
    },
    Relu {
        x: Loc,
        y: Loc,
    },
    ReluBackward {
        y: Loc,
        dy: Loc,
        dx: Loc,
        accumulate: bool,
    },
    Add {
        a: Loc,
        b: Loc,
        y: Loc,
    },
    /// acc += x (acc = x without `accumulate`).
    Accumulate {
        acc: Loc,
        x: Loc,
        accumulate: bool,
    },
    /// y = 0.
    Zero {
        y: Loc,
    },
    AvgPool3Forward {
        g: PoolGeom,
        x: Loc,
        y: Loc,
    },
    AvgPool3Backward {
        g: PoolGeom,
        dy: Loc,
        dx: Loc,
    },
    AvgPool2Forward {
        g: PoolGeom,
        x: Loc,
        y: Loc,
    },
    AvgPool2Backward {
        g: PoolGeom,
        dy: Loc,
        dx: Loc,
    },
    GapForward {
        n: usize,
        c: usize,
        hw: usize,
        x: Loc,
        y: Loc,
    },
    GapBackward {
        n: usize,
        c: usize,
        hw: usize,
        dy: Loc,
        dx: Loc,
    },
    LinearForward {
        g: LinearGeom,
        x: Loc,
        w: Loc,
        b: Option<Loc>,
        y: Loc,
    },
    LinearBackward {
        g: LinearGeom,
        x: Loc,
        w: Loc,
        dy: Loc,
        dx: Option<Loc>,
        dw: Option<Loc>,
        db: Option<Loc>,
    },
    /// Softmax probabilities into `probs`; mean loss into `loss` and the top-1 count into `correct`
    /// (both one-element locations). Labels are the device's label buffer (first `n`).
    SoftmaxXentForward {
        n: usize,
        classes: usize,
        logits: Loc,
        probs: Loc,
        loss: Loc,
        correct: Loc,
    },
    /// dlogits += (probs - onehot) / n.
    SoftmaxXentBackward {
        n: usize,
        classes: usize,
        probs: Loc,
        dlogits: Loc,
    },
    /// out = sum of squares of `grads` (one element; the global norm before clipping).
    SumSquares {
        x: Loc,
        out: Loc,
    },
    /// grads *= min(1, max_norm / (sqrt(sum_sq) + 1e-6)) (PyTorch clip_grad_norm_).
    ClipByNorm {
        grads: Loc,
        sum_sq: Loc,
        max_norm: f64,
    },
    /// PyTorch SGD: g += wd*w; buf = m*buf + g; g = g + m*buf (Nesterov) or buf; w -= lr*g.
    /// The learning rate is read from the one-element location `lr`.
    Sgd {
        w: Loc,
        g: Loc,
        buf: Loc,
        lr: Loc,
        momentum: f64,
        weight_decay: f64,
        nesterov: bool,
    },
    /// out = the sum of every element of `x` (one element): a loss that is the sum of the outputs.
    SumAll {
        x: Loc,
        out: Loc,
    },
    /// dx += 1: the backward of `SumAll`, seeding the tape.
    SumAllBackward {
        dx: Loc,
    },
    /// out[c] = 0.5 * mean over n of (sum over hw of x * dy)^2 (x: a layer's output [n, c, hw],
    /// dy: its gradient).
    ChannelFisher {
        n: usize,
        c: usize,
        hw: usize,
        x: Loc,
        dy: Loc,
        out: Loc,
    },
    /// k [n, n] += agreements of the samples' binary codes `x > 0` (x: [n, d], a ReLU's input).
    BinaryCodeGram {
        n: usize,
        d: usize,
        x: Loc,
        k: Loc,
    },
    /// out [c, c] = the channel covariance of x [n, c, hw] over n * hw (AZ-NAS expressivity).
    FeatureCovariance {
        n: usize,
        c: usize,
        hw: usize,
        x: Loc,
        out: Loc,
    },
    /// y = random signs drawn from `seed` (AZ-NAS's cotangent of a cell's output).
    RandomSigns {
        seed: u64,
        y: Loc,
    },
    /// out = the cross-covariance of a cell's input gradient with its output cotangent, then an
    /// identity flag (AZ-NAS trainability; see `cpu::grad_cross_covariance`).
    GradCrossCovariance {
        g: CrossGeom,
        g_in: Loc,
        g_out: Loc,
        out: Loc,
    },
    /// out [d] = each unit's pattern of `x > 0` over the n samples as an integer (SWAP; x: [n, d],
    /// a ReLU's input).
    ActivationPatterns {
        n: usize,
        d: usize,
        x: Loc,
        out: Loc,
    },
}

impl Kernel {
    /// The kernel's name (for profiles and node counts).
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::ConvForward { .. } => "conv_forward",
            Kernel::ConvBackwardInput { .. } => "conv_backward_input",
            Kernel::ConvBackwardWeight { .. } => "conv_backward_weight",
            Kernel::BnTrainForward { .. } => "bn_train_forward",
            Kernel::BnEvalForward { .. } => "bn_eval_forward",
            Kernel::BnBackward { .. } => "bn_backward",
            Kernel::Relu { .. } => "relu",
            Kernel::ReluBackward { .. } => "relu_backward",
            Kernel::Add { .. } => "add",
            Kernel::Accumulate { .. } => "accumulate",
            Kernel::Zero { .. } => "zero",
            Kernel::AvgPool3Forward { .. } => "avg_pool3_forward",
            Kernel::AvgPool3Backward { .. } => "avg_pool3_backward",
            Kernel::AvgPool2Forward { .. } => "avg_pool2_forward",
            Kernel::AvgPool2Backward { .. } => "avg_pool2_backward",
            Kernel::GapForward { .. } => "gap_forward",
            Kernel::GapBackward { .. } => "gap_backward",
            Kernel::LinearForward { .. } => "linear_forward",
            Kernel::LinearBackward { .. } => "linear_backward",
            Kernel::SoftmaxXentForward { .. } => "softmax_xent_forward",
            Kernel::SoftmaxXentBackward { .. } => "softmax_xent_backward",
            Kernel::SumSquares { .. } => "sum_squares",
            Kernel::ClipByNorm { .. } => "clip_by_norm",
            Kernel::Sgd { .. } => "sgd",
            Kernel::SumAll { .. } => "sum_all",
            Kernel::SumAllBackward { .. } => "sum_all_backward",
            Kernel::ChannelFisher { .. } => "channel_fisher",
            Kernel::BinaryCodeGram { .. } => "binary_code_gram",
            Kernel::FeatureCovariance { .. } => "feature_covariance",
            Kernel::RandomSigns { .. } => "random_signs",
            Kernel::GradCrossCovariance { .. } => "grad_cross_covariance",
            Kernel::ActivationPatterns { .. } => "activation_patterns",
        }
    }

    /// Every location the kernel reads or writes, in the variant's field order with the outputs
    /// last: the trailing `output_count(k)` entries (`device.rs`) are the ones written. Used by
    /// the memory planner (lifetimes) and by the devices' overlap checks.
    pub fn locs_mut(&mut self) -> Vec<&mut Loc> {
        use Kernel::*;
        let mut v: Vec<&mut Loc> = Vec::with_capacity(10);
        match self {
            ConvForward { x, w, y, .. } => v.extend([x, w, y]),
            ConvBackwardInput { dy, w, dx, .. } => v.extend([dy, w, dx]),
            ConvBackwardWeight { x, dy, dw, .. } => v.extend([x, dy, dw]),
            BnTrainForward { x, gamma, beta, running_mean, running_var, y, mean, invstd, .. } => {
                v.extend([x, gamma, beta, running_mean, running_var, y, mean, invstd])
            }
            BnEvalForward { x, gamma, beta, running_mean, running_var, y, .. } => v.extend([x, gamma, beta, running_mean, running_var, y]),
            BnBackward { x, dy, gamma, mean, invstd, dx, dgamma, dbeta, .. } => {
                v.extend([x, dy, gamma, mean, invstd]);
                v.extend(dx.as_mut().into_iter().chain(dgamma.as_mut()).chain(dbeta.as_mut()));
            }
            Relu { x, y } => v.extend([x, y]),
            ReluBackward { y, dy, dx, .. } => v.extend([y, dy, dx]),
            Add { a, b, y } => v.extend([a, b, y]),
            Accumulate { acc, x, .. } => v.extend([x, acc]),
            Zero { y } => v.push(y),
            AvgPool3Forward { x, y, .. } | AvgPool2Forward { x, y, .. } => v.extend([x, y]),
            AvgPool3Backward { dy, dx, .. } | AvgPool2Backward { dy, dx, .. } => v.extend([dy, dx]),
            GapForward { x, y, .. } => v.extend([x, y]),
            GapBackward { dy, dx, .. } => v.extend([dy, dx]),
            LinearForward { x, w, b, y, .. } => {
                v.extend([x, w]);
                v.extend(b.as_mut());
                v.push(y);
            }
            LinearBackward { x, w, dy, dx, dw, db, .. } => {
                v.extend([x, w, dy]);
                v.extend(dx.as_mut().into_iter().chain(dw.as_mut()).chain(db.as_mut()));
            }
            SoftmaxXentForward { logits, probs, loss, correct, .. } => v.extend([logits, probs, loss, correct]),
            SoftmaxXentBackward { probs, dlogits, .. } => v.extend([probs, dlogits]),
            SumSquares { x, out } => v.extend([x, out]),
            ClipByNorm { grads, sum_sq, .. } => v.extend([sum_sq, grads]),
            Sgd { w, g, buf, lr, .. } => v.extend([lr, g, w, buf]),
            SumAll { x, out } => v.extend([x, out]),
            SumAllBackward { dx } => v.push(dx),
            ChannelFisher { x, dy, out, .. } => v.extend([x, dy, out]),
            BinaryCodeGram { x, k, .. } => v.extend([x, k]),
            FeatureCovariance { x, out, .. } => v.extend([x, out]),
            RandomSigns { y, .. } => v.push(y),
            GradCrossCovariance { g_in, g_out, out, .. } => v.extend([g_in, g_out, out]),
            ActivationPatterns { x, out, .. } => v.extend([x, out]),
        }
        v
    }

    /// Whether the kernel adds into (rather than assigns) its activation gradient; true for every
    /// kernel without the flag.
    pub fn accumulates(&self) -> bool {
        match *self {
            Kernel::ConvBackwardInput { accumulate, .. }
            | Kernel::BnBackward { accumulate, .. }
            | Kernel::ReluBackward { accumulate, .. }
            | Kernel::Accumulate { accumulate, .. } => accumulate,
            _ => true,
        }
    }

    /// Copies of every location (see [`Kernel::locs_mut`]).
    pub fn locs(&self) -> Vec<Loc> {
        self.clone().locs_mut().into_iter().map(|l| *l).collect()
    }
}
