//! The emulated backend: the kernels of `src/engine/ops/*/*.cu` compiled for the host by build.rs (see
//! `kernels/emulate/`) and run on CPU threads. Memory is host memory; a "device pointer" is a
//! host address. Slow, but it runs every kernel through the real launch path on any machine.
//!
//! It keeps the driver's rules strictly, so that CI catches what only a GPU would show:
//! - ordering: every stream is a queue. Kernels, copies and memsets queued on it run only when
//!   the host waits for that stream (`synchronize`, or `free`, which waits for the whole device
//!   as `cuMemFree` does), in the order queued. Nothing orders two streams: work queued on
//!   another stream that nobody waited for has not happened yet, so a missing wait shows as a
//!   wrong result;
//! - fresh memory (`malloc`) holds NaN bytes until something writes it;
//! - launch resources: registers, shared memory and threads are checked against the embedded
//!   ptxas reports (the worst over every target), as the hardware would refuse them;
//! - sticky errors: a fault injected with [`Gpu::emulated_with_fault`] or `FEAR_EMULATED_FAULT`
//!   poisons the device, as an illegal address poisons a CUDA context, until it is reopened;
//! - capture: each launch is recorded with its argument values copied, as CUDA graph capture
//!   does, and a replay queues the records on the capturing stream.
//!
//! [`Gpu::emulated_with_fault`]: super::Gpu::emulated_with_fault

use std::alloc::{alloc, dealloc, Layout};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{bail, ensure, Result};

use super::artifacts;
use super::capture::{CaptureState, CapturedLaunches};
use super::launch::{check_resources, Backend, DevicePtr, Dims, KernelFootprint};

extern "C" {
    fn fear_emu_launch(
        name: *const c_char,
        grid: *const u32,
        block: *const u32,
        shared_bytes: u32,
        args: *mut *mut c_void,
        nargs: c_int,
        arg_sizes: *const u32,
        err: *mut c_char,
        err_len: c_int,
    ) -> c_int;
    fn fear_emu_check(name: *const c_char, nargs: c_int, arg_sizes: *const u32, err: *mut c_char, err_len: c_int) -> c_int;
    fn fear_emu_sm() -> c_int;
}

/// A launch as queued or captured: the argument values, not pointers to them (each in an
/// aligned word; kernel arguments here are at most 8 bytes).
#[derive(Clone)]
struct RecordedLaunch {
    kernel: String,
    dims: Dims,
    shared_bytes: u32,
    values: Vec<u64>,
    sizes: Vec<u32>,
}

/// One operation queued on a stream.
enum Op {
    Memset { dst: DevicePtr, bytes: usize },
    Upload { dst: DevicePtr, data: Vec<u8> },
    Download { src: DevicePtr, dst: *mut u8, len: usize },
    Launch(RecordedLaunch),
}

// SAFETY: the host pointer of a download is only written by the thread that drains the queue,
// and the caller of download_async keeps it valid until the stream is synchronised.
unsafe impl Send for Op {}

/// Which launch faults: the `nth` (0-based) run of `kernel`.
#[derive(Clone, Debug)]
struct Fault {
    kernel: String,
    nth: usize,
}

/// `FEAR_EMULATED_FAULT=KERNEL[@N]`: the N-th run (0-based, default 0) of KERNEL in this process
/// faults with a sticky illegal address (for testing how a run recovers; fires once).
fn fault_from_env() -> Option<&'static (Fault, AtomicUsize)> {
    static PLAN: std::sync::OnceLock<Option<(Fault, AtomicUsize)>> = std::sync::OnceLock::new();
    PLAN.get_or_init(|| {
        let v = std::env::var("FEAR_EMULATED_FAULT").ok()?;
        let (kernel, nth) = v.split_once('@').unwrap_or((&v, "0"));
        Some((Fault { kernel: kernel.to_string(), nth: nth.parse().ok()? }, AtomicUsize::new(0)))
    })
    .as_ref()
}

