//! The real backend: a CUDA GPU through the driver API (cudarc, loaded at run time, so the
//! binary builds and runs on machines without CUDA). Kernels come from the embedded cubin that
//! fits the GPU, else the embedded PTX, else the sources compiled at run time with NVRTC.
//! A capture is CUDA stream capture on the backend's stream, instantiated as a CUDA graph.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{anyhow, bail, ensure, Context, Result};
use cudarc::driver::{result, sys};

use super::artifacts;
use super::capture::{CaptureState, CapturedLaunches};
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
    /// The capture in progress, counting its launches.
    capture: CaptureState<usize>,
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
        let capture = CaptureState::default();
        Ok(CudaDriver { ordinal, name, compute_capability: (major, minor), kernels_from, ctx, stream, functions, capture })
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
        self.capture.forbid("an allocation")?;
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
            // Waiting on a capturing stream would invalidate the capture at the driver too.
            if self.capture.forbid("freeing memory").is_ok() {
                let _ = result::stream::synchronize(self.stream);
            }
            let _ = result::free_sync(ptr);
        }
    }

    fn upload(&self, dst: DevicePtr, src: &[u8]) -> Result<()> {
        self.capture.forbid("an upload")?;
        self.synchronize()?;
        // SAFETY: dst holds at least src.len() bytes (checked by GpuMemory); synchronous copy.
        unsafe { result::memcpy_htod_sync(dst, src) }.map_err(|e| anyhow!("cuda:{}: copy to the GPU: {e}", self.ordinal))
    }

    fn download(&self, src: DevicePtr, dst: &mut [u8]) -> Result<()> {
        self.capture.forbid("a download")?;
        self.synchronize()?;
        // SAFETY: as upload.
        unsafe { result::memcpy_dtoh_sync(dst, src) }.map_err(|e| anyhow!("cuda:{}: copy from the GPU: {e}", self.ordinal))
    }

    unsafe fn launch_raw(&self, kernel: &str, dims: Dims, args: &mut [*mut c_void], _sizes: &[u32]) -> Result<()> {
        self.bind()?;
        let f = *self.functions.get(kernel).ok_or_else(|| anyhow!("no kernel named {kernel}"))?;
        let g = (dims.grid[0], dims.grid[1], dims.grid[2]);
        let b = (dims.block[0], dims.block[1], dims.block[2]);
        result::launch_kernel(f, g, b, 0, self.stream, args).map_err(|e| anyhow!("cuda:{}: launching {kernel}: {e}", self.ordinal))?;
        self.capture.record(|launches| *launches += 1);
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        self.capture.forbid("synchronize")?;
        self.bind()?;
        // SAFETY: the stream lives as long as self.
        unsafe { result::stream::synchronize(self.stream) }.map_err(|e| anyhow!("cuda:{}: a kernel failed: {e}", self.ordinal))
    }

    fn begin_capture(&self) -> Result<()> {
        self.bind()?;
        self.capture.begin(0)?;
        // Thread-local mode: only this thread's unsafe calls (allocations, synchronous copies)
        // would break the capture, not those of workers driving other GPUs in this process.
        let mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
        // SAFETY: the stream lives as long as self.
        let begun = guarded("cuStreamBeginCapture", || Ok(unsafe { result::stream::begin_capture(self.stream, mode) }?));
        if let Err(e) = begun {
            let _ = self.capture.end();
            bail!("cuda:{}: starting a capture: {e:#}", self.ordinal);
        }
        Ok(())
    }

    fn end_capture(&self) -> Result<Box<dyn CapturedLaunches>> {
        let recorded = self.capture.end();
        self.bind()?;
        // SAFETY: the stream lives as long as self; ending is needed even for a broken capture.
        let graph = guarded("cuStreamEndCapture", || Ok(unsafe { result::stream::end_capture(self.stream) }?))
            .map_err(|e| anyhow!("cuda:{}: ending a capture: {e:#}", self.ordinal))?;
        // SAFETY: the graph was just captured; its executable copy does not need it afterwards.
        let instantiated = recorded.and_then(|launched| unsafe { CudaGraph::instantiate(self, graph, launched) });
        // SAFETY: as above; nothing else holds the graph.
        let _ = guarded("cuGraphDestroy", || Ok(unsafe { result::graph::destroy(graph) }?));
        Ok(Box::new(instantiated?))
    }
}

/// A captured step instantiated as a CUDA graph, launched on the backend's stream.
struct CudaGraph {
    exec: sys::CUgraphExec,
    ctx: sys::CUcontext,
    stream: sys::CUstream,
    ordinal: usize,
    nodes: usize,
}

// SAFETY: plain driver handles; the driver API is thread safe and every call binds the context.
unsafe impl Send for CudaGraph {}
unsafe impl Sync for CudaGraph {}

impl CudaGraph {
    /// The executable form of `graph`, after checking it holds one node per kernel `launched`
    /// into the capture (anything else means launches went astray).
    ///
    /// # Safety
    /// `graph` is a valid graph captured on `driver`'s stream.
    unsafe fn instantiate(driver: &CudaDriver, graph: sys::CUgraph, launched: usize) -> Result<CudaGraph> {
        let ordinal = driver.ordinal;
        guarded("instantiating a CUDA graph", || {
            let mut nodes = 0usize;
            sys::cuGraphGetNodes(graph, std::ptr::null_mut(), &mut nodes).result().map_err(|e| anyhow!("cuda:{ordinal}: cuGraphGetNodes: {e}"))?;
            ensure!(nodes == launched, "cuda:{ordinal}: the captured graph holds {nodes} nodes for {launched} kernel launches");
            let flags = sys::CUgraphInstantiate_flags(0);
            let exec = result::graph::instantiate(graph, flags).map_err(|e| anyhow!("cuda:{ordinal}: cuGraphInstantiateWithFlags: {e}"))?;
            Ok(CudaGraph { exec, ctx: driver.ctx, stream: driver.stream, ordinal, nodes })
        })
    }
}

impl CapturedLaunches for CudaGraph {
    unsafe fn replay(&self) -> Result<()> {
        // The context and stream are never released by CudaDriver, so they outlive this graph.
        guarded("cuGraphLaunch", || {
            result::ctx::set_current(self.ctx).map_err(|e| anyhow!("cuda:{}: cuCtxSetCurrent: {e}", self.ordinal))?;
            result::graph::launch(self.exec, self.stream).map_err(|e| anyhow!("cuda:{}: cuGraphLaunch: {e}", self.ordinal))
        })
    }

    fn launches(&self) -> usize {
        self.nodes
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: the exec is ours; an in-flight launch is freed by the driver when it completes.
        let _ = guarded("cuGraphExecDestroy", || {
            unsafe { result::ctx::set_current(self.ctx) }?;
            Ok(unsafe { result::graph::exec_destroy(self.exec) }?)
        });
    }
}
