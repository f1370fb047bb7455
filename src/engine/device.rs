//! Devices: where a planned step's memory lives and how its kernels run.
//!
//! A device allocates the step's memory and launches a [`Kernel`] on it; a GPU device also keeps
//! training data resident, augments it, and captures and replays steps. The plan (which kernels,
//! which locations) is device independent. The CPU device runs each
//! kernel as the matching function of [`super::cpu`]; a GPU device launches the matching CUDA
//! kernel with the same locations.

use anyhow::{bail, ensure, Result};

use super::cpu;
use super::cuda::data::ResidentSplit;
use super::kernel::{Kernel, Loc, Space};
use super::Float;
use crate::data::augment::Augment;

/// How many elements each space of a step's memory holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryLayout {
    /// Parameters (and, with the same length, their gradients and momentum).
    pub params: usize,
    pub state: usize,
    pub work: usize,
    /// Capacity of the label buffer (the batch size).
    pub labels: usize,
}

impl MemoryLayout {
    pub fn len(&self, space: Space) -> usize {
        match space {
            Space::Params | Space::ParamGrads | Space::Momentum => self.params,
            Space::State => self.state,
            Space::Work => self.work,
            Space::Virtual => 0,
        }
    }
}

/// A place that can hold a step's memory and run its kernels, in element type `T`.
pub trait Device<T: Float> {
    type Memory;
    /// A sequence of kernels recorded once to be replayed with one call (a CUDA graph); devices
    /// that cannot capture use [`std::convert::Infallible`].
    type Captured;
    /// A short human-readable name (`cpu`, `cuda:0 (NVIDIA H100)`).
    fn name(&self) -> String;
    /// The device a new session runs on: itself, or for a GPU the same GPU on a stream (and
    /// capture state) of the session's own.
    fn for_session(self) -> Result<Self>
    where
        Self: Sized,
    {
        Ok(self)
    }
    /// Launches `kernel` and returns the seconds it took, as [`Device::clock`] measures.
    fn timed_launch(&self, mem: &mut Self::Memory, kernel: &Kernel) -> Result<f64> {
        let start = std::time::Instant::now();
        self.launch(mem, kernel)?;
        Ok(start.elapsed().as_secs_f64())
    }
    /// What [`Device::timed_launch`] measures.
    fn clock(&self) -> &'static str {
        "host time"
    }
    /// Allocates every space of `layout`, zero-filled.
    fn alloc(&self, layout: &MemoryLayout) -> Result<Self::Memory>;
    /// Grows the `Work` space and the label buffer to at least `layout`'s sizes (their contents
    /// are scratch between steps and may be lost); the other spaces are kept.
    fn grow_scratch(&self, mem: &mut Self::Memory, layout: &MemoryLayout) -> Result<()>;
    fn write(&self, mem: &mut Self::Memory, loc: Loc, data: &[T]) -> Result<()>;
    fn read(&self, mem: &Self::Memory, loc: Loc) -> Result<Vec<T>>;
    fn write_labels(&self, mem: &mut Self::Memory, labels: &[u32]) -> Result<()>;
    fn launch(&self, mem: &mut Self::Memory, kernel: &Kernel) -> Result<()>;

    /// Keeps a training split's images (bytes) on the device, so that each step's batch is
    /// augmented there instead of on the host and uploaded ([`ResidentSplit`]). `None` where
    /// the device takes its batches from host memory (the CPU).
    fn make_resident(&self, _images: &[u8], _aug: &Augment) -> Result<Option<ResidentSplit>> {
        Ok(None)
    }

    /// Writes positions `start .. start + n` of a resident split's epoch order, augmented for
    /// `(seed, epoch)`, into `out`.
    #[allow(clippy::too_many_arguments)]
    fn augment_resident(&self, _mem: &mut Self::Memory, _split: &ResidentSplit, _seed: u64, _epoch: u64, _start: usize, _n: usize, _out: Loc) -> Result<()> {
        bail!("{} keeps no images on the device", self.name())
    }

    /// [`Device::augment_resident`], and also the batch's labels (gathered on the device from
    /// the split's, see [`ResidentSplit::set_labels`]) and the learning rate `lr` at `lr_at`: a
    /// training step fed with no upload, so nothing waits between steps.
    #[allow(clippy::too_many_arguments)]
    fn feed_resident(
        &self,
        _mem: &mut Self::Memory,
        _split: &ResidentSplit,
        _seed: u64,
        _epoch: u64,
        _start: usize,
        _n: usize,
        _out: Loc,
        _lr_at: Loc,
        _lr: T,
    ) -> Result<()> {
        bail!("{} keeps no images on the device", self.name())
    }

    /// Makes room on the device for the figures of `steps` steps ([`Device::record_step`]).
    fn begin_steps(&self, _mem: &mut Self::Memory, _steps: usize) -> Result<()> {
        bail!("{} keeps no step figures", self.name())
    }

    /// Keeps the step's `loss` and `correct` in slot `slot` on the device (no waiting).
    fn record_step(&self, _mem: &mut Self::Memory, _loss: Loc, _correct: Loc, _slot: usize) -> Result<()> {
        bail!("{} keeps no step figures", self.name())
    }

    /// (loss, correct) of slots `0..steps`, read at once (waits for the steps).
    fn read_steps(&self, _mem: &Self::Memory, _steps: usize) -> Result<Vec<(T, T)>> {
        bail!("{} keeps no step figures", self.name())
    }

    /// Records `kernels` on `mem` without running them, for [`Device::replay`]; `None` where the
    /// device cannot capture (the caller then launches them one by one). Launches are what one
    /// call saves on a GPU, where a step is about a thousand small kernels; the CPU has nothing
    /// to save.
    fn capture(&self, _mem: &mut Self::Memory, _kernels: &[&Kernel]) -> Result<Option<Self::Captured>> {
        Ok(None)
    }
    /// Runs captured kernels on the memory they were captured on (an error if its buffers have
    /// been reallocated since). Inputs written before a replay are what it reads.
    fn replay(&self, mem: &mut Self::Memory, captured: &Self::Captured) -> Result<()>;
}

