//! [`Gpu`]: the [`Device`] whose kernels are the CUDA kernels, on a real GPU or emulated.
//!
//! A step's memory is one allocation per [`Space`] (so parameters, gradients and momentum are
//! each one flat buffer and SGD is one launch) plus the labels; a [`Loc`] is an offset into its
//! space. The allocations are made once per session and never move, which is what lets a whole
//! step be captured as a CUDA graph and replayed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Result};

use super::capture::{capture, CapturedLaunches};
use super::driver::CudaDriver;
use super::emulated::Emulated;
use super::launch::{launch_bounded, Arg, Backend, DevicePtr, Dims, GpuAddresses, OnGpu};
use super::resident::{ResidentSplit, StepFeed};
use crate::engine::device::{Device, MemoryLayout};
use crate::engine::kernel::{Kernel, Loc, Space, SPACES};
use crate::engine::ops::augment::Augment;
use crate::engine::precision::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16, Precision};

/// Bytes of the scratch buffer each step's memory keeps for the batch-norm kernels' per-block
/// partial sums and per-channel coefficients (see ops/batchnorm/batchnorm.cu), and for the weight
/// gradients' per-split partials (see ops/conv/conv.cu: 8 MB hold 56 splits of a 64x64x3x3 conv).
pub const REDUCE_SCRATCH_BYTES: usize = 8 << 20;

/// Slots of weight-gradient partials kept past their launch (a deferred sum, see
/// `engine::deferred_sums`), each [`REDUCE_SCRATCH_BYTES`] long, after the general scratch:
/// consecutive deferring launches alternate, one writing a slot while its extra blocks sum the other.
pub const WEIGHT_PARTIAL_SLOTS: usize = 2;

/// A GPU (or its emulation) running f32 steps.
#[derive(Clone)]
pub struct Gpu {
    backend: Arc<dyn Backend>,
}

impl Gpu {
    /// GPU `ordinal` through the CUDA driver; a clear error where there is none.
    pub fn cuda(ordinal: usize) -> Result<Gpu> {
        Ok(Gpu { backend: Arc::new(CudaDriver::open(ordinal)?) })
    }

    /// The host emulation (no GPU needed).
    pub fn emulated() -> Gpu {
        Gpu { backend: Arc::new(Emulated::default()) }
    }

    /// The host emulation, with the `nth` run (0-based) of `kernel` faulting as an illegal
    /// address does on a GPU: a sticky error, every later call fails until [`Gpu::reopen`].
    pub fn emulated_with_fault(kernel: &str, nth: usize) -> Gpu {
        Gpu { backend: Arc::new(Emulated::with_fault(kernel, nth)) }
    }

    /// The same device on a new stream of its own (with its own capture state): what each
    /// [`crate::engine::Session`] launches on, so sessions never wait for or record each other.
    pub fn new_stream(&self) -> Result<Gpu> {
        Ok(Gpu { backend: self.backend.new_stream()? })
    }

    /// Whether the device hit a sticky error (see [`Gpu::reopen`]).
    pub fn is_poisoned(&self) -> bool {
        self.backend.is_poisoned()
    }

