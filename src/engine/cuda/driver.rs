//! The real backend: a CUDA GPU through the driver API (cudarc, loaded at run time, so the
//! binary builds and runs on machines without CUDA). Kernels come from the embedded cubin that
//! fits the GPU, else the embedded PTX, else the sources compiled at run time with NVRTC.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{anyhow, bail, Context, Result};
use cudarc::driver::{result, sys};

use super::artifacts;
use super::launch::{Backend, DevicePtr, Dims};

/// The message for every "no usable GPU" case: what to do instead.
pub const NO_DRIVER: &str = "no CUDA driver found (libcuda could not be loaded); use --device cpu";

/// Runs a driver call, turning a panic of the dynamic loader (a symbol missing from an old
/// driver) into an error.
fn guarded<R>(what: &str, f: impl FnOnce() -> Result<R>) -> Result<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => bail!("{what}: the CUDA driver library lacks a required function (driver too old?); use --device cpu"),
    }
}

/// Loads and initialises the driver; the number of GPUs.
pub fn device_count() -> Result<usize> {
    // SAFETY: only tries to dlopen libcuda.
    if !unsafe { sys::is_culib_present() } {
        bail!(NO_DRIVER);
    }
    guarded("initialising CUDA", || {
        result::init().map_err(|e| anyhow!("initialising the CUDA driver failed ({e}); use --device cpu"))?;
        Ok(result::device::get_count().map_err(|e| anyhow!("counting GPUs: {e}"))? as usize)
    })
}

/// The driver's CUDA version, e.g. (13, 0).
pub fn driver_version() -> Result<(i32, i32)> {
    device_count()?;
    guarded("reading the driver version", || {
        let mut v = 0;
        // SAFETY: writes one int.
        unsafe { sys::cuDriverGetVersion(&mut v) }.result().map_err(|e| anyhow!("cuDriverGetVersion: {e}"))?;
        Ok((v / 1000, (v % 1000) / 10))
    })
}

/// One GPU, its primary context, a non-blocking stream and the loaded kernels.
pub struct CudaDriver {
    ordinal: usize,
    name: String,
    pub compute_capability: (u32, u32),
    /// Which image was loaded: "cubin sm_90", "ptx compute_90 (JIT)", "NVRTC at run time".
    pub kernels_from: String,
    ctx: sys::CUcontext,
    stream: sys::CUstream,
    functions: HashMap<String, sys::CUfunction>,
}

// SAFETY: the handles are plain driver handles; the driver API is thread safe, and every call
// first makes this context current on the calling thread.
unsafe impl Send for CudaDriver {}
unsafe impl Sync for CudaDriver {}

impl CudaDriver {
    /// Opens GPU `ordinal`.
    pub fn open(ordinal: usize) -> Result<CudaDriver> {
        let count = device_count()?;
        if ordinal >= count {
            bail!("cuda:{ordinal} does not exist: this machine has {count} GPU(s)");
        }
        guarded("opening the GPU", || unsafe { Self::open_unchecked(ordinal) })
    }

    unsafe fn open_unchecked(ordinal: usize) -> Result<CudaDriver> {
        let e = |what: &'static str| move |err: cudarc::driver::DriverError| anyhow!("cuda:{ordinal}: {what}: {err}");
        let dev = result::device::get(ordinal as i32).map_err(e("cuDeviceGet"))?;
        let name = result::device::get_name(dev).map_err(e("cuDeviceGetName"))?;
        use sys::CUdevice_attribute::*;
        let major = result::device::get_attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR).map_err(e("compute capability"))? as u32;
        let minor = result::device::get_attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR).map_err(e("compute capability"))? as u32;
        let ctx = result::primary_ctx::retain(dev).map_err(e("retaining the primary context"))?;
        result::ctx::set_current(ctx).map_err(e("cuCtxSetCurrent"))?;
        let stream = result::stream::create(result::stream::StreamKind::NonBlocking).map_err(e("creating a stream"))?;
        let (module, kernels_from) = load_kernels(major, minor).with_context(|| format!("cuda:{ordinal} ({name}): loading the kernels"))?;
        let mut functions = HashMap::new();
        for &k in artifacts::KERNEL_NAMES {
            let f = result::module::get_function(module, CString::new(k).unwrap()).map_err(e("cuModuleGetFunction"))?;
            functions.insert(k.to_string(), f);
        }
        Ok(CudaDriver { ordinal, name, compute_capability: (major, minor), kernels_from, ctx, stream, functions })
    }

    fn bind(&self) -> Result<()> {
        // SAFETY: the context was retained in open and is never released while self lives.
        unsafe { result::ctx::set_current(self.ctx) }.map_err(|e| anyhow!("cuda:{}: cuCtxSetCurrent: {e}", self.ordinal))
    }
}

