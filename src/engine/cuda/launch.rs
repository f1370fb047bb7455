//! The one launch path. Every kernel launch, on a real GPU or emulated, goes through
//! [`launch`]: it checks the grid, lays the arguments out as `cuLaunchKernel` takes them (an
//! array of pointers to each argument's value) and hands that to a [`Backend`]. So the grid
//! sizes, argument order and buffer offsets computed in Rust are the same code in CI (emulated)
//! and on a GPU.

use std::ffi::c_void;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Context, Result};

use super::capture::CapturedLaunches;
use crate::engine::kernel::Loc;
use crate::engine::precision::Precision;

/// A device address: a `CUdeviceptr` on a GPU, a host address under emulation.
pub type DevicePtr = u64;

/// One kernel argument, typed as the kernel's C parameter is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    /// A pointer (0 is NULL).
    Ptr(DevicePtr),
    I32(i32),
    F32(f32),
    F64(f64),
    U64(u64),
}

impl Arg {
    /// An `int` size argument; kernels index with `int`, so lengths must fit.
    pub fn len(n: usize) -> Result<Arg> {
        ensure!(n <= i32::MAX as usize, "a kernel length of {n} elements exceeds 2^31 - 1");
        Ok(Arg::I32(n as i32))
    }

    fn bytes(&self) -> ([u8; 8], u32) {
        let mut b = [0u8; 8];
        let size = match *self {
            Arg::Ptr(v) | Arg::U64(v) => {
                b.copy_from_slice(&v.to_ne_bytes());
                8
            }
            Arg::F64(v) => {
                b.copy_from_slice(&v.to_ne_bytes());
                8
            }
            Arg::I32(v) => {
                b[..4].copy_from_slice(&v.to_ne_bytes());
                4
            }
            Arg::F32(v) => {
                b[..4].copy_from_slice(&v.to_ne_bytes());
                4
            }
        };
        (b, size)
    }
}

/// Grid and block sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub grid: [u32; 3],
    pub block: [u32; 3],
}

/// Threads per block of the grid-stride elementwise kernels.
pub const ELEMENTWISE_THREADS: u32 = threads::FEAR_ELEMENTWISE_THREADS;
/// Blocks at most for a grid-stride kernel (each thread then loops).
const MAX_BLOCKS: usize = 1 << 16;

impl Dims {
    /// One thread per element, `ELEMENTWISE_THREADS` per block, grid-stride beyond `MAX_BLOCKS`.
    pub fn elementwise(n: usize) -> Dims {
        let blocks = n.div_ceil(ELEMENTWISE_THREADS as usize).clamp(1, MAX_BLOCKS);
        Dims { grid: [blocks as u32, 1, 1], block: [ELEMENTWISE_THREADS, 1, 1] }
    }

    /// One block of `threads` per item (`items` blocks, at most `MAX_BLOCKS`: kernels loop).
    pub fn per_item(items: usize, threads: u32) -> Dims {
        Dims { grid: [items.clamp(1, MAX_BLOCKS) as u32, 1, 1], block: [threads, 1, 1] }
    }
}

