//! The data kernel's launch: one block per image of the batch (augment.cu), reading images kept
//! on the device (`crate::engine::cuda::resident`).

use anyhow::Result;

use super::Augment;
use crate::engine::cuda::launch::threads::FEAR_AUGMENT_THREADS;
use crate::engine::cuda::launch::{launch_bounded, Arg, Backend, DevicePtr, Dims};
use crate::engine::precision::Precision;

/// augment.cu's `out_storage` for a batch stored as `storage`.
fn storage_code(storage: Precision) -> Result<i32> {
    match storage {
        Precision::Fp32 => Ok(0),
        Precision::Bf16 => Ok(1),
        Precision::F16 => Ok(2),
        Precision::Tf32 => anyhow::bail!("no tensor is stored as TF32"),
    }
}

/// The device buffers one launch of the data kernel reads and writes.
#[derive(Clone, Copy, Debug)]
pub struct AugmentBuffers {
    /// The split's images, `[count, 3, size, size]` bytes.
    pub images: DevicePtr,
    /// The epoch's order from the batch's first position on (`n` image indices).
    pub order: DevicePtr,
    /// The normalisation table, `[3][256]` floats ([`super::Normalization::lut`]).
    pub lut: DevicePtr,
    /// The batch, `[n, 3, size, size]`, stored as `out_storage` says.
    pub out: DevicePtr,
    /// What the batch is stored as: f32 (`Fp32`), bfloat16 or IEEE half (the space of `out`,
    /// [`crate::engine::kernel::Space::storage`]).
    pub out_storage: Precision,
    /// For a step fed from the device alone: (every image's label, where the batch's go), and
    /// (where the learning rate goes, its value).
    pub feed: Option<((DevicePtr, DevicePtr), (DevicePtr, f32))>,
}

/// Augments positions `start .. start + n` of the epoch for `(seed, epoch)` as
/// [`Augment::params`] draws them, into `bufs.out`.
///
/// # Safety
/// Every index in the `n` entries at `bufs.order` must name an image held at `bufs.images`;
/// `bufs.out` must hold `n` images; with a feed, the labels buffer must hold one label per image
/// held, the batch's label buffer `n` labels, and the learning-rate address one float.
#[allow(clippy::too_many_arguments)]
pub unsafe fn launch_augment(b: &dyn Backend, aug: &Augment, seed: u64, epoch: u64, start: usize, n: usize, bufs: AugmentBuffers) -> Result<()> {
    let args = [
        Arg::Ptr(bufs.images),
        Arg::Ptr(bufs.order),
        Arg::Ptr(bufs.lut),
        Arg::Ptr(bufs.out),
        Arg::I32(storage_code(bufs.out_storage)?),
        Arg::len(n)?,
        Arg::len(aug.size)?,
        Arg::len(aug.pad)?,
        Arg::I32(aug.flip as i32),
        Arg::len(aug.cutout)?,
        Arg::I32(aug.fill as i32),
        Arg::U64(seed),
        Arg::U64(epoch),
        Arg::U64(start as u64),
    ];
    let extra = match bufs.feed {
        None => [Arg::Ptr(0), Arg::Ptr(0), Arg::Ptr(0), Arg::F32(0.0)],
        Some(((labels, label_out), (lr_out, lr))) => [Arg::Ptr(labels), Arg::Ptr(label_out), Arg::Ptr(lr_out), Arg::F32(lr)],
    };
    launch_bounded(b, "fear_augment", Dims::per_item(n, FEAR_AUGMENT_THREADS), &[&args[..], &extra].concat())
}