/// One emulated GPU: its streams' queues and what every stream of it shares.
struct EmuDevice {
    key: usize,
    queues: Mutex<BTreeMap<u64, VecDeque<Op>>>,
    /// Held while queued work runs, so a free never overlaps a kernel of another stream.
    exec: Mutex<()>,
    next_stream: AtomicU64,
    /// The sticky error, once one happened.
    sticky: Mutex<Option<String>>,
    /// Dynamic shared memory each kernel opted in to.
    optin: Mutex<HashMap<String, u32>>,
    footprints: HashMap<String, KernelFootprint>,
    max_shared: u32,
    /// A fault planned on this device, and how many runs of its kernel happened.
    fault: Option<(Fault, AtomicUsize)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EmuDevice {
    fn new(fault: Option<Fault>) -> EmuDevice {
        static KEYS: AtomicUsize = AtomicUsize::new(1);
        EmuDevice {
            key: KEYS.fetch_add(1, Ordering::Relaxed),
            queues: Mutex::default(),
            exec: Mutex::default(),
            next_stream: AtomicU64::new(0),
            sticky: Mutex::default(),
            optin: Mutex::default(),
            footprints: artifacts::worst_footprints(),
            max_shared: artifacts::smallest_max_shared(),
            fault: fault.map(|f| (f, AtomicUsize::new(0))),
        }
    }

    fn check_sticky(&self) -> Result<()> {
        match lock(&self.sticky).as_ref() {
            Some(why) => bail!("emulated device: {why} earlier (a sticky error: the device must be reopened)"),
            None => Ok(()),
        }
    }

    fn queue(&self, stream: u64, op: Op) -> Result<()> {
        self.check_sticky()?;
        lock(&self.queues).entry(stream).or_default().push_back(op);
        Ok(())
    }

    /// Runs everything queued on `stream` (every stream when `None`), in order per stream.
    fn drain(&self, stream: Option<u64>) -> Result<()> {
        let _running = lock(&self.exec);
        let ops: Vec<Op> = {
            let mut queues = lock(&self.queues);
            match stream {
                Some(s) => queues.get_mut(&s).map(|q| q.drain(..).collect()).unwrap_or_default(),
                None => queues.values_mut().flat_map(|q| q.drain(..)).collect(),
            }
        };
        let mut first_error = None;
        for op in ops {
            if first_error.is_some() || self.check_sticky().is_err() {
                continue; // a faulted stream runs nothing more
            }
            // SAFETY: every queued address was bounds-checked by its owner when queued, and memory
            // is only freed after a drain of every stream.
            if let Err(e) = unsafe { self.run(op) } {
                first_error = Some(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => self.check_sticky(),
        }
    }

    unsafe fn run(&self, op: Op) -> Result<()> {
        match op {
            Op::Memset { dst, bytes } => std::ptr::write_bytes(dst as *mut u8, 0, bytes),
            Op::Upload { dst, data } => std::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()),
            Op::Download { src, dst, len } => std::ptr::copy_nonoverlapping(src as *const u8, dst, len),
            Op::Launch(l) => {
                if self.faults_now(&l.kernel) {
                    let why = format!("an illegal memory access (injected) in {}", l.kernel);
                    *lock(&self.sticky) = Some(why.clone());
                    bail!("emulated device: {why}");
                }
                let mut args: Vec<*mut c_void> = l.values.iter().map(|v| v as *const u64 as *mut c_void).collect();
                run_kernel(&l.kernel, l.dims, l.shared_bytes, &mut args, &l.sizes)?;
            }
        }
        Ok(())
    }

    /// Whether this run of `kernel` is the one planned to fault (on this device or by the env).
    fn faults_now(&self, kernel: &str) -> bool {
        let hit = |(f, runs): &(Fault, AtomicUsize)| f.kernel == kernel && runs.fetch_add(1, Ordering::Relaxed) == f.nth;
        self.fault.as_ref().is_some_and(hit) | fault_from_env().is_some_and(hit)
    }
}

/// One stream of an emulated GPU (see the module's rules).
pub struct Emulated {
    device: Arc<EmuDevice>,
    stream: u64,
    capture: CaptureState<Vec<RecordedLaunch>>,
}

impl Default for Emulated {
    fn default() -> Self {
        Emulated::on(Arc::new(EmuDevice::new(None)))
    }
}

impl Emulated {
    /// A device whose `nth` run (0-based) of `kernel` faults with a sticky error.
    pub fn with_fault(kernel: &str, nth: usize) -> Emulated {
        Emulated::on(Arc::new(EmuDevice::new(Some(Fault { kernel: kernel.to_string(), nth }))))
    }

    fn on(device: Arc<EmuDevice>) -> Emulated {
        let stream = device.next_stream.fetch_add(1, Ordering::Relaxed);
        Emulated { device, stream, capture: CaptureState::default() }
    }
}

impl Drop for Emulated {
    fn drop(&mut self) {
        // A destroyed CUDA stream still completes its work.
        let _ = self.device.drain(Some(self.stream));
        lock(&self.device.queues).remove(&self.stream);
    }
}

/// The launches of one emulated capture, queued on the capturing stream by a replay.
struct Recording {
    device: Arc<EmuDevice>,
    stream: u64,
    launches: Vec<RecordedLaunch>,
}

impl CapturedLaunches for Recording {
    unsafe fn replay(&self) -> Result<()> {
        self.launches.iter().try_for_each(|l| self.device.queue(self.stream, Op::Launch(l.clone())))
    }

    fn launches(&self) -> usize {
        self.launches.len()
    }
}

fn c_error(err: &[c_char]) -> String {
    // SAFETY: the C side always writes a NUL-terminated message into err.
    unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned()
}

/// Runs `kernel` on host threads now.
///
/// # Safety
/// As [`Backend::launch_raw`].
unsafe fn run_kernel(kernel: &str, dims: Dims, shared_bytes: u32, args: &mut [*mut c_void], sizes: &[u32]) -> Result<()> {
    let name = std::ffi::CString::new(kernel)?;
    let mut err = [0 as c_char; 256];
    let rc = fear_emu_launch(
        name.as_ptr(),
        dims.grid.as_ptr(),
        dims.block.as_ptr(),
        shared_bytes,
        args.as_mut_ptr(),
        args.len() as c_int,
        sizes.as_ptr(),
        err.as_mut_ptr(),
        err.len() as c_int,
    );
    ensure!(rc == 0, "emulated launch: {}", c_error(&err));
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

    fn new_stream(&self) -> Result<Arc<dyn Backend>> {
        self.device.check_sticky()?;
        Ok(Arc::new(Emulated::on(self.device.clone())))
    }

    fn same_device(&self, other: &dyn Backend) -> bool {
        other.device_key() == self.device_key()
    }

    fn device_key(&self) -> usize {
        // Kept apart from CUDA ordinals, which are small.
        usize::MAX - self.device.key
    }

    fn sm(&self) -> u32 {
        // SAFETY: returns a constant.
        unsafe { fear_emu_sm() as u32 }
    }

    fn malloc(&self, bytes: usize) -> Result<DevicePtr> {
        self.capture.forbid("an allocation")?;
        self.device.check_sticky()?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc(layout(bytes)) };
        if p.is_null() {
            bail!("emulated device: out of host memory allocating {bytes} bytes");
        }
        // Fresh device memory is not zero: NaN bytes show a read before any write.
        // SAFETY: p holds max(bytes, 1) bytes.
        unsafe { std::ptr::write_bytes(p, 0xff, bytes.max(1)) };
        Ok(p as DevicePtr)
    }

    unsafe fn free(&self, ptr: DevicePtr, bytes: usize) {
        let _ = self.capture.forbid("freeing memory");
        // cuMemFree waits for the device: nothing queued may still use the memory.
        let _ = self.device.drain(None);
        let _running = lock(&self.device.exec);
        dealloc(ptr as *mut u8, layout(bytes));
    }

    unsafe fn memset_async(&self, dst: DevicePtr, bytes: usize) -> Result<()> {
        self.capture.forbid("a memset")?;
        self.device.queue(self.stream, Op::Memset { dst, bytes })
    }

    unsafe fn upload_async(&self, dst: DevicePtr, src: &[u8]) -> Result<()> {
        self.capture.forbid("an upload")?;
        self.device.queue(self.stream, Op::Upload { dst, data: src.to_vec() })
    }

    unsafe fn download_async(&self, src: DevicePtr, dst: *mut u8, len: usize) -> Result<()> {
        self.capture.forbid("a download")?;
        self.device.queue(self.stream, Op::Download { src, dst, len })
    }

    unsafe fn launch_raw(&self, kernel: &str, dims: Dims, shared_bytes: u32, args: &mut [*mut c_void], sizes: &[u32]) -> Result<()> {
        // Checked when queued, not only when run, so a launch error is reported by the launch
        // (as cuLaunchKernel reports a bad configuration) and a capture refuses it.
        ensure!(args.len() == sizes.len(), "{kernel}: {} arguments but {} sizes", args.len(), sizes.len());
        ensure!(sizes.iter().all(|&n| n <= 8), "{kernel}: an argument over 8 bytes");
        let name = std::ffi::CString::new(kernel)?;
        let mut err = [0 as c_char; 256];
        let rc = fear_emu_check(name.as_ptr(), args.len() as c_int, sizes.as_ptr(), err.as_mut_ptr(), err.len() as c_int);
        ensure!(rc == 0, "emulated launch: {}", c_error(&err));
        let footprint = self.device.footprints.get(kernel).copied().unwrap_or_default();
        let optin = lock(&self.device.optin).get(kernel).copied().unwrap_or(0);
        check_resources(kernel, dims, shared_bytes, footprint, optin, self.device.max_shared)?;
        let launch = RecordedLaunch { kernel: kernel.to_string(), dims, shared_bytes, values: copy_values(args, sizes), sizes: sizes.to_vec() };
        let mut launch = Some(launch);
        if self.capture.record(|launches| launches.push(launch.take().expect("recorded once"))) {
            return Ok(());
        }
        self.device.queue(self.stream, Op::Launch(launch.expect("not recorded")))
    }

    fn synchronize(&self) -> Result<()> {
        self.capture.forbid("synchronize")?;
        self.device.drain(Some(self.stream))
    }

    fn set_max_dynamic_shared(&self, kernel: &str, bytes: u32) -> Result<()> {
        ensure!(artifacts::KERNEL_NAMES.contains(&kernel), "no kernel named {kernel}");
        let fixed = self.device.footprints.get(kernel).map_or(0, |f| f.static_shared);
        let max = self.device.max_shared;
        ensure!(fixed + bytes <= max, "{kernel}: {bytes} bytes of dynamic shared memory exceed the device's {max} per block");
        lock(&self.device.optin).insert(kernel.to_string(), bytes);
        Ok(())
    }

    fn is_poisoned(&self) -> bool {
        self.device.check_sticky().is_err()
    }

    fn begin_capture(&self) -> Result<()> {
        self.capture.begin(Vec::new())
    }

    fn end_capture(&self) -> Result<Box<dyn CapturedLaunches>> {
        let launches = self.capture.end()?;
        Ok(Box::new(Recording { device: self.device.clone(), stream: self.stream, launches }))
    }

    fn is_capturing(&self) -> bool {
        self.capture.is_active()
    }
}
