//! The emulated backend: the kernels of `kernels/*.cu` compiled for the host by build.rs (see
//! `kernels/emulate/`) and run on CPU threads. Memory is host memory; a "device pointer" is a
//! host address. Slow, but it runs every kernel through the real launch path on any machine.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ffi::{c_char, c_int, c_void, CStr};

use anyhow::{bail, Result};

use super::launch::{Backend, DevicePtr, Dims};

extern "C" {
    fn fear_emu_launch(
        name: *const c_char, grid: *const u32, block: *const u32, args: *mut *mut c_void, nargs: c_int,
        arg_sizes: *const u32, err: *mut c_char, err_len: c_int,
    ) -> c_int;
}

/// Host emulation of a GPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct Emulated;

const ALIGN: usize = 256;

fn layout(bytes: usize) -> Layout {
    Layout::from_size_align(bytes.max(1), ALIGN).expect("allocation size overflows")
}

impl Backend for Emulated {
    fn describe(&self) -> String {
        "emulated (kernels compiled for the host, run on CPU threads)".into()
    }

    fn alloc_zeroed(&self, bytes: usize) -> Result<DevicePtr> {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout(bytes)) };
        if p.is_null() {
            bail!("emulated device: out of host memory allocating {bytes} bytes");
        }
        Ok(p as DevicePtr)
    }

    unsafe fn free(&self, ptr: DevicePtr, bytes: usize) {
        dealloc(ptr as *mut u8, layout(bytes));
    }

    fn upload(&self, dst: DevicePtr, src: &[u8]) -> Result<()> {
        // SAFETY: the caller's buffer at dst holds at least src.len() bytes (checked by GpuMemory).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }

    fn download(&self, src: DevicePtr, dst: &mut [u8]) -> Result<()> {
        // SAFETY: as upload.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    unsafe fn launch_raw(&self, kernel: &str, dims: Dims, args: &mut [*mut c_void], sizes: &[u32]) -> Result<()> {
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

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}
