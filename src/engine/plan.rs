//! The planner: lowers a [`Graph`] to the kernels of one step, and plans its memory.
//!
//! This is where the autograd tape lives. Walking the graph forward, every value learns whether it
//! needs a gradient (it depends on a trainable parameter, or on the input when asked). Walking it
//! backward, only nodes whose output needs a gradient are recorded: their backward kernels are the
//! tape. Frozen parameters, and everything computed only from them, record nothing, keep no saved
//! activations, and backward stops at the first trainable layer.
//!
//! Backward kernels add into their gradients (`dx +=`), so a value with several consumers sums
//! their contributions. The first writer of an activation gradient in plan order (which is
//! execution order) runs in assign mode instead (`dx = 0 + ...`: the same bits as a `Zero` kernel
//! before it), so gradients need no zeroing pass; a gradient only read (never written) is zeroed.
//! A term of a node sum whose only consumer is that sum takes the sum's gradient buffer as its
//! own (the gradient of a sum term is the sum's gradient): no copy at all.
//!
//! Memory: every activation, saved tensor and activation gradient is a virtual buffer with a
//! lifetime (first to last kernel that touches it); buffers whose lifetimes do not overlap share
//! space in one `Work` region. Forward-only values (all of a frozen prefix) are recycled at once;
//! values the tape reads stay alive into backward, and those are the step's saved bytes. The
//! result is a fixed kernel list over fixed locations, the same every step.

use super::device::MemoryLayout;
use super::graph::{Graph, Op, Source, ValueId};
use super::kernel::{Kernel, Loc, Space};
use super::loss_scale::{self, LossScaling};
use super::ops::batchnorm::merge_batch_norm_backwards;
use super::ops::elementwise::{NodeSumTerm, NODE_SUM_TERMS};
use super::ops::{
    BnGeom, BnGradient, BnKernel, BnOutput, BnStatistics, ConvGeom, ConvKernel, CrossGeom, DxTerms, ElementwiseKernel, FeatureProbeKernel, LinearGeom,
    LinearKernel, LossKernel, OptimKernel, PoolGeom, PoolKernel, ProbeKernel, WeightSums,
};
use super::precision::Precision;

/// What kind of step to plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanOptions {
    /// Train mode: BN uses batch statistics (and updates its running ones), and a backward pass
    /// and an SGD update are planned for the trainable parameters. Otherwise forward only with
    /// BN in eval mode.
    pub train: bool,
    /// Also compute the gradient of the loss with respect to the input batch.
    pub input_grad: bool,
    /// Clip the global gradient norm to this value before the update.
    pub grad_clip: Option<f64>,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// Also compute, during backward, the Fisher term of every conv and linear output
    /// ([`ProbeKernel::ChannelFisher`]; read from [`Program::fisher`]).
    pub fisher: bool,
    /// Also accumulate, during forward, the Gram matrix of the binary codes of every ReLU's
    /// input ([`ProbeKernel::BinaryCodeGram`]; read from [`Program::code_gram`]).
    pub relu_codes: bool,
    /// AZ-NAS's probes of the graph's features, the cotangents drawn from this seed: during
    /// forward the channel covariance of every feature ([`FeatureProbeKernel::FeatureCovariance`]); during
    /// backward each cell's output gradient is replaced by random signs ([`FeatureProbeKernel::RandomSigns`])
    /// so that its input gradient is that cell's own vector-Jacobian product, whose
    /// cross-covariance with the signs is kept ([`FeatureProbeKernel::GradCrossCovariance`]). Read from
    /// [`Program::feature_cov`] and [`Program::cell_cross`].
    pub cell_probes: Option<u64>,
    /// MeCo's probe: during forward, the channel covariance of the first sample of every tapped
    /// value ([`Graph::taps`]; read from [`Program::tap_cov`]).
    pub taps: bool,
    /// SWAP's probe: during forward, every ReLU input's sample-wise activation patterns
    /// ([`FeatureProbeKernel::ActivationPatterns`]; read from [`Program::relu_patterns`]).
    pub relu_patterns: bool,
    /// Fuse ops: each ReLU whose only consumer is a convolution into it (see [`ConvKernel`]: one
    /// launch and two passes over the activation fewer in each direction); each node sum of
    /// up to [`NODE_SUM_TERMS`] terms into one kernel; a batch norm read only by node sums and
    /// fused ReLUs into its readers, which apply it as they read ([`ElementwiseKernel::NodeSum`],
    /// `ConvKernel`'s `x_norm`, [`BnOutput::Coefficients`]); a batch norm that
    /// alone reads a convolution's output into that convolution: its training statistics taken in
    /// the forward's epilogue ([`BnStatistics`]), its backward applied as the gradients load
    /// ([`BnGradient`]); then whole kernels into fewer launches (`merge_launches`: sibling
    /// convolutions, gradient terms, batch-norm pairs, deferred weight-gradient sums). The same
    /// floats, up to the order the statistics and the sibling pair's input gradients are summed
    /// in. A
    /// session fuses only on a device that does ([`crate::engine::Device::fuses`]: a GPU; the
    /// CPU runs the unfused plan); on by default, off to plan a GPU step unfused. Ignored under
    /// the probes, which read ReLU values.
    pub fuse: bool,
    /// What the convolutions' and the classifier's forward products round their operands to
    /// ([`ConvKernel::Forward`], [`LinearKernel::Forward`]): `Fp32` (none, the default), `Tf32`,
    /// `Bf16` or `F16` (the tensor-core kernels on the GPU, F16's on `mma.sync.m8n8k4`; the same
    /// rounding on the CPU). Their gradient products round alike ([`ConvKernel::Backward`] and its
    /// halves, [`LinearKernel::Backward`]).
    pub conv_precision: Precision,
    /// What the step stores its activations and activation gradients in (the tensors with a
    /// batch, channels and positions; per-channel statistics, the classifier's values, the loss,
    /// parameters, their gradients and momentum stay f32): `Fp32` (the default) in `Work`, `Bf16`
    /// in [`Space::Half`], each value rounded to a bfloat16 where a kernel stores it, or `F16` in
    /// [`Space::HalfF16`], each rounded to an IEEE half.
    pub storage: Precision,
    /// Dynamic loss scaling ([`crate::engine::loss_scale`]): the loss gradient multiplied by the
    /// scale kept in `Space::State`, the parameter gradients unscaled and checked before the
    /// update, a step with a non-finite one skipped. `--precision fp16` turns it on (its
    /// activation gradients would underflow without it); None (the default) plans none of it.
    pub loss_scaling: Option<LossScaling>,
}

impl Default for PlanOptions {
    /// The NATS-Bench recipe: SGD momentum 0.9, Nesterov, weight decay 5e-4, no clipping.
    fn default() -> Self {
        PlanOptions {
            train: true,
            input_grad: false,
            grad_clip: None,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: true,
            fisher: false,
            relu_codes: false,
            cell_probes: None,
            taps: false,
            relu_patterns: false,
            fuse: true,
            conv_precision: Precision::Fp32,
            storage: Precision::Fp32,
            loss_scaling: None,
        }
    }
}

