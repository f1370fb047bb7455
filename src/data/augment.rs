//! Per-image augmentation, with torchvision's semantics (README, "Training recipe"):
//! `RandomCrop(S, padding=pad)` (zero padding) -> `RandomHorizontalFlip()` -> `ToTensor()` ->
//! `Normalize(mean, std)` -> optional `Cutout(L)` (the DARTS / archai implementation: a centre
//! `(cy, cx)` uniform over the image, rows `[cy - L/2, cy + L/2)` and the same columns clipped
//! to the image, set to 0 after normalisation).
//!
//! The random choices of one image are an [`ImageAug`], drawn by [`Augment::params`] from
//! `(seed, epoch, position in the epoch)` alone, so a batch is the same whatever its size, thread
//! count or device: a GPU path can take the same `ImageAug`s and match the CPU bit for bit.

use super::dataset::{Dataset, Normalization};

/// What augmentation a split gets. Input and output images are `size x size`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    /// Image side (the crop is the same size as the image).
    pub size: usize,
    /// Zero padding before the random crop; 0 = no crop.
    pub pad: usize,
    /// Random horizontal flip with probability 1/2.
    pub flip: bool,
    /// Cutout side L; 0 = none.
    pub cutout: usize,
    /// The byte the padding holds before normalisation: 0 (black, as torchvision pads a PIL
    /// image), or the synthetic set's encoding of 0.0 ([`crate::data::synthetic::ZERO_BYTE`]).
    pub fill: u8,
    pub norm: Normalization,
}

/// The random choices for one image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageAug {
    /// Crop offset in the padded image, `0..=2*pad` (output row y reads padded row `y + dy`,
    /// i.e. source row `y + dy - pad`).
    pub dy: usize,
    pub dx: usize,
    /// Mirror left-right after the crop.
    pub flip: bool,
    /// Cutout centre `(row, column)` in the output image.
    pub cutout: Option<(usize, usize)>,
}

/// SplitMix64: mixes seeds into well-spread 64-bit values.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed derived from `(seed, a, b, tag)`: distinct inputs give unrelated streams.
pub fn derive_seed(seed: u64, a: u64, b: u64, tag: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(splitmix64(seed) ^ a) ^ b) ^ tag)
}

/// A value in `0..n` from the top 32 bits of a well-mixed draw (multiply-shift; the bias is
/// below n / 2^32).
pub fn uniform_below(draw: u64, n: usize) -> usize {
    (((draw >> 32) * n as u64) >> 32) as usize
}

/// Tag of the per-image augmentation streams.
const AUG_TAG: u64 = 0x4155_4731; // "AUG1"

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

    /// The same with Cutout(`length`) (0 = none).
    pub fn with_cutout(mut self, length: usize) -> Augment {
        self.cutout = length;
        self
    }

    /// Whether nothing random happens (eval).
    pub fn is_deterministic(&self) -> bool {
        self.pad == 0 && !self.flip && self.cutout == 0
    }

    /// Floats per output image: `3 * size^2`.
    pub fn image_floats(&self) -> usize {
        3 * self.size * self.size
    }

    /// The choices for the image at `position` of epoch `epoch` (its place in the epoch's
    /// order, not its index in the split), from `seed`: crop row offset, crop column offset,
    /// flip, cutout row, cutout column, each only if enabled. Counter-based (draw `k` is a hash of
    /// `(seed, epoch, position, k)`), so the data kernel (`kernels/augment.cu`) computes the same
    /// choices on the device from the counters alone.
    pub fn params(&self, seed: u64, epoch: u64, position: u64) -> ImageAug {
        let draw = |k: u64| derive_seed(seed, epoch, position, AUG_TAG + k);
        let mut a = ImageAug::default();
        if self.is_deterministic() {
            return a;
        }
        if self.pad > 0 {
            a.dy = uniform_below(draw(0), 2 * self.pad + 1);
            a.dx = uniform_below(draw(1), 2 * self.pad + 1);
        }
        if self.flip {
            a.flip = draw(2) >> 63 == 1;
        }
        if self.cutout > 0 {
            a.cutout = Some((uniform_below(draw(3), self.size), uniform_below(draw(4), self.size)));
        }
        a
    }

    /// Writes one augmented, normalised image `[3, size, size]` into `out`. `img` is the
    /// source's `3 * size^2` bytes; `lut` is `self.norm.lut()`.
    pub fn apply(&self, img: &[u8], a: &ImageAug, lut: &[[f32; 256]; 3], out: &mut [f32]) {
        let s = self.size;
        let plane = s * s;
        debug_assert_eq!(img.len(), 3 * plane);
        debug_assert_eq!(out.len(), 3 * plane);
        let pad = self.pad as isize;
        for c in 0..3 {
            let lut = &lut[c];
            let fill = lut[self.fill as usize];
            let src = &img[c * plane..(c + 1) * plane];
            let dst = &mut out[c * plane..(c + 1) * plane];
            for y in 0..s {
                let row = &mut dst[y * s..(y + 1) * s];
                let sy = y as isize + a.dy as isize - pad;
                if sy < 0 || sy >= s as isize {
                    row.fill(fill);
                    continue;
                }
                let srow = &src[sy as usize * s..(sy as usize + 1) * s];
                for (x, o) in row.iter_mut().enumerate() {
                    let xc = if a.flip { s - 1 - x } else { x };
                    let sx = xc as isize + a.dx as isize - pad;
                    *o = if sx < 0 || sx >= s as isize { fill } else { lut[srow[sx as usize] as usize] };
                }
            }
        }
        if let (Some((cy, cx)), l) = (a.cutout, self.cutout) {
            let (y0, y1) = (cy.saturating_sub(l / 2), (cy + l / 2).min(s));
            let (x0, x1) = (cx.saturating_sub(l / 2), (cx + l / 2).min(s));
            for c in 0..3 {
                for y in y0..y1 {
                    out[c * plane + y * s + x0..c * plane + y * s + x1].fill(0.0);
                }
            }
        }
    }
}

/// The padding byte for `ds`: [`crate::data::synthetic::ZERO_BYTE`] for the synthetic set (its images
/// encode N(0,1) values, whose "zero" is that byte), else 0 (black).
pub fn pad_fill(ds: &Dataset) -> u8 {
    super::recipe::DatasetKind::of(&ds.name).pad_fill()
}
