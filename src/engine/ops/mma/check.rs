//! The bare tiles' self-test cases (see [`crate::engine::cuda::selftest::mma_tiles`]): one per
//! kind the GPU's architecture has.

use super::{MmaKernel, MmaKind};
use crate::engine::cuda::selftest::Cases;

/// Tolerance of a tile against the CPU: both round A and B the same way, so they differ only in
/// how the f32 accumulator sums (a few units of f32's last place); far below the precisions'
/// own error (~1e-3 for tf32, ~1e-2 for bf16 and f16), so an operand left unrounded fails too.
pub const TILE_TOLERANCE: f64 = 1e-4;

/// A case for every kind a GPU of architecture `sm` runs.
pub(crate) fn cases(cases: &mut Cases, sm: u32) {
    for kind in MmaKind::ALL.into_iter().filter(|k| k.min_sm() <= sm) {
        let s = kind.shape();
        cases.add(kind.name(), TILE_TOLERANCE, |c| {
            // 4 floats (16 bytes): what the staged tile's cp.async of A needs.
            MmaKernel::Tile { kind, a: c.aligned_loc(s.a_len(), 4), b: c.aligned_loc(s.b_len(), 4), c: c.loc(s.c_len()), d: c.loc(s.c_len()) }.into()
        });
    }
}
