//! The in-memory dataset: byte images, labels, normalisation and crop padding.

use anyhow::{bail, Result};

pub use crate::engine::ops::augment::Normalization;

impl Normalization {
    /// CIFAR-10 (README, "Training recipe").
    pub const CIFAR10: Normalization = Normalization { mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616] };
    /// CIFAR-100 (README, "Training recipe").
    pub const CIFAR100: Normalization = Normalization { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] };
    /// ImageNet16-120 (README, "Training recipe").
    pub const IMAGENET16: Normalization = Normalization { mean: [0.4810, 0.4575, 0.4079], std: [0.2479, 0.2402, 0.2552] };
    /// `ToTensor()` alone: `byte / 255` (the FEAR paper's ImageNet16-120 runs).
    pub const NONE: Normalization = Normalization { mean: [0.0; 3], std: [1.0; 3] };

    /// Per-channel mean and standard deviation (population, over every pixel) of `images`,
    /// on the `[0, 1]` scale: how the standard CIFAR constants were computed. Used for image
    /// folders, which carry no constants of their own.
    pub fn measure(images: &[u8], image_size: usize) -> Normalization {
        let plane = image_size * image_size;
        let mut sum = [0u64; 3];
        let mut sq = [0u64; 3];
        let mut n = 0u64;
        if plane > 0 {
            for img in images.chunks_exact(3 * plane) {
                for c in 0..3 {
                    for &b in &img[c * plane..(c + 1) * plane] {
                        sum[c] += b as u64;
                        sq[c] += (b as u64) * (b as u64);
                    }
                }
                n += plane as u64;
            }
        }
        if n == 0 {
            return Normalization { mean: [0.5; 3], std: [0.25; 3] };
        }
        let mut mean = [0f32; 3];
        let mut std = [0f32; 3];
        for c in 0..3 {
            let m = sum[c] as f64 / n as f64;
            let var = (sq[c] as f64 / n as f64 - m * m).max(0.0);
            mean[c] = (m / 255.0) as f32;
            std[c] = ((var.sqrt() / 255.0) as f32).max(1e-3);
        }
        Normalization { mean, std }
    }
}

/// One split: `len()` images of `3 * size * size` bytes each (planes R, G, B, row-major) and
/// their labels. The image size lives in the [`Dataset`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The bytes of image `i` for images of `image_size x image_size`.
    pub fn image(&self, i: usize, image_size: usize) -> &[u8] {
        let n = 3 * image_size * image_size;
        &self.images[i * n..(i + 1) * n]
    }

    /// Images per label, `classes` entries.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0usize; classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Checks the byte length against the label count and every label against `classes`.
    pub fn validate(&self, image_size: usize, classes: usize) -> Result<()> {
        let n = 3 * image_size * image_size;
        if self.images.len() != self.labels.len() * n {
            bail!("{} image bytes for {} labels of {n} bytes each", self.images.len(), self.labels.len());
        }
        if let Some((i, l)) = self.labels.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
            bail!("label {l} of image {i} is not below the class count {classes}");
        }
        Ok(())
    }
}

/// A dataset: both splits, the class count, the square image size, the normalisation and the
/// zero padding of the training crop (4 for 32x32, 2 for 16x16).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `cifar10`, `cifar100`, `imagenet16-120`, `synthetic-cifar10`, or an image folder's name.
    pub name: String,
    pub classes: usize,
    pub image_size: usize,
    pub train: Split,
    pub test: Split,
    pub norm: Normalization,
    pub pad: usize,
}

impl Dataset {
    /// The crop padding NATS-Bench's recipe uses for an image size: 4 on 32x32, 2 on 16x16
    /// (`size / 8`).
    pub fn default_pad(image_size: usize) -> usize {
        image_size / 8
    }

    /// Checks both splits (byte lengths, labels below `classes`).
    pub fn validate(&self) -> Result<()> {
        self.train.validate(self.image_size, self.classes).map_err(|e| anyhow::anyhow!("{}: train split: {e}", self.name))?;
        self.test.validate(self.image_size, self.classes).map_err(|e| anyhow::anyhow!("{}: test split: {e}", self.name))
    }
}
