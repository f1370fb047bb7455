//! [`AnyDevice`]: the device chosen at run time (`--device`), so the command-line code holds one
//! session type whatever the machine has.

use anyhow::{anyhow, Result};

use super::cpu_device::{Cpu, CpuMemory};
use super::cuda::{Gpu, GpuCapture, GpuMemory, ResidentSplit};
use super::device::{Device, MemoryLayout};
use super::kernel::{Kernel, Loc};
use super::ops::augment::Augment;

/// The CPU or a GPU (real or emulated), for f32 steps.
#[derive(Clone)]
pub enum AnyDevice {
    Cpu(Cpu),
    Gpu(Gpu),
}

pub enum AnyMemory {
    Cpu(CpuMemory<f32>),
    Gpu(GpuMemory),
}

impl AnyDevice {
    /// Waits for queued work (a no-op on the CPU); for timing.
    pub fn synchronize(&self) -> Result<()> {
        match self {
            AnyDevice::Cpu(_) => Ok(()),
            AnyDevice::Gpu(g) => g.synchronize(),
        }
    }

    pub fn is_gpu(&self) -> bool {
        matches!(self, AnyDevice::Gpu(_))
    }

    /// Which device this is (`None` for the CPU): equal for every handle and stream of one GPU.
    pub fn device_key(&self) -> Option<usize> {
        match self {
            AnyDevice::Cpu(_) => None,
            AnyDevice::Gpu(g) => Some(g.backend().device_key()),
        }
    }

    /// Whether a GPU hit a sticky error (never on the CPU).
    pub fn is_poisoned(&self) -> bool {
        matches!(self, AnyDevice::Gpu(g) if g.is_poisoned())
    }

    /// The device opened afresh after a sticky error (see [`Gpu::reopen`]).
    pub fn reopen(&self) -> Result<AnyDevice> {
        Ok(match self {
            AnyDevice::Cpu(c) => AnyDevice::Cpu(*c),
            AnyDevice::Gpu(g) => AnyDevice::Gpu(g.reopen()?),
        })
    }
}

fn mismatch() -> anyhow::Error {
    anyhow::anyhow!("memory of one device used with another")
}

impl Device<f32> for AnyDevice {
    type Memory = AnyMemory;
    /// Only a GPU captures.
    type Captured = GpuCapture;
    type Resident = ResidentSplit;

    fn fuses(&self) -> bool {
        match self {
            AnyDevice::Cpu(c) => Device::<f32>::fuses(c),
            AnyDevice::Gpu(g) => g.fuses(),
        }
    }

    fn name(&self) -> String {
        match self {
            AnyDevice::Cpu(c) => Device::<f32>::name(c),
            AnyDevice::Gpu(g) => g.name(),
        }
    }

    fn for_session(self) -> Result<AnyDevice> {
        Ok(match self {
            AnyDevice::Cpu(c) => AnyDevice::Cpu(c),
            AnyDevice::Gpu(g) => AnyDevice::Gpu(g.for_session()?),
        })
    }

    fn timed_launch(&self, mem: &mut AnyMemory, kernel: &Kernel) -> Result<f64> {
        match (self, mem) {
            (AnyDevice::Cpu(c), AnyMemory::Cpu(m)) => c.timed_launch(m, kernel),
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => g.timed_launch(m, kernel),
            _ => Err(mismatch()),
        }
    }