/// Where kernels run and their memory lives: one stream of one device.
///
/// Ordering follows the CUDA driver's rules, and the emulated backend enforces them: work queued
/// on a stream (kernels, `*_async` copies and memsets) runs in the order queued on that stream,
/// nothing orders two streams except a host wait ([`Backend::synchronize`], or `free`, which
/// waits for the whole device as `cuMemFree` does). The provided `alloc_zeroed`, `upload` and
/// `download` queue on this stream and then wait for it, so their results are safe to use from
/// any stream of the device; per-step writes queue only (`upload_async`) and rely on the stream.
pub trait Backend: Send + Sync {
    /// `cuda:0 (NVIDIA H100 80GB HBM3, sm_90)` or `emulated (host threads)`.
    fn describe(&self) -> String;
    /// The same device on a new stream of its own, with its own capture state (one per session,
    /// so two sessions on one GPU never record or wait for each other's launches).
    fn new_stream(&self) -> Result<Arc<dyn Backend>>;
    /// Whether `other` is a stream of the same device (the memory of one is valid on the other).
    fn same_device(&self, other: &dyn Backend) -> bool;
    /// An identity of the device (equal for every stream of it).
    fn device_key(&self) -> usize;
    /// The architecture as an sm number (80 for compute capability 8.0); the emulation claims
    /// the one it emulates (`FEAR_EMULATED_SM`, kernels/emulate/cuda_host.hpp). Kernels whose
    /// instructions a GPU lacks are not launched there (`ops::mma::MmaKind::min_sm`).
    fn sm(&self) -> u32;
    /// The CUDA ordinal of a real GPU (`None` under emulation).
    fn cuda_ordinal(&self) -> Option<usize> {
        None
    }
    /// Device memory of `bytes` bytes whose contents are undefined (`cuMemAlloc`).
    fn malloc(&self, bytes: usize) -> Result<DevicePtr>;
    /// Waits for the whole device (so no queued work still uses it), then frees.
    ///
    /// # Safety
    /// `ptr` came from `malloc` of this device and is not used afterwards.
    unsafe fn free(&self, ptr: DevicePtr, bytes: usize);
    /// Queues zeroing `bytes` bytes at `dst` on this stream (`cuMemsetD8Async`).
    ///
    /// # Safety
    /// `dst` addresses at least `bytes` bytes of this device.
    unsafe fn memset_async(&self, dst: DevicePtr, bytes: usize) -> Result<()>;
    /// Queues a copy of `src` to `dst` on this stream. `src` is staged before this returns (it
    /// may change afterwards); the copy lands when the stream reaches it.
    ///
    /// # Safety
    /// `dst` addresses at least `src.len()` bytes of this device.
    unsafe fn upload_async(&self, dst: DevicePtr, src: &[u8]) -> Result<()>;
    /// Queues a copy of `len` bytes at `src` into host memory at `dst` on this stream.
    ///
    /// # Safety
    /// `src` addresses `len` bytes of this device; `dst` stays valid and unused until this
    /// stream has been synchronised.
    unsafe fn download_async(&self, src: DevicePtr, dst: *mut u8, len: usize) -> Result<()>;
    /// Queues `kernel` with `args` (one pointer per argument to its value, and each value's
    /// size, for the emulated backend's signature check) and `shared_bytes` of dynamic shared
    /// memory, after checking the launch's resources ([`check_resources`]).
    ///
    /// # Safety
    /// Every pointer argument must address memory of this backend large enough for what the
    /// kernel touches given the other arguments.
    unsafe fn launch_raw(&self, kernel: &str, dims: Dims, shared_bytes: u32, args: &mut [*mut c_void], sizes: &[u32]) -> Result<()>;
    /// Waits until everything queued on this stream has finished; a fault names the kernel.
    fn synchronize(&self) -> Result<()>;
    /// Lets `kernel` take up to `bytes` of dynamic shared memory, above the 48 KB default
    /// (`cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)`), up to the device's maximum.
    fn set_max_dynamic_shared(&self, kernel: &str, bytes: u32) -> Result<()>;
    /// Whether the device hit a sticky error (an illegal address): every later call fails
    /// until it is reopened.
    fn is_poisoned(&self) -> bool;
    /// Times the work queued by `queue` on the device (CUDA events on a GPU; host time under
    /// emulation, labelled by [`Backend::clock`]). Seconds.
    fn time(&self, queue: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.synchronize()?;
        let start = std::time::Instant::now();
        queue()?;
        self.synchronize()?;
        Ok(start.elapsed().as_secs_f64())
    }
    /// What [`Backend::time`] measures.
    fn clock(&self) -> &'static str {
        "host time"
    }
    /// From now on records launches instead of running them (CUDA stream capture; the rules are
    /// in [`super::capture`]). Prefer [`super::capture::capture`], which always ends it.
    fn begin_capture(&self) -> Result<()>;
    /// Ends the capture begun last and returns its launches, ready to replay.
    fn end_capture(&self) -> Result<Box<dyn CapturedLaunches>>;
    /// Whether a capture is in progress on this stream.
    fn is_capturing(&self) -> bool;

    /// Zero-filled memory of `bytes` bytes (at least 256-byte aligned), ready for any stream.
    fn alloc_zeroed(&self, bytes: usize) -> Result<DevicePtr> {
        let p = self.malloc(bytes)?;
        // SAFETY: p holds max(bytes, 1) bytes, just allocated.
        let zeroed = unsafe { self.memset_async(p, bytes.max(1)) }.and_then(|_| self.synchronize());
        if let Err(e) = zeroed {
            // SAFETY: p came from malloc and is not used again.
            unsafe { self.free(p, bytes) };
            return Err(e);
        }
        Ok(p)
    }
    /// Copies host bytes to device memory at `dst` (which holds at least `src.len()` bytes) and
    /// waits until they landed.
    fn upload(&self, dst: DevicePtr, src: &[u8]) -> Result<()> {
        // SAFETY: the caller's buffer at dst holds src.len() bytes (checked by its owner).
        unsafe { self.upload_async(dst, src) }?;
        self.synchronize()
    }
    /// Copies device memory at `src` into `dst` after the work queued before on this stream.
    fn download(&self, src: DevicePtr, dst: &mut [u8]) -> Result<()> {
        // SAFETY: as upload; dst is borrowed until the synchronisation below has returned.
        unsafe { self.download_async(src, dst.as_mut_ptr(), dst.len()) }?;
        self.synchronize()
    }
}

