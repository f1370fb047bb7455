//! The device trait: where a planned step's memory lives and how its kernels run.
//!
//! A device allocates the step's memory and launches a [`Kernel`] on it; a GPU device also keeps
//! training data resident, augments it, and captures and replays steps. The plan (which kernels,
//! which locations) is device independent. The CPU device ([`super::cpu_device::Cpu`]) runs each
//! kernel's CPU face; a GPU device ([`super::cuda::Gpu`]) launches its CUDA kernels with the same
//! locations (each family's faces are in [`super::ops`]).

use anyhow::{bail, Result};

use super::kernel::{Kernel, Loc, Space};
use super::ops::augment::Augment;
use super::Float;

/// How many elements each space of a step's memory holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryLayout {
    /// Parameters (and, with the same length, their gradients and momentum).
    pub params: usize,
    pub state: usize,
    pub work: usize,
    /// Elements of `Space::Half` or `Space::HalfF16`, one allocation (tensors stored in 16 bits; 0
    /// for an f32 step).
    pub half: usize,
    /// Capacity of the label buffer (the batch size).
    pub labels: usize,
}

impl MemoryLayout {
    pub fn len(&self, space: Space) -> usize {
        match space {
            Space::Params | Space::ParamGrads | Space::Momentum => self.params,
            Space::State => self.state,
            Space::Work => self.work,
            Space::Half | Space::HalfF16 => self.half,
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
    /// A training split's images kept on the device ([`Device::make_resident`]); devices that
    /// keep none use [`std::convert::Infallible`].
    type Resident: ResidentImages;
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
    /// Whether steps planned for this device fuse ops ([`super::PlanOptions::fuse`]): a GPU,
    /// where every launch and every pass over memory costs. The CPU runs the unfused plan (the
    /// fused kernels' CPU face is the unfused pair, for the self-test).
    fn fuses(&self) -> bool {
        false
    }
    /// What [`Device::timed_launch`] measures.
    fn clock(&self) -> &'static str {
        "host time"
    }
    /// Allocates every space of `layout`, zero-filled.
    fn alloc(&self, layout: &MemoryLayout) -> Result<Self::Memory>;
    /// Grows the `Work` and `Half` spaces and the label buffer to at least `layout`'s sizes (their contents
    /// are scratch between steps and may be lost); the other spaces are kept.
    fn grow_scratch(&self, mem: &mut Self::Memory, layout: &MemoryLayout) -> Result<()>;
    fn write(&self, mem: &mut Self::Memory, loc: Loc, data: &[T]) -> Result<()>;
    fn read(&self, mem: &Self::Memory, loc: Loc) -> Result<Vec<T>>;
    fn write_labels(&self, mem: &mut Self::Memory, labels: &[u32]) -> Result<()>;
    fn launch(&self, mem: &mut Self::Memory, kernel: &Kernel) -> Result<()>;

    /// Keeps a training split's images (bytes) on the device, so that each step's batch is
    /// augmented there instead of on the host and uploaded. `None` where the device takes its
    /// batches from host memory (the CPU).
    fn make_resident(&self, _images: &[u8], _aug: &Augment) -> Result<Option<Self::Resident>> {
        Ok(None)
    }

    /// Writes positions `start .. start + n` of a resident split's epoch order, augmented for
    /// `(seed, epoch)`, into `out`.
    #[allow(clippy::too_many_arguments)]
    fn augment_resident(&self, _mem: &mut Self::Memory, _split: &Self::Resident, _seed: u64, _epoch: u64, _start: usize, _n: usize, _out: Loc) -> Result<()> {
        bail!("{} keeps no images on the device", self.name())
    }

    /// [`Device::augment_resident`], and also the batch's labels (gathered on the device from
    /// the split's, see [`super::cuda::ResidentSplit::set_labels`]) and the learning rate `lr` at `lr_at`: a
    /// training step fed with no upload, so nothing waits between steps.
    #[allow(clippy::too_many_arguments)]
    fn feed_resident(
        &self,
        _mem: &mut Self::Memory,
        _split: &Self::Resident,
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

/// A training split's images kept on a device: the epoch's order and the labels are set from the
/// host, the batches are augmented on the device ([`Device::augment_resident`]).
pub trait ResidentImages {
    /// Sets the epoch's order: position `p` of the epoch is image `order[p]`.
    fn set_order(&mut self, order: &[u32]) -> Result<()>;
    /// Keeps every image's label on the device, so a step's labels are gathered there.
    fn set_labels(&mut self, labels: &[u32]) -> Result<()>;
    /// Whether [`ResidentImages::set_labels`] has put the labels on the device.
    fn has_labels(&self) -> bool;
}

/// What a device that keeps no images holds: nothing (no value of it exists).
impl ResidentImages for std::convert::Infallible {
    fn set_order(&mut self, _: &[u32]) -> Result<()> {
        match *self {}
    }
    fn set_labels(&mut self, _: &[u32]) -> Result<()> {
        match *self {}
    }
    fn has_labels(&self) -> bool {
        match *self {}
    }
}
