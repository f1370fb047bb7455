//! The real backend: a CUDA GPU through the driver API (cudarc, loaded at run time, so the
//! binary builds and runs on machines without CUDA). Kernels come from the embedded cubin that
//! fits the GPU, else the embedded PTX, else the sources compiled at run time by NVRTC to a
//! cubin for the GPU. Each session gets its own stream ([`Backend::new_stream`]).
//! A capture is CUDA stream capture on the backend's stream, instantiated as a CUDA graph.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, ensure, Context, Result};
use cudarc::driver::{result, sys};

use super::artifacts;
use super::capture::{CaptureState, CapturedLaunches};
use super::launch::{check_resources, Backend, DevicePtr, Dims, KernelFootprint};

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

/// One GPU's primary context and loaded kernels, shared by every stream opened on it.
struct GpuContext {
    ordinal: usize,
    name: String,
    compute_capability: (u32, u32),
    kernels_from: String,
    ctx: sys::CUcontext,
    functions: HashMap<String, sys::CUfunction>,
    /// Registers and static shared memory per kernel, as the driver reports them for the
    /// loaded image (the same figures as ptxas's report for a cubin).
    footprints: HashMap<String, KernelFootprint>,
    /// Shared memory per block with the opt-in (CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN).
    max_shared: u32,
    optin: Mutex<HashMap<String, u32>>,
    /// The sticky error the context hit, if any: it is unusable until reopened.
    poisoned: Mutex<Option<String>>,
}

// SAFETY: plain driver handles; the driver API is thread safe, and every call first makes the
// context current on the calling thread.
unsafe impl Send for GpuContext {}
unsafe impl Sync for GpuContext {}

impl GpuContext {
    fn bind(&self) -> Result<()> {
        // SAFETY: the context was retained in open and is never released while self lives.
        unsafe { result::ctx::set_current(self.ctx) }.map_err(|e| anyhow!("cuda:{}: cuCtxSetCurrent: {e}", self.ordinal))
    }

    /// Turns a driver error into a message, remembering a sticky one (the context is lost).
    fn fail(&self, what: &str, e: cudarc::driver::DriverError) -> anyhow::Error {
        use sys::cudaError_enum::*;
        let sticky = matches!(
            e.0,
            CUDA_ERROR_ILLEGAL_ADDRESS
                | CUDA_ERROR_ILLEGAL_INSTRUCTION
                | CUDA_ERROR_MISALIGNED_ADDRESS
                | CUDA_ERROR_INVALID_ADDRESS_SPACE
                | CUDA_ERROR_INVALID_PC
                | CUDA_ERROR_LAUNCH_FAILED
                | CUDA_ERROR_HARDWARE_STACK_ERROR
                | CUDA_ERROR_ASSERT
                | CUDA_ERROR_ECC_UNCORRECTABLE
                | CUDA_ERROR_CONTEXT_IS_DESTROYED
        );
        let msg = format!("cuda:{}: {what}: {e}", self.ordinal);
        if sticky {
            lock(&self.poisoned).get_or_insert_with(|| msg.clone());
            return anyhow!("{msg} (a sticky error: the GPU's context must be reopened)");
        }
        anyhow!(msg)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A stream of a context, destroyed when the last user (driver or graph) drops it.
struct Stream {
    handle: sys::CUstream,
    context: Arc<GpuContext>,
}

// SAFETY: as GpuContext.
unsafe impl Send for Stream {}
unsafe impl Sync for Stream {}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.context.bind().is_ok() {
            // SAFETY: nothing uses the stream any more; queued work still completes.
            let _ = guarded("cuStreamDestroy", || Ok(unsafe { result::stream::destroy(self.handle) }?));
        }
    }
}

/// One stream of one GPU: the backend a session launches on.
///
/// Ordering (R1 of GPU-REVIEW.md): every memset, copy and launch is queued on this stream, a
/// non-blocking one, with the `Async` driver calls; none uses the legacy stream, which a
/// non-blocking stream would not wait for. A blocking stream would have fixed the exposed
/// cases too, but it serialises every stream with the legacy stream, so several sessions on one
/// GPU (`--jobs`) would wait for each other; queuing on the session's own stream keeps them
/// independent and keeps each copy ordered before the kernels that read it. Allocations,
/// whole-buffer uploads and downloads wait for the stream before returning
/// ([`Backend::alloc_zeroed`]), so their data is in place for any stream; per-step writes only
/// queue (the driver stages pageable memory before returning).
pub struct CudaDriver {
    context: Arc<GpuContext>,
    stream: Arc<Stream>,
    pub compute_capability: (u32, u32),
    /// Which image was loaded: "cubin sm_90", "ptx compute_90 (JIT)", "NVRTC cubin sm_100 at run time".
    pub kernels_from: String,
    /// The capture in progress, counting its launches.
    capture: CaptureState<usize>,
    /// The last kernel queued, to name it when a later wait reports a fault.
    last_kernel: Mutex<String>,
    /// Pinned host memory that per-step uploads are staged through (see [`Staging`]).
    staging: Mutex<Staging>,
}