/// What a launch may use of one kernel, from ptxas's report (or the driver's function
/// attributes): registers per thread and static shared memory per block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelFootprint {
    pub registers: u32,
    pub static_shared: u32,
}

/// Shared memory a block may use without opting in.
pub const DEFAULT_SHARED_LIMIT: u32 = 48 * 1024;
/// Registers of one SM's register file (every architecture since sm_50), per block at most.
pub const REGISTERS_PER_BLOCK: u32 = 65536;

/// Refuses a launch the hardware would refuse ("too many resources requested"): more than 1024
/// threads, more registers than a block may hold (allocated per warp in units of 256), or more
/// shared memory than allowed: 48 KB unless the kernel opted in to `optin` bytes of dynamic
/// shared memory, and never above the device's `max_shared` per block.
pub fn check_resources(kernel: &str, dims: Dims, shared_bytes: u32, footprint: KernelFootprint, optin: u32, max_shared: u32) -> Result<()> {
    let threads: u64 = dims.block.iter().map(|&b| b as u64).product();
    ensure!((1..=1024).contains(&threads), "{kernel}: {threads} threads per block (1..=1024)");
    let warps = threads.div_ceil(32);
    let per_warp = (footprint.registers as u64 * 32).div_ceil(256) * 256;
    ensure!(
        per_warp * warps <= REGISTERS_PER_BLOCK as u64,
        "{kernel}: {} registers x {threads} threads exceed the {REGISTERS_PER_BLOCK} registers of a block",
        footprint.registers
    );
    let (fixed, dynamic) = (footprint.static_shared as u64, shared_bytes as u64);
    ensure!(fixed <= DEFAULT_SHARED_LIMIT as u64, "{kernel}: {fixed} bytes of static shared memory exceed 48 KB");
    let allowed = if optin > 0 { optin as u64 } else { DEFAULT_SHARED_LIMIT as u64 - fixed };
    ensure!(
        dynamic <= allowed,
        "{kernel}: {dynamic} bytes of dynamic shared memory exceed its limit of {allowed} (48 KB in all unless the kernel \
         opts in with set_max_dynamic_shared)"
    );
    ensure!(fixed + dynamic <= max_shared as u64, "{kernel}: {} bytes of shared memory exceed this device's {max_shared} per block", fixed + dynamic);
    Ok(())
}

/// Whether `FEAR_CUDA_SYNC=1`: every launch is followed by a wait and a check, so a fault is
/// reported by the kernel that caused it (slow; for bring-up and debugging).
pub fn sync_every_launch() -> bool {
    match SYNC_EVERY_LAUNCH.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("FEAR_CUDA_SYNC").is_ok_and(|v| v == "1");
            set_sync_every_launch(on);
            on
        }
        v => v == 2,
    }
}

