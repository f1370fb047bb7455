//! Training images resident on the device, and the data kernel that turns a batch of them into
//! the network's input: crop, flip, Cutout and normalisation on the device, with the random
//! choices drawn from counters (seed, epoch, position) exactly as [`Augment::params`] draws them
//! on the CPU, so both produce the same floats.

use anyhow::{ensure, Result};

use super::gpu::{Buffer, Gpu, GpuMemory};
use super::launch::{launch, Arg, Dims};
use crate::data::augment::Augment;
use crate::engine::kernel::Loc;

/// A split's images (`[count, 3, size, size]` bytes) copied to the device once.
pub struct DeviceImages {
    bytes: Buffer,
    pub count: usize,
    pub size: usize,
}

/// Threads per image of the augmentation kernel.
const AUG_THREADS: u32 = 256;

impl Gpu {
    /// Copies `images` (`count` images of `3 x size x size` bytes) to the device.
    pub fn upload_images(&self, images: &[u8], size: usize) -> Result<DeviceImages> {
        let per = 3 * size * size;
        ensure!(per > 0 && images.len().is_multiple_of(per), "{} image bytes are not whole {size}x{size} RGB images", images.len());
        let bytes = self.buffer(images.len())?;
        bytes.upload(images)?;
        Ok(DeviceImages { bytes, count: images.len() / per, size })
    }

    /// Writes the augmented batch of images `indices` (batch row r is the image at position
    /// `first_position + r` of epoch `epoch`) into `out` (`[batch, 3, size, size]` f32).
    #[allow(clippy::too_many_arguments)]
    pub fn augment(
        &self, images: &DeviceImages, indices: &[u32], aug: &Augment, seed: u64, epoch: u64, first_position: u64,
        mem: &GpuMemory, out: Loc,
    ) -> Result<()> {
        ensure!(aug.size == images.size, "augmenting {}x{} images as {}x{}", images.size, images.size, aug.size, aug.size);
        ensure!(out.len == indices.len() * aug.image_floats(), "{out:?} does not hold {} images", indices.len());
        if let Some(&bad) = indices.iter().find(|&&i| i as usize >= images.count) {
            anyhow::bail!("image index {bad} is out of range: the device holds {} images", images.count);
        }
        if indices.is_empty() {
            return Ok(());
        }
        let lut: Vec<f32> = aug.norm.lut().iter().flatten().copied().collect();
        let lut_buf = self.buffer(lut.len() * 4)?;
        lut_buf.upload(bytemuck::cast_slice(&lut))?;
        let idx_buf = self.buffer(indices.len() * 4)?;
        idx_buf.upload(bytemuck::cast_slice(indices))?;
        let args = [
            Arg::Ptr(images.bytes.ptr()), Arg::Ptr(idx_buf.ptr()), Arg::Ptr(lut_buf.ptr()), Arg::Ptr(mem.address(out)?),
            Arg::len(indices.len())?, Arg::len(aug.size)?, Arg::len(aug.pad)?, Arg::I32(aug.flip as i32),
            Arg::len(aug.cutout)?, Arg::I32(aug.fill as i32), Arg::U64(seed), Arg::U64(epoch), Arg::U64(first_position),
        ];
        // SAFETY: the image, index and LUT buffers were sized above; `out` is bounds-checked and
        // holds indices.len() images.
        unsafe { launch(self.backend(), "fear_augment", Dims::per_item(indices.len(), AUG_THREADS), &args)? };
        // The temporaries are freed on drop, after the kernel has run.
        self.synchronize()
    }
}