/// Page-locked host memory for uploads: a copy from pinned memory is a true asynchronous DMA,
/// where one from pageable memory goes through the driver's own bounce buffer. Uploads take
/// consecutive slices; the slices are reused only after the stream has been waited for (every
/// queued copy out of them has landed), which every step does when it reads its loss.
struct Staging {
    ptr: *mut u8,
    capacity: usize,
    used: usize,
}

// SAFETY: the pointer is pinned host memory owned by the staging buffer, used under its mutex.
unsafe impl Send for Staging {}

/// Uploads above this size go straight from pageable memory (no staging buffer that large).
const STAGING_MAX: usize = 64 << 20;

impl CudaDriver {
    /// Opens GPU `ordinal`.
    pub fn open(ordinal: usize) -> Result<CudaDriver> {
        let count = device_count()?;
        if ordinal >= count {
            bail!("cuda:{ordinal} does not exist: this machine has {count} GPU(s)");
        }
        let context = guarded("opening the GPU", || unsafe { open_context(ordinal) })?;
        CudaDriver::on(Arc::new(context))
    }

    fn on(context: Arc<GpuContext>) -> Result<CudaDriver> {
        context.bind()?;
        let ordinal = context.ordinal;
        let handle = result::stream::create(result::stream::StreamKind::NonBlocking).map_err(|e| anyhow!("cuda:{ordinal}: creating a stream: {e}"))?;
        let stream = Arc::new(Stream { handle, context: context.clone() });
        Ok(CudaDriver {
            compute_capability: context.compute_capability,
            kernels_from: context.kernels_from.clone(),
            context,
            stream,
            capture: CaptureState::default(),
            last_kernel: Mutex::new(String::new()),
            staging: Mutex::new(Staging { ptr: std::ptr::null_mut(), capacity: 0, used: 0 }),
        })
    }

    /// Host memory holding a copy of `src` that stays untouched until this stream is next
    /// waited for; `None` for uploads too large to stage (or where pinned memory is refused).
    fn stage(&self, src: &[u8]) -> Result<Option<*const u8>> {
        if src.len() > STAGING_MAX {
            return Ok(None);
        }
        let mut staging = lock(&self.staging);
        let offset = staging.used.next_multiple_of(256);
        if offset + src.len() > staging.capacity {
            // Earlier slices may still be in flight: wait for them before reusing or freeing.
            // SAFETY: the stream lives as long as self.
            unsafe { result::stream::synchronize(self.stream.handle) }.map_err(|e| self.context.fail("waiting to reuse the staging buffer", e))?;
            staging.used = 0;
            if src.len() > staging.capacity {
                let capacity = src.len().next_power_of_two().clamp(1 << 20, STAGING_MAX);
                // SAFETY: the old buffer is idle (the stream was just waited for); the new one is ours.
                unsafe {
                    if !staging.ptr.is_null() {
                        let _ = result::free_host(staging.ptr as *mut c_void);
                        *staging = Staging { ptr: std::ptr::null_mut(), capacity: 0, used: 0 };
                    }
                    match result::malloc_host(capacity, 0) {
                        Ok(p) => *staging = Staging { ptr: p as *mut u8, capacity, used: 0 },
                        Err(_) => return Ok(None),
                    }
                }
            }
        }
        let offset = staging.used.next_multiple_of(256);
        // SAFETY: offset + len fits in the pinned buffer (checked above), which nothing reads now.
        let at = unsafe { staging.ptr.add(offset) };
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), at, src.len()) };
        staging.used = offset + src.len();
        Ok(Some(at))
    }

    fn bind(&self) -> Result<()> {
        self.context.bind()?;
        match lock(&self.context.poisoned).as_ref() {
            Some(why) => bail!("{why} earlier (a sticky error: the GPU's context must be reopened)"),
            None => Ok(()),
        }
    }

    fn ordinal(&self) -> usize {
        self.context.ordinal
    }
}

