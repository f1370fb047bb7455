//! Which augmentation a dataset's splits get (training: pad + random crop, random flip,
//! normalise; evaluation: normalise only), and the byte its padding holds. The augmentation
//! itself, its random choices and its CPU and CUDA faces are the engine's op
//! ([`crate::engine::ops::augment`]), re-exported here.

use super::dataset::Dataset;
pub use crate::engine::ops::augment::{derive_seed, splitmix64, uniform_below, Augment, ImageAug};

impl Augment {
    /// Training augmentation for `ds`: pad `ds.pad` + random crop, random flip, normalise; no
    /// cutout (Cutout is the `paper` recipe's, for FEAR on CIFAR; see [`Augment::with_cutout`]).
    pub fn train(ds: &Dataset) -> Augment {
        Augment { size: ds.image_size, pad: ds.pad, flip: true, cutout: 0, fill: pad_fill(ds), norm: ds.norm }
    }

    /// Evaluation: normalise only.
    pub fn eval(ds: &Dataset) -> Augment {
        Augment { size: ds.image_size, pad: 0, flip: false, cutout: 0, fill: pad_fill(ds), norm: ds.norm }
    }
}

/// The padding byte for `ds`: [`crate::data::synthetic::ZERO_BYTE`] for the synthetic set (its images
/// encode N(0,1) values, whose "zero" is that byte), else 0 (black).
pub fn pad_fill(ds: &Dataset) -> u8 {
    super::recipe::DatasetKind::of(&ds.name).pad_fill()
}