    /// The device opened afresh after a sticky error: for a GPU its context is reset (every
    /// buffer of the old one is lost), for the emulation a new device.
    pub fn reopen(&self) -> Result<Gpu> {
        match self.backend.cuda_ordinal() {
            Some(ordinal) => Ok(Gpu { backend: Arc::new(super::driver::reopen(ordinal)?) }),
            None => Ok(Gpu::emulated()),
        }
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// Waits for every launched kernel (for timing).
    pub fn synchronize(&self) -> Result<()> {
        self.backend.synchronize()
    }

    /// A zero-filled buffer of `bytes` bytes on this device.
    pub fn buffer(&self, bytes: usize) -> Result<Buffer> {
        Ok(Buffer { ptr: self.backend.alloc_zeroed(bytes)?, bytes, backend: self.backend.clone() })
    }
}

/// One device allocation, freed on drop.
pub struct Buffer {
    ptr: DevicePtr,
    bytes: usize,
    backend: Arc<dyn Backend>,
}

impl Buffer {
    pub fn ptr(&self) -> DevicePtr {
        self.ptr
    }
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// Copies `data` to the start of the buffer.
    pub fn upload(&self, data: &[u8]) -> Result<()> {
        ensure!(data.len() <= self.bytes, "writing {} bytes into a buffer of {}", data.len(), self.bytes);
        self.backend.upload(self.ptr, data)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated by this backend, dropped once.
        unsafe { self.backend.free(self.ptr, self.bytes) }
    }
}

/// A step's memory on a [`Gpu`]: one buffer per space (f32 elements; bfloat16 for `Half`, see
/// [`Space::gpu_bytes`]), and the labels (u32).
pub struct GpuMemory {
    spaces: [Buffer; SPACES],
    /// Elements of each space.
    lens: [usize; SPACES],
    labels: Buffer,
    label_capacity: usize,
    /// Scratch for kernels that reduce over many blocks (batch-norm partial sums), reused by
    /// each such kernel in turn (they run in stream order); then the weight-partial slots.
    reduce: Buffer,
    /// (loss, correct) of each step of a training loop that reads them once at its end
    /// ([`Device::record_step`]); two floats a step.
    steps: Option<Buffer>,
    /// Which buffers these are: new whenever one is (re)allocated, so a capture made on other
    /// buffers is never replayed on these.
    generation: u64,
}

/// A source of generations unique in the process (so two memories never share one).
fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Kernels captured on one [`GpuMemory`] (a CUDA graph), replayable while its buffers stay.
pub struct GpuCapture {
    launches: Box<dyn CapturedLaunches>,
    generation: u64,
}

impl GpuCapture {
    /// How many kernel launches one replay makes (the graph's nodes on a GPU).
    pub fn launches(&self) -> usize {
        self.launches.launches()
    }
}

const F32: usize = std::mem::size_of::<f32>();

impl GpuAddresses for GpuMemory {
    fn address(&self, loc: Loc) -> Result<DevicePtr> {
        let i = loc.space.index();
        ensure!(loc.end() <= self.lens[i], "{loc:?} lies outside its space of {} elements", self.lens[i]);
        Ok(self.spaces[i].ptr + (loc.offset * loc.space.gpu_bytes()) as u64)
    }

    fn labels(&self) -> (DevicePtr, usize) {
        (self.labels.ptr, self.label_capacity)
    }

    fn reduce_scratch(&self) -> (DevicePtr, usize) {
        (self.reduce.ptr, REDUCE_SCRATCH_BYTES)
    }

    fn weight_partials(&self, slot: usize) -> Result<(DevicePtr, usize)> {
        ensure!(slot < WEIGHT_PARTIAL_SLOTS, "weight-partial slot {slot}: there are {WEIGHT_PARTIAL_SLOTS}");
        Ok((self.reduce.ptr + ((1 + slot) * REDUCE_SCRATCH_BYTES) as u64, REDUCE_SCRATCH_BYTES))
    }
}

impl Device<f32> for Gpu {
    type Memory = GpuMemory;
    type Captured = GpuCapture;
    type Resident = ResidentSplit;

    fn name(&self) -> String {
        self.backend.describe()
    }

    fn fuses(&self) -> bool {
        true
    }

    fn for_session(self) -> Result<Gpu> {
        self.new_stream()
    }

    fn timed_launch(&self, mem: &mut GpuMemory, kernel: &Kernel) -> Result<f64> {
        self.backend.time(&mut || self.launch(mem, kernel))
    }

    fn clock(&self) -> &'static str {
        self.backend.clock()
    }