impl PlanOptions {
    /// These options at a run's `--precision`: `fp32` stores and multiplies in f32; `tf32`
    /// rounds the operands of the convolutions' and the classifier's products (forward and both
    /// gradients) to TF32 (f32 storage); `bf16` stores the activations and activation gradients
    /// as bfloat16 ([`PlanOptions::storage`]) and rounds the same products' operands to bfloat16
    /// (their tensor-core kernels); `fp16` (the V100's mode) stores them as IEEE half, with
    /// dynamic loss scaling ([`PlanOptions::loss_scaling`], PyTorch's defaults), and rounds the
    /// convolutions' and the classifier's products' operands (forward and both gradients) to IEEE
    /// half (sm_70's `mma.m8n8k4`).
    pub fn at_precision(self, precision: Precision) -> anyhow::Result<PlanOptions> {
        let (conv_precision, storage) = match precision {
            Precision::Fp32 => (Precision::Fp32, Precision::Fp32),
            Precision::Tf32 => (Precision::Tf32, Precision::Fp32),
            Precision::Bf16 => (Precision::Bf16, Precision::Bf16),
            Precision::F16 => (Precision::F16, Precision::F16),
        };
        let loss_scaling = (precision == Precision::F16).then(LossScaling::default);
        Ok(PlanOptions { conv_precision, storage, loss_scaling, ..self })
    }
}

/// Where every step of `graph` keeps loss scaling's state ([`Program::loss_scale`]).
pub fn loss_scale_loc(graph: &Graph) -> Loc {
    Scalars::after(graph.state_len()).loss_scale
}

/// One planned step: its kernels, its memory layout, and where to find its inputs and outputs.
#[derive(Clone, Debug)]
pub struct Program {
    pub batch: usize,
    pub forward: Vec<Kernel>,
    /// The tape: the recorded backward kernels, in execution order.
    pub backward: Vec<Kernel>,
    /// Gradient clipping and the SGD update of the trainable parameters.
    pub update: Vec<Kernel>,
    pub layout: MemoryLayout,
    pub input: Loc,
    pub logits: Loc,
    pub loss: Loc,
    pub correct: Loc,
    pub lr: Loc,
    pub grad_sum_sq: Loc,
    /// Loss scaling's state ([`crate::engine::loss_scale::SLOTS`] slots of `Space::State`), kept
    /// whether the step scales or not.
    pub loss_scale: Loc,
    pub input_grad: Option<Loc>,
    /// Per conv or linear layer whose output got a gradient (with `fisher`): the index of its
    /// weight in `graph.params` and its per-output-channel Fisher term, `[c_out]`.
    pub fisher: Vec<(usize, Loc)>,
    /// With `relu_codes`: the `[batch, batch]` Gram matrix of the ReLU input codes.
    pub code_gram: Option<Loc>,
    /// With `cell_probes`: per graph feature, its channel covariance `[c, c]`.
    pub feature_cov: Vec<Loc>,
    /// With `cell_probes` and a backward pass: per cell j >= 1 (features j - 1 to j), its
    /// cross-covariance matrix and identity flag, or None when the cell is the same value as its
    /// input (an identity cell).
    pub cell_cross: Vec<Option<(CrossGeom, Loc)>>,
    /// With `taps`: per tap, the channel covariance `[c, c]` of its first sample and how many
    /// modules output it.
    pub tap_cov: Vec<(Loc, usize)>,
    /// With `relu_patterns`: per ReLU, its units' activation patterns `[d]`.
    pub relu_patterns: Vec<Loc>,
    /// Graph nodes with a recorded backward.
    pub backward_nodes: usize,
    /// Bytes of activations kept alive from forward into backward, as a GPU stores them (4 an
    /// element in `Work`, 2 in `Half`).
    pub saved_bytes: usize,
}

/// Plans a step of `graph` in which the parameters with `trainable[p]` get gradients and updates.
pub fn plan(graph: &Graph, trainable: &[bool], opts: &PlanOptions) -> Program {
    assert_eq!(trainable.len(), graph.params.len(), "one trainable flag per parameter");
    let mut p = Planner::new(graph, trainable, opts);
    if opts.relu_codes {
        let n = graph.batch();
        let k = p.vbuf(n * n, BufKind::Activation);
        p.kernels.push(Kernel::Elementwise(ElementwiseKernel::Zero { y: k }));
        p.code_gram = Some(k);
    }
    for i in 0..graph.nodes.len() {
        p.forward_node(i);
    }
    if opts.cell_probes.is_some() {
        p.push_feature_covariances();
    }
    if opts.taps {
        p.push_tap_covariances();
    }
    let n_forward = p.kernels.len();
    let mut backward_nodes = 0;
    if opts.train && p.requires_grad[graph.loss.0] {
        p.kernels.push(Kernel::Elementwise(ElementwiseKernel::Zero { y: Loc::new(Space::ParamGrads, 0, graph.param_len()) }));
        if opts.cell_probes.is_some() {
            p.cell_cross = vec![None; graph.features.len().saturating_sub(1)];
        }
        for i in (0..graph.nodes.len()).rev() {
            if let Some(seed) = opts.cell_probes {
                p.push_cell_probes(i, seed);
            }
            backward_nodes += p.backward_node(i) as usize;
        }
    }
    // An input the loss does not depend on (a disconnected cell) has a zero gradient.
    let input_grad = (opts.input_grad && opts.train).then(|| p.grad(graph.input));
    let cross = p.cell_cross.iter().flatten().map(|c| c.1);
    let taps = p.tap_cov.iter().map(|t| t.0);
    let patterns = p.relu_patterns.iter().copied();
    let probes = p.fisher.iter().map(|f| f.1).chain(p.code_gram).chain(p.feature_cov.iter().copied()).chain(cross).chain(taps).chain(patterns);
    let pinned: Vec<Loc> = [Some(p.acts[graph.logits.0].unwrap()), input_grad].into_iter().flatten().chain(probes).collect();
    let mut kernels = std::mem::take(&mut p.kernels);
    let n_forward = if opts.fuse && !probed(opts) { merge_launches(&mut kernels, n_forward) } else { n_forward };
    let placed = place_buffers(&mut kernels, &p.vbufs, p.acts[graph.input.0].unwrap(), &pinned, n_forward, Space::for_tensors(opts.storage));
    let backward = kernels.split_off(n_forward);
    let update = if opts.train { update_kernels(graph, trainable, opts, &p.scalars) } else { Vec::new() };
    Program {
        batch: graph.batch(),
        forward: kernels,
        backward,
        update,
        layout: MemoryLayout { params: graph.param_len(), state: p.scalars.end, work: placed.work_len, half: placed.half_len, labels: graph.batch() },
        input: placed.resolve(p.acts[graph.input.0].unwrap()),
        logits: placed.resolve(p.acts[graph.logits.0].unwrap()),
        loss: p.scalars.loss,
        correct: p.scalars.correct,
        lr: p.scalars.lr,
        grad_sum_sq: p.scalars.grad_sum_sq,
        loss_scale: p.scalars.loss_scale,
        input_grad: input_grad.map(|l| placed.resolve(l)),
        fisher: p.fisher.iter().map(|&(w, l)| (w, placed.resolve(l))).collect(),
        code_gram: p.code_gram.map(|l| placed.resolve(l)),
        feature_cov: p.feature_cov.iter().map(|&l| placed.resolve(l)).collect(),
        cell_cross: p.cell_cross.iter().map(|c| c.map(|(g, l)| (g, placed.resolve(l)))).collect(),
        tap_cov: p.tap_cov.iter().map(|&(l, k)| (placed.resolve(l), k)).collect(),
        relu_patterns: p.relu_patterns.iter().map(|&l| placed.resolve(l)).collect(),
        backward_nodes,
        saved_bytes: placed.saved_bytes,
    }
}

