//! HoG features, matching scikit-image's `skimage.feature.hog` (checked against 0.26, whose
//! algorithm is the 0.18 one the FEAR paper's threshold learner used) called as
//! `hog(img, orientations=9, pixels_per_cell=(c, c), cells_per_block=(3, 3),
//! block_norm='L2-Hys', channel_axis=-1)` on a uint8 `[S, S, 3]` image.
//!
//! What skimage does, step by step, and what this file reproduces:
//!
//! 1. The uint8 image becomes float64 **without rescaling** (values stay in 0..255).
//! 2. Per channel, gradients with [-1, 0, 1] as plain differences: `g_row[y] = I[y+1] - I[y-1]`,
//!    `g_col[x] = I[x+1] - I[x-1]`, and zero on the first and last row (resp. column).
//! 3. Per pixel, the channel with the largest `hypot(g_row, g_col)` (the first one on ties, as
//!    `argmax`) gives that pixel's gradient.
//! 4. Orientation `rad2deg(atan2(g_row, g_col)) % 180` (unsigned, in [0, 180)), magnitude
//!    `hypot`. Bin `i` holds orientations in `[step * i, step * (i + 1))` with
//!    `step = f32(180 / orientations)` and the bounds computed in f32 (as `_hoghistogram.pyx`
//!    does); each pixel votes its whole magnitude into its one bin (no interpolation).
//! 5. Cell `(r, c)` covers pixels `[r*cell, (r+1)*cell) x [c*cell, (c+1)*cell)` (pixels past the
//!    last whole cell are ignored); its histogram is the per-bin sum of magnitudes, accumulated in
//!    **f32** in row-major pixel order, divided (in f32) by `cell * cell`, i.e. a mean over the cell.
//! 6. Blocks of `block x block` cells at every cell offset (stride one cell), each normalised by
//!    L2-Hys in f64: `v / sqrt(|v|^2 + eps^2)`, clipped at 0.2, then `v / sqrt(|v|^2 + eps^2)`
//!    again, `eps = 1e-5`.
//! 7. Feature order `[block_row, block_col, cell_row_in_block, cell_col_in_block, orientation]`.
//!
//! 32x32 with 8x8 cells: 4x4 cells, 2x2 blocks of 3x3x9 = 324 features; 16x16 with 4x4 cells gives
//! the same shape and 324 features. A constant image gives all zeros.
use rayon::prelude::*;

/// HoG parameters (square cells and blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HogParams {
    /// Orientation bins over [0, 180) degrees.
    pub orientations: usize,
    /// Cell side in pixels.
    pub cell: usize,
    /// Block side in cells.
    pub block: usize,
}

impl HogParams {
    /// The threshold learner's (README, "FEAR, step by step"): 9 orientations, 3x3-cell blocks,
    /// 8x8-pixel cells, except 4x4 cells for images of side 16 or less (ImageNet16-120), so both
    /// 32x32 and 16x16 give 324 features.
    pub fn for_image_size(s: usize) -> Self {
        HogParams { orientations: 9, cell: if s <= 16 { 4 } else { 8 }, block: 3 }
    }

    fn cells(&self, size: usize) -> usize {
        assert!(self.cell > 0 && self.block > 0 && self.orientations > 0, "bad HoG params {self:?}");
        let n = size / self.cell;
        assert!(n >= self.block, "image of side {size} too small for HoG with {}-pixel cells and {}-cell blocks", self.cell, self.block);
        n
    }
}

/// Number of features for a `size x size` image: blocks^2 * block^2 * orientations.
pub fn feature_len(size: usize, p: &HogParams) -> usize {
    let nb = p.cells(size) - p.block + 1;
    nb * nb * p.block * p.block * p.orientations
}

/// HoG of one image stored planar u8 `[3, size, size]` (R, G, B planes) into `out`
/// (`feature_len(size, p)` values).
pub fn hog_features(img: &[u8], size: usize, p: &HogParams, out: &mut [f32]) {
    let mut hist = Vec::new();
    hog_into(img, size, p, &mut hist, out);
}

/// HoG of every image in `images` (consecutive planar `[3, size, size]` u8 images), in parallel
/// over images; returns `[n, feature_len(size, p)]` row-major.
pub fn hog_dataset(images: &[u8], size: usize, p: &HogParams) -> Vec<f32> {
    let img_len = 3 * size * size;
    assert!(img_len > 0 && images.len().is_multiple_of(img_len), "images length not a multiple of 3*{size}*{size}");
    let n = images.len() / img_len;
    let f = feature_len(size, p);
    let mut out = vec![0f32; n * f];
    // 64 images per task keeps the rayon overhead negligible (one image is ~10 us).
    const PER_TASK: usize = 64;
    out.par_chunks_mut(f * PER_TASK).zip(images.par_chunks(img_len * PER_TASK)).for_each_init(Vec::new, |hist, (o, im)| {
        for (oi, ii) in o.chunks_mut(f).zip(im.chunks(img_len)) {
            hog_into(ii, size, p, hist, oi);
        }
    });
    out
}

