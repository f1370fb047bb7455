//! Where a training epoch's batches come from: augmented on the host and uploaded at each step,
//! or, on a device that can keep the split, augmented on the device from images uploaded once.
//! Both draw each image's augmentation from `(seed, epoch, position)` and visit the images in
//! the same order, so they feed the network the same floats.

use anyhow::Result;

use crate::data::augment::Augment;
use crate::data::dataset::Split;
use crate::engine::device::ResidentImages;
use crate::engine::Device;

/// A training split and its augmentation, resident on the device where it can be (as the
/// device's `R`, [`Device::Resident`]).
pub struct TrainSplit<'a, R> {
    pub split: &'a Split,
    pub aug: Augment,
    pub(crate) resident: Option<R>,
}

impl<'a, R: ResidentImages> TrainSplit<'a, R> {
    /// Batches augmented on the host (any device).
    pub fn on_host(split: &'a Split, aug: Augment) -> TrainSplit<'a, R> {
        TrainSplit { split, aug, resident: None }
    }

    /// Resident on `device` when it can keep the images (a GPU), else on the host. The upload
    /// happens here, once for every epoch trained from this value.
    pub fn for_device<D: Device<f32, Resident = R>>(device: &D, split: &'a Split, aug: Augment) -> Result<TrainSplit<'a, R>> {
        let mut resident = device.make_resident(&split.images, &aug)?;
        if let Some(r) = resident.as_mut() {
            // So each step's labels are gathered on the device too (no upload per step).
            r.set_labels(&split.labels)?;
        }
        Ok(TrainSplit { split, aug, resident })
    }

    pub fn is_resident(&self) -> bool {
        self.resident.is_some()
    }
}
