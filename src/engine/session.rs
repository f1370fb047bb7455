//! A session: one network's memory on one device, and the planned steps that run on it.
//!
//! The session owns the parameters, gradients, momentum and BN statistics (allocated once) and a
//! cache of planned programs, one per (batch size, mode) and per set of trainable parameters.
//! Freezing parameters re-plans the step, so a frozen prefix runs forward only.
//!
//! With [`Session::set_capture`] on, a device that can (a GPU) records each kind of step once as
//! a CUDA graph and replays it from then on: one launch instead of one per kernel.

use std::collections::HashMap;

use anyhow::{anyhow, ensure, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::device::{Device, MemoryLayout};
use super::graph::{Graph, Init, ParamSpec};
use super::kernel::{Kernel, Loc, Space};
use super::loss_scale::{LossScaleState, LossScaling};
use super::plan::{loss_scale_loc, plan, PlanOptions, Program};
use super::Float;

/// Builds the network's graph for a batch size.
pub type GraphFn = Box<dyn Fn(usize) -> Graph + Send + Sync>;

/// What one step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutput {
    /// Mean cross-entropy over the batch.
    pub loss: f64,
    /// Rows whose top-1 prediction equals the label.
    pub correct: usize,
    pub n: usize,
}

pub struct Session<T: Float, D: Device<T>> {
    device: D,
    build: GraphFn,
    graph: Graph,
    trainable: Vec<bool>,
    opts: PlanOptions,
    programs: HashMap<(usize, bool), Program>,
    mem: D::Memory,
    layout: MemoryLayout,
    /// Seconds and launches per kernel name, when profiling is on.
    profile: Option<HashMap<&'static str, (usize, f64)>>,
    /// Whether steps are captured and replayed (see [`Session::set_capture`]).
    capture: bool,
    /// The captured steps: valid while their program and the memory's buffers are.
    captured: HashMap<StepKind, D::Captured>,
    /// The loss-scaling rules whose initial state is in memory (None: not written since the last
    /// reset): written before the first step that scales.
    loss_scale_written: Option<LossScaling>,
}

/// Which kernels a step launches: its program's (batch, train) and whether it updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct StepKind {
    batch: usize,
    train: bool,
    update: bool,
}

impl StepKind {
    /// The kernels of this kind of step, in launch order.
    fn kernels(self, p: &Program) -> Vec<&Kernel> {
        let backward = if self.train { &p.backward[..] } else { &[] };
        let update = if self.update { &p.update[..] } else { &[] };
        p.forward.iter().chain(backward).chain(update).collect()
    }
}

/// `opts` with [`PlanOptions::fuse`] kept only on a device that fuses ([`Device::fuses`]): the CPU
/// runs the unfused plan, whatever options it is given.
fn fused_where_the_device_fuses<T: Float, D: Device<T>>(opts: PlanOptions, device: &D) -> PlanOptions {
    PlanOptions { fuse: opts.fuse && device.fuses(), ..opts }
}

impl<T: Float, D: Device<T>> Session<T, D> {
    /// A session for the network `build` makes, every parameter trainable, memory sized for
    /// `batch`; parameters start at zero until [`Session::init_params`] or a load.
    pub fn new(device: D, build: GraphFn, batch: usize, opts: PlanOptions) -> Result<Self> {
        // A GPU session launches on a stream of its own (R9 of GPU-REVIEW.md).
        let device = device.for_session()?;
        let opts = fused_where_the_device_fuses(opts, &device);
        let graph = build(batch);
        let trainable = vec![true; graph.params.len()];
        let first = plan(&graph, &trainable, &opts);
        let layout = first.layout;
        let mem = device.alloc(&layout).context("allocating the network's memory")?;
        let mut s = Session {
            device,
            build,
            graph,
            trainable,
            opts,
            programs: HashMap::new(),
            mem,
            layout,
            profile: None,
            capture: false,
            captured: HashMap::new(),
            loss_scale_written: None,
        };
        s.programs.insert((batch, opts.train), first);
        s.reset_state()?;
        Ok(s)
    }

