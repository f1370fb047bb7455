//! The CPU device: a step's memory as one vector per space, each kernel run as its family's CPU
//! face.

use anyhow::{ensure, Result};

use super::device::{Device, MemoryLayout};
use super::kernel::{Kernel, Loc, Space, SPACES};
use super::ops::CpuView;
use super::precision::Precision;
use super::Float;

/// The CPU device: each kernel runs as its family's CPU face (`cpu.rs` in [`super::ops`]), the
/// rayon-parallel functions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

/// A step's memory on the CPU: one vector per space plus the labels. `Half` (`HalfF16`) holds
/// elements of the element type too, each rounded to a bfloat16's (IEEE half's) value where it is
/// written (see [`store_rounded`]).
pub struct CpuMemory<T> {
    spaces: [Vec<T>; SPACES],
    labels: Vec<u32>,
}

impl<T: Float> CpuMemory<T> {
    fn check(&self, loc: Loc) -> Result<()> {
        let have = self.spaces[loc.space.index()].len();
        ensure!(loc.end() <= have, "{loc:?} lies outside its space of {have} elements");
        Ok(())
    }
}

impl<T: Float> Device<T> for Cpu {
    type Memory = CpuMemory<T>;
    type Captured = std::convert::Infallible;
    type Resident = std::convert::Infallible;

    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn alloc(&self, layout: &MemoryLayout) -> Result<CpuMemory<T>> {
        Ok(CpuMemory { spaces: Space::ALLOCATED.map(|s| vec![T::zero(); layout.len(s)]), labels: vec![0; layout.labels] })
    }

    fn grow_scratch(&self, mem: &mut CpuMemory<T>, layout: &MemoryLayout) -> Result<()> {
        for space in [Space::Work, Space::Half] {
            let s = &mut mem.spaces[space.index()];
            if s.len() < layout.len(space) {
                *s = vec![T::zero(); layout.len(space)];
            }
        }
        if mem.labels.len() < layout.labels {
            mem.labels = vec![0; layout.labels];
        }
        Ok(())
    }

    fn write(&self, mem: &mut CpuMemory<T>, loc: Loc, data: &[T]) -> Result<()> {
        mem.check(loc)?;
        ensure!(data.len() == loc.len, "writing {} elements into {loc:?}", data.len());
        let dst = &mut mem.spaces[loc.space.index()][loc.offset..loc.end()];
        dst.copy_from_slice(data);
        store_rounded(loc.space, dst);
        Ok(())
    }

    fn read(&self, mem: &CpuMemory<T>, loc: Loc) -> Result<Vec<T>> {
        mem.check(loc)?;
        Ok(mem.spaces[loc.space.index()][loc.offset..loc.end()].to_vec())
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
        kernel.check_no_aliasing(&locs)?;
        let bases = mem.spaces.each_mut().map(|s| s.as_mut_ptr());
        // SAFETY: every location was bounds-checked against its space and every written location
        // was checked to be disjoint from all others the kernel touches; the memory outlives the
        // view.
        let view = unsafe { CpuView::new(bases, &mem.labels) };
        kernel.run_cpu(&view);
        for out in &locs[locs.len() - kernel.outputs()..] {
            store_rounded(out.space, &mut mem.spaces[out.space.index()][out.offset..out.end()]);
        }
        Ok(())
    }

    fn replay(&self, _: &mut CpuMemory<T>, captured: &std::convert::Infallible) -> Result<()> {
        match *captured {}
    }
}

/// Rounds what was just written to `space` to what that space stores: for `Half` (`HalfF16`),
/// each value to the nearest bfloat16 (IEEE half; ties to even, the kernels' `fear_store`
/// rounding), so the CPU reference rounds where a GPU kernel's store does; other spaces keep
/// their values. A fused kernel's CPU face also rounds with it each value the unfused kernels
/// would have stored in between.
pub(crate) fn store_rounded<T: Float>(space: Space, values: &mut [T]) {
    let storage = space.storage();
    if storage != Precision::Fp32 {
        for v in values {
            *v = T::from_f64(storage.round(v.as_f64() as f32) as f64);
        }
    }
}