impl Drop for CudaDriver {
    fn drop(&mut self) {
        let staging = lock(&self.staging).ptr;
        if !staging.is_null() && self.context.bind().is_ok() {
            // SAFETY: once the stream has finished, no copy reads the pinned buffer.
            unsafe {
                let _ = result::stream::synchronize(self.stream.handle);
                let _ = result::free_host(staging as *mut c_void);
            }
        }
    }
}

unsafe fn open_context(ordinal: usize) -> Result<GpuContext> {
    let e = |what: &'static str| move |err: cudarc::driver::DriverError| anyhow!("cuda:{ordinal}: {what}: {err}");
    let dev = result::device::get(ordinal as i32).map_err(e("cuDeviceGet"))?;
    let name = result::device::get_name(dev).map_err(e("cuDeviceGetName"))?;
    use sys::CUdevice_attribute::*;
    let major = result::device::get_attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR).map_err(e("compute capability"))? as u32;
    let minor = result::device::get_attribute(dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR).map_err(e("compute capability"))? as u32;
    let max_shared = result::device::get_attribute(dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN).map_err(e("shared memory per block"))? as u32;
    let ctx = result::primary_ctx::retain(dev).map_err(e("retaining the primary context"))?;
    result::ctx::set_current(ctx).map_err(e("cuCtxSetCurrent"))?;
    let (module, kernels_from) = load_kernels(major, minor).with_context(|| format!("cuda:{ordinal} ({name}): loading the kernels"))?;
    let mut functions = HashMap::new();
    let mut footprints = HashMap::new();
    use sys::CUfunction_attribute_enum::*;
    for &k in artifacts::KERNEL_NAMES {
        let f = result::module::get_function(module, CString::new(k).unwrap()).map_err(e("cuModuleGetFunction"))?;
        let registers = result::function::get_function_attribute(f, CU_FUNC_ATTRIBUTE_NUM_REGS).map_err(e("cuFuncGetAttribute"))? as u32;
        let static_shared = result::function::get_function_attribute(f, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES).map_err(e("cuFuncGetAttribute"))? as u32;
        functions.insert(k.to_string(), f);
        footprints.insert(k.to_string(), KernelFootprint { registers, static_shared });
    }
    Ok(GpuContext {
        ordinal,
        name,
        compute_capability: (major, minor),
        kernels_from,
        ctx,
        functions,
        footprints,
        max_shared,
        optin: Mutex::default(),
        poisoned: Mutex::default(),
    })
}

/// Loads the kernels for compute capability major.minor, trying in turn: the embedded cubin
/// that fits, the embedded PTX (JIT-compiled by the driver, which needs a driver as new as the
/// PTX's ISA version), then the sources compiled at run time by NVRTC to a cubin for exactly
/// this GPU (a cubin does not depend on the driver's PTX limit). Says which one loaded, or why
/// each failed.
unsafe fn load_kernels(major: u32, minor: u32) -> Result<(sys::CUmodule, String)> {
    let mut tried = Vec::new();
    let cc = major * 10 + minor;
    let cubin = artifacts::IMAGES.iter().filter(|i| i.cubin && i.sm / 10 == major && i.sm <= cc).max_by_key(|i| i.sm);
    let ptx = artifacts::IMAGES.iter().filter(|i| !i.cubin && i.sm <= cc).max_by_key(|i| i.sm);
    for image in cubin.into_iter().chain(ptx) {
        let what = if image.cubin {
            format!("cubin sm_{}", image.sm)
        } else {
            let v = artifacts::ptx_version(image).map_or("?".into(), |(a, b)| format!("{a}.{b}"));
            format!("ptx compute_{} (ISA {v}, JIT)", image.sm)
        };
        match load_image(image.bytes, image.cubin) {
            Ok(m) => return Ok((m, what)),
            Err(e) => tried.push(format!("{what}: {e}")),
        }
    }
    match compile_cubin_at_run_time(major, minor).and_then(|bin| load_image(&bin, true)) {
        Ok(m) => Ok((m, format!("NVRTC cubin sm_{major}{minor} compiled at run time"))),
        Err(e) => {
            tried.push(format!("NVRTC at run time: {e:#}"));
            bail!("no kernel image loads: {}", tried.join("; "))
        }
    }
}

