//! The data kernel held to the CPU face (see [`crate::engine::cuda::selftest`]).

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Augment, Normalization};
use crate::engine::cuda::selftest::relative_error;
use crate::engine::cuda::Gpu;
use crate::engine::device::{Device, MemoryLayout, ResidentImages};
use crate::engine::kernel::{Loc, Space};

/// The data kernel against [`Augment::apply`] with the same counter-drawn choices (must be exact),
/// writing an f32 batch, a bfloat16 one (`Space::Half`) and an IEEE-half one (`Space::HalfF16`):
/// the CPU's values rounded to nearest even, each as its space stores them.
pub(crate) fn check(gpu: &Gpu, seed: u64) -> Result<f64> {
    let (size, count) = (8, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let images: Vec<u8> = (0..count * 3 * size * size).map(|_| rng.random()).collect();
    // CIFAR-10's normalisation.
    let aug = Augment { size, pad: 3, flip: true, cutout: 4, fill: 7, norm: Normalization { mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616] } };
    let indices = [4u32, 0, 2, 2];
    let (aug_seed, epoch, first) = (seed ^ 0x5eed, 3, 11);
    let lut = aug.norm.lut();
    let floats = aug.image_floats();
    let mut want = vec![0f32; indices.len() * floats];
    for (r, &i) in indices.iter().enumerate() {
        let a = aug.params(aug_seed, epoch, first + r as u64);
        let img = &images[i as usize * floats..(i as usize + 1) * floats];
        aug.apply(img, &a, &lut, &mut want[r * floats..(r + 1) * floats]);
    }
    let mut resident = gpu.upload_split(&images, &aug)?;
    // Positions before `first` hold image 0; the batch is positions first..first+4.
    let order: Vec<u32> = std::iter::repeat_n(0, first as usize).chain(indices).collect();
    resident.set_order(&order)?;
    let mem = gpu.alloc(&MemoryLayout { params: 0, state: 0, work: want.len(), half: want.len(), labels: 0 })?;
    let mut worst = 0f64;
    for space in [Space::Work, Space::Half, Space::HalfF16] {
        let out = Loc::new(space, 0, want.len());
        gpu.augment_batch(&resident, aug_seed, epoch, first as usize, indices.len(), &mem, out)?;
        let stored: Vec<f32> = want.iter().map(|&v| space.storage().round(v)).collect();
        worst = worst.max(relative_error(&gpu.read(&mem, out)?, &stored));
    }
    Ok(worst)
}
