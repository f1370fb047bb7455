//! The CPU face of the augmentation: one image at a time.

use super::{Augment, ImageAug};

impl Augment {
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