/// Turns FEAR_CUDA_SYNC's behaviour on or off for this process (tests; the variable otherwise).
pub fn set_sync_every_launch(on: bool) {
    SYNC_EVERY_LAUNCH.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

/// 0: not read yet, 1: off, 2: on.
static SYNC_EVERY_LAUNCH: AtomicU8 = AtomicU8::new(0);

/// The largest index a grid-stride kernel over `n` elements computes: `n - 1` plus one stride
/// of the largest grid. Kernels index with `int`.
pub const MAX_GRID_STRIDE: usize = MAX_BLOCKS * 1024;

/// Refuses a length whose indices (with a grid-stride step past the end) would wrap a kernel's
/// 32-bit `int`; `what` names the kernel and the product.
pub fn check_index_range(what: &str, n: usize) -> Result<()> {
    ensure!(
        n.saturating_add(MAX_GRID_STRIDE) <= i32::MAX as usize,
        "{what}: {n} elements would overflow a kernel's 32-bit index (at most {} with the grid-stride step)",
        i32::MAX as usize - MAX_GRID_STRIDE
    );
    Ok(())
}

/// Launches `kernel` over `dims` with `args` on `backend`.
///
/// # Safety
/// As [`Backend::launch_raw`]: the caller has checked that every buffer the arguments address
/// is large enough (the ops' launch code checks each location against its space).
pub unsafe fn launch(backend: &dyn Backend, kernel: &str, dims: Dims, args: &[Arg]) -> Result<()> {
    launch_with_shared(backend, kernel, dims, 0, args)
}

/// [`launch`] with `shared_bytes` of dynamic shared memory (`extern __shared__`).
///
/// # Safety
/// As [`launch`].
pub unsafe fn launch_with_shared(backend: &dyn Backend, kernel: &str, dims: Dims, shared_bytes: u32, args: &[Arg]) -> Result<()> {
    let threads: u64 = dims.block.iter().map(|&b| b as u64).product();
    ensure!((1..=1024).contains(&threads), "{kernel}: {threads} threads per block (1..=1024)");
    ensure!(dims.grid.iter().all(|&g| g >= 1), "{kernel}: empty grid {:?}", dims.grid);
    let mut values: Vec<[u8; 8]> = Vec::with_capacity(args.len());
    let mut sizes: Vec<u32> = Vec::with_capacity(args.len());
    for a in args {
        let (b, s) = a.bytes();
        values.push(b);
        sizes.push(s);
    }
    let mut pointers: Vec<*mut c_void> = values.iter_mut().map(|v| v.as_mut_ptr() as *mut c_void).collect();
    backend.launch_raw(kernel, dims, shared_bytes, &mut pointers, &sizes)?;
    if sync_every_launch() && !backend.is_capturing() {
        backend.synchronize().with_context(|| format!("FEAR_CUDA_SYNC=1: {kernel} faulted"))?;
    }
    Ok(())
}

/// Threads per block of every kernel (`FEAR_*_THREADS`), generated by build.rs from
/// kernels/launch_bounds.cuh, where each kernel's `__launch_bounds__` comes from too; the
/// reductions assume exactly this many threads.
pub mod threads {
    include!(concat!(env!("OUT_DIR"), "/kernel_threads.rs"));
}

/// What an op's launch code needs of a step's memory on a GPU.
pub trait GpuAddresses {
    /// The device address of `loc`, after checking it lies inside its space.
    fn address(&self, loc: Loc) -> Result<DevicePtr>;
    /// The reduction scratch buffer's address and size in bytes (for per-block partials).
    fn reduce_scratch(&self) -> (DevicePtr, usize);
    /// Slot `slot` (0 or 1) of the scratch kept for weight-gradient partials whose sum is
    /// deferred to a later launch (its address and size in bytes): apart from
    /// [`GpuAddresses::reduce_scratch`], so the kernels in between (batch norms) leave it alone.
    fn weight_partials(&self, slot: usize) -> Result<(DevicePtr, usize)>;
    /// The label buffer's address and capacity.
    fn labels(&self) -> (DevicePtr, usize);
}

/// Where an op launches: the backend, and the step memory its locations address.
#[derive(Clone, Copy)]
pub struct OnGpu<'a> {
    pub backend: &'a dyn Backend,
    pub mem: &'a dyn GpuAddresses,
}

impl OnGpu<'_> {
    /// The address of `loc` as a pointer argument (bounds-checked).
    pub fn p(&self, loc: Loc) -> Result<Arg> {
        Ok(Arg::Ptr(self.mem.address(loc)?))
    }

    /// [`OnGpu::p`], or a null pointer for an absent location.
    pub fn opt(&self, loc: Option<Loc>) -> Result<Arg> {
        loc.map_or(Ok(Arg::Ptr(0)), |l| self.p(l))
    }

    /// Launches `name` over `n` elements (nothing when `n` is 0).
    pub fn elementwise(&self, name: &str, n: usize, args: &[Arg]) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        // SAFETY: every pointer argument is a bounds-checked location (`OnGpu::p`).
        unsafe { launch_bounded(self.backend, name, Dims::elementwise(n), args) }
    }

    /// Launches `name` with one block of `threads` per item (nothing when there are no items).
    pub fn per_item(&self, name: &str, items: usize, threads: u32, args: &[Arg]) -> Result<()> {
        if items == 0 {
            return Ok(());
        }
        // SAFETY: as elementwise.
        unsafe { launch_bounded(self.backend, name, Dims::per_item(items, threads), args) }
    }
}

