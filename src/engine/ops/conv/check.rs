//! The convolutions' self-test cases (see [`crate::engine::cuda::selftest`]).

use super::{BnGradient, BnStatistics, ConvGeom, ConvKernel, DxTerms, SiblingBackward, SiblingForward, WeightSums};
use crate::engine::cuda::selftest::{Case, Cases, REDUCTION_TOLERANCE};
use crate::engine::kernel::{Kernel, Loc, Space};
use crate::engine::precision::Precision;

/// How a case's (batch, channel, height, width) tensors are stored: f32 (in Work), bfloat16 (in
/// Half: the `_bf16` kernels) or IEEE half (in HalfF16: the `_f16` ones), each case's name ending
/// so. Weights, their gradients and the batch norms' statistics and coefficients are f32 in all.
#[derive(Clone, Copy)]
struct Storage {
    space: Space,
    tolerance: f64,
}

impl Storage {
    /// A new tensor of `len` elements in the case, stored as this storage says.
    fn tensor(self, c: &mut Case, len: usize) -> Loc {
        c.tensor_in(self.space, len)
    }
}

impl std::fmt::Display for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.space.kernel_suffix())
    }
}

/// The products of every kernel (forward, input and weight gradients) that exist at storage `st`,
/// each case's name tagged so: at f32 storage FP32 and the tensor-core kernels (TF32, BF16,
/// FP16); stored as bfloat16, all but FP16 (it multiplies f32 tensors or halves); stored as IEEE
/// halves, FP16 (the FP32 kernels' cases there are the bfloat16 ones' twins: the self-test's
/// `add_f16_twins`). The tensor-core kernels are held to the CPU face that rounds both operands
/// at the same points, so only the order of the f32 sums differs (a product of two bfloat16, TF32
/// or half values is exact in f32): each storage's tolerance holds them all.
fn products(st: Storage) -> &'static [(&'static str, Precision)] {
    const ALL: [(&str, Precision); 4] = [("", Precision::Fp32), ("_tf32", Precision::Tf32), ("_bf16mma", Precision::Bf16), ("_f16mma", Precision::F16)];
    match st.space.storage() {
        Precision::F16 => &ALL[3..],
        Precision::Bf16 => &ALL[..3],
        _ => &ALL,
    }
}

/// Every case at each storage. Stored in 16 bits, the kernels round where the CPU faces do (the
/// device's rounding of each output, and the faces' rounding of the values the unfused plan
/// would store), so only the order of the f32 sums differs: a value near a rounding boundary may
/// round one step apart (2^-8 relative for bfloat16, 2^-11 for a half), within the tolerance.
pub(crate) fn cases(cases: &mut Cases) {
    let storages = [
        Storage { space: Space::Work, tolerance: REDUCTION_TOLERANCE },
        Storage { space: Space::Half, tolerance: Precision::Bf16.tolerance() },
        Storage { space: Space::HalfF16, tolerance: Precision::F16.tolerance() },
    ];
    for st in storages {
        storage_cases(cases, st);
    }
}