/// The GPU plan's merges of whole kernels into fewer launches, after the fusions made node by
/// node: sibling convolutions as one GEMM each way ([`super::siblings`]), the other terms of a
/// gradient into the convolution backward writing it ([`super::gradient_terms`]), and the
/// backwards of batch norms that nothing orders between in pairs ([`merge_batch_norm_backwards`]);
/// last, each convolution backward's weight-gradient sum deferred into the next one's launch
/// ([`super::deferred_sums`]). Returns the new end of the forward part.
fn merge_launches(kernels: &mut Vec<Kernel>, n_forward: usize) -> usize {
    let n_forward = super::siblings::merge_sibling_convolutions(kernels, n_forward);
    let end = kernels.len();
    let end = end - super::gradient_terms::fold_gradient_terms(kernels, n_forward..end);
    merge_batch_norm_backwards(kernels, n_forward..end);
    super::deferred_sums::defer_weight_sums(kernels, n_forward);
    n_forward
}

/// Whether a probe that reads intermediate values (ReLU inputs and outputs, normalised features)
/// is planned: fusing would leave them unwritten, so a probed plan is not fused.
fn probed(opts: &PlanOptions) -> bool {
    opts.fisher || opts.relu_codes || opts.cell_probes.is_some() || opts.taps || opts.relu_patterns
}

/// Per value, whether [`PlanOptions::fuse`] leaves a 3x3 average pool's output to the node sum
/// reading it (the sum pools as it reads): an output whose only consumer is a sum of at most
/// [`NODE_SUM_TERMS`] terms.
fn pools_fused_into_sums(graph: &Graph, consumers: &[usize], opts: &PlanOptions) -> Vec<bool> {
    let mut fused = vec![false; graph.values.len()];
    if !opts.fuse || probed(opts) {
        return fused;
    }
    for sum in graph.nodes.iter().filter(|n| n.op == Op::Sum && (2..=NODE_SUM_TERMS).contains(&n.inputs.len())) {
        for &t in &sum.inputs {
            let of_pool = matches!(graph.values[t.0].source, Source::Node(b) if graph.nodes[b].op == Op::AvgPool3);
            // A term twice in one sum has two consumers.
            fused[t.0] = of_pool && consumers[t.0] == 1;
        }
    }
    fused
}

/// Per value, whether [`PlanOptions::fuse`] leaves a batch norm's output to its consumers to apply
/// as they read it (the batch norm writes its channels' coefficients instead of the normalised
/// tensor: one pass fewer): every consumer is a node sum of at most [`NODE_SUM_TERMS`] terms
/// (reading it directly, or through a 3x3 average pool the sum pools) or a ReLU fused into the
/// convolution it feeds (which reads the batch norm's input normalised: `ConvKernel`'s `x_norm`).
fn bns_applied_by_consumers(graph: &Graph, opts: &PlanOptions, fused_relu: &[Option<ValueId>], fused_pool: &[bool]) -> Vec<bool> {
    let mut applied = vec![false; graph.values.len()];
    if !opts.fuse || probed(opts) {
        return applied;
    }
    let applies = |n: &super::graph::Node| match n.op {
        Op::Sum => (2..=NODE_SUM_TERMS).contains(&n.inputs.len()),
        Op::AvgPool3 => fused_pool[n.output.0],
        Op::Relu => fused_relu[n.output.0].is_some(),
        _ => false,
    };
    for bn in graph.nodes.iter().filter(|n| matches!(n.op, Op::BatchNorm { .. })) {
        let v = bn.output;
        let mut readers = graph.nodes.iter().filter(|n| n.inputs.contains(&v)).peekable();
        applied[v.0] = v != graph.logits && readers.peek().is_some() && readers.all(applies);
    }
    applied
}

/// Per value, the batch norm (node index) that [`PlanOptions::fuse`] joins to the convolution
/// producing it: the one op reading a convolution's output. The convolution's forward takes the
/// batch norm's training statistics ([`BnStatistics`]) and its gradients apply the batch norm's
/// backward ([`BnGradient`]).
fn bns_after_convs(graph: &Graph, consumers: &[usize], opts: &PlanOptions) -> Vec<Option<usize>> {
    let mut bns = vec![None; graph.values.len()];
    if !opts.fuse || probed(opts) {
        return bns;
    }
    for (i, bn) in graph.nodes.iter().enumerate().filter(|(_, n)| matches!(n.op, Op::BatchNorm { .. })) {
        let v = bn.inputs[0];
        let from_conv = matches!(graph.values[v.0].source, Source::Node(c) if matches!(graph.nodes[c].op, Op::Conv { .. }));
        if from_conv && consumers[v.0] == 1 {
            bns[v.0] = Some(i);
        }
    }
    bns
}

/// Per value, the input of each ReLU that [`PlanOptions::fuse`] fuses into the convolution
/// consuming it: a ReLU whose output only that convolution reads, as its input. None without the
/// option or under a probe that reads ReLU values.
fn fused_relus(graph: &Graph, consumers: &[usize], opts: &PlanOptions) -> Vec<Option<ValueId>> {
    let mut fused = vec![None; graph.values.len()];
    if !opts.fuse || probed(opts) {
        return fused;
    }
    for conv in graph.nodes.iter().filter(|n| matches!(n.op, Op::Conv { .. })) {
        let v = conv.inputs[0];
        if let Source::Node(r) = graph.values[v.0].source {
            let relu = &graph.nodes[r];
            if relu.op == Op::Relu && consumers[v.0] == 1 && v != graph.logits {
                fused[v.0] = Some(relu.inputs[0]);
            }
        }
    }
    fused
}

/// The one-element slots after the BN running statistics in the `State` space.
#[derive(Clone, Copy, Debug)]
struct Scalars {
    loss: Loc,
    correct: Loc,
    lr: Loc,
    grad_sum_sq: Loc,
    /// Loss scaling's state: allocated in every step (so a session's state keeps its length
    /// whatever its options), used only by a step planned with [`PlanOptions::loss_scaling`].
    loss_scale: Loc,
    end: usize,
}

impl Scalars {
    fn after(offset: usize) -> Scalars {
        let slot = |i| Loc::new(Space::State, offset + i, 1);
        let loss_scale = Loc::new(Space::State, offset + 4, loss_scale::SLOTS);
        Scalars { loss: slot(0), correct: slot(1), lr: slot(2), grad_sum_sq: slot(3), loss_scale, end: loss_scale.end() }
    }