unsafe fn load_image(bytes: &[u8], cubin: bool) -> Result<sys::CUmodule> {
    let loaded = if cubin {
        // cuModuleLoadData wants an aligned ELF image: copy into u64 words.
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck_copy(bytes, &mut words);
        result::module::load_data(words.as_ptr() as *const c_void)
    } else {
        let ptx = CString::new(bytes).context("PTX holds a NUL byte")?;
        result::module::load_data(ptx.as_ptr() as *const c_void)
    };
    loaded.map_err(|e| anyhow!("cuModuleLoadData: {e}"))
}

/// Compiles the embedded kernel sources with the NVRTC found at run time to a cubin for
/// sm_`major``minor` (for binaries built without NVRTC, GPUs newer than what is embedded, or a
/// driver too old for the embedded PTX).
pub fn compile_cubin_at_run_time(major: u32, minor: u32) -> Result<Vec<u8>> {
    use cudarc::nvrtc::{result as nvrtc, sys as nv};
    // SAFETY: only tries to dlopen libnvrtc.
    if !unsafe { nv::is_culib_present() } {
        bail!("NVRTC could not be loaded at run time ({})", artifacts::BUILD_NOTE);
    }
    let compile = || -> Result<Vec<u8>> {
        let src = CString::new(artifacts::combined_source()).context("kernel source holds a NUL byte")?;
        let prog = nvrtc::create_program(&src, None).map_err(|e| anyhow!("nvrtcCreateProgram: {e:?}"))?;
        // SAFETY: prog is live until destroyed below; buffers are sized by NVRTC's answers.
        unsafe {
            let opts = [format!("--gpu-architecture=sm_{major}{minor}"), "--std=c++17".to_string()];
            let compiled = nvrtc::compile_program(prog, &opts);
            let out = match compiled {
                Err(e) => {
                    let log = nvrtc::get_program_log(prog).map(|l| l.iter().map(|&c| c as u8 as char).collect::<String>()).unwrap_or_default();
                    Err(anyhow!("NVRTC failed to compile the kernels for sm_{major}{minor}: {e:?}\n{log}"))
                }
                Ok(()) => {
                    let mut size = 0usize;
                    nv::nvrtcGetCUBINSize(prog, &mut size).result().map_err(|e| anyhow!("nvrtcGetCUBINSize: {e:?}"))?;
                    let mut bin = vec![0u8; size];
                    nv::nvrtcGetCUBIN(prog, bin.as_mut_ptr() as *mut std::ffi::c_char).result().map_err(|e| anyhow!("nvrtcGetCUBIN: {e:?}"))?;
                    Ok(bin)
                }
            };
            let _ = nvrtc::destroy_program(prog);
            out
        }
    };
    catch_unwind(AssertUnwindSafe(compile)).map_err(|_| anyhow!("NVRTC at run time lacks a required function"))?
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
        format!("cuda:{} ({}, sm_{a}{b}, kernels: {})", self.ordinal(), self.context.name, self.kernels_from)
    }

    fn new_stream(&self) -> Result<Arc<dyn Backend>> {
        self.bind()?;
        Ok(Arc::new(CudaDriver::on(self.context.clone())?))
    }

    fn same_device(&self, other: &dyn Backend) -> bool {
        other.device_key() == self.device_key()
    }

    fn device_key(&self) -> usize {
        Arc::as_ptr(&self.context) as usize
    }

    fn cuda_ordinal(&self) -> Option<usize> {
        Some(self.ordinal())
    }

    fn sm(&self) -> u32 {
        let (major, minor) = self.compute_capability;
        major * 10 + minor
    }

    fn malloc(&self, bytes: usize) -> Result<DevicePtr> {
        self.capture.forbid("an allocation")?;
        self.bind()?;
        // SAFETY: a plain allocation.
        unsafe { result::malloc_sync(bytes.max(1)) }
            .map_err(|e| anyhow!("cuda:{}: allocating {} MiB failed: {e} (out of GPU memory?)", self.ordinal(), bytes >> 20))
    }

    unsafe fn free(&self, ptr: DevicePtr, _bytes: usize) {
        if self.context.bind().is_ok() {
            // Waiting inside a capture would invalidate the capture at the driver too.
            if self.capture.forbid("freeing memory").is_ok() {
                // cuMemFree may return before queued work that uses the memory has finished
                // on other streams: wait for the whole context.
                let _ = sys::cuCtxSynchronize();
            }
            let _ = result::free_sync(ptr);
        }
    }

    unsafe fn memset_async(&self, dst: DevicePtr, bytes: usize) -> Result<()> {
        self.capture.forbid("a memset")?;
        self.bind()?;
        result::memset_d8_async(dst, 0, bytes, self.stream.handle).map_err(|e| self.context.fail("cuMemsetD8Async", e))
    }

    unsafe fn upload_async(&self, dst: DevicePtr, src: &[u8]) -> Result<()> {
        self.capture.forbid("an upload")?;
        self.bind()?;
        // From the pinned staging buffer where it fits; else from pageable memory, which the
        // driver stages before returning. Either way src may change afterwards.
        let from = match self.stage(src)? {
            Some(pinned) => std::slice::from_raw_parts(pinned, src.len()),
            None => src,
        };
        result::memcpy_htod_async(dst, from, self.stream.handle).map_err(|e| self.context.fail("copy to the GPU", e))
    }

    unsafe fn download_async(&self, src: DevicePtr, dst: *mut u8, len: usize) -> Result<()> {
        self.capture.forbid("a download")?;
        self.bind()?;
        let dst = std::slice::from_raw_parts_mut(dst, len);
        result::memcpy_dtoh_async(dst, src, self.stream.handle).map_err(|e| self.context.fail("copy from the GPU", e))
    }

    unsafe fn launch_raw(&self, kernel: &str, dims: Dims, shared_bytes: u32, args: &mut [*mut c_void], _sizes: &[u32]) -> Result<()> {
        self.bind()?;
        let f = *self.context.functions.get(kernel).ok_or_else(|| anyhow!("no kernel named {kernel}"))?;
        let footprint = self.context.footprints.get(kernel).copied().unwrap_or_default();
        let optin = lock(&self.context.optin).get(kernel).copied().unwrap_or(0);
        check_resources(kernel, dims, shared_bytes, footprint, optin, self.context.max_shared)?;
        let g = (dims.grid[0], dims.grid[1], dims.grid[2]);
        let b = (dims.block[0], dims.block[1], dims.block[2]);
        result::launch_kernel(f, g, b, shared_bytes, self.stream.handle, args).map_err(|e| self.context.fail(&format!("launching {kernel}"), e))?;
        if !self.capture.record(|launches| *launches += 1) {
            kernel.clone_into(&mut lock(&self.last_kernel));
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        self.capture.forbid("synchronize")?;
        self.bind()?;
        // SAFETY: the stream lives as long as self.
        unsafe { result::stream::synchronize(self.stream.handle) }.map_err(|e| {
            let last = lock(&self.last_kernel).clone();
            let what = if last.is_empty() {
                "a kernel failed".to_string()
            } else {
                format!("a kernel failed (the last queued: {last}; FEAR_CUDA_SYNC=1 names the one that faulted)")
            };
            self.context.fail(&what, e)
        })?;
        // Every staged upload has landed: the staging buffer is free again.
        lock(&self.staging).used = 0;
        Ok(())
    }

    fn set_max_dynamic_shared(&self, kernel: &str, bytes: u32) -> Result<()> {
        self.bind()?;
        let f = *self.context.functions.get(kernel).ok_or_else(|| anyhow!("no kernel named {kernel}"))?;
        let fixed = self.context.footprints.get(kernel).map_or(0, |f| f.static_shared);
        let max = self.context.max_shared;
        ensure!(fixed + bytes <= max, "{kernel}: {bytes} bytes of dynamic shared memory exceed the device's {max} per block");
        let attr = sys::CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
        // SAFETY: f is a function of this context.
        unsafe { sys::cuFuncSetAttribute(f, attr, bytes as i32) }.result().map_err(|e| self.context.fail("cuFuncSetAttribute", e))?;
        lock(&self.context.optin).insert(kernel.to_string(), bytes);
        Ok(())
    }

    fn is_poisoned(&self) -> bool {
        lock(&self.context.poisoned).is_some()
    }

    fn time(&self, queue: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.bind()?;
        let flags = sys::CUevent_flags::CU_EVENT_DEFAULT;
        let start = result::event::create(flags).map_err(|e| self.context.fail("cuEventCreate", e))?;
        let end = result::event::create(flags).map_err(|e| self.context.fail("cuEventCreate", e))?;
        // SAFETY: both events are ours, recorded on our stream, destroyed below.
        let timed = unsafe {
            (|| -> Result<f64> {
                result::event::record(start, self.stream.handle).map_err(|e| self.context.fail("cuEventRecord", e))?;
                queue()?;
                result::event::record(end, self.stream.handle).map_err(|e| self.context.fail("cuEventRecord", e))?;
                self.synchronize()?;
                Ok(result::event::elapsed(start, end).map_err(|e| self.context.fail("cuEventElapsedTime", e))? as f64 / 1e3)
            })()
        };
        // SAFETY: nothing waits on the events any more.
        unsafe {
            let _ = result::event::destroy(start);
            let _ = result::event::destroy(end);
        }
        timed
    }

    fn clock(&self) -> &'static str {
        "GPU time (CUDA events)"
    }

    fn begin_capture(&self) -> Result<()> {
        self.bind()?;
        self.capture.begin(0)?;
        // Thread-local mode: only this thread's unsafe calls (allocations, synchronous copies)
        // would break the capture, not those of workers driving other streams in this process.
        let mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
        // SAFETY: the stream lives as long as self.
        let begun = guarded("cuStreamBeginCapture", || Ok(unsafe { result::stream::begin_capture(self.stream.handle, mode) }?));
        if let Err(e) = begun {
            let _ = self.capture.end();
            bail!("cuda:{}: starting a capture: {e:#}", self.ordinal());
        }
        Ok(())
    }

    fn end_capture(&self) -> Result<Box<dyn CapturedLaunches>> {
        let recorded = self.capture.end();
        self.bind()?;
        // SAFETY: the stream lives as long as self; ending is needed even for a broken capture.
        let graph = guarded("cuStreamEndCapture", || Ok(unsafe { result::stream::end_capture(self.stream.handle) }?))
            .map_err(|e| anyhow!("cuda:{}: ending a capture: {e:#}", self.ordinal()))?;
        // SAFETY: the graph was just captured; its executable copy does not need it afterwards.
        let instantiated = recorded.and_then(|launched| unsafe { CudaGraph::instantiate(self, graph, launched) });
        // SAFETY: as above; nothing else holds the graph.
        let _ = guarded("cuGraphDestroy", || Ok(unsafe { result::graph::destroy(graph) }?));
        Ok(Box::new(instantiated?))
    }

    fn is_capturing(&self) -> bool {
        self.capture.is_active()
    }
}