fn storage_cases(cases: &mut Cases, st: Storage) {
    // 9x9 gives 243 positions per weight: most of a 256-thread reduction block does real work.
    // Every (k, stride) body of conv.cu, on 5x5 and 9x9 images (odd sides: the last stride-2
    // window hangs over the edge). Channel counts that fill no tile evenly: 7 and 3 inputs, 4-7
    // outputs (one partial channel group), 20 (three groups of 8, rounded up to four) and 70
    // (two passes of 64 outputs; nine input chunks of the weight gradient); several 5x5 images
    // share a forward tile, 9x9 ones and the 70-channel ones take one each.
    let shapes = [
        ("conv3x3", 3, 1, 7, 4, 5),
        ("conv3x3_s2", 3, 2, 7, 5, 5),
        ("conv1x1", 1, 1, 7, 6, 5),
        ("conv1x1_s2", 1, 2, 7, 6, 5),
        ("conv3x3_9x9", 3, 1, 7, 3, 9),
        ("conv3x3_s2_9x9", 3, 2, 7, 7, 9),
        ("conv1x1_9x9", 1, 1, 7, 7, 9),
        ("conv1x1_s2_9x9", 1, 2, 3, 7, 9),
        ("conv3x3_20ch", 3, 1, 20, 20, 5),
        ("conv3x3_s2_70ch", 3, 2, 7, 70, 9),
        ("conv3x3_70to7", 3, 1, 70, 7, 5),
    ];
    for (name, k, stride, c_in, c_out, side) in shapes {
        let g = ConvGeom { n: 3, c_in, h: side, w: side, c_out, k, stride, pad: k / 2 };
        // Each kernel plain and with a fused ReLU (the random inputs are half negative).
        for (fused, relu) in [("", false), ("_relu", true)] {
            // The forward in each precision (products).
            for &(tag, precision) in products(st) {
                cases.add(&format!("{name}_forward{fused}{tag}{st}"), st.tolerance, |c| {
                    let (x, w, y) = (st.tensor(c, g.x_len()), c.loc(g.w_len()), st.tensor(c, g.y_len()));
                    ConvKernel::Forward { g, x, x_norm: None, w, y, relu, bn: None, precision, sibling: None }.into()
                });
                // With the statistics of the batch norm reading y (its epilogue's partials, merged
                // by the batch norm's finalize): every block a part of every channel.
                cases.add(&format!("{name}_forward{fused}{tag}_bn_statistics{st}"), st.tolerance, |c| {
                    let (x, w, y) = (st.tensor(c, g.x_len()), c.loc(g.w_len()), st.tensor(c, g.y_len()));
                    let bn = bn_statistics(c, g.c_out);
                    ConvKernel::Forward { g, x, x_norm: None, w, y, relu, bn: Some(bn), precision, sibling: None }.into()
                });
            }
            // The gradients in each precision (products).
            for &(tag, precision) in products(st) {
                // Both modes: assign must ignore the random values already in dx.
                for (mode, accumulate) in [("", true), ("_assign", false)] {
                    cases.add(&format!("{name}_backward_input{fused}{mode}{tag}{st}"), st.tolerance, |c| {
                        let (dx, w, dy) = (st.tensor(c, g.x_len()), c.loc(g.w_len()), st.tensor(c, g.y_len()));
                        let mask = relu.then(|| st.tensor(c, g.x_len()));
                        ConvKernel::BackwardInput { g, dy, bn: None, w, mask, mask_norm: None, dx, accumulate, precision }.into()
                    });
                }
                cases.add(&format!("{name}_backward_weight{fused}{tag}{st}"), st.tolerance, |c| {
                    let (x, dw, dy) = (st.tensor(c, g.x_len()), c.loc(g.w_len()), st.tensor(c, g.y_len()));
                    ConvKernel::BackwardWeight { g, x, x_norm: None, dy, bn: None, dw, relu, precision }.into()
                });
                // Both gradients in one launch, each mode.
                for (mode, accumulate) in [("", true), ("_assign", false)] {
                    cases.add(&format!("{name}_backward{fused}{mode}{tag}{st}"), st.tolerance, |c| {
                        let (x, w, dy, dw, dx) = backward_locs(c, st, &g);
                        ConvKernel::Backward {
                            g,
                            x,
                            x_norm: None,
                            dy,
                            bn: None,
                            w,
                            relu,
                            dw,
                            dx,
                            accumulate,
                            sibling: None,
                            dx_terms: DxTerms::default(),
                            sums: WeightSums::default(),
                            precision,
                        }
                        .into()
                    });
                }
                // The gradients reading dy through a batch norm's backward (random coefficients).
                let bn = |c: &mut Case| Some(BnGradient { x: st.tensor(c, g.y_len()), coef: c.loc(4 * g.c_out) });
                cases.add(&format!("{name}_backward_input{fused}_bn{tag}{st}"), st.tolerance, |c| {
                    let (dx, w, dy) = (st.tensor(c, g.x_len()), c.loc(g.w_len()), st.tensor(c, g.y_len()));
                    let (bn, mask) = (bn(c), relu.then(|| st.tensor(c, g.x_len())));
                    ConvKernel::BackwardInput { g, dy, bn, w, mask, mask_norm: None, dx, accumulate: false, precision }.into()
                });
                cases.add(&format!("{name}_backward_weight{fused}_bn{tag}{st}"), st.tolerance, |c| {
                    let (x, dw, dy) = (st.tensor(c, g.x_len()), c.loc(g.w_len()), st.tensor(c, g.y_len()));
                    ConvKernel::BackwardWeight { g, x, x_norm: None, dy, bn: bn(c), dw, relu, precision }.into()
                });
                cases.add(&format!("{name}_backward{fused}_bn{tag}{st}"), st.tolerance, |c| {
                    let (x, w, dy, dw, dx) = backward_locs(c, st, &g);
                    ConvKernel::Backward {
                        g,
                        x,
                        x_norm: None,
                        dy,
                        bn: bn(c),
                        w,
                        relu,
                        dw,
                        dx,
                        accumulate: false,
                        sibling: None,
                        dx_terms: DxTerms::default(),
                        sums: WeightSums::default(),
                        precision,
                    }
                    .into()
                });
            }
        }
    }
    sibling_cases(cases, st);
    normalised_input_cases(cases, st);
    deferred_sum_cases(cases, st);
}

