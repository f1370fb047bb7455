//! Deferred weight-gradient sums (the GPU plan, issue 13). A two-gradient convolution backward
//! writes its weight gradient as per-split partials, and a reduce launch sums them into dw in a
//! fixed order. Nothing reads a weight gradient before the update, so that sum can wait for the
//! next backward's launch, which performs it in extra blocks while its own partials go to the
//! other scratch slot; the last pending sum gets a launch of its own ([`ConvKernel::WeightSum`])
//! right after the last backward. One launch per convolution fewer, the same sums in the same
//! order (the same bits).
//!
//! A sum may wait only while nothing touches its weight gradients: no kernel from the deferring
//! backward to the one performing the sum (that one included) may read or write them.

use super::kernel::Kernel;
use super::ops::{ConvKernel, PendingSum};
use super::siblings::touch;

/// The convolution kernel `k` is, if it is one.
fn conv(k: &Kernel) -> Option<&ConvKernel> {
    match k {
        Kernel::Conv(c) => Some(c),
        _ => None,
    }
}

/// Whether none of `kernels` reads or writes the weight gradients `sum` adds into.
fn untouched(kernels: &[Kernel], sum: &PendingSum) -> bool {
    let dws: Vec<_> = [Some(sum.dw), sum.sibling_dw].into_iter().flatten().collect();
    kernels.iter().all(|k| k.locs().iter().all(|l| dws.iter().all(|d| !touch(l, d))))
}

