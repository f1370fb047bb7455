//! The emulated backend: the kernels of `kernels/*.cu` compiled for the host by build.rs (see
//! `kernels/emulate/`) and run on CPU threads. Memory is host memory; a "device pointer" is a
//! host address. Slow, but it runs every kernel through the real launch path on any machine.
//! A capture records each launch with its argument values copied, as CUDA graph capture does,
//! and a replay runs the records through the same launch.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ffi::{c_char, c_int, c_void, CStr};

use anyhow::{bail, ensure, Result};

use super::artifacts::KERNEL_NAMES;
use super::capture::{CaptureState, CapturedLaunches};
use super::launch::{Backend, DevicePtr, Dims};

extern "C" {
    fn fear_emu_launch(
        name: *const c_char, grid: *const u32, block: *const u32, args: *mut *mut c_void, nargs: c_int,
        arg_sizes: *const u32, err: *mut c_char, err_len: c_int,
    ) -> c_int;
}

/// Host emulation of a GPU.
#[derive(Default)]
pub struct Emulated {
    capture: CaptureState<Vec<RecordedLaunch>>,
}

/// One launch as a capture keeps it: the argument values, not pointers to them (each in an
/// aligned word; kernel arguments here are at most 8 bytes).
struct RecordedLaunch {
    kernel: String,
    dims: Dims,
    values: Vec<u64>,
    sizes: Vec<u32>,
}

/// The launches of one emulated capture.
struct Recording(Vec<RecordedLaunch>);

impl CapturedLaunches for Recording {
    unsafe fn replay(&self) -> Result<()> {
        for r in &self.0 {
            // The kernels only read their argument values; the pointers are mut for the C signature.
            let mut args: Vec<*mut c_void> = r.values.iter().map(|v| v as *const u64 as *mut c_void).collect();
            run(&r.kernel, r.dims, &mut args, &r.sizes)?;
        }
        Ok(())
    }

    fn launches(&self) -> usize {
        self.0.len()
    }
}

/// Runs `kernel` on host threads now.
///
/// # Safety
/// As [`Backend::launch_raw`].
unsafe fn run(kernel: &str, dims: Dims, args: &mut [*mut c_void], sizes: &[u32]) -> Result<()> {
    let name = std::ffi::CString::new(kernel)?;
    let mut err = [0 as c_char; 256];
    let rc = fear_emu_launch(
        name.as_ptr(), dims.grid.as_ptr(), dims.block.as_ptr(), args.as_mut_ptr(), args.len() as c_int,
        sizes.as_ptr(), err.as_mut_ptr(), err.len() as c_int,
    );
    if rc != 0 {
        bail!("emulated launch: {}", CStr::from_ptr(err.as_ptr()).to_string_lossy());
    }
    Ok(())
}

/// Copies each argument's value (`sizes[i]` bytes at `args[i]`, at most 8) into a word.
///
/// # Safety
/// Each `args[i]` points to at least `sizes[i]` readable bytes.
unsafe fn copy_values(args: &[*mut c_void], sizes: &[u32]) -> Vec<u64> {
    let word = |(&a, &n): (&*mut c_void, &u32)| {
        let mut w = 0u64;
        std::ptr::copy_nonoverlapping(a as *const u8, &mut w as *mut u64 as *mut u8, n as usize);
        w
    };
    args.iter().zip(sizes).map(word).collect()
}

const ALIGN: usize = 256;

fn layout(bytes: usize) -> Layout {
    Layout::from_size_align(bytes.max(1), ALIGN).expect("allocation size overflows")
}

impl Backend for Emulated {
    fn describe(&self) -> String {
        "emulated (kernels compiled for the host, run on CPU threads)".into()
    }

    fn alloc_zeroed(&self, bytes: usize) -> Result<DevicePtr> {
        self.capture.forbid("an allocation")?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout(bytes)) };
        if p.is_null() {
            bail!("emulated device: out of host memory allocating {bytes} bytes");
        }
        Ok(p as DevicePtr)
    }

    unsafe fn free(&self, ptr: DevicePtr, bytes: usize) {
        let _ = self.capture.forbid("freeing memory");
        dealloc(ptr as *mut u8, layout(bytes));
    }

    fn upload(&self, dst: DevicePtr, src: &[u8]) -> Result<()> {
        self.capture.forbid("an upload")?;
        // SAFETY: the caller's buffer at dst holds at least src.len() bytes (checked by GpuMemory).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }

    fn download(&self, src: DevicePtr, dst: &mut [u8]) -> Result<()> {
        self.capture.forbid("a download")?;
        // SAFETY: as upload.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    unsafe fn launch_raw(&self, kernel: &str, dims: Dims, args: &mut [*mut c_void], sizes: &[u32]) -> Result<()> {
        // Checked here, not only when run, so a capture refuses an unknown kernel as cuLaunchKernel does.
        ensure!(KERNEL_NAMES.contains(&kernel), "emulated launch: no kernel named {kernel}");
        ensure!(args.len() == sizes.len(), "{kernel}: {} arguments but {} sizes", args.len(), sizes.len());
        ensure!(sizes.iter().all(|&n| n <= 8), "{kernel}: an argument over 8 bytes");
        let recorded = self.capture.record(|launches| {
            let values = copy_values(args, sizes);
            launches.push(RecordedLaunch { kernel: kernel.to_string(), dims, values, sizes: sizes.to_vec() });
        });
        if recorded {
            return Ok(());
        }
        run(kernel, dims, args, sizes)
    }

    fn synchronize(&self) -> Result<()> {
        self.capture.forbid("synchronize")
    }

    fn begin_capture(&self) -> Result<()> {
        self.capture.begin(Vec::new())
    }

    fn end_capture(&self) -> Result<Box<dyn CapturedLaunches>> {
        Ok(Box::new(Recording(self.capture.end()?)))
    }
}