    pub fn device(&self) -> &D {
        &self.device
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn params(&self) -> &[ParamSpec] {
        &self.graph.params
    }

    pub fn options(&self) -> &PlanOptions {
        &self.opts
    }

    /// Changes the optimiser and clipping options (re-plans). As in [`Session::new`], the plan
    /// fuses only on a device that does.
    pub fn set_options(&mut self, opts: PlanOptions) {
        self.opts = fused_where_the_device_fuses(opts, &self.device);
        self.forget_programs();
    }

    /// Turns step capture on or off (off by default). On a device that can capture (a GPU), the
    /// first step of each kind (batch size; train, train without update, or eval) is captured
    /// and then replayed, and later steps of that kind only replay: every step, the first
    /// included, runs the same graph. (Capture records without running, as CUDA stream capture
    /// does, so the capturing step runs by its first replay; running it eagerly as well would
    /// apply its update twice.) Captures are dropped whenever the step is re-planned or the
    /// scratch memory grows, and profiling launches eagerly. Elsewhere this changes nothing.
    pub fn set_capture(&mut self, on: bool) {
        self.capture = on;
        self.captured.clear();
    }

    /// The captured step of `batch` images in train or eval mode, with or without the update,
    /// if capture is on and one was made.
    pub fn captured(&self, batch: usize, train: bool, update: bool) -> Option<&D::Captured> {
        self.captured.get(&StepKind { batch, train, update })
    }

    /// Drops every planned step and every capture of one (after a change of what is planned).
    fn forget_programs(&mut self) {
        self.programs.clear();
        self.captured.clear();
    }

    /// Draws every parameter from its PyTorch default distribution with a seeded generator, and
    /// resets BN statistics and momentum.
    pub fn init_params(&mut self, seed: u64) -> Result<()> {
        let values: Vec<T> = initial_params(&self.graph, seed);
        self.device.write(&mut self.mem, Loc::new(Space::Params, 0, values.len()), &values)?;
        self.reset_state()?;
        self.reset_momentum()
    }

    /// BN running statistics back to mean 0, variance 1 (and loss scaling, if any, back to its
    /// initial scale before the next step).
    pub fn reset_state(&mut self) -> Result<()> {
        self.loss_scale_written = None;
        let mut values = vec![T::zero(); self.graph.state_len()];
        for spec in &self.graph.states {
            fill(&mut values[spec.offset..spec.offset + spec.len()], spec.init, &mut ChaCha8Rng::seed_from_u64(0));
        }
        self.device.write(&mut self.mem, Loc::new(Space::State, 0, values.len()), &values)
    }

    /// A fresh optimiser: momentum buffers to zero.
    pub fn reset_momentum(&mut self) -> Result<()> {
        let zeros = vec![T::zero(); self.graph.param_len()];
        self.device.write(&mut self.mem, Loc::new(Space::Momentum, 0, zeros.len()), &zeros)
    }

    /// Makes exactly the parameters whose name satisfies `keep` trainable (re-plans the step).
    pub fn set_trainable(&mut self, keep: impl Fn(&str) -> bool) {
        self.trainable = self.graph.params.iter().map(|p| keep(&p.name)).collect();
        self.forget_programs();
    }

    /// Makes exactly the parameters under one of `prefixes` trainable (FEAR's stage 2).
    pub fn train_only(&mut self, prefixes: &[String]) {
        let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
        self.set_trainable(|name| has_prefix(name, &prefixes));
    }

    pub fn is_trainable(&self, name: &str) -> Option<bool> {
        self.graph.params.iter().position(|p| p.name == name).map(|i| self.trainable[i])
    }

    /// The planned step for `batch` images in train or eval mode.
    pub fn program(&mut self, batch: usize, train: bool) -> Result<&Program> {
        ensure!(batch > 0, "a batch needs at least one image");
        if !self.programs.contains_key(&(batch, train)) {
            let graph = if batch == self.graph.batch() { self.graph.clone() } else { (self.build)(batch) };
            let p = plan(&graph, &self.trainable, &PlanOptions { train, ..self.opts });
            if p.layout.work > self.layout.work || p.layout.half > self.layout.half || p.layout.labels > self.layout.labels {
                self.layout.work = self.layout.work.max(p.layout.work);
                self.layout.half = self.layout.half.max(p.layout.half);
                self.layout.labels = self.layout.labels.max(p.layout.labels);
                self.device.grow_scratch(&mut self.mem, &self.layout)?;
                // The captures address the old buffers.
                self.captured.clear();
            }
            self.programs.insert((batch, train), p);
        }
        Ok(&self.programs[&(batch, train)])
    }

    /// Train-mode forward and backward (gradients left in place, no update). Refused under loss
    /// scaling, whose gradients are unscaled by the update.
    pub fn forward_backward(&mut self, images: &[T], labels: &[u32]) -> Result<StepOutput> {
        ensure!(self.opts.loss_scaling.is_none(), "a forward and backward without the update leaves loss-scaled gradients: not with --precision fp16");
        self.run(Input::Host(images), labels, true, None)
    }

    /// Loss scaling's state as it stands (None for a session whose steps do not scale).
    /// Before its first step, the state is not written yet: None too (nothing skipped).
    pub fn loss_scale(&self) -> Result<Option<LossScaleState>> {
        if self.opts.loss_scaling.is_none() || self.loss_scale_written.is_none() {
            return Ok(None);
        }
        Ok(Some(LossScaleState::from_slots(&self.device.read(&self.mem, loss_scale_loc(&self.graph))?)))
    }

    /// Writes loss scaling's initial state before the first step that scales (after a reset or
    /// a change of rules).
    fn init_loss_scale(&mut self, state: Loc) -> Result<()> {
        if let Some(rules) = self.opts.loss_scaling {
            if self.loss_scale_written != Some(rules) {
                self.device.write(&mut self.mem, state, &rules.initial_slots::<T>())?;
                self.loss_scale_written = Some(rules);
            }
        }
        Ok(())
    }

    /// One training step: forward, backward, clipping if configured, SGD at learning rate `lr`.
    pub fn train_step(&mut self, images: &[T], labels: &[u32], lr: f64) -> Result<StepOutput> {
        self.run(Input::Host(images), labels, true, Some(lr))
    }

    /// [`Session::train_step`] on the batch at positions `start .. start + labels.len()` of a
    /// resident split's epoch order, augmented on the device for `(seed, epoch)`.
    pub fn train_step_resident(&mut self, split: &D::Resident, seed: u64, epoch: u64, start: usize, labels: &[u32], lr: f64) -> Result<StepOutput> {
        self.run(Input::Resident { split, seed, epoch, start }, labels, true, Some(lr))
    }

    /// Queues one training step on the batch at positions `start .. start + n` of a resident
    /// split's epoch order (as [`Session::train_step_resident`]) with nothing read back and
    /// nothing uploaded: the data kernel also gathers the labels (from
    /// [`crate::engine::cuda::ResidentSplit::set_labels`]) and writes the learning rate, and the step's loss and hits
    /// stay on the device in slot `slot` until [`Session::read_queued_steps`]. With capture on,
    /// the step is a replayed graph; either way the host never waits between steps. Call
    /// [`Session::begin_queued_steps`] first.
    #[allow(clippy::too_many_arguments)]
    pub fn train_step_queued(&mut self, split: &D::Resident, seed: u64, epoch: u64, start: usize, n: usize, lr: f64, slot: usize) -> Result<()> {
        let p = self.program(n, true)?;
        let (input, lr_at, loss, correct, scaler) = (p.input, p.lr, p.loss, p.correct, p.loss_scale);
        self.init_loss_scale(scaler)?;
        self.device.feed_resident(&mut self.mem, split, seed, epoch, start, n, input, lr_at, T::from_f64(lr))?;
        self.launch_step(StepKind { batch: n, train: true, update: true })?;
        self.device.record_step(&mut self.mem, loss, correct, slot)
    }

    /// Makes room for the figures of `steps` queued steps.
    pub fn begin_queued_steps(&mut self, steps: usize) -> Result<()> {
        self.device.begin_steps(&mut self.mem, steps)
    }

    /// (loss, hits) of queued steps `0..steps`, read at once (waits for them to finish).
    pub fn read_queued_steps(&self, steps: usize) -> Result<Vec<(f64, usize)>> {
        Ok(self.device.read_steps(&self.mem, steps)?.into_iter().map(|(l, c)| (l.as_f64(), c.as_f64() as usize)).collect())
    }

    /// Whether steps are captured and replayed ([`Session::set_capture`]).
    pub fn capturing(&self) -> bool {
        self.capture
    }

    /// Eval-mode forward (BN uses running statistics; nothing is updated).
    pub fn evaluate(&mut self, images: &[T], labels: &[u32]) -> Result<StepOutput> {
        self.run(Input::Host(images), labels, false, None)
    }

    fn run(&mut self, input: Input<T, D::Resident>, labels: &[u32], train: bool, lr: Option<f64>) -> Result<StepOutput> {
        let n = labels.len();
        if let Input::Host(images) = input {
            let per_image: usize = self.graph.values[self.graph.input.0].shape[1..].iter().product();
            ensure!(images.len() == n * per_image, "{} input values for {n} labels of {per_image} values each", images.len());
        }
        self.program(n, train)?;
        // Every host-to-device copy happens here, before the kernels (a capture refuses copies).
        let p = &self.programs[&(n, train)];
        match input {
            Input::Host(images) => self.device.write(&mut self.mem, p.input, images)?,
            // A kernel launch, not a copy: it runs before the step's kernels, outside any capture.
            Input::Resident { split, seed, epoch, start } => self.device.augment_resident(&mut self.mem, split, seed, epoch, start, n, p.input)?,
        }
        self.device.write_labels(&mut self.mem, labels)?;
        if let Some(lr) = lr {
            self.device.write(&mut self.mem, p.lr, &[T::from_f64(lr)])?;
            let scaler = p.loss_scale;
            self.init_loss_scale(scaler)?;
        }
        self.launch_step(StepKind { batch: n, train, update: lr.is_some() })?;
        let p = &self.programs[&(n, train)];
        let loss = self.device.read(&self.mem, p.loss)?[0].as_f64();
        let correct = self.device.read(&self.mem, p.correct)?[0].as_f64() as usize;
        Ok(StepOutput { loss, correct, n })
    }

    /// Runs a planned step's kernels: its capture's replay when capturing (capturing it first
    /// where there is none yet), else one launch per kernel.
    fn launch_step(&mut self, kind: StepKind) -> Result<()> {
        let p = &self.programs[&(kind.batch, kind.train)];
        if self.capture && self.profile.is_none() {
            if !self.captured.contains_key(&kind) {
                if let Some(c) = self.device.capture(&mut self.mem, &kind.kernels(p))? {
                    self.captured.insert(kind, c);
                }
            }
            if let Some(c) = self.captured.get(&kind) {
                return self.device.replay(&mut self.mem, c);
            }
        }
        for k in kind.kernels(p) {
            let Some(profile) = self.profile.as_mut() else {
                self.device.launch(&mut self.mem, k)?;
                continue;
            };
            // GPU time from CUDA events on a GPU, host time elsewhere (see profile_clock).
            let secs = self.device.timed_launch(&mut self.mem, k)?;
            let e = profile.entry(k.name()).or_default();
            *e = (e.0 + 1, e.1 + secs);
        }
        Ok(())
    }

    /// Starts (or restarts) timing every kernel launch by kernel name (launching eagerly, one
    /// kernel at a time, even with capture on).
    pub fn start_profile(&mut self) {
        self.profile = Some(HashMap::new());
    }

    /// Stops timing launches (and lets captured steps replay again).
    pub fn stop_profile(&mut self) {
        self.profile = None;
    }

    /// What the profile's seconds measure: "GPU time (CUDA events)" or "host time".
    pub fn profile_clock(&self) -> &'static str {
        self.device.clock()
    }