/// The kernel of `base`'s family for tensors stored where `tensor` lies: `base` (f32) outside
/// the 16-bit spaces, in them `base` + the space's [`crate::engine::kernel::Space::kernel_suffix`] (`_bf16` in `Half`,
/// `_f16` in `HalfF16`), the instantiation over that storage (kernels/storage.cuh). A kernel
/// with no such instantiation keeps its name; [`stored_variants_exist`] then refuses the launch,
/// so an f32 kernel is never handed 16-bit memory.
pub fn stored_variant(base: &'static str, tensor: Loc) -> &'static str {
    let suffix = tensor.space.kernel_suffix();
    if suffix.is_empty() {
        return base;
    }
    super::artifacts::KERNEL_NAMES.iter().copied().find(|n| n.strip_suffix(suffix) == Some(base)).unwrap_or(base)
}

/// The tensor whose space picks the instantiation of a kernel that reads and writes all of
/// `tensors` as one type (see [`stored_variant`]): the first, after checking that the others are
/// stored alike (all as f32, all as bfloat16 or all as IEEE half). `op` names the op in the error.
pub fn stored_alike(op: &str, tensors: &[Loc]) -> Result<Loc> {
    let first = *tensors.first().with_context(|| format!("{op}: no tensor to pick its kernels' storage by"))?;
    let storage = |l: &Loc| l.space.storage();
    ensure!(
        tensors.iter().all(|l| storage(l) == storage(&first)),
        "{op}: its tensors must be stored alike (all as f32, bfloat16 or IEEE half), not {tensors:?}"
    );
    Ok(first)
}

/// The kernels that read and write no tensor, only f32 statistics, coefficients and partial
/// sums: launched as they are by ops whose tensors are stored in 16 bits.
const TOUCHES_NO_TENSOR: &[&str] = &["fear_bn_train_finalize", "fear_bn_eval_coefficients", "fear_bn_backward_finalize", "fear_conv_backward_weight_reduce"];

/// Refuses an op that names 16-bit memory (a tensor stored as bfloat16 in `Space::Half`, or as
/// IEEE half in `Space::HalfF16`) but launches a kernel other than that storage's instantiation
/// or one that touches no tensor (`names`: its [`crate::engine::Kernel::launch_names`]): another
/// instantiation would read those bytes as another type.
pub fn stored_variants_exist(op: &str, locs: &[Loc], names: &[&str]) -> Result<()> {
    if let Some(half) = locs.iter().find(|l| l.space.is_16bit()) {
        let suffix = half.space.kernel_suffix();
        let wrong = names.iter().find(|n| !n.ends_with(suffix) && !TOUCHES_NO_TENSOR.contains(n));
        let storage = match half.space.storage() {
            Precision::F16 => "IEEE half",
            _ => "bfloat16",
        };
        ensure!(
            wrong.is_none(),
            "{op} has no kernel for tensors stored as {storage} ({half:?} is; it launches {names:?}, {} among them is not a \
             `{suffix}` instantiation): run this step with --precision fp32",
            wrong.unwrap()
        );
    }
    Ok(())
}

/// A length as a kernel's `int` argument.
pub fn len(n: usize) -> Result<Arg> {
    Arg::len(n)
}

/// A backward kernel's `accumulate` mode as its trailing `int` argument (0: assign).
pub fn flag(accumulate: bool) -> Arg {
    Arg::I32(accumulate as i32)
}

/// [`launch`] after checking the block is the size the kernel's `__launch_bounds__` names: a
/// larger block fails on a GPU ("too many resources requested for launch"), a smaller one would
/// break the reductions, and the emulator would accept either.
///
/// # Safety
/// As [`launch`].
pub unsafe fn launch_bounded(b: &dyn Backend, name: &str, dims: Dims, args: &[Arg]) -> Result<()> {
    launch_bounded_with_shared(b, name, dims, 0, args)
}

/// [`launch_bounded`] with `shared_bytes` of dynamic shared memory.
///
/// # Safety
/// As [`launch`].
pub unsafe fn launch_bounded_with_shared(b: &dyn Backend, name: &str, dims: Dims, shared_bytes: u32, args: &[Arg]) -> Result<()> {
    let bound = threads::KERNEL_THREADS.iter().find(|(n, _)| *n == name).map(|&(_, t)| t);
    ensure!(bound == Some(dims.block[0]) && dims.block[1..] == [1, 1], "{name}: a block of {:?} threads, but it is bounded to {bound:?}", dims.block);
    launch_with_shared(b, name, dims, shared_bytes, args)
}

/// [`launch_bounded_with_shared`] for a kernel whose dynamic shared memory may pass the 48 KB
/// every GPU grants without asking: above that, first raises the kernel's limit to
/// `shared_bytes` ([`Backend::set_max_dynamic_shared`]: `cuFuncSetAttribute(
/// MAX_DYNAMIC_SHARED_SIZE_BYTES)` on a GPU), which fails beyond the device's maximum per block.
/// Without it, both backends refuse such a launch as the driver does.
///
/// # Safety
/// As [`launch`].
pub unsafe fn launch_bounded_opting_in(b: &dyn Backend, name: &str, dims: Dims, shared_bytes: u32, args: &[Arg]) -> Result<()> {
    if shared_bytes > DEFAULT_SHARED_LIMIT {
        b.set_max_dynamic_shared(name, shared_bytes)?;
    }
    launch_bounded_with_shared(b, name, dims, shared_bytes, args)
}

#[cfg(test)]
mod bound_tests {
    use super::*;
    use crate::engine::cuda::emulated::Emulated;
    use crate::engine::kernel::Space;

    #[test]
    fn tensors_stored_as_bfloat16_get_bfloat16_kernels_or_none() {
        let (f32_loc, bf16_loc) = (Loc::new(Space::Work, 0, 8), Loc::new(Space::Half, 0, 8));
        assert_eq!(stored_variant("fear_relu", f32_loc), "fear_relu");
        assert_eq!(stored_variant("fear_relu", bf16_loc), "fear_relu_bf16");
        // No instantiation: the name stays, and the launch is refused below.
        assert_eq!(stored_variant("fear_softmax_xent_forward", bf16_loc), "fear_softmax_xent_forward");
        assert!(stored_variants_exist("relu", &[bf16_loc], &["fear_relu_bf16"]).is_ok());
        assert!(stored_variants_exist("forward", &[bf16_loc], &["fear_relu_bf16", "fear_bn_train_finalize"]).is_ok());
        assert!(stored_variants_exist("relu", &[f32_loc], &["fear_relu"]).is_ok());
        let err = stored_variants_exist("relu", &[f32_loc, bf16_loc], &["fear_relu_bf16", "fear_relu"]).unwrap_err().to_string();
        assert!(err.contains("fear_relu among them is not a `_bf16` instantiation"), "{err}");
    }

    #[test]
    fn tensors_stored_as_ieee_half_get_their_own_kernels() {
        let (bf16_loc, f16_loc) = (Loc::new(Space::Half, 0, 8), Loc::new(Space::HalfF16, 0, 8));
        assert_eq!(stored_variant("fear_relu", f16_loc), "fear_relu_f16");
        assert_eq!(stored_variant("fear_conv_forward", f16_loc), "fear_conv_forward_f16");
        // A product with no IEEE-half instantiation keeps its name and is refused.
        assert_eq!(stored_variant("fear_conv_forward_tf32", f16_loc), "fear_conv_forward_tf32");
        assert!(stored_variants_exist("relu", &[f16_loc], &["fear_relu_f16", "fear_bn_train_finalize"]).is_ok());
        let err = stored_variants_exist("relu", &[f16_loc], &["fear_relu_bf16"]).unwrap_err().to_string();
        assert!(err.contains("stored as IEEE half") && err.contains("fear_relu_bf16 among them is not a `_f16` instantiation"), "{err}");
        let err = stored_alike("add", &[bf16_loc, f16_loc]).unwrap_err().to_string();
        assert!(err.contains("stored alike"), "{err}");
        assert!(stored_alike("add", &[f16_loc, f16_loc]).is_ok());
    }

    #[test]
    fn a_block_other_than_the_kernels_bound_is_refused() {
        let b = Emulated::default();
        let args = [Arg::Ptr(0), Arg::I32(0)];
        // SAFETY: refused before launching.
        let err = unsafe { launch_bounded(&b, "fear_zero", Dims::per_item(1, 512), &args) }.unwrap_err().to_string();
        assert!(err.contains("bounded to Some(256)"), "{err}");
        let err = unsafe { launch_bounded(&b, "fear_no_such_kernel", Dims::per_item(1, 256), &args) }.unwrap_err().to_string();
        assert!(err.contains("bounded to None"), "{err}");
        assert_eq!(threads::KERNEL_THREADS.iter().find(|(n, _)| *n == "fear_sum_squares").map(|k| k.1), Some(threads::FEAR_SUMSQ_THREADS));
    }
}