/// Loads the embedded image that fits compute capability major.minor, else compiles the
/// embedded sources with NVRTC for it.
unsafe fn load_kernels(major: u32, minor: u32) -> Result<(sys::CUmodule, String)> {
    if let Some(image) = artifacts::image_for(major, minor) {
        let what = if image.cubin { format!("cubin sm_{}", image.sm) } else { format!("ptx compute_{} (JIT)", image.sm) };
        let module = if image.cubin {
            // cuModuleLoadData wants an aligned ELF image: copy into u64 words.
            let mut words = vec![0u64; image.bytes.len().div_ceil(8)];
            bytemuck_copy(image.bytes, &mut words);
            result::module::load_data(words.as_ptr() as *const c_void)
        } else {
            let ptx = CString::new(image.bytes).context("embedded PTX holds a NUL byte")?;
            result::module::load_data(ptx.as_ptr() as *const c_void)
        };
        return Ok((module.map_err(|e| anyhow!("loading the embedded {what}: {e}"))?, what));
    }
    let ptx = compile_at_run_time(major, minor)?;
    let src = CString::new(ptx).context("PTX holds a NUL byte")?;
    let module = result::module::load_data(src.as_ptr() as *const c_void).map_err(|e| anyhow!("loading run-time PTX: {e}"))?;
    Ok((module, format!("NVRTC at run time (compute_{major}{minor})")))
}

/// Compiles the embedded kernel sources to PTX for compute capability major.minor with the
/// NVRTC found at run time (for binaries built without it, or GPUs newer than what is embedded).
pub fn compile_at_run_time(major: u32, minor: u32) -> Result<String> {
    // SAFETY: only tries to dlopen libnvrtc.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        bail!("no embedded kernels fit sm_{major}{minor} and NVRTC could not be loaded at run time ({})", artifacts::BUILD_NOTE);
    }
    let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
    let opts = cudarc::nvrtc::CompileOptions { arch: Some(arch), ..Default::default() };
    let ptx = catch_unwind(|| cudarc::nvrtc::compile_ptx_with_opts(artifacts::combined_source(), opts))
        .map_err(|_| anyhow!("NVRTC at run time lacks a required function"))?
        .map_err(|e| anyhow!("NVRTC failed to compile the kernels for {arch}: {e:?}"))?;
    Ok(ptx.to_src())
}

fn bytemuck_copy(bytes: &[u8], words: &mut [u64]) {
    for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u64::from_ne_bytes(b);
    }
}

impl Backend for CudaDriver {
    fn describe(&self) -> String {
        let (a, b) = self.compute_capability;
        format!("cuda:{} ({}, sm_{a}{b}, kernels: {})", self.ordinal, self.name, self.kernels_from)
    }

    fn alloc_zeroed(&self, bytes: usize) -> Result<DevicePtr> {
        self.bind()?;
        // SAFETY: a plain allocation, zeroed before use.
        unsafe {
            let p = result::malloc_sync(bytes.max(1))
                .map_err(|e| anyhow!("cuda:{}: allocating {} MiB failed: {e} (out of GPU memory?)", self.ordinal, bytes >> 20))?;
            result::memset_d8_sync(p, 0, bytes.max(1)).map_err(|e| anyhow!("cuda:{}: cuMemsetD8: {e}", self.ordinal))?;
            Ok(p)
        }
    }

    unsafe fn free(&self, ptr: DevicePtr, _bytes: usize) {
        if self.bind().is_ok() {
            let _ = result::stream::synchronize(self.stream);
            let _ = result::free_sync(ptr);
        }
    }

    fn upload(&self, dst: DevicePtr, src: &[u8]) -> Result<()> {
        self.synchronize()?;
        // SAFETY: dst holds at least src.len() bytes (checked by GpuMemory); synchronous copy.
        unsafe { result::memcpy_htod_sync(dst, src) }.map_err(|e| anyhow!("cuda:{}: copy to the GPU: {e}", self.ordinal))
    }

    fn download(&self, src: DevicePtr, dst: &mut [u8]) -> Result<()> {
        self.synchronize()?;
        // SAFETY: as upload.
        unsafe { result::memcpy_dtoh_sync(dst, src) }.map_err(|e| anyhow!("cuda:{}: copy from the GPU: {e}", self.ordinal))
    }

    unsafe fn launch_raw(&self, kernel: &str, dims: Dims, args: &mut [*mut c_void], _sizes: &[u32]) -> Result<()> {
        self.bind()?;
        let f = *self.functions.get(kernel).ok_or_else(|| anyhow!("no kernel named {kernel}"))?;
        let g = (dims.grid[0], dims.grid[1], dims.grid[2]);
        let b = (dims.block[0], dims.block[1], dims.block[2]);
        result::launch_kernel(f, g, b, 0, self.stream, args).map_err(|e| anyhow!("cuda:{}: launching {kernel}: {e}", self.ordinal))
    }

    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        // SAFETY: the stream lives as long as self.
        unsafe { result::stream::synchronize(self.stream) }.map_err(|e| anyhow!("cuda:{}: a kernel failed: {e}", self.ordinal))
    }
}