/// A training batch norm's statistics over `channels` channels (a varied running variance).
fn bn_statistics(c: &mut Case, channels: usize) -> BnStatistics {
    let (gamma, beta) = (c.loc(channels), c.loc(channels));
    let (running_mean, running_var) = (c.loc(channels), c.preset((0..channels).map(|i| 0.5 + 0.1 * i as f32).collect()));
    let (mean, invstd, coef) = (c.loc(channels), c.loc(channels), c.loc(4 * channels));
    BnStatistics { gamma, beta, running_mean, running_var, mean, invstd, coef, eps: 1e-5, momentum: 0.1 }
}

/// Sibling pairs (two convolutions of one input as one GEMM): the first with whole groups of 8
/// output channels (the forward's split may not cut a thread's group), the second with an odd
/// count; each body, with and without the fused ReLU, the batch norms and accumulation.
fn sibling_cases(cases: &mut Cases, st: Storage) {
    let pairs = [
        ("conv3x3", 3, 1, 7, 8, 5, 5),
        ("conv3x3_s2_9x9", 3, 2, 7, 16, 7, 9),
        ("conv1x1", 1, 1, 7, 8, 6, 5),
        ("conv1x1_s2_9x9", 1, 2, 3, 8, 3, 9),
        ("conv3x3_20ch", 3, 1, 20, 16, 20, 5),
    ];
    for (name, k, stride, c_in, c_first, c_second, side) in pairs {
        let g = ConvGeom { n: 3, c_in, h: side, w: side, c_out: c_first, k, stride, pad: k / 2 };
        let gs = ConvGeom { c_out: c_second, ..g };
        for (fused, relu) in [("", false), ("_relu", true)] {
            for &(tag, precision) in products(st) {
                for (stats, with_bn) in [("", false), ("_bn_statistics", true)] {
                    cases.add(&format!("{name}_sibling_forward{fused}{tag}{stats}{st}"), st.tolerance, |c| {
                        let (x, w, y) = (st.tensor(c, g.x_len()), c.loc(g.w_len()), st.tensor(c, g.y_len()));
                        let bn = with_bn.then(|| bn_statistics(c, c_first));
                        let (w2, y2) = (c.loc(gs.w_len()), st.tensor(c, gs.y_len()));
                        let sibling = SiblingForward { c_out: c_second, w: w2, y: y2, bn: with_bn.then(|| bn_statistics(c, c_second)) };
                        ConvKernel::Forward { g, x, x_norm: None, w, y, relu, bn, precision, sibling: Some(sibling) }.into()
                    });
                }
            }
            // The gradients in each precision (products), with dx's terms too.
            for &(tag, precision) in products(st) {
                for (mode, accumulate, with_bn) in [("", true, false), ("_assign", false, false), ("_bn", true, true)] {
                    cases.add(&format!("{name}_sibling_backward{fused}{mode}{tag}{st}"), st.tolerance, |c| {
                        let (x, w, dy, dw, dx) = backward_locs(c, st, &g);
                        let bn = with_bn.then(|| BnGradient { x: st.tensor(c, g.y_len()), coef: c.loc(4 * c_first) });
                        let (w2, dy2, dw2) = (c.loc(gs.w_len()), st.tensor(c, gs.y_len()), c.loc(gs.w_len()));
                        let bn2 = with_bn.then(|| BnGradient { x: st.tensor(c, gs.y_len()), coef: c.loc(4 * c_second) });
                        let sibling = SiblingBackward { c_out: c_second, dy: dy2, bn: bn2, w: w2, dw: dw2 };
                        ConvKernel::Backward {
                            g,
                            x,
                            x_norm: None,
                            dy,
                            bn,
                            w,
                            relu,
                            dw,
                            dx,
                            accumulate,
                            sibling: Some(sibling),
                            dx_terms: DxTerms::default(),
                            sums: WeightSums::default(),
                            precision,
                        }
                        .into()
                    });
                }
                // dx's other terms in the epilogue (3x3 pools of stride-1 shapes only: dx's shape).
                for (terms, added, pooled, accumulate) in [("_added", true, false, false), ("_pooled", false, true, true), ("_added_pooled", true, true, true)]
                {
                    if pooled && stride != 1 {
                        continue;
                    }
                    cases.add(&format!("{name}_sibling_backward{fused}{terms}{tag}{st}"), st.tolerance, |c| {
                        let (x, w, dy, dw, dx) = backward_locs(c, st, &g);
                        let (w2, dy2, dw2) = (c.loc(gs.w_len()), st.tensor(c, gs.y_len()), c.loc(gs.w_len()));
                        let sibling = SiblingBackward { c_out: c_second, dy: dy2, bn: None, w: w2, dw: dw2 };
                        let dx_terms = DxTerms { added: added.then(|| st.tensor(c, g.x_len())), pooled: pooled.then(|| st.tensor(c, g.x_len())) };
                        ConvKernel::Backward {
                            g,
                            x,
                            x_norm: None,
                            dy,
                            bn: None,
                            w,
                            relu,
                            dw,
                            dx,
                            accumulate,
                            sibling: Some(sibling),
                            dx_terms,
                            sums: WeightSums::default(),
                            precision,
                        }
                        .into()
                    });
                    cases.add(&format!("{name}_backward{fused}{terms}{tag}{st}"), st.tolerance, |c| {
                        let (x, w, dy, dw, dx) = backward_locs(c, st, &g);
                        let bn = Some(BnGradient { x: st.tensor(c, g.y_len()), coef: c.loc(4 * c_first) });
                        let dx_terms = DxTerms { added: added.then(|| st.tensor(c, g.x_len())), pooled: pooled.then(|| st.tensor(c, g.x_len())) };
                        ConvKernel::Backward {
                            g,
                            x,
                            x_norm: None,
                            dy,
                            bn,
                            w,
                            relu,
                            dw,
                            dx,
                            accumulate,
                            sibling: None,
                            dx_terms,
                            sums: WeightSums::default(),
                            precision,
                        }
                        .into()
                    });
                }
            }
        }
    }
}