/// Reopens GPU `ordinal` after a sticky error: resets its primary context (every allocation,
/// module and stream of the old one is gone) and opens it afresh.
pub fn reopen(ordinal: usize) -> Result<CudaDriver> {
    device_count()?;
    guarded("resetting the GPU's context", || {
        // SAFETY: resets the primary context this process retained; the old handles are not used again.
        unsafe {
            let dev = result::device::get(ordinal as i32).map_err(|e| anyhow!("cuDeviceGet: {e}"))?;
            sys::cuDevicePrimaryCtxReset_v2(dev).result().map_err(|e| anyhow!("cuda:{ordinal}: cuDevicePrimaryCtxReset: {e}"))
        }
    })?;
    CudaDriver::open(ordinal)
}

/// A captured step instantiated as a CUDA graph, launched on the backend's stream.
struct CudaGraph {
    exec: sys::CUgraphExec,
    /// Kept alive (with its context) as long as the graph may be launched on it.
    stream: Arc<Stream>,
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
        let ordinal = driver.ordinal();
        guarded("instantiating a CUDA graph", || {
            let mut nodes = 0usize;
            sys::cuGraphGetNodes(graph, std::ptr::null_mut(), &mut nodes).result().map_err(|e| anyhow!("cuda:{ordinal}: cuGraphGetNodes: {e}"))?;
            ensure!(nodes == launched, "cuda:{ordinal}: the captured graph holds {nodes} nodes for {launched} kernel launches");
            let flags = sys::CUgraphInstantiate_flags(0);
            let exec = result::graph::instantiate(graph, flags).map_err(|e| anyhow!("cuda:{ordinal}: cuGraphInstantiateWithFlags: {e}"))?;
            Ok(CudaGraph { exec, stream: driver.stream.clone(), nodes })
        })
    }
}

impl CapturedLaunches for CudaGraph {
    unsafe fn replay(&self) -> Result<()> {
        // The graph holds its stream, which holds the context.
        let context = &self.stream.context;
        guarded("cuGraphLaunch", || {
            context.bind()?;
            result::graph::launch(self.exec, self.stream.handle).map_err(|e| context.fail("cuGraphLaunch", e))
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
            self.stream.context.bind()?;
            Ok(unsafe { result::graph::exec_destroy(self.exec) }?)
        });
    }
}