    /// (kernel name, launches, seconds) since [`Session::start_profile`], slowest first.
    pub fn profile(&self) -> Vec<(&'static str, usize, f64)> {
        let mut rows: Vec<_> = self.profile.iter().flatten().map(|(k, (n, t))| (*k, *n, *t)).collect();
        rows.sort_by(|a, b| b.2.total_cmp(&a.2));
        rows
    }

    /// The last step's logits ([n, classes]) for a batch of `n`.
    pub fn logits(&self, n: usize, train: bool) -> Result<Vec<T>> {
        let p = self.programs.get(&(n, train)).ok_or_else(|| anyhow!("no step of batch {n} has run"))?;
        self.device.read(&self.mem, p.logits)
    }

    /// The last train step's gradient with respect to its input batch of `n` (planned with
    /// `input_grad`).
    pub fn read_input_grad(&self, n: usize) -> Result<Vec<T>> {
        let p = self.programs.get(&(n, true)).ok_or_else(|| anyhow!("no train step of batch {n} has run"))?;
        let loc = p.input_grad.ok_or_else(|| anyhow!("the step was not planned with an input gradient"))?;
        self.device.read(&self.mem, loc)
    }

    /// After a train step of batch `n` planned with `fisher`: per conv / linear layer, its
    /// weight's name and the per-output-channel Fisher term of its output.
    pub fn read_fisher(&self, n: usize) -> Result<Vec<(String, Vec<T>)>> {
        let p = self.programs.get(&(n, true)).ok_or_else(|| anyhow!("no train step of batch {n} has run"))?;
        p.fisher.iter().map(|&(w, loc)| Ok((self.graph.params[w].name.clone(), self.device.read(&self.mem, loc)?))).collect()
    }