    fn alloc(&self, layout: &MemoryLayout) -> Result<GpuMemory> {
        let lens = Space::ALLOCATED.map(|s| layout.len(s));
        let buffers: Vec<Buffer> = Space::ALLOCATED.iter().zip(lens).map(|(s, n)| self.buffer(n * s.gpu_bytes())).collect::<Result<_>>()?;
        Ok(GpuMemory {
            spaces: buffers.try_into().unwrap_or_else(|_| unreachable!()),
            lens,
            labels: self.buffer(layout.labels * 4)?,
            label_capacity: layout.labels,
            reduce: self.buffer((1 + WEIGHT_PARTIAL_SLOTS) * REDUCE_SCRATCH_BYTES)?,
            steps: None,
            generation: next_generation(),
        })
    }

    fn grow_scratch(&self, mem: &mut GpuMemory, layout: &MemoryLayout) -> Result<()> {
        for space in [Space::Work, Space::Half] {
            let (i, len) = (space.index(), layout.len(space));
            if mem.lens[i] < len {
                mem.spaces[i] = self.buffer(len * space.gpu_bytes())?;
                mem.lens[i] = len;
                mem.generation = next_generation();
            }
        }
        if mem.label_capacity < layout.labels {
            mem.labels = self.buffer(layout.labels * 4)?;
            mem.label_capacity = layout.labels;
            mem.generation = next_generation();
        }
        Ok(())
    }

    fn write(&self, mem: &mut GpuMemory, loc: Loc, data: &[f32]) -> Result<()> {
        ensure!(data.len() == loc.len, "writing {} elements into {loc:?}", data.len());
        let at = mem.address(loc)?;
        // Queued on this stream, before the kernels that read it; the memory is this stream's.
        // SAFETY: `at` addresses loc.len elements inside its space (checked above).
        if let Some((to_16, _)) = conversions(loc.space) {
            let half: Vec<u16> = data.iter().map(|&v| to_16(v)).collect();
            return unsafe { self.backend.upload_async(at, bytemuck::cast_slice(&half)) };
        }
        unsafe { self.backend.upload_async(at, bytemuck::cast_slice(data)) }
    }