/// The orientation bin of `o` in [0, 180), or `None` if it falls past the last f32 bound.
#[inline]
fn bin_of(o: f64, bounds: &[f64], step: f64) -> Option<usize> {
    let n = bounds.len() - 1;
    let mut i = ((o / step) as usize).min(n - 1);
    while i > 0 && o < bounds[i] {
        i -= 1;
    }
    while i < n && o >= bounds[i + 1] {
        i += 1;
    }
    if i < n && o >= bounds[i] {
        Some(i)
    } else {
        None
    }
}

fn hog_into(img: &[u8], size: usize, p: &HogParams, hist32: &mut Vec<f32>, out: &mut [f32]) {
    let s = size;
    let plane = s * s;
    assert_eq!(img.len(), 3 * plane, "image must be planar [3, {s}, {s}] u8");
    let nc = p.cells(s);
    let no = p.orientations;
    let cell = p.cell;
    let flen = feature_len(s, p);
    assert_eq!(out.len(), flen, "out must hold feature_len = {flen} values");

    // Bin bounds as _hoghistogram computes them: f32 step, f32 products.
    let step32 = (180.0f64 / no as f64) as f32;
    let bounds: Vec<f64> = (0..=no).map(|k| (step32 * k as f32) as f64).collect();
    let step = step32 as f64;

    hist32.clear();
    hist32.resize(nc * nc * no, 0.0);
    let lim = nc * cell; // pixels past the last whole cell are ignored
    for y in 0..lim {
        let cy = y / cell;
        for x in 0..lim {
            // Per-channel [-1, 0, 1] gradients, zero on the borders; keep the strongest channel
            // (first on ties). The gradients are integers, so comparing exact squared norms picks
            // the same channel as comparing skimage's `hypot`s.
            let (mut best_m, mut best_r, mut best_c) = (-1i32, 0i32, 0i32);
            for ch in 0..3 {
                let pl = &img[ch * plane..(ch + 1) * plane];
                let gr = if y == 0 || y == s - 1 { 0 } else { pl[(y + 1) * s + x] as i32 - pl[(y - 1) * s + x] as i32 };
                let gc = if x == 0 || x == s - 1 { 0 } else { pl[y * s + x + 1] as i32 - pl[y * s + x - 1] as i32 };
                let m = gr * gr + gc * gc;
                if m > best_m {
                    best_m = m;
                    best_r = gr;
                    best_c = gc;
                }
            }
            if best_m == 0 {
                continue; // a zero vote (skimage puts it in bin 0): changes nothing
            }
            // sqrt of the exact integer square sum = the correctly rounded hypot.
            let mag = (best_m as f64).sqrt();
            let ori = (best_r as f64).atan2(best_c as f64).to_degrees().rem_euclid(180.0);
            if let Some(b) = bin_of(ori, &bounds, step) {
                let h = &mut hist32[(cy * nc + x / cell) * no + b];
                // `float total; total += magnitude` in the .pyx: add in f64, round to f32.
                *h = (*h as f64 + mag) as f32;
            }
        }
    }
    let area = (cell * cell) as f32;
    let hist: Vec<f64> = hist32.iter().map(|&t| (t / area) as f64).collect();

    // L2-Hys block normalisation, in f64 like skimage.
    let eps2 = 1e-5f64 * 1e-5f64;
    let nb = nc - p.block + 1;
    let bl = p.block * p.block * no;
    let mut v = vec![0f64; bl];
    for br in 0..nb {
        for bc in 0..nb {
            let mut k = 0;
            for r in br..br + p.block {
                for c in bc..bc + p.block {
                    v[k..k + no].copy_from_slice(&hist[(r * nc + c) * no..(r * nc + c + 1) * no]);
                    k += no;
                }
            }
            let n1 = (v.iter().map(|a| a * a).sum::<f64>() + eps2).sqrt();
            for a in v.iter_mut() {
                *a = (*a / n1).min(0.2);
            }
            let n2 = (v.iter().map(|a| a * a).sum::<f64>() + eps2).sqrt();
            let o = &mut out[(br * nb + bc) * bl..(br * nb + bc + 1) * bl];
            for (oi, a) in o.iter_mut().zip(&v) {
                *oi = (*a / n2) as f32;
            }
        }
    }
}