    /// After a train step of batch `n` planned with `relu_codes`: the `[n, n]` Gram matrix of
    /// the ReLU input codes.
    pub fn read_code_gram(&self, n: usize) -> Result<Vec<T>> {
        let p = self.programs.get(&(n, true)).ok_or_else(|| anyhow!("no train step of batch {n} has run"))?;
        let loc = p.code_gram.ok_or_else(|| anyhow!("the step was not planned with relu_codes"))?;
        self.device.read(&self.mem, loc)
    }

    /// After a train step of batch `n` planned with `cell_probes`: per graph feature, its
    /// channel covariance `[c, c]`.
    pub fn read_feature_cov(&self, n: usize) -> Result<Vec<Vec<T>>> {
        let p = self.programs.get(&(n, true)).ok_or_else(|| anyhow!("no train step of batch {n} has run"))?;
        p.feature_cov.iter().map(|&loc| self.device.read(&self.mem, loc)).collect()
    }

    /// After a train step of batch `n` planned with `cell_probes`: per cell j >= 1, its
    /// cross-covariance geometry and values (matrix then identity flag), None for a cell that
    /// is its input's value; empty when no backward pass was planned (the loss does not depend
    /// on the input: a disconnected cell).
    pub fn read_cell_cross(&self, n: usize) -> Result<Vec<CellCross<T>>> {
        let p = self.programs.get(&(n, true)).ok_or_else(|| anyhow!("no train step of batch {n} has run"))?;
        p.cell_cross.iter().map(|c| c.map(|(g, loc)| Ok((g, self.device.read(&self.mem, loc)?))).transpose()).collect()
    }

