//! The one launch path. Every kernel launch, on a real GPU or emulated, goes through
//! [`launch`]: it checks the grid, lays the arguments out as `cuLaunchKernel` takes them (an
//! array of pointers to each argument's value) and hands that to a [`Backend`]. So the grid
//! sizes, argument order and buffer offsets computed in Rust are the same code in CI (emulated)
//! and on a GPU.

use std::ffi::c_void;

use anyhow::{ensure, Result};

use super::capture::CapturedLaunches;

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
            Arg::Ptr(v) | Arg::U64(v) => { b.copy_from_slice(&v.to_ne_bytes()); 8 }
            Arg::F64(v) => { b.copy_from_slice(&v.to_ne_bytes()); 8 }
            Arg::I32(v) => { b[..4].copy_from_slice(&v.to_ne_bytes()); 4 }
            Arg::F32(v) => { b[..4].copy_from_slice(&v.to_ne_bytes()); 4 }
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
pub const ELEMENTWISE_THREADS: u32 = super::ops::threads::FEAR_ELEMENTWISE_THREADS;
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

/// Where kernels run and their memory lives.
pub trait Backend: Send + Sync {
    /// `cuda:0 (NVIDIA H100 80GB HBM3, sm_90)` or `emulated (host threads)`.
    fn describe(&self) -> String;
    /// Zero-filled memory of `bytes` bytes (at least 256-byte aligned).
    fn alloc_zeroed(&self, bytes: usize) -> Result<DevicePtr>;
    /// # Safety
    /// `ptr` came from `alloc_zeroed` of this backend and is not used afterwards.
    unsafe fn free(&self, ptr: DevicePtr, bytes: usize);
    /// Copies host bytes to device memory at `dst` (which holds at least `src.len()` bytes).
    fn upload(&self, dst: DevicePtr, src: &[u8]) -> Result<()>;
    /// Copies device memory at `src` into `dst`; waits for the work launched before.
    fn download(&self, src: DevicePtr, dst: &mut [u8]) -> Result<()>;
    /// Launches `kernel` with `args`: one pointer per argument to its value, and each value's
    /// size (for the emulated backend's signature check).
    ///
    /// # Safety
    /// Every pointer argument must address memory of this backend large enough for what the
    /// kernel touches given the other arguments.
    unsafe fn launch_raw(&self, kernel: &str, dims: Dims, args: &mut [*mut c_void], sizes: &[u32]) -> Result<()>;
    /// Waits until every launched kernel has finished.
    fn synchronize(&self) -> Result<()>;
    /// From now on records launches instead of running them (CUDA stream capture; the rules are
    /// in [`super::capture`]). Prefer [`super::capture::capture`], which always ends it.
    fn begin_capture(&self) -> Result<()>;
    /// Ends the capture begun last and returns its launches, ready to replay.
    fn end_capture(&self) -> Result<Box<dyn CapturedLaunches>>;
}

/// Launches `kernel` over `dims` with `args` on `backend`.
///
/// # Safety
/// As [`Backend::launch_raw`]: the caller has checked that every buffer the arguments address
/// is large enough (the [`super::ops`] code checks each location against its space).
pub unsafe fn launch(backend: &dyn Backend, kernel: &str, dims: Dims, args: &[Arg]) -> Result<()> {
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
    backend.launch_raw(kernel, dims, &mut pointers, &sizes)
}