    fn clock(&self) -> &'static str {
        match self {
            AnyDevice::Cpu(c) => Device::<f32>::clock(c),
            AnyDevice::Gpu(g) => g.clock(),
        }
    }

    fn alloc(&self, layout: &MemoryLayout) -> Result<AnyMemory> {
        Ok(match self {
            AnyDevice::Cpu(c) => AnyMemory::Cpu(c.alloc(layout)?),
            AnyDevice::Gpu(g) => AnyMemory::Gpu(g.alloc(layout)?),
        })
    }

    fn grow_scratch(&self, mem: &mut AnyMemory, layout: &MemoryLayout) -> Result<()> {
        match (self, mem) {
            (AnyDevice::Cpu(c), AnyMemory::Cpu(m)) => c.grow_scratch(m, layout),
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => g.grow_scratch(m, layout),
            _ => Err(mismatch()),
        }
    }

    fn write(&self, mem: &mut AnyMemory, loc: Loc, data: &[f32]) -> Result<()> {
        match (self, mem) {
            (AnyDevice::Cpu(c), AnyMemory::Cpu(m)) => c.write(m, loc, data),
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => g.write(m, loc, data),
            _ => Err(mismatch()),
        }
    }

    fn read(&self, mem: &AnyMemory, loc: Loc) -> Result<Vec<f32>> {
        match (self, mem) {
            (AnyDevice::Cpu(c), AnyMemory::Cpu(m)) => c.read(m, loc),
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => g.read(m, loc),
            _ => Err(mismatch()),
        }
    }

    fn write_labels(&self, mem: &mut AnyMemory, labels: &[u32]) -> Result<()> {
        match (self, mem) {
            (AnyDevice::Cpu(c), AnyMemory::Cpu(m)) => Device::<f32>::write_labels(c, m, labels),
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => g.write_labels(m, labels),
            _ => Err(mismatch()),
        }
    }

    fn launch(&self, mem: &mut AnyMemory, kernel: &Kernel) -> Result<()> {
        match (self, mem) {
            (AnyDevice::Cpu(c), AnyMemory::Cpu(m)) => c.launch(m, kernel),
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => g.launch(m, kernel),
            _ => Err(mismatch()),
        }
    }

    fn make_resident(&self, images: &[u8], aug: &Augment) -> Result<Option<ResidentSplit>> {
        match self {
            AnyDevice::Cpu(c) => Ok(Device::<f32>::make_resident(c, images, aug)?.map(|never| match never {})),
            AnyDevice::Gpu(g) => Device::<f32>::make_resident(g, images, aug),
        }
    }

    fn augment_resident(&self, mem: &mut AnyMemory, split: &ResidentSplit, seed: u64, epoch: u64, start: usize, n: usize, out: Loc) -> Result<()> {
        match (self, mem) {
            (AnyDevice::Cpu(c), AnyMemory::Cpu(_)) => Err(no_resident_images(c)),
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => Device::<f32>::augment_resident(g, m, split, seed, epoch, start, n, out),
            _ => Err(mismatch()),
        }
    }

    fn feed_resident(
        &self,
        mem: &mut AnyMemory,
        split: &ResidentSplit,
        seed: u64,
        epoch: u64,
        start: usize,
        n: usize,
        out: Loc,
        lr_at: Loc,
        lr: f32,
    ) -> Result<()> {
        match (self, mem) {
            (AnyDevice::Cpu(c), AnyMemory::Cpu(_)) => Err(no_resident_images(c)),
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => g.feed_resident(m, split, seed, epoch, start, n, out, lr_at, lr),
            _ => Err(mismatch()),
        }
    }

    fn begin_steps(&self, mem: &mut AnyMemory, steps: usize) -> Result<()> {
        match (self, mem) {
            (AnyDevice::Cpu(c), AnyMemory::Cpu(m)) => Device::<f32>::begin_steps(c, m, steps),
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => g.begin_steps(m, steps),
            _ => Err(mismatch()),
        }
    }

    fn record_step(&self, mem: &mut AnyMemory, loss: Loc, correct: Loc, slot: usize) -> Result<()> {
        match (self, mem) {
            (AnyDevice::Cpu(c), AnyMemory::Cpu(m)) => Device::<f32>::record_step(c, m, loss, correct, slot),
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => g.record_step(m, loss, correct, slot),
            _ => Err(mismatch()),
        }
    }

    fn read_steps(&self, mem: &AnyMemory, steps: usize) -> Result<Vec<(f32, f32)>> {
        match (self, mem) {
            (AnyDevice::Cpu(c), AnyMemory::Cpu(m)) => c.read_steps(m, steps),
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => g.read_steps(m, steps),
            _ => Err(mismatch()),
        }
    }

    fn capture(&self, mem: &mut AnyMemory, kernels: &[&Kernel]) -> Result<Option<GpuCapture>> {
        match (self, mem) {
            (AnyDevice::Cpu(_), AnyMemory::Cpu(_)) => Ok(None),
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => g.capture(m, kernels),
            _ => Err(mismatch()),
        }
    }

    fn replay(&self, mem: &mut AnyMemory, captured: &GpuCapture) -> Result<()> {
        match (self, mem) {
            (AnyDevice::Gpu(g), AnyMemory::Gpu(m)) => g.replay(m, captured),
            _ => Err(mismatch()),
        }
    }
}

/// The CPU keeps no images on the device (so it is never given a [`ResidentSplit`] to use).
fn no_resident_images(c: &Cpu) -> anyhow::Error {
    anyhow!("{} keeps no images on the device", Device::<f32>::name(c))
}