    /// After a train step of batch `n` planned with `taps`: per tapped value, the channel
    /// covariance of its first sample and how many modules output it.
    pub fn read_tap_cov(&self, n: usize) -> Result<Vec<(Vec<T>, usize)>> {
        let p = self.programs.get(&(n, true)).ok_or_else(|| anyhow!("no train step of batch {n} has run"))?;
        p.tap_cov.iter().map(|&(loc, k)| Ok((self.device.read(&self.mem, loc)?, k))).collect()
    }

    /// After a train step of batch `n` planned with `relu_patterns`: per ReLU, its units'
    /// sample-wise activation patterns.
    pub fn read_relu_patterns(&self, n: usize) -> Result<Vec<Vec<T>>> {
        let p = self.programs.get(&(n, true)).ok_or_else(|| anyhow!("no train step of batch {n} has run"))?;
        p.relu_patterns.iter().map(|&loc| self.device.read(&self.mem, loc)).collect()
    }

    fn param_loc(&self, space: Space, name: &str) -> Result<Loc> {
        let spec = self.graph.param_by_name(name).ok_or_else(|| anyhow!("the network has no parameter named {name}"))?;
        Ok(Loc::new(space, spec.offset, spec.len()))
    }

    pub fn read_param(&self, name: &str) -> Result<Vec<T>> {
        self.device.read(&self.mem, self.param_loc(Space::Params, name)?)
    }