/// The CPU device: kernels run as the rayon-parallel functions of [`super::cpu`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

/// A step's memory on the CPU: one vector per space plus the labels.
pub struct CpuMemory<T> {
    spaces: [Vec<T>; 5],
    labels: Vec<u32>,
}

/// Which of a step's five allocated spaces `space` is (the index into every device's memory).
pub(crate) fn space_index(space: Space) -> usize {
    match space {
        Space::Params => 0,
        Space::ParamGrads => 1,
        Space::Momentum => 2,
        Space::State => 3,
        Space::Work => 4,
        Space::Virtual => panic!("a kernel still addresses a virtual buffer: the step was not planned"),
    }
}

impl<T: Float> CpuMemory<T> {
    fn check(&self, loc: Loc) -> Result<()> {
        let have = self.spaces[space_index(loc.space)].len();
        ensure!(loc.end() <= have, "{loc:?} lies outside its space of {have} elements");
        Ok(())
    }
}

impl<T: Float> Device<T> for Cpu {
    type Memory = CpuMemory<T>;
    type Captured = std::convert::Infallible;

    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn alloc(&self, layout: &MemoryLayout) -> Result<CpuMemory<T>> {
        let space = |s| vec![T::zero(); layout.len(s)];
        Ok(CpuMemory {
            spaces: [space(Space::Params), space(Space::ParamGrads), space(Space::Momentum), space(Space::State), space(Space::Work)],
            labels: vec![0; layout.labels],
        })
    }

    fn grow_scratch(&self, mem: &mut CpuMemory<T>, layout: &MemoryLayout) -> Result<()> {
        let work = &mut mem.spaces[space_index(Space::Work)];
        if work.len() < layout.work {
            *work = vec![T::zero(); layout.work];
        }
        if mem.labels.len() < layout.labels {
            mem.labels = vec![0; layout.labels];
        }
        Ok(())
    }

    fn write(&self, mem: &mut CpuMemory<T>, loc: Loc, data: &[T]) -> Result<()> {
        mem.check(loc)?;
        ensure!(data.len() == loc.len, "writing {} elements into {loc:?}", data.len());
        mem.spaces[space_index(loc.space)][loc.offset..loc.end()].copy_from_slice(data);
        Ok(())
    }