/// Defers the weight-gradient sums of the backwards in `kernels[start..]` (the backward of a
/// planned step, in order): each backward that may leave its sum to the next one's launch does,
/// alternating scratch slots, and the last pending sum gets a [`ConvKernel::WeightSum`] right
/// after the last backward. A backward whose weight gradients something touches before the sum
/// would run keeps its own reduce launch. Returns how many kernels were added (0 or 1).
pub fn defer_weight_sums(kernels: &mut Vec<Kernel>, start: usize) -> usize {
    let backwards: Vec<usize> = (start..kernels.len()).filter(|&i| conv(&kernels[i]).and_then(|c| c.deferring_to(0)).is_some()).collect();
    let Some(&last) = backwards.last() else { return 0 };
    let (mut pending, mut slot) = (None, 0);
    for (n, &i) in backwards.iter().enumerate() {
        let Some(mut k) = conv(&kernels[i]).cloned() else { unreachable!("a backward listed above") };
        if let Some(sum) = pending.take() {
            k = k.performing(sum).expect("the pending sum's slot is not this backward's");
        }
        // Its sum would run in the next backward's launch, or else in a launch right after it.
        let until = backwards.get(n + 1).map_or(last + 1, |&j| j + 1);
        if let Some((deferring, sum)) = k.deferring_to(slot).filter(|(_, sum)| untouched(&kernels[i + 1..until], sum)) {
            (k, pending, slot) = (deferring, Some(sum), 1 - slot);
        }
        kernels[i] = Kernel::Conv(k);
    }
    let Some(sum) = pending else { return 0 };
    kernels.insert(last + 1, Kernel::Conv(ConvKernel::WeightSum { sum }));
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kernel::{Loc, Space};
    use crate::engine::ops::{ConvGeom, DxTerms, ElementwiseKernel, WeightSums};

    const G: ConvGeom = ConvGeom { n: 2, c_in: 8, h: 4, w: 4, c_out: 8, k: 3, stride: 1, pad: 1 };

    /// A backward of G whose buffers are virtual ids from `id` on, its dw in ParamGrads at `dw`.
    fn backward(id: usize, dw: usize) -> Kernel {
        let v = |i: usize, len: usize| Loc::new(Space::Virtual, id + i, len);
        let (x, dy, w, dx) = (v(0, G.x_len()), v(1, G.y_len()), v(2, G.w_len()), v(3, G.x_len()));
        let dw = Loc::new(Space::ParamGrads, dw, G.w_len());
        Kernel::Conv(ConvKernel::Backward {
            g: G,
            x,
            x_norm: None,
            dy,
            bn: None,
            w,
            relu: false,
            dw,
            dx,
            accumulate: true,
            sibling: None,
            dx_terms: DxTerms::default(),
            sums: WeightSums::default(),
            precision: crate::engine::precision::Precision::Fp32,
        })
    }

    fn sums(k: &Kernel) -> WeightSums {
        match k {
            Kernel::Conv(ConvKernel::Backward { sums, .. }) => *sums,
            other => panic!("{other:?} is no backward"),
        }
    }

    fn reduces(ks: &[Kernel]) -> usize {
        ks.iter().flat_map(Kernel::launch_names).filter(|n| *n == "fear_conv_backward_weight_reduce").count()
    }

    #[test]
    fn each_sum_waits_for_the_next_backward_and_the_last_gets_a_launch_after_the_last_backward() {
        let copy = ElementwiseKernel::Accumulate { acc: Loc::new(Space::Virtual, 90, 8), x: Loc::new(Space::Virtual, 91, 8), accumulate: false }.into();
        let mut ks = vec![backward(0, 0), copy, backward(10, 1000), backward(20, 2000)];
        assert_eq!(reduces(&ks), 3);
        assert_eq!(defer_weight_sums(&mut ks, 0), 1);
        assert_eq!(ks.len(), 5);
        assert_eq!((sums(&ks[0]).defer_to, sums(&ks[0]).performs), (Some(0), None));
        // The next backward sums the first's partials (slot 0) and leaves its own in slot 1.
        assert_eq!(sums(&ks[2]).defer_to, Some(1));
        assert_eq!(sums(&ks[2]).performs.map(|s| (s.dw.offset, s.slot)), Some((0, 0)));
        assert_eq!(sums(&ks[3]).defer_to, Some(0));
        assert_eq!(sums(&ks[3]).performs.map(|s| (s.dw.offset, s.slot)), Some((1000, 1)));
        let Kernel::Conv(ConvKernel::WeightSum { sum }) = ks[4] else { panic!("{:?} is no sum", ks[4]) };
        assert_eq!((sum.dw.offset, sum.slot), (2000, 0));
        assert!(conv(&ks[0]).and_then(|c| c.deferring_to(1)).is_none(), "a deferring backward defers once");
        // One reduce launch in all; the kernel performing a sum writes that sum's dw.
        assert_eq!(reduces(&ks), 1);
        let writes = |k: &Kernel| k.locs().split_off(k.locs().len() - k.outputs());
        assert!(writes(&ks[2]).iter().any(|l| l.space == Space::ParamGrads && l.offset == 0));
    }

    #[test]
    fn a_sum_is_not_deferred_past_a_kernel_touching_its_weight_gradient() {
        // The second kernel reads the first backward's dw: that backward sums it itself.
        let dw = Loc::new(Space::ParamGrads, 0, G.w_len());
        let reader = ElementwiseKernel::Accumulate { acc: Loc::new(Space::Virtual, 90, G.w_len()), x: dw, accumulate: false }.into();
        let mut ks = vec![backward(0, 0), reader, backward(10, 1000)];
        assert_eq!(defer_weight_sums(&mut ks, 0), 1);
        assert_eq!(sums(&ks[0]), WeightSums::default());
        assert_eq!((sums(&ks[2]).defer_to, sums(&ks[2]).performs), (Some(0), None));
        // The last sum runs right after the last backward, before a later kernel touching its dw.
        let writer =
            ElementwiseKernel::Accumulate { acc: Loc::new(Space::ParamGrads, 1000, G.w_len()), x: Loc::new(Space::Virtual, 90, G.w_len()), accumulate: true };
        let mut ks = vec![backward(0, 0), backward(10, 1000), writer.into()];
        defer_weight_sums(&mut ks, 0);
        assert!(matches!(ks[2], Kernel::Conv(ConvKernel::WeightSum { .. })), "{:?}", ks[2]);
        // Only kernels from `start` on are the backward's.
        let mut ks = vec![backward(0, 0)];
        assert_eq!(defer_weight_sums(&mut ks, 1), 0);
        assert_eq!(sums(&ks[0]), WeightSums::default());
    }
}