    pub fn read_grad(&self, name: &str) -> Result<Vec<T>> {
        self.device.read(&self.mem, self.param_loc(Space::ParamGrads, name)?)
    }

    /// A BN running statistic by its PyTorch name.
    pub fn read_state(&self, name: &str) -> Result<Vec<T>> {
        let spec = self.graph.states.iter().find(|s| s.name == name).ok_or_else(|| anyhow!("the network has no buffer named {name}"))?;
        self.device.read(&self.mem, Loc::new(Space::State, spec.offset, spec.len()))
    }

    /// All parameters, flat, in parameter order.
    pub fn read_all_params(&self) -> Result<Vec<T>> {
        self.device.read(&self.mem, Loc::new(Space::Params, 0, self.graph.param_len()))
    }

    /// All parameter gradients, flat, in parameter order.
    pub fn read_all_grads(&self) -> Result<Vec<T>> {
        self.device.read(&self.mem, Loc::new(Space::ParamGrads, 0, self.graph.param_len()))
    }

    /// All momentum buffers, flat, in parameter order.
    pub fn read_all_momentum(&self) -> Result<Vec<T>> {
        self.device.read(&self.mem, Loc::new(Space::Momentum, 0, self.graph.param_len()))
    }

    /// Sets every parameter at once (flat, in parameter order).
    pub fn write_all_params(&mut self, values: &[T]) -> Result<()> {
        ensure!(values.len() == self.graph.param_len(), "{} parameter values given, the network has {}", values.len(), self.graph.param_len());
        self.device.write(&mut self.mem, Loc::new(Space::Params, 0, values.len()), values)
    }

    /// Sets a parameter or a BN buffer by its PyTorch name; the length must match.
    pub fn write_named(&mut self, name: &str, data: &[T]) -> Result<()> {
        let spec =
            self.graph.params.iter().map(|s| (s, Space::Params)).chain(self.graph.states.iter().map(|s| (s, Space::State))).find(|(s, _)| s.name == name);
        let (spec, space) = spec.ok_or_else(|| anyhow!("the network has no parameter or buffer named {name}"))?;
        ensure!(data.len() == spec.len(), "{name}: {} values given, the network's has shape {:?}", data.len(), spec.shape);
        self.device.write(&mut self.mem, Loc::new(space, spec.offset, spec.len()), data)
    }
}

/// Where a step's input batch comes from.
enum Input<'a, T, R> {
    /// Floats in host memory, uploaded before the step.
    Host(&'a [T]),
    /// Positions `start..` of a resident split's epoch order, augmented on the device.
    Resident { split: &'a R, seed: u64, epoch: u64, start: usize },
}

/// One cell's cross-covariance as read back: its geometry and values, or None for an identity cell.
pub type CellCross<T> = Option<(crate::engine::ops::CrossGeom, Vec<T>)>;

/// Every parameter of `graph` drawn from its PyTorch default distribution by a generator seeded
/// with `seed`, flat in parameter order (what [`Session::init_params`] writes).
pub fn initial_params<T: Float>(graph: &Graph, seed: u64) -> Vec<T> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values = vec![T::zero(); graph.param_len()];
    for spec in &graph.params {
        fill(&mut values[spec.offset..spec.offset + spec.len()], spec.init, &mut rng);
    }
    values
}

fn has_prefix(name: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| name == *p || name.strip_prefix(p).is_some_and(|rest| rest.starts_with('.')))
}

fn fill<T: Float>(slot: &mut [T], init: Init, rng: &mut ChaCha8Rng) {
    match init {
        Init::Zeros => slot.fill(T::zero()),
        Init::Ones => slot.fill(T::one()),
        Init::Uniform(bound) => slot.iter_mut().for_each(|v| *v = T::from_f64(rng.random_range(-bound..bound))),
    }
}