/// A two-gradient backward's own locations, x, w, dy, dw and dx (its tensors stored as `st` says).
fn backward_locs(c: &mut Case, st: Storage, g: &ConvGeom) -> (Loc, Loc, Loc, Loc, Loc) {
    (st.tensor(c, g.x_len()), c.loc(g.w_len()), st.tensor(c, g.y_len()), c.loc(g.w_len()), st.tensor(c, g.x_len()))
}

/// A two-gradient backward of shape `g` (with a sibling of `sibling` output channels) reading dy
/// through batch norms with `with_bn`, x through a ReLU with `relu`, its locations laid out in `c`
/// (its tensors stored as `st` says), its products at `precision`.
fn two_gradient_backward(c: &mut Case, st: Storage, g: ConvGeom, sibling: Option<usize>, relu: bool, with_bn: bool, precision: Precision) -> ConvKernel {
    let bn = |c: &mut Case, g: &ConvGeom| with_bn.then(|| BnGradient { x: st.tensor(c, g.y_len()), coef: c.loc(4 * g.c_out) });
    let (x, w, dy, dw, dx) = backward_locs(c, st, &g);
    let bn1 = bn(c, &g);
    let sibling = sibling.map(|c_out| {
        let gs = ConvGeom { c_out, ..g };
        let (w, dy, dw) = (c.loc(gs.w_len()), st.tensor(c, gs.y_len()), c.loc(gs.w_len()));
        SiblingBackward { c_out, dy, bn: bn(c, &gs), w, dw }
    });
    ConvKernel::Backward {
        g,
        x,
        x_norm: None,
        dy,
        bn: bn1,
        w,
        relu,
        dw,
        dx,
        accumulate: true,
        sibling,
        dx_terms: DxTerms::default(),
        sums: WeightSums::default(),
        precision,
    }
}