    fn read(&self, mem: &CpuMemory<T>, loc: Loc) -> Result<Vec<T>> {
        mem.check(loc)?;
        Ok(mem.spaces[space_index(loc.space)][loc.offset..loc.end()].to_vec())
    }

    fn write_labels(&self, mem: &mut CpuMemory<T>, labels: &[u32]) -> Result<()> {
        ensure!(labels.len() <= mem.labels.len(), "{} labels exceed the batch capacity {}", labels.len(), mem.labels.len());
        mem.labels[..labels.len()].copy_from_slice(labels);
        Ok(())
    }

    fn launch(&self, mem: &mut CpuMemory<T>, kernel: &Kernel) -> Result<()> {
        let locs = kernel.locs();
        for loc in &locs {
            mem.check(*loc)?;
        }
        check_no_aliasing(kernel, &locs)?;
        run_on_cpu(mem, kernel);
        Ok(())
    }

    fn replay(&self, _: &mut CpuMemory<T>, captured: &std::convert::Infallible) -> Result<()> {
        match *captured {}
    }
}

/// Every output of a kernel must be disjoint from every other location it touches (the planner
/// guarantees it; this check turns a planner bug into an error instead of silent corruption).
pub(crate) fn check_no_aliasing(kernel: &Kernel, locs: &[Loc]) -> Result<()> {
    let outputs = output_count(kernel);
    let (ins, outs) = locs.split_at(locs.len() - outputs);
    for (i, o) in outs.iter().enumerate() {
        if let Some(other) = ins.iter().chain(&outs[i + 1..]).find(|l| l.overlaps(o)) {
            bail!("{} writes {o:?}, which overlaps {other:?}", kernel.name());
        }
    }
    Ok(())
}

/// How many trailing entries of [`Kernel::locs_mut`] are written by the kernel.
fn output_count(kernel: &Kernel) -> usize {
    use Kernel::*;
    match kernel {
        BnTrainForward { .. } => 5, // running_mean, running_var, y, mean, invstd
        BnEvalForward { .. } => 1,
        BnBackward { dx, dgamma, dbeta, .. } => dx.is_some() as usize + dgamma.is_some() as usize + dbeta.is_some() as usize,
        LinearBackward { dx, dw, db, .. } => dx.is_some() as usize + dw.is_some() as usize + db.is_some() as usize,
        SoftmaxXentForward { .. } => 3,
        Sgd { .. } => 3, // g (decay is added in place), w, buf
        Zero { .. } => 1,
        _ => 1,
    }
}

/// The destination of an accumulating CPU op in a kernel's mode: zeroed first when the kernel
/// assigns, so that assign mode is `0 + ...`, bit for bit what a `Zero` kernel before it gave.
fn assign_or_add<T: Float>(dx: &mut [T], accumulate: bool) -> &mut [T] {
    if !accumulate {
        cpu::fill_zero(dx);
    }
    dx
}

