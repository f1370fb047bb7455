//! Epochs and batches: a shuffle per epoch from `(seed, epoch)`, and batches of any size (the
//! last one partial) filled into caller-provided buffers, in parallel over images.
//!
//! Batch `k` of epoch `e` holds the images at positions `k*B .. min((k+1)*B, N)` of
//! [`epoch_order`]`(N, seed, e)`; image at position `p` gets [`Augment::params`]`(seed, e, p)`.
//! Everything is a function of `(seed, epoch, k)` (and `B` for which images fall in batch `k`).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::augment::{derive_seed, Augment, ImageAug};
use super::dataset::Split;

const SHUFFLE_TAG: u64 = 0x5348_5546; // "SHUF"

/// The order of epoch `epoch`: a permutation of `0..n` (Fisher-Yates driven by ChaCha8 seeded
/// from `(seed, epoch)`).
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, epoch, 0, SHUFFLE_TAG));
    order.shuffle(&mut rng);
    order
}

/// Batches in an epoch of `n` images: `ceil(n / batch_size)`.
pub fn num_batches(n: usize, batch_size: usize) -> usize {
    assert!(batch_size > 0, "batch size must be positive");
    n.div_ceil(batch_size)
}

/// Fills batch `k` (of size `batch_size`, the last one partial) of the epoch whose order is
/// `order` (from [`epoch_order`], or `0..N` for evaluation) into `images` (`[B, 3, S, S]`,
/// at least `len * 3 * S * S` floats) and `labels` (at least `len`), and returns `len`, the
/// number of images in this batch (0 past the end). Augmentation of the image at position `p`
/// is [`Augment::params`]`(seed, epoch, p)`. Parallel over images (rayon).
#[allow(clippy::too_many_arguments)]
pub fn fill_batch(
    split: &Split,
    aug: &Augment,
    order: &[u32],
    seed: u64,
    epoch: u64,
    batch_size: usize,
    k: usize,
    images: &mut [f32],
    labels: &mut [u32],
) -> usize {
    assert!(batch_size > 0, "batch size must be positive");
    let start = (k * batch_size).min(order.len());
    let end = ((k + 1) * batch_size).min(order.len());
    let len = end - start;
    let n = aug.image_floats();
    let bytes = 3 * aug.size * aug.size;
    assert!(images.len() >= len * n, "image buffer holds {} floats, batch needs {}", images.len(), len * n);
    assert!(labels.len() >= len, "label buffer holds {}, batch needs {len}", labels.len());
    let lut = aug.norm.lut();
    images[..len * n].par_chunks_mut(n).zip(labels[..len].par_iter_mut()).enumerate().with_min_len(8).for_each(|(i, (out, label))| {
        let pos = start + i;
        let idx = order[pos] as usize;
        let a = aug.params(seed, epoch, pos as u64);
        aug.apply(&split.images[idx * bytes..(idx + 1) * bytes], &a, &lut, out);
        *label = split.labels[idx];
    });
    len
}

/// One filled batch (owned): `images` is `[len, 3, S, S]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    /// Images in this batch (the last batch of an epoch may hold fewer than the batch size).
    pub len: usize,
}

/// An epoch over one split: its order, batch size and augmentation.
#[derive(Clone, Debug)]
pub struct Batcher<'a> {
    split: &'a Split,
    aug: Augment,
    batch_size: usize,
    seed: u64,
    epoch: u64,
    order: Vec<u32>,
}

impl<'a> Batcher<'a> {
    /// Training epoch `epoch`: shuffled by `(seed, epoch)`, augmented by `aug`.
    pub fn train(split: &'a Split, aug: Augment, batch_size: usize, seed: u64, epoch: u64) -> Batcher<'a> {
        assert!(batch_size > 0, "batch size must be positive");
        Batcher { split, aug, batch_size, seed, epoch, order: epoch_order(split.len(), seed, epoch) }
    }

    /// Evaluation: the split in order, `aug` applied (normally [`Augment::eval`]: normalise only).
    pub fn eval(split: &'a Split, aug: Augment, batch_size: usize) -> Batcher<'a> {
        assert!(batch_size > 0, "batch size must be positive");
        Batcher { split, aug, batch_size, seed: 0, epoch: 0, order: (0..split.len() as u32).collect() }
    }

    pub fn num_batches(&self) -> usize {
        num_batches(self.order.len(), self.batch_size)
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Images in batch `k`.
    pub fn batch_len(&self, k: usize) -> usize {
        let start = (k * self.batch_size).min(self.order.len());
        ((k + 1) * self.batch_size).min(self.order.len()) - start
    }

    /// The epoch's order (split indices by position).
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// Split indices of batch `k`.
    pub fn indices(&self, k: usize) -> &[u32] {
        let start = (k * self.batch_size).min(self.order.len());
        let end = ((k + 1) * self.batch_size).min(self.order.len());
        &self.order[start..end]
    }

    /// The augmentation choices of batch `k`'s images (for a device that augments itself).
    pub fn params(&self, k: usize) -> Vec<ImageAug> {
        let start = k * self.batch_size;
        (0..self.batch_len(k)).map(|i| self.aug.params(self.seed, self.epoch, (start + i) as u64)).collect()
    }

    /// Fills batch `k` into the buffers; returns its length (see [`fill_batch`]).
    pub fn fill(&self, k: usize, images: &mut [f32], labels: &mut [u32]) -> usize {
        fill_batch(self.split, &self.aug, &self.order, self.seed, self.epoch, self.batch_size, k, images, labels)
    }

    /// Batch `k`, allocated.
    pub fn batch(&self, k: usize) -> Batch {
        let len = self.batch_len(k);
        let mut images = vec![0f32; len * self.aug.image_floats()];
        let mut labels = vec![0u32; len];
        self.fill(k, &mut images, &mut labels);
        Batch { images, labels, len }
    }

    /// The epoch's batches in order, each allocated.
    pub fn iter(&self) -> impl Iterator<Item = Batch> + '_ {
        (0..self.num_batches()).map(move |k| self.batch(k))
    }
}