/// Deferred weight-gradient sums (the GPU plan's `deferred_sums` pass): a backward leaving its
/// partials in a scratch slot, then the backward whose launch performs that sum or the sum's own
/// launch. Only the sequence does what the CPU faces do (the deferring backward's face writes dw
/// in full), so each case is one. Plain and sibling pairs, of different shapes (the sum's geometry
/// is not the performing launch's), with and without the fused ReLU and batch norms.
fn deferred_sum_cases(cases: &mut Cases, st: Storage) {
    // (name, first backward: k, stride, c_in, c_out, sibling c_out, side; the second, or None for
    // the sum's own launch; whether the second defers too, its sum then in a launch of its own).
    type Shape = (usize, usize, usize, usize, Option<usize>, usize);
    let sequences: [(&str, Shape, Option<Shape>, bool); 4] = [
        ("deferred_sum", (3, 1, 7, 4, None, 5), Some((3, 2, 7, 16, Some(7), 9)), false),
        ("sibling_deferred_sum_chain", (1, 1, 7, 8, Some(6), 5), Some((3, 1, 7, 3, None, 9)), true),
        ("deferred_sum_flush", (3, 2, 7, 70, None, 9), None, false),
        ("sibling_deferred_sum_flush", (3, 1, 20, 16, Some(20), 5), None, false),
    ];
    let geom = |(k, stride, c_in, c_out, _, side): Shape| ConvGeom { n: 3, c_in, h: side, w: side, c_out, k, stride, pad: k / 2 };
    for (name, first, second, chain) in sequences {
        for (fused, relu) in [("", false), ("_relu", true)] {
            for ((bn_tag, with_bn), (tag, precision)) in [("", false), ("_bn", true)].into_iter().flat_map(|b| products(st).iter().map(move |&p| (b, p))) {
                cases.add_sequence(&format!("conv_{name}{fused}{bn_tag}{tag}{st}"), st.tolerance, |c| {
                    let a = two_gradient_backward(c, st, geom(first), first.4, relu, with_bn, precision);
                    let (a, sum) = a.deferring_to(1).expect("a two-gradient backward defers");
                    let Some(second) = second else { return vec![a.into(), ConvKernel::WeightSum { sum }.into()] };
                    let b = two_gradient_backward(c, st, geom(second), second.4, relu, with_bn, precision).performing(sum).expect("a backward performs a sum");
                    let mut ks: Vec<Kernel> = vec![a.into()];
                    match chain {
                        true => {
                            let (b, sum) = b.deferring_to(0).expect("a backward performing a sum defers its own");
                            ks.extend([b.into(), ConvKernel::WeightSum { sum }.into()]);
                        }
                        false => ks.push(b.into()),
                    }
                    ks
                });
            }
        }
    }
}

/// Convolutions reading a batch norm's input normalised by its coefficients (`x_norm`, random
/// (mean_hi, mean_lo, scale, beta) per input channel): the batch norm applied by them, behind the
/// fused ReLU (the forward, both gradients, each alone and a sibling pair), on odd shapes.
fn normalised_input_cases(cases: &mut Cases, st: Storage) {
    for (name, k, stride, c_in, c_out, side) in [("conv3x3", 3, 1, 7, 8, 5), ("conv3x3_s2_9x9", 3, 2, 7, 5, 9), ("conv1x1_9x9", 1, 1, 20, 8, 9)] {
        let g = ConvGeom { n: 3, c_in, h: side, w: side, c_out, k, stride, pad: k / 2 };
        for &(tag, precision) in products(st) {
            cases.add(&format!("{name}_forward_relu_normalised{tag}{st}"), st.tolerance, |c| {
                let (x, x_norm, w, y) = (st.tensor(c, g.x_len()), Some(c.loc(4 * c_in)), c.loc(g.w_len()), st.tensor(c, g.y_len()));
                ConvKernel::Forward { g, x, x_norm, w, y, relu: true, bn: Some(bn_statistics(c, c_out)), precision, sibling: None }.into()
            });
        }
        for &(tag, precision) in products(st) {
            cases.add(&format!("{name}_backward_input_relu_normalised{tag}{st}"), st.tolerance, |c| {
                let (dx, w, dy, mask, mask_norm) =
                    (st.tensor(c, g.x_len()), c.loc(g.w_len()), st.tensor(c, g.y_len()), Some(st.tensor(c, g.x_len())), Some(c.loc(4 * c_in)));
                ConvKernel::BackwardInput { g, dy, bn: None, w, mask, mask_norm, dx, accumulate: true, precision }.into()
            });
            cases.add(&format!("{name}_backward_weight_relu_normalised{tag}{st}"), st.tolerance, |c| {
                let (x, x_norm, dw, dy) = (st.tensor(c, g.x_len()), Some(c.loc(4 * c_in)), c.loc(g.w_len()), st.tensor(c, g.y_len()));
                ConvKernel::BackwardWeight { g, x, x_norm, dy, bn: None, dw, relu: true, precision }.into()
            });
            for (pair, sibling) in [("", None), ("_sibling", Some(3))] {
                cases.add(&format!("{name}{pair}_backward_relu_normalised{tag}{st}"), st.tolerance, |c| {
                    let mut k = two_gradient_backward(c, st, g, sibling, true, true, precision);
                    if let ConvKernel::Backward { x_norm, .. } = &mut k {
                        *x_norm = Some(c.loc(4 * c_in));
                    }
                    k.into()
                });
            }
        }
    }
}
