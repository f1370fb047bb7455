//! Sibling kernels: two kernels of a planned step that do the same work on different tensors
//! (the two convolutions leaving one cell node, the batch norms after them), merged into one
//! launch where the plan allows it (the GPU plan: [`super::PlanOptions::fuse`]).
//!
//! Merging moves one kernel next to the other. That is allowed when the moved kernel commutes
//! with every kernel it passes: neither writes what the other reads or writes. The planner's
//! locations are still virtual buffers here (one id per tensor), so two locations touch the same
//! memory exactly when they name the same buffer, or overlap in a placed space.

use super::kernel::{Kernel, Loc, Space};

/// Whether `a` and `b` may name the same memory.
pub(crate) fn touch(a: &Loc, b: &Loc) -> bool {
    match (a.space, b.space) {
        (Space::Virtual, Space::Virtual) => a.offset == b.offset,
        _ => a.overlaps(b),
    }
}

/// A kernel's (reads, writes).
fn reads_and_writes(k: &Kernel) -> (Vec<Loc>, Vec<Loc>) {
    let mut locs = k.locs();
    let writes = locs.split_off(locs.len() - k.outputs());
    (locs, writes)
}

/// Whether running `a` and `b` in either order gives the same memory: neither writes what the
/// other reads or writes. (A kernel that adds into its output also reads it; adds into the same
/// buffer do not commute bit for bit, so they count as a conflict too.)
pub fn commute(a: &Kernel, b: &Kernel) -> bool {
    let (ra, wa) = reads_and_writes(a);
    let (rb, wb) = reads_and_writes(b);
    let hits = |w: &[Loc], other: &[Loc]| w.iter().any(|x| other.iter().any(|y| touch(x, y)));
    !hits(&wa, &rb) && !hits(&wa, &wb) && !hits(&wb, &ra)
}

/// Whether kernel `i` may run at position `j` (> i) instead, after the kernels between.
pub fn can_move_down(kernels: &[Kernel], i: usize, j: usize) -> bool {
    kernels[i + 1..j].iter().all(|k| commute(&kernels[i], k))
}

/// Whether kernel `j` may run at position `i` (< j) instead, before the kernels between.
pub fn can_move_up(kernels: &[Kernel], i: usize, j: usize) -> bool {
    kernels[i + 1..j].iter().all(|k| commute(&kernels[j], k))
}

/// Merges pairs of `kernels[range]`: for each kernel `i` in order, the first later kernel `j`
/// for which `merge(&kernels[i], &kernels[j], up)` gives a merged kernel, where `up` says
/// whether the merged kernel would run at `i` (kernel `j` moved up, when that is allowed) or
/// else at `j` (kernel `i` moved down, when that is allowed); `merge` returns None for a pair
/// it does not merge in that direction. Returns how many kernels were removed (the range's end
/// moves up by as many).
pub fn merge_pairs(kernels: &mut Vec<Kernel>, range: std::ops::Range<usize>, merge: impl Fn(&Kernel, &Kernel, bool) -> Option<Kernel>) -> usize {
    let mut end = range.end;
    let mut i = range.start;
    while i < end {
        let partner = (i + 1..end).find_map(|j| {
            if let Some(m) = merge(&kernels[i], &kernels[j], true).filter(|_| can_move_up(kernels, i, j)) {
                return Some((j, m, true));
            }
            merge(&kernels[i], &kernels[j], false).filter(|_| can_move_down(kernels, i, j)).map(|m| (j, m, false))
        });
        if let Some((j, merged, up)) = partner {
            if up {
                kernels[i] = merged;
                kernels.remove(j);
            } else {
                kernels[j] = merged;
                kernels.remove(i);
                end -= 1;
                continue; // position i now holds the next kernel
            }
            end -= 1;
        }
        i += 1;
    }
    range.end - end
}

/// Merges the sibling convolutions of a planned step (the GPU plan): in `kernels[..n_forward]`
/// each forward with a later forward of the same input (moved up to it), in the backward each
/// two-gradient backward with an earlier one of a sibling writing the same dx (moved down to it).
/// Returns the new `n_forward`.
pub fn merge_sibling_convolutions(kernels: &mut Vec<Kernel>, n_forward: usize) -> usize {
    let forwards = |a: &Kernel, b: &Kernel, up: bool| match (a, b, up) {
        (Kernel::Conv(a), Kernel::Conv(b), true) => a.with_later_sibling(b).map(Kernel::Conv),
        _ => None,
    };
    let n_forward = n_forward - merge_pairs(kernels, 0..n_forward, forwards);
    let backwards = |a: &Kernel, b: &Kernel, up: bool| match (a, b, up) {
        (Kernel::Conv(a), Kernel::Conv(b), false) => b.with_earlier_sibling(a).map(Kernel::Conv),
        _ => None,
    };
    let end = kernels.len();
    merge_pairs(kernels, n_forward..end, backwards);
    n_forward
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ops::ElementwiseKernel;

    fn v(id: usize) -> Loc {
        Loc::new(Space::Virtual, id, 100)
    }

    fn copy(from: usize, to: usize) -> Kernel {
        ElementwiseKernel::Accumulate { acc: v(to), x: v(from), accumulate: false }.into()
    }

    #[test]
    fn kernels_commute_unless_one_writes_what_the_other_touches() {
        assert!(commute(&copy(1, 2), &copy(1, 3)), "two readers of one buffer");
        assert!(!commute(&copy(1, 2), &copy(2, 3)), "a write, then its reader");
        assert!(!commute(&copy(2, 3), &copy(1, 2)), "a reader, then a write of what it read");
        assert!(!commute(&copy(1, 3), &copy(2, 3)), "two writers of one buffer");
        // Virtual ids are buffers, not ranges: ids 1 and 2 with 100 elements each are apart.
        assert!(commute(&copy(1, 2), &copy(4, 3)));
    }

    #[test]
    fn a_pair_merges_in_the_allowed_direction_only() {
        // 0: 1 -> 2; 1: 2 -> 5 (reads 0's output); 2: 1 -> 3. Kernel 2 may move up past kernel 1
        // (they share nothing); kernel 0 may not move down past kernel 1.
        let merge = |a: &Kernel, b: &Kernel, up: bool| {
            let reads_1 = |k: &Kernel| k.locs()[0] == v(1);
            (reads_1(a) && reads_1(b)).then(|| if up { copy(1, 9) } else { copy(1, 8) })
        };
        let mut ks = vec![copy(1, 2), copy(2, 5), copy(1, 3)];
        assert_eq!(merge_pairs(&mut ks, 0..3, merge), 1);
        assert_eq!(ks, vec![copy(1, 9), copy(2, 5)]);
        // With kernel 2 reading 5 (written by kernel 1) neither direction is allowed... unless
        // moving down: kernel 0 cannot pass kernel 1 (which reads its output) either.
        let mut ks = vec![copy(1, 2), copy(2, 1), copy(1, 3)];
        assert_eq!(merge_pairs(&mut ks, 0..3, merge), 0);
        // Kernel 0 moves down past an unrelated kernel when moving up is refused.
        let down_only = |a: &Kernel, b: &Kernel, up: bool| merge(a, b, up).filter(|_| !up);
        let mut ks = vec![copy(1, 2), copy(6, 7), copy(1, 3)];
        assert_eq!(merge_pairs(&mut ks, 0..3, down_only), 1);
        assert_eq!(ks, vec![copy(6, 7), copy(1, 8)]);
    }
}