    /// Slot `i` of the loss-scaling state.
    fn loss_scale_slot(&self, i: usize) -> Loc {
        Loc::new(Space::State, self.loss_scale.offset + i, 1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BufKind {
    /// A forward value or a tensor saved for backward.
    Activation,
    Gradient,
}

struct VBuf {
    len: usize,
    kind: BufKind,
    /// Placed in the step's 16-bit space (`Half` or `HalfF16`: a tensor stored in 16 bits), else
    /// in `Work`.
    half: bool,
}

struct Planner<'g> {
    graph: &'g Graph,
    opts: &'g PlanOptions,
    requires_grad: Vec<bool>,
    /// Per value, how many node inputs name it.
    consumers: Vec<usize>,
    vbufs: Vec<VBuf>,
    /// Where each value lives (parameters in `Params`, others virtual until placed).
    acts: Vec<Option<Loc>>,
    grads: Vec<Option<Loc>>,
    /// Per node, the extra buffers its forward writes for its backward (BN mean/invstd, softmax).
    aux: Vec<Vec<Loc>>,
    scalars: Scalars,
    kernels: Vec<Kernel>,
    fisher: Vec<(usize, Loc)>,
    code_gram: Option<Loc>,
    feature_cov: Vec<Loc>,
    cell_cross: Vec<Option<(CrossGeom, Loc)>>,
    tap_cov: Vec<(Loc, usize)>,
    relu_patterns: Vec<Loc>,
    /// Per value: for a ReLU's output fused into the convolution that consumes it, the ReLU's
    /// input.
    fused_relu: Vec<Option<ValueId>>,
    /// Per value: whether it is a batch norm's output its consumers normalise as they read it
    /// (node sums, convolutions behind fused ReLUs: [`bns_applied_by_consumers`]).
    fused_bn: Vec<bool>,
    /// Per value: whether it is a 3x3 average pool's output pooled by the node sum reading it.
    fused_pool: Vec<bool>,
    /// Per fused batch norm's output: (its input, its coefficients), once planned.
    bn_coef: Vec<Option<(Loc, Loc)>>,
    /// Per value: for a convolution's output read only by a batch norm, that batch norm's node
    /// (the GPU plan): the convolution takes its statistics in training and its gradients apply
    /// its backward as they load.
    bn_after_conv: Vec<Option<usize>>,
    /// Per batch-norm node whose statistics its convolution took: where its coefficients are.
    bn_taken: Vec<Option<Loc>>,
    /// Per such output, once the batch norm's backward is planned: (the batch norm's output
    /// gradient, where its input and coefficients are).
    bn_grad: Vec<Option<(Loc, BnGradient)>>,
}

impl<'g> Planner<'g> {
    fn new(graph: &'g Graph, trainable: &'g [bool], opts: &'g PlanOptions) -> Planner<'g> {
        let mut requires_grad = vec![false; graph.values.len()];
        let mut acts = vec![None; graph.values.len()];
        for (i, v) in graph.values.iter().enumerate() {
            requires_grad[i] = match v.source {
                Source::Input => opts.input_grad,
                Source::Param(p) => trainable[p.0],
                Source::Node(n) => graph.nodes[n].inputs.iter().any(|x| requires_grad[x.0]),
            };
            if let Source::Param(p) = v.source {
                let spec = &graph.params[p.0];
                acts[i] = Some(Loc::new(Space::Params, spec.offset, spec.len()));
            }
        }
        let mut consumers = vec![0; graph.values.len()];
        for x in graph.nodes.iter().flat_map(|n| &n.inputs) {
            consumers[x.0] += 1;
        }
        let fused_relu = fused_relus(graph, &consumers, opts);
        let fused_pool = pools_fused_into_sums(graph, &consumers, opts);
        let fused_bn = bns_applied_by_consumers(graph, opts, &fused_relu, &fused_pool);
        let mut planner = Planner {
            fused_relu,
            fused_bn,
            fused_pool,
            bn_coef: vec![None; graph.values.len()],
            bn_after_conv: bns_after_convs(graph, &consumers, opts),
            bn_taken: vec![None; graph.nodes.len()],
            bn_grad: vec![None; graph.values.len()],
            graph,
            opts,
            requires_grad,
            consumers,
            vbufs: Vec::new(),
            acts,
            grads: vec![None; graph.values.len()],
            aux: vec![Vec::new(); graph.nodes.len()],
            scalars: Scalars::after(graph.state_len()),
            kernels: Vec::new(),
            fisher: Vec::new(),
            code_gram: None,
            feature_cov: Vec::new(),
            cell_cross: Vec::new(),
            tap_cov: Vec::new(),
            relu_patterns: Vec::new(),
        };
        planner.acts[graph.input.0] = Some(planner.value_buf(graph.input, BufKind::Activation));
        planner
    }

    /// A buffer of `len` f32 elements (in `Work`).
    fn vbuf(&mut self, len: usize, kind: BufKind) -> Loc {
        self.vbufs.push(VBuf { len, kind, half: false });
        Loc::new(Space::Virtual, self.vbufs.len() - 1, len)
    }

    /// A buffer for value `v` or its gradient: in `Half` or `HalfF16` when the step stores tensors
    /// in 16 bits ([`PlanOptions::storage`]) and `v` is one (batch, channels, height, width).
    fn value_buf(&mut self, v: ValueId, kind: BufKind) -> Loc {
        let value = &self.graph.values[v.0];
        let half = Space::for_tensors(self.opts.storage).is_16bit() && value.shape.len() == 4;
        self.vbufs.push(VBuf { len: value.len(), kind, half });
        Loc::new(Space::Virtual, self.vbufs.len() - 1, value.len())
    }

    fn act(&self, v: ValueId) -> Loc {
        self.acts[v.0].expect("value used before it was computed")
    }

    fn shape(&self, v: ValueId) -> &'g [usize] {
        &self.graph.values[v.0].shape
    }

    fn state(&self, s: super::graph::StateId) -> Loc {
        let spec = &self.graph.states[s.0];
        Loc::new(Space::State, spec.offset, spec.len())
    }

    /// The gradient location of `v`; an activation's is created (and zeroed) on first use.
    fn grad(&mut self, v: ValueId) -> Loc {
        if let Source::Param(p) = self.graph.values[v.0].source {
            let spec = &self.graph.params[p.0];
            return Loc::new(Space::ParamGrads, spec.offset, spec.len());
        }
        if let Some(g) = self.grads[v.0] {
            return g;
        }
        let g = self.value_buf(v, BufKind::Gradient);
        self.kernels.push(Kernel::Elementwise(ElementwiseKernel::Zero { y: g }));
        self.grads[v.0] = Some(g);
        g
    }

    /// The gradient of `v` if it needs one.
    fn grad_if_needed(&mut self, v: ValueId) -> Option<Loc> {
        self.requires_grad[v.0].then(|| self.grad(v))
    }

    /// The gradient of `v` for a kernel with an `accumulate` mode to write, if `v` needs one, and
    /// that mode: the first writer of an activation gradient (in plan order, which is execution
    /// order) assigns it instead of a `Zero` kernel before it; later writers add.
    fn grad_to_write(&mut self, v: ValueId) -> Option<(Loc, bool)> {
        if !self.requires_grad[v.0] {
            return None;
        }
        if self.grads[v.0].is_some() || matches!(self.graph.values[v.0].source, Source::Param(_)) {
            return Some((self.grad(v), true));
        }
        let g = self.value_buf(v, BufKind::Gradient);
        self.grads[v.0] = Some(g);
        Some((g, false))
    }

    /// Whether term `t` of a node sum can use the sum's gradient buffer as its own instead of a
    /// copy: the sum is its only consumer, so nothing else writes its gradient, and the sum's
    /// gradient is complete (every consumer of the sum ran before its backward) and only read from
    /// here on. Not a feature under `cell_probes`, whose gradients are overwritten with signs.
    fn shares_sum_gradient(&self, t: ValueId) -> bool {
        let probed = self.opts.cell_probes.is_some() && self.graph.features.contains(&t);
        self.requires_grad[t.0] && self.grads[t.0].is_none() && self.consumers[t.0] == 1 && matches!(self.graph.values[t.0].source, Source::Node(_)) && !probed
    }

    /// Whether a node sum of `terms` terms is one [`ElementwiseKernel::NodeSum`] (a fused plan)
    /// rather than an add and accumulates.
    fn sums_in_one_kernel(&self, terms: usize) -> bool {
        self.opts.fuse && !probed(self.opts) && (2..=NODE_SUM_TERMS).contains(&terms)
    }

    /// A batch norm whose consumers apply it ([`bns_applied_by_consumers`]): the forward computes the
    /// statistics and writes the channels' coefficients, not the normalised tensor.
    fn forward_bn_coefficients(&mut self, i: usize) {
        let node = &self.graph.nodes[i];
        let Op::BatchNorm { running_mean, running_var, eps, momentum } = node.op else { unreachable!("only batch norms are applied by their consumers") };
        let ins = &node.inputs;
        let g = self.bn_geom(ins[0]);
        let (x, gamma, beta) = (self.act(ins[0]), self.act(ins[1]), self.act(ins[2]));
        let (running_mean, running_var) = (self.state(running_mean), self.state(running_var));
        let coef = self.vbuf(4 * g.c, BufKind::Activation);
        self.bn_coef[node.output.0] = Some((x, coef));
        let y = BnOutput::Coefficients(coef);
        let kernel = if self.opts.train {
            let mean = self.vbuf(g.c, BufKind::Activation);
            let invstd = self.vbuf(g.c, BufKind::Activation);
            self.aux[i] = vec![mean, invstd];
            BnKernel::TrainForward { g, x, gamma, beta, running_mean, running_var, y, mean, invstd, eps, momentum }
        } else {
            BnKernel::EvalForward { g, x, gamma, beta, running_mean, running_var, y, eps }
        };
        self.kernels.push(Kernel::Bn(kernel));
    }

    /// In training, the statistics of the batch norm that alone reads the convolution output `v`,
    /// for the convolution's forward to take (see [`BnStatistics`]); that batch norm then only
    /// applies them ([`Planner::forward_bn_taken`]).
    fn bn_statistics(&mut self, v: ValueId) -> Option<BnStatistics> {
        let i = self.bn_after_conv[v.0].filter(|_| self.opts.train)?;
        let node = &self.graph.nodes[i];
        let Op::BatchNorm { running_mean, running_var, eps, momentum } = node.op else { unreachable!("bn_after_conv names batch norms") };
        let c = self.bn_geom(v).c;
        let (mean, invstd, coef) = (self.vbuf(c, BufKind::Activation), self.vbuf(c, BufKind::Activation), self.vbuf(4 * c, BufKind::Activation));
        self.aux[i] = vec![mean, invstd];
        self.bn_taken[i] = Some(coef);
        let (gamma, beta) = (self.act(node.inputs[1]), self.act(node.inputs[2]));
        let (running_mean, running_var) = (self.state(running_mean), self.state(running_var));
        Some(BnStatistics { gamma, beta, running_mean, running_var, mean, invstd, coef, eps, momentum })
    }

    /// A batch norm whose statistics its convolution took (coefficients at `coef`): the node sum
    /// reading it normalises as it loads, or an apply kernel writes the normalised tensor.
    fn forward_bn_taken(&mut self, i: usize, coef: Loc) {
        let node = &self.graph.nodes[i];
        let x = self.act(node.inputs[0]);
        if self.fused_bn[node.output.0] {
            self.bn_coef[node.output.0] = Some((x, coef));
            return;
        }
        let y = self.value_buf(node.output, BufKind::Activation);
        self.acts[node.output.0] = Some(y);
        self.kernels.push(Kernel::Bn(BnKernel::Apply { g: self.bn_geom(node.inputs[0]), x, coef, y }));
    }

    /// The input of the average pool whose output is `v`.
    fn pooled(&self, v: ValueId) -> ValueId {
        let Source::Node(p) = self.graph.values[v.0].source else { unreachable!("a pool's output comes from its node") };
        self.graph.nodes[p].inputs[0]
    }

    /// Where a convolution reads value `v` (from [`Planner::conv_input`]): its tensor, or for a
    /// batch norm's output its consumers apply, the batch norm's input and coefficients.
    fn conv_source(&self, v: ValueId) -> (Loc, Option<Loc>) {
        match self.bn_coef[v.0] {
            Some((x, coef)) => (x, Some(coef)),
            None => (self.act(v), None),
        }
    }

    /// The value a convolution reads and whether through a fused ReLU: the ReLU's input, or `v`.
    fn conv_input(&self, v: ValueId) -> (ValueId, bool) {
        self.fused_relu[v.0].map_or((v, false), |x| (x, true))
    }

    fn forward_node(&mut self, i: usize) {
        let node = &self.graph.nodes[i];
        if self.fused_relu[node.output.0].is_some() {
            return; // the convolution consuming it applies it
        }
        if let Some(coef) = self.bn_taken[i] {
            return self.forward_bn_taken(i, coef);
        }
        if self.fused_bn[node.output.0] {
            return self.forward_bn_coefficients(i);
        }
        if self.fused_pool[node.output.0] {
            return; // the node sum reading it pools as it reads
        }
        let ins = &node.inputs;
        let terminal = matches!(node.op, Op::SoftmaxXent | Op::SumAll);
        let y = if terminal { self.scalars.loss } else { self.value_buf(node.output, BufKind::Activation) };
        self.acts[node.output.0] = Some(y);
        let kernel = match node.op {
            Op::Conv { stride, pad } => {
                let (x, relu) = self.conv_input(ins[0]);
                let bn = self.bn_statistics(node.output);
                let (g, precision) = (self.conv_geom(ins[0], ins[1], stride, pad), self.opts.conv_precision);
                let (x, x_norm) = self.conv_source(x);
                Kernel::Conv(ConvKernel::Forward { g, x, x_norm, w: self.act(ins[1]), y, relu, bn, precision, sibling: None })
            }
            Op::BatchNorm { running_mean, running_var, eps, momentum } => {
                let g = self.bn_geom(ins[0]);
                let (x, gamma, beta) = (self.act(ins[0]), self.act(ins[1]), self.act(ins[2]));
                let (running_mean, running_var) = (self.state(running_mean), self.state(running_var));
                if self.opts.train {
                    let mean = self.vbuf(g.c, BufKind::Activation);
                    let invstd = self.vbuf(g.c, BufKind::Activation);
                    self.aux[i] = vec![mean, invstd];
                    Kernel::Bn(BnKernel::TrainForward { g, x, gamma, beta, running_mean, running_var, y: BnOutput::Normalised(y), mean, invstd, eps, momentum })
                } else {
                    Kernel::Bn(BnKernel::EvalForward { g, x, gamma, beta, running_mean, running_var, y: BnOutput::Normalised(y), eps })
                }
            }
            Op::Relu => {
                if let Some(k) = self.code_gram {
                    let s = self.shape(ins[0]);
                    let (n, d) = (s[0], s[1..].iter().product());
                    self.kernels.push(Kernel::Probe(ProbeKernel::BinaryCodeGram { n, d, x: self.act(ins[0]), k }));
                }
                if self.opts.relu_patterns {
                    let s = self.shape(ins[0]);
                    let (n, d) = (s[0], s[1..].iter().product());
                    let out = self.vbuf(d, BufKind::Activation);
                    self.kernels.push(Kernel::FeatureProbe(FeatureProbeKernel::ActivationPatterns { n, d, x: self.act(ins[0]), out }));
                    self.relu_patterns.push(out);
                }
                Kernel::Elementwise(ElementwiseKernel::Relu { x: self.act(ins[0]), y })
            }
            Op::Sum if self.sums_in_one_kernel(ins.len()) => {
                let s = self.shape(node.output);
                let dim = |d: usize| s.get(d).copied().unwrap_or(1);
                let (c, h, w) = (dim(1), dim(2), s.get(3..).map_or(1, |r| r.iter().product()));
                let term = |t: &ValueId| match (self.bn_coef[t.0], self.fused_pool[t.0]) {
                    (Some((x, k)), _) => NodeSumTerm { x, coef: Some(k), pool3: false },
                    (None, true) => match self.bn_coef[self.pooled(*t).0] {
                        // The pool of a batch norm's output its consumers apply.
                        Some((x, k)) => NodeSumTerm { x, coef: Some(k), pool3: true },
                        None => NodeSumTerm { x: self.act(self.pooled(*t)), coef: None, pool3: true },
                    },
                    (None, false) => NodeSumTerm { x: self.act(*t), coef: None, pool3: false },
                };
                let terms = ins.iter().map(term).collect();
                Kernel::Elementwise(ElementwiseKernel::NodeSum { c, h, w, terms, y })
            }
            Op::Sum => {
                self.kernels.push(Kernel::Elementwise(ElementwiseKernel::Add { a: self.act(ins[0]), b: self.act(ins[1]), y }));
                for t in &ins[2..] {
                    self.kernels.push(Kernel::Elementwise(ElementwiseKernel::Accumulate { acc: y, x: self.act(*t), accumulate: true }));
                }
                return;
            }
            Op::Zeros => Kernel::Elementwise(ElementwiseKernel::Zero { y }),
            Op::AvgPool3 => Kernel::Pool(PoolKernel::AvgPool3Forward { g: self.pool_geom(ins[0]), x: self.act(ins[0]), y }),
            Op::AvgPool2 => Kernel::Pool(PoolKernel::AvgPool2Forward { g: self.pool_geom(ins[0]), x: self.act(ins[0]), y }),
            Op::GlobalAvgPool => {
                let s = self.shape(ins[0]);
                Kernel::Elementwise(ElementwiseKernel::GapForward { n: s[0], c: s[1], hw: s[2] * s[3], x: self.act(ins[0]), y })
            }
            Op::Linear => Kernel::Linear(LinearKernel::Forward {
                g: self.linear_geom(ins[0], ins[1]),
                x: self.act(ins[0]),
                w: self.act(ins[1]),
                b: Some(self.act(ins[2])),
                y,
                precision: self.opts.conv_precision,
            }),
            Op::SoftmaxXent => {
                let s = self.shape(ins[0]);
                let probs = self.vbuf(s[0] * s[1], BufKind::Activation);
                self.aux[i] = vec![probs];
                let (loss, correct) = (self.scalars.loss, self.scalars.correct);
                Kernel::Loss(LossKernel::SoftmaxXentForward { n: s[0], classes: s[1], logits: self.act(ins[0]), probs, loss, correct })
            }
            Op::SumAll => Kernel::Probe(ProbeKernel::SumAll { x: self.act(ins[0]), out: y }),
        };
        self.kernels.push(kernel);
    }

    /// Records node `i`'s backward kernels if its output needs a gradient and received one.
    fn backward_node(&mut self, i: usize) -> bool {
        let node = &self.graph.nodes[i];
        let ins = &node.inputs;
        if !self.requires_grad[node.output.0] {
            return false;
        }
        if node.op == Op::SoftmaxXent {
            // The loss seeds the backward pass: d loss / d loss = 1.
            let s = self.shape(ins[0]);
            let (dlogits, accumulate) = self.grad_to_write(ins[0]).expect("the loss's input needs a gradient when the loss does");
            // Under loss scaling, the seed is the scale S: every gradient below carries it.
            let scale = self.opts.loss_scaling.map(|_| self.scalars.loss_scale_slot(loss_scale::SCALE));
            self.kernels.push(Kernel::Loss(LossKernel::SoftmaxXentBackward { n: s[0], classes: s[1], probs: self.aux[i][0], dlogits, accumulate, scale }));
            return true;
        }
        if node.op == Op::SumAll {
            let dx = self.grad(ins[0]);
            self.kernels.push(Kernel::Probe(ProbeKernel::SumAllBackward { dx }));
            return true;
        }
        // A convolution whose batch norm's backward it applies reads that batch norm's output
        // gradient (and its coefficients) instead of a gradient of its own.
        let (dy, bn) = match (self.bn_grad[node.output.0], self.grads[node.output.0]) {
            (Some((dy, bn)), _) => (dy, Some(bn)),
            (None, Some(dy)) => (dy, None),
            (None, None) => return false, // nothing downstream used this value
        };
        if self.opts.fisher && matches!(node.op, Op::Conv { .. } | Op::Linear) {
            self.push_fisher(node.inputs[1], node.output, self.act(node.output), dy);
        }
        match node.op {
            Op::Conv { stride, pad } => {
                let g = self.conv_geom(ins[0], ins[1], stride, pad);
                // With a fused ReLU, the gradient written is the ReLU input's (masked by it).
                let (xv, relu) = self.conv_input(ins[0]);
                let ((x, x_norm), w) = (self.conv_source(xv), self.act(ins[1]));
                let dw = self.grad_if_needed(ins[1]);
                let dx = self.grad_to_write(xv);
                // Both products at the forward's precision (operands rounded, FP32 sums).
                let precision = self.opts.conv_precision;
                // The GPU plan computes both in one kernel.
                if let (Some(dw), Some((dx, accumulate)), true) = (dw, dx, self.opts.fuse && !probed(self.opts)) {
                    self.kernels.push(Kernel::Conv(ConvKernel::Backward {
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
                        dx_terms: DxTerms::default(),
                        sums: WeightSums::default(), // deferred (or not) once the backward is planned
                        precision,
                    }));
                    return true;
                }
                if let Some(dw) = dw {
                    self.kernels.push(Kernel::Conv(ConvKernel::BackwardWeight { g, x, x_norm, dy, bn, dw, relu, precision }));
                }
                if let Some((dx, accumulate)) = dx {
                    let (mask, mask_norm) = (relu.then_some(x), x_norm.filter(|_| relu));
                    self.kernels.push(Kernel::Conv(ConvKernel::BackwardInput { g, dy, bn, w, mask, mask_norm, dx, accumulate, precision }));
                }
            }
            Op::BatchNorm { .. } => {
                let g = self.bn_geom(ins[0]);
                let (x, gamma) = (self.act(ins[0]), self.act(ins[1]));
                let (mean, invstd) = (self.aux[i][0], self.aux[i][1]);
                let dgamma = self.grad_if_needed(ins[1]);
                let dbeta = self.grad_if_needed(ins[2]);
                if self.bn_after_conv[ins[0].0].is_some() && self.requires_grad[ins[0].0] && self.grads[ins[0].0].is_none() {
                    // The convolution it normalises applies its backward (see `bn_grad`).
                    let coef = self.vbuf(4 * g.c, BufKind::Gradient);
                    self.bn_grad[ins[0].0] = Some((dy, BnGradient { x, coef }));
                    let dx_coef = Some(coef);
                    self.kernels.push(Kernel::Bn(BnKernel::Backward { g, x, dy, gamma, mean, invstd, dx: None, dx_coef, dgamma, dbeta, accumulate: true }));
                    return true;
                }
                let (dx, accumulate) = self.grad_to_write(ins[0]).map_or((None, true), |(dx, a)| (Some(dx), a));
                self.kernels.push(Kernel::Bn(BnKernel::Backward { g, x, dy, gamma, mean, invstd, dx, dx_coef: None, dgamma, dbeta, accumulate }));
            }
            Op::Relu => {
                if let Some((dx, accumulate)) = self.grad_to_write(ins[0]) {
                    let y = self.act(node.output);
                    self.kernels.push(Kernel::Elementwise(ElementwiseKernel::ReluBackward { y, dy, dx, accumulate }));
                }
            }
            Op::Sum => {
                for t in ins {
                    if self.shares_sum_gradient(*t) {
                        self.grads[t.0] = Some(dy);
                        continue;
                    }
                    if let Some((dx, accumulate)) = self.grad_to_write(*t) {
                        self.kernels.push(Kernel::Elementwise(ElementwiseKernel::Accumulate { acc: dx, x: dy, accumulate }));
                    }
                }
            }
            Op::Zeros => {}
            Op::AvgPool3 | Op::AvgPool2 => {
                let g = self.pool_geom(ins[0]);
                if let Some((dx, accumulate)) = self.grad_to_write(ins[0]) {
                    self.kernels.push(if node.op == Op::AvgPool3 {
                        Kernel::Pool(PoolKernel::AvgPool3Backward { g, dy, dx, accumulate })
                    } else {
                        Kernel::Pool(PoolKernel::AvgPool2Backward { g, dy, dx, accumulate })
                    });
                }
            }
            Op::GlobalAvgPool => {
                let s = self.shape(ins[0]);
                if let Some((dx, accumulate)) = self.grad_to_write(ins[0]) {
                    self.kernels.push(Kernel::Elementwise(ElementwiseKernel::GapBackward { n: s[0], c: s[1], hw: s[2] * s[3], dy, dx, accumulate }));
                }
            }
            Op::Linear => {
                let g = self.linear_geom(ins[0], ins[1]);
                let (x, w) = (self.act(ins[0]), self.act(ins[1]));
                let dw = self.grad_if_needed(ins[1]);
                let db = self.grad_if_needed(ins[2]);
                let (dx, accumulate) = self.grad_to_write(ins[0]).map_or((None, true), |(dx, a)| (Some(dx), a));
                self.kernels.push(Kernel::Linear(LinearKernel::Backward { g, x, w, dy, dx, dw, db, accumulate, precision: self.opts.conv_precision }));
            }
            Op::SoftmaxXent | Op::SumAll => unreachable!("handled above"),
        }
        true
    }

    /// The Fisher term of a layer's output (value `out_v` at `y`, gradient `dy`), filed under
    /// the layer's weight `w`.
    fn push_fisher(&mut self, w: ValueId, out_v: ValueId, y: Loc, dy: Loc) {
        let Source::Param(param) = self.graph.values[w.0].source else { return };
        let s = self.shape(out_v);
        let (n, c, hw) = (s[0], s[1], s[2..].iter().product());
        let out = self.vbuf(c, BufKind::Activation);
        self.kernels.push(Kernel::Probe(ProbeKernel::ChannelFisher { n, c, hw, x: y, dy, out }));
        self.fisher.push((param.0, out));
    }

    /// The channel covariance of every feature (a repeated value is computed once).
    fn push_feature_covariances(&mut self) {
        let features = &self.graph.features;
        for (j, &v) in features.iter().enumerate() {
            if let Some(first) = features[..j].iter().position(|&u| u == v) {
                let shared = self.feature_cov[first];
                self.feature_cov.push(shared);
                continue;
            }
            let s = self.shape(v);
            let (n, c, hw) = (s[0], s[1], s[2..].iter().product());
            let out = self.vbuf(c * c, BufKind::Activation);
            self.kernels.push(Kernel::FeatureProbe(FeatureProbeKernel::FeatureCovariance { n, c, hw, x: self.act(v), out }));
            self.feature_cov.push(out);
        }
    }

    /// The channel covariance of the first sample of every tapped value with channels and
    /// positions (a value seen by several taps is computed once, its module counts summed).
    fn push_tap_covariances(&mut self) {
        let mut seen: Vec<(super::graph::ValueId, usize)> = Vec::new();
        for &(v, k) in &self.graph.taps {
            match seen.iter_mut().find(|s| s.0 == v) {
                Some(s) => s.1 += k,
                None => seen.push((v, k)),
            }
        }
        for (v, k) in seen {
            let s = self.shape(v);
            if s.len() < 3 {
                continue;
            }
            let (c, hw) = (s[1], s[2..].iter().product::<usize>());
            let mut x = self.act(v);
            x.len = c * hw; // the first sample: a prefix of the buffer
            let out = self.vbuf(c * c, BufKind::Activation);
            self.kernels.push(Kernel::FeatureProbe(FeatureProbeKernel::FeatureCovariance { n: 1, c, hw, x, out }));
            self.tap_cov.push((out, k));
        }
    }

    /// Before node `i`'s backward, when it produces feature value v (features j..=k): every
    /// consumer of v has run, so v's gradient is the next cell's vector-Jacobian product of its
    /// cotangent; keep their cross-covariance, then give v its own cotangent as cell j's output.
    fn push_cell_probes(&mut self, i: usize, seed: u64) {
        let v = self.graph.nodes[i].output;
        let features = &self.graph.features;
        let Some(j) = features.iter().position(|&u| u == v) else { return };
        let k = features.iter().rposition(|&u| u == v).unwrap();
        if let Some(&next) = features.get(k + 1) {
            let (si, so) = (self.shape(v), self.shape(next));
            let g = CrossGeom { n: si[0], c_in: si[1], h_in: si[2], w_in: si[3], c_out: so[1], h_out: so[2], w_out: so[3] };
            let (g_in, g_out) = (self.grad(v), self.grad(next));
            let out = self.vbuf(g.out_len(), BufKind::Activation);
            self.kernels.push(Kernel::FeatureProbe(FeatureProbeKernel::GradCrossCovariance { g, g_in, g_out, out }));
            self.cell_cross[k] = Some((g, out));
        }
        if j >= 1 {
            let y = self.grad(v);
            self.kernels.push(Kernel::FeatureProbe(FeatureProbeKernel::RandomSigns { seed: cotangent_seed(seed, j), y }));
        }
    }

    fn conv_geom(&self, x: ValueId, w: ValueId, stride: usize, pad: usize) -> ConvGeom {
        let (xs, ws) = (self.shape(x), self.shape(w));
        ConvGeom { n: xs[0], c_in: xs[1], h: xs[2], w: xs[3], c_out: ws[0], k: ws[2], stride, pad }
    }

    fn bn_geom(&self, x: ValueId) -> BnGeom {
        let s = self.shape(x);
        BnGeom { n: s[0], c: s[1], hw: s[2..].iter().product() }
    }

    fn pool_geom(&self, x: ValueId) -> PoolGeom {
        let s = self.shape(x);
        PoolGeom { n: s[0], c: s[1], h: s[2], w: s[3] }
    }

    fn linear_geom(&self, x: ValueId, w: ValueId) -> LinearGeom {
        LinearGeom { n: self.shape(x)[0], d_in: self.shape(w)[1], d_out: self.shape(w)[0] }
    }
}

/// The seed of feature j's random-sign cotangent under `cell_probes` seed `seed`.
pub fn cotangent_seed(seed: u64, j: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(j as u64)
}

/// Clipping, then one SGD kernel per contiguous run of trainable parameters (frozen ones must
/// not see weight decay). Under loss scaling, first the gradients unscaled (so clipping and SGD
/// see true values), the SGD kernels skipped after a non-finite one, and the scale updated last.
fn update_kernels(graph: &Graph, trainable: &[bool], opts: &PlanOptions, s: &Scalars) -> Vec<Kernel> {
    let mut kernels = Vec::new();
    let all = Loc::new(Space::ParamGrads, 0, graph.param_len());
    if opts.loss_scaling.is_some() {
        kernels.push(Kernel::Optim(OptimKernel::UnscaleGrads { grads: all, state: s.loss_scale }));
    }
    let skip = opts.loss_scaling.map(|_| s.loss_scale_slot(loss_scale::FOUND_INF));
    if let Some(max_norm) = opts.grad_clip {
        // Frozen gradients are zero, so the whole buffer's norm is the trainable parameters' norm.
        kernels.push(Kernel::Optim(OptimKernel::SumSquares { x: all, out: s.grad_sum_sq }));
        kernels.push(Kernel::Optim(OptimKernel::ClipByNorm { grads: all, sum_sq: s.grad_sum_sq, max_norm }));
    }
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (spec, _) in graph.params.iter().zip(trainable).filter(|(_, t)| **t) {
        match runs.last_mut() {
            Some((start, len)) if *start + *len == spec.offset => *len += spec.len(),
            _ => runs.push((spec.offset, spec.len())),
        }
    }
    for (offset, len) in runs {
        kernels.push(Kernel::Optim(OptimKernel::Sgd {
            w: Loc::new(Space::Params, offset, len),
            g: Loc::new(Space::ParamGrads, offset, len),
            buf: Loc::new(Space::Momentum, offset, len),
            lr: s.lr,
            momentum: opts.momentum,
            weight_decay: opts.weight_decay,
            nesterov: opts.nesterov,
            skip,
        }));
    }
    if let Some(rules) = opts.loss_scaling {
        kernels.push(Kernel::Optim(OptimKernel::UpdateLossScale { state: s.loss_scale, loss: s.loss, rules }));
    }
    kernels
}

/// The placed virtual buffers.
struct Placement {
    /// Per virtual buffer, its space (`Work`, `Half` or `HalfF16`) and offset there.
    places: Vec<(Space, usize)>,
    work_len: usize,
    half_len: usize,
    saved_bytes: usize,
}

impl Placement {
    fn resolve(&self, loc: Loc) -> Loc {
        match loc.space {
            Space::Virtual => {
                let (space, offset) = self.places[loc.offset];
                Loc::new(space, offset, loc.len)
            }
            _ => loc,
        }
    }
}

/// Offsets are multiples of this many elements (64 bytes in f32, 32 in bfloat16), so GPU loads
/// stay aligned.
const ALIGN: usize = 16;

/// Gives every virtual buffer an offset in its space (`Work`, or `half`, the step's 16-bit space,
/// for a tensor stored in 16 bits) such that buffers of one space alive at the same time never overlap (first fit, in
/// order of first use), and rewrites the kernels to use them.
fn place_buffers(kernels: &mut [Kernel], vbufs: &[VBuf], input: Loc, pinned: &[Loc], n_forward: usize, half: Space) -> Placement {
    let end = kernels.len();
    let mut life = vec![(usize::MAX, 0usize); vbufs.len()];
    for (i, k) in kernels.iter_mut().enumerate() {
        for loc in k.locs_mut() {
            if loc.space == Space::Virtual && loc.len > 0 {
                let l = &mut life[loc.offset];
                *l = (l.0.min(i), l.1.max(i));
            }
        }
    }
    life[input.offset].0 = 0; // written by the host before the first kernel
    for p in pinned {
        life[p.offset].1 = end; // read by the host after the last kernel
    }
    let mut order: Vec<usize> = (0..vbufs.len()).filter(|&b| life[b].0 != usize::MAX).collect();
    order.sort_by_key(|&b| (life[b].0, b));
    let mut places = vec![(Space::Work, 0); vbufs.len()];
    // Per space (Work, Half): the buffers placed and alive, (offset, len, last use), and its length.
    let mut live: [Vec<(usize, usize, usize)>; 2] = Default::default();
    let mut lens = [0usize; 2];
    let mut saved_bytes = 0;
    for b in order {
        let (first, last) = life[b];
        let (space, s) = if vbufs[b].half { (half, 1) } else { (Space::Work, 0) };
        let live = &mut live[s];
        live.retain(|&(_, _, l)| l >= first);
        live.sort_unstable();
        let len = vbufs[b].len.div_ceil(ALIGN) * ALIGN;
        let mut offset = 0;
        for &(o, l, _) in live.iter() {
            if offset + len <= o {
                break;
            }
            offset = offset.max(o + l);
        }
        live.push((offset, len, last));
        places[b] = (space, offset);
        lens[s] = lens[s].max(offset + len);
        if vbufs[b].kind == BufKind::Activation && first < n_forward && last >= n_forward && last != end {
            saved_bytes += vbufs[b].len * space.gpu_bytes();
        }
    }
    for k in kernels.iter_mut() {
        for loc in k.locs_mut() {
            if loc.space == Space::Virtual && loc.len > 0 {
                let (space, offset) = places[loc.offset];
                *loc = Loc::new(space, offset, loc.len);
            }
        }
    }
    Placement { places, work_len: lens[0], half_len: lens[1], saved_bytes }
}