    fn read(&self, mem: &GpuMemory, loc: Loc) -> Result<Vec<f32>> {
        let at = mem.address(loc)?;
        if let Some((_, from_16)) = conversions(loc.space) {
            let mut half = vec![0u16; loc.len];
            self.backend.download(at, bytemuck::cast_slice_mut(&mut half))?;
            return Ok(half.into_iter().map(from_16).collect());
        }
        let mut out = vec![0f32; loc.len];
        self.backend.download(at, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    fn write_labels(&self, mem: &mut GpuMemory, labels: &[u32]) -> Result<()> {
        ensure!(labels.len() <= mem.label_capacity, "{} labels exceed the batch capacity {}", labels.len(), mem.label_capacity);
        // SAFETY: the label buffer holds label_capacity labels (checked above).
        unsafe { self.backend.upload_async(mem.labels.ptr, bytemuck::cast_slice(labels)) }
    }

    fn launch(&self, mem: &mut GpuMemory, kernel: &Kernel) -> Result<()> {
        let locs = kernel.locs();
        // Every index product a kernel computes in `int` (n*c*h*w, n*classes, n*n, ...) is the
        // length of one of its locations; with the grid-stride step it must not wrap.
        for loc in &locs {
            super::launch::check_index_range(kernel.name(), loc.len)?;
        }
        for loc in &locs {
            mem.address(*loc)?;
        }
        kernel.check_no_aliasing(&locs)?;
        super::launch::stored_variants_exist(kernel.name(), &locs, &kernel.launch_names())?;
        kernel.launch(&OnGpu { backend: &*self.backend, mem })
    }

    fn make_resident(&self, images: &[u8], aug: &Augment) -> Result<Option<ResidentSplit>> {
        self.upload_split(images, aug).map(Some)
    }

    fn augment_resident(&self, mem: &mut GpuMemory, split: &ResidentSplit, seed: u64, epoch: u64, start: usize, n: usize, out: Loc) -> Result<()> {
        self.augment_batch(split, seed, epoch, start, n, mem, out)
    }

    fn feed_resident(
        &self,
        mem: &mut GpuMemory,
        split: &ResidentSplit,
        seed: u64,
        epoch: u64,
        start: usize,
        n: usize,
        out: Loc,
        lr_at: Loc,
        lr: f32,
    ) -> Result<()> {
        ensure!(lr_at.len == 1, "the learning rate is one value, not {lr_at:?}");
        let feed = StepFeed { labels: mem.labels.ptr, lr: mem.address(lr_at)?, lr_value: lr };
        self.feed_batch(split, seed, epoch, start, n, mem, out, Some(feed))
    }

    fn begin_steps(&self, mem: &mut GpuMemory, steps: usize) -> Result<()> {
        let bytes = steps.max(1) * 2 * F32;
        if mem.steps.as_ref().is_none_or(|b| b.bytes() < bytes) {
            mem.steps = Some(self.buffer(bytes)?);
        }
        Ok(())
    }

    fn record_step(&self, mem: &mut GpuMemory, loss: Loc, correct: Loc, slot: usize) -> Result<()> {
        let slots = mem.steps.as_ref().filter(|b| (slot + 1) * 2 * F32 <= b.bytes());
        let Some(slots) = slots else { anyhow::bail!("step slot {slot} lies beyond the slots made by begin_steps") };
        let args = [Arg::Ptr(mem.address(loss)?), Arg::Ptr(mem.address(correct)?), Arg::Ptr(slots.ptr), Arg::len(slot)?];
        // SAFETY: loss and correct are bounds-checked locations; the slot lies inside the buffer (checked above).
        unsafe { launch_bounded(&*self.backend, "fear_record_step", Dims::elementwise(1), &args) }
    }

    fn read_steps(&self, mem: &GpuMemory, steps: usize) -> Result<Vec<(f32, f32)>> {
        if steps == 0 {
            return Ok(Vec::new());
        }
        let slots = mem.steps.as_ref().filter(|b| steps * 2 * F32 <= b.bytes());
        let Some(slots) = slots else { anyhow::bail!("{steps} step slots asked for, more than begin_steps made") };
        let mut out = vec![0f32; steps * 2];
        self.backend.download(slots.ptr, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out.chunks(2).map(|c| (c[0], c[1])).collect())
    }

    fn capture(&self, mem: &mut GpuMemory, kernels: &[&Kernel]) -> Result<Option<GpuCapture>> {
        let launches = capture(&*self.backend, || kernels.iter().try_for_each(|k| self.launch(mem, k)))?;
        Ok(Some(GpuCapture { launches, generation: mem.generation }))
    }

    fn replay(&self, mem: &mut GpuMemory, captured: &GpuCapture) -> Result<()> {
        ensure!(captured.generation == mem.generation, "replaying a capture made on other buffers (the memory grew since): capture again");
        // SAFETY: the capture's launches address this memory's buffers (same generation), all still
        // allocated; each location was bounds-checked when captured.
        unsafe { captured.launches.replay() }
    }
}

/// A 16-bit format's conversions: to its bits (rounding), and back to f32 (exact).
type Conversions = (fn(f32) -> u16, fn(u16) -> f32);

/// The host's conversions (to 16 bits, back to f32) of a space stored in 16 bits: precision.rs's
/// integer code, the kernels' line for line (tested against the `half` crate there), so an upload
/// rounds as a kernel's store does; None for an f32 space.
fn conversions(space: Space) -> Option<Conversions> {
    match space.storage() {
        Precision::Bf16 => Some((f32_to_bf16, bf16_to_f32)),
        Precision::F16 => Some((f32_to_f16, f16_to_f32)),
        _ => None,
    }
}
