//! Training images resident on the device, and the data kernel that turns a batch of them into
//! the network's input: crop, flip, Cutout and normalisation on the device, with the random
//! choices drawn from counters (seed, epoch, position) exactly as [`Augment::params`] draws them
//! on the CPU, so both produce the same floats.
//!
//! A [`ResidentSplit`] is uploaded once per run (images as bytes, a quarter of their f32 size)
//! with its normalisation table; each epoch writes only its order (4 bytes an image), and each
//! step launches one kernel reading from those fixed buffers: no host augmentation, no per-step
//! image upload, no allocation and no synchronisation between steps.

use anyhow::{bail, ensure, Result};

use super::gpu::{Buffer, Gpu, GpuMemory};
use super::launch::{DevicePtr, GpuAddresses};
use crate::engine::device::ResidentImages;
use crate::engine::kernel::Loc;
use crate::engine::ops::augment::launch::{launch_augment, AugmentBuffers};
use crate::engine::ops::augment::Augment;

/// A split's images (`[count, 3, size, size]` bytes) on the device, the augmentation they get,
/// and the current epoch's order (which image each position of the epoch holds).
pub struct ResidentSplit {
    gpu: Gpu,
    images: Buffer,
    count: usize,
    aug: Augment,
    /// The normalisation as a 3 x 256 table of floats, as [`crate::engine::ops::augment::Normalization::lut`].
    lut: Buffer,
    order: Option<Buffer>,
    order_len: usize,
    /// Each image's label, where [`ResidentSplit::set_labels`] gave them: then the data kernel
    /// also writes a batch's labels.
    labels: Option<Buffer>,
}

/// What the data kernel writes besides a batch's images, for a step fed from the device alone.
#[derive(Clone, Copy, Debug)]
pub struct StepFeed {
    /// Where the labels go (the step memory's label buffer).
    pub labels: DevicePtr,
    /// Where the learning rate goes, and its value.
    pub lr: DevicePtr,
    pub lr_value: f32,
}

impl std::fmt::Debug for ResidentSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels = self.labels.is_some();
        f.debug_struct("ResidentSplit")
            .field("count", &self.count)
            .field("aug", &self.aug)
            .field("order_len", &self.order_len)
            .field("labels", &labels)
            .finish()
    }
}

impl ResidentSplit {
    /// Images held.
    pub fn count(&self) -> usize {
        self.count
    }
}

impl ResidentImages for ResidentSplit {
    /// Keeps every image's label on the device (once per run), so that a step's labels are
    /// gathered there by the data kernel instead of uploaded.
    fn set_labels(&mut self, labels: &[u32]) -> Result<()> {
        ensure!(labels.len() == self.count, "{} labels for {} resident images", labels.len(), self.count);
        let buf = self.gpu.buffer(std::mem::size_of_val(labels).max(4))?;
        buf.upload(bytemuck::cast_slice(labels))?;
        self.labels = Some(buf);
        Ok(())
    }

    /// Whether [`ResidentSplit::set_labels`] has put the labels on the device.
    fn has_labels(&self) -> bool {
        self.labels.is_some()
    }

    /// Sets the epoch's order: position `p` of the epoch is image `order[p]`. Between steps
    /// only (it is an upload).
    fn set_order(&mut self, order: &[u32]) -> Result<()> {
        if let Some(&bad) = order.iter().find(|&&i| i as usize >= self.count) {
            bail!("image index {bad} is out of range: the device holds {} images", self.count);
        }
        let bytes = std::mem::size_of_val(order);
        if self.order.as_ref().is_none_or(|b| b.bytes() < bytes) {
            self.order = Some(self.gpu.buffer(bytes.max(4))?);
        }
        self.order.as_ref().expect("just allocated").upload(bytemuck::cast_slice(order))?;
        self.order_len = order.len();
        Ok(())
    }
}

impl Gpu {
    /// Copies `images` (whole `aug.size x aug.size` RGB images, bytes) to the device, to be
    /// augmented by `aug`.
    pub fn upload_split(&self, images: &[u8], aug: &Augment) -> Result<ResidentSplit> {
        let per = 3 * aug.size * aug.size;
        ensure!(per > 0 && images.len().is_multiple_of(per), "{} image bytes are not whole {}x{} RGB images", images.len(), aug.size, aug.size);
        let bytes = self.buffer(images.len().max(1))?;
        bytes.upload(images)?;
        let lut: Vec<f32> = aug.norm.lut().iter().flatten().copied().collect();
        let lut_buf = self.buffer(lut.len() * 4)?;
        lut_buf.upload(bytemuck::cast_slice(&lut))?;
        Ok(ResidentSplit { gpu: self.clone(), images: bytes, count: images.len() / per, aug: *aug, lut: lut_buf, order: None, order_len: 0, labels: None })
    }

    /// Writes positions `start .. start + n` of the epoch's order, augmented for `(seed, epoch)`
    /// as [`Augment::params`]`(seed, epoch, position)` draws, into `out` (`[n, 3, size, size]`
    /// f32). Queued on the device's stream; nothing waits.
    #[allow(clippy::too_many_arguments)]
    pub fn augment_batch(&self, split: &ResidentSplit, seed: u64, epoch: u64, start: usize, n: usize, mem: &GpuMemory, out: Loc) -> Result<()> {
        self.feed_batch(split, seed, epoch, start, n, mem, out, None)
    }

    /// [`Gpu::augment_batch`], and with `feed` the batch's labels (gathered from the split's) and
    /// the learning rate too, all by the one kernel: a step fed so needs no upload.
    #[allow(clippy::too_many_arguments)]
    pub fn feed_batch(
        &self,
        split: &ResidentSplit,
        seed: u64,
        epoch: u64,
        start: usize,
        n: usize,
        mem: &GpuMemory,
        out: Loc,
        feed: Option<StepFeed>,
    ) -> Result<()> {
        let aug = &split.aug;
        ensure!(self.backend().same_device(split.gpu.backend()), "the resident images live on another device");
        ensure!(out.len == n * aug.image_floats(), "{out:?} does not hold {n} images");
        super::launch::check_index_range("fear_augment", out.len)?;
        ensure!(start + n <= split.order_len, "positions {start}..{} lie beyond the epoch's {} (set_order first)", start + n, split.order_len);
        let Some(order) = split.order.as_ref().filter(|_| n > 0) else { return Ok(()) };
        let feed = match feed {
            None => None,
            Some(f) => {
                let labels = split.labels.as_ref().ok_or_else(|| anyhow::anyhow!("the resident split holds no labels (set_labels first)"))?;
                let (_, capacity) = mem.labels();
                ensure!(n <= capacity, "{n} labels exceed the batch capacity {capacity}");
                Some(((labels.ptr(), f.labels), (f.lr, f.lr_value)))
            }
        };
        let bufs = AugmentBuffers {
            images: split.images.ptr(),
            order: order.ptr() + (start * 4) as u64,
            lut: split.lut.ptr(),
            out: mem.address(out)?,
            out_storage: out.space.storage(),
            feed,
        };
        // SAFETY: every index in the order was checked against the images held; positions
        // start..start+n lie inside the order buffer; `out` is bounds-checked and holds n images;
        // with a feed, the labels buffer holds one label per image held, the label buffer n
        // labels (checked above), and the lr address is a bounds-checked location.
        unsafe { launch_augment(self.backend(), aug, seed, epoch, start, n, bufs) }
    }
}