fn run_on_cpu<T: Float>(mem: &mut CpuMemory<T>, kernel: &Kernel) {
    let bases: Vec<*mut T> = mem.spaces.iter_mut().map(|s| s.as_mut_ptr()).collect();
    // SAFETY: every location was bounds-checked against its space and every written location was
    // checked to be disjoint from all others the kernel touches, so the shared and mutable slices
    // made here never alias; the memory outlives this call.
    let r = |l: Loc| -> &[T] { unsafe { std::slice::from_raw_parts(bases[space_index(l.space)].add(l.offset), l.len) } };
    let w = |l: Loc| -> &mut [T] { unsafe { std::slice::from_raw_parts_mut(bases[space_index(l.space)].add(l.offset), l.len) } };
    let labels = &mem.labels;
    use Kernel::*;
    match *kernel {
        ConvForward { g, x, w: wt, y } => cpu::conv2d_forward(&g, r(x), r(wt), w(y)),
        ConvBackwardInput { g, dy, w: wt, dx, accumulate } => cpu::conv2d_backward_input(&g, r(dy), r(wt), assign_or_add(w(dx), accumulate)),
        ConvBackwardWeight { g, x, dy, dw } => cpu::conv2d_backward_weight(&g, r(x), r(dy), w(dw)),
        BnTrainForward { g, x, gamma, beta, running_mean, running_var, y, mean, invstd, eps, momentum } => {
            cpu::batch_norm_train_forward(&g, r(x), r(gamma), r(beta), eps, momentum, w(running_mean), w(running_var), w(y), w(mean), w(invstd))
        }
        BnEvalForward { g, x, gamma, beta, running_mean, running_var, y, eps } => {
            cpu::batch_norm_eval_forward(&g, r(x), r(gamma), r(beta), r(running_mean), r(running_var), eps, w(y))
        }
        BnBackward { g, x, dy, gamma, mean, invstd, dx, dgamma, dbeta, accumulate } => {
            cpu::batch_norm_backward(&g, r(x), r(dy), r(gamma), r(mean), r(invstd), dx.map(|dx| assign_or_add(w(dx), accumulate)), dgamma.map(w), dbeta.map(w))
        }
        Relu { x, y } => cpu::relu_forward(r(x), w(y)),
        ReluBackward { y, dy, dx, accumulate } => cpu::relu_backward(r(y), r(dy), assign_or_add(w(dx), accumulate)),
        Add { a, b, y } => cpu::add_forward(r(a), r(b), w(y)),
        Accumulate { acc, x, accumulate } => cpu::accumulate(assign_or_add(w(acc), accumulate), r(x)),
        Zero { y } => cpu::fill_zero(w(y)),
        AvgPool3Forward { g, x, y } => cpu::avg_pool3x3_forward(&g, r(x), w(y)),
        AvgPool3Backward { g, dy, dx } => cpu::avg_pool3x3_backward(&g, r(dy), w(dx)),
        AvgPool2Forward { g, x, y } => cpu::avg_pool2x2_forward(&g, r(x), w(y)),
        AvgPool2Backward { g, dy, dx } => cpu::avg_pool2x2_backward(&g, r(dy), w(dx)),
        GapForward { n, c, hw, x, y } => cpu::global_avg_pool_forward(n, c, hw, r(x), w(y)),
        GapBackward { n, c, hw, dy, dx } => cpu::global_avg_pool_backward(n, c, hw, r(dy), w(dx)),
        LinearForward { g, x, w: wt, b, y } => cpu::linear_forward(&g, r(x), r(wt), b.map(r), w(y)),
        LinearBackward { g, x, w: wt, dy, dx, dw, db } => cpu::linear_backward(&g, r(x), r(wt), r(dy), dx.map(w), dw.map(w), db.map(w)),
        SoftmaxXentForward { n, classes, logits, probs, loss, correct } => {
            let (l, c) = cpu::softmax_cross_entropy_forward(n, classes, r(logits), &labels[..n], w(probs));
            w(loss)[0] = l;
            w(correct)[0] = T::from_f64(c as f64);
        }
        SoftmaxXentBackward { n, classes, probs, dlogits } => cpu::softmax_cross_entropy_backward(n, classes, r(probs), &labels[..n], T::one(), w(dlogits)),
        SumSquares { x, out } => w(out)[0] = cpu::sum_squares(r(x)),
        ClipByNorm { grads, sum_sq, max_norm } => cpu::clip_by_norm(w(grads), r(sum_sq)[0], max_norm),
        Sgd { w: wt, g, buf, lr, momentum, weight_decay, nesterov } => cpu::sgd_step(w(wt), w(g), w(buf), r(lr)[0], momentum, weight_decay, nesterov),
        SumAll { x, out } => w(out)[0] = cpu::sum_all(r(x)),
        SumAllBackward { dx } => cpu::sum_all_backward(w(dx)),
        ChannelFisher { n, c, hw, x, dy, out } => cpu::channel_fisher(n, c, hw, r(x), r(dy), w(out)),
        BinaryCodeGram { n, d, x, k } => cpu::binary_code_gram(n, d, r(x), w(k)),
        FeatureCovariance { n, c, hw, x, out } => cpu::feature_covariance(n, c, hw, r(x), w(out)),
        RandomSigns { seed, y } => cpu::random_signs(seed, w(y)),
        GradCrossCovariance { g, g_in, g_out, out } => cpu::grad_cross_covariance(&g, r(g_in), r(g_out), w(out)),
        ActivationPatterns { n, d, x, out } => cpu::activation_patterns(n, d, r(x), w(out)),
    }
}
