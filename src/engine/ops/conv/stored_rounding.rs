//! Tensors stored as bfloat16: the fused convolution kernels round where their CPU faces do.
//!
//! Both sides round each stored output, and each value the unfused plan would have stored and
//! read back (y before its batch norm's statistics, a batch norm's output read normalised, dy
//! through a batch norm's backward). They then differ only where the order of the f32 sums moves
//! a value across a bfloat16 rounding boundary: a rare event. A rounding point missing on one side
//! instead moves most values by a fraction of a bfloat16 step, which still passes the self-test's
//! tolerance (a whole step, 1e-2, for a value that rounds the other way). So here, per output,
//! few bfloat16 values may differ at all, and the f32 ones (weight gradients, statistics) only by
//! a little more than f32 sums do.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{BnGradient, BnStatistics, ConvGeom, ConvKernel, DxTerms, SiblingBackward, SiblingForward, WeightSums};
use crate::engine::cpu_device::Cpu;
use crate::engine::cuda::gpu::Gpu;
use crate::engine::cuda::selftest::relative_error;
use crate::engine::device::{Device, MemoryLayout};
use crate::engine::kernel::{Kernel, Loc, Space};
use crate::engine::precision::Precision;

/// The share of a bfloat16 output's values that may differ (order-of-summation flips).
const FLIPS: f64 = 0.01;
/// The relative error an f32 output may have: its inputs are the same bfloat16 values on both
/// sides but for those flips.
const F32_TOLERANCE: f64 = 2e-4;

/// Locations laid out one after another: tensors in Half, everything else in Work.
#[derive(Default)]
struct Layout {
    next: [usize; 2],
}

impl Layout {
    fn tensor(&mut self, len: usize) -> Loc {
        self.at(Space::Half, len)
    }
    fn f32(&mut self, len: usize) -> Loc {
        self.at(Space::Work, len)
    }
    fn at(&mut self, space: Space, len: usize) -> Loc {
        let next = &mut self.next[(space == Space::Half) as usize];
        let l = Loc::new(space, *next, len);
        *next += len.next_multiple_of(2); // Half's 4-byte words stay aligned
        l
    }
    fn statistics(&mut self, c: usize) -> BnStatistics {
        let [gamma, beta, running_mean, running_var, mean, invstd] = [(); 6].map(|_| self.f32(c));
        BnStatistics { gamma, beta, running_mean, running_var, mean, invstd, coef: self.f32(4 * c), eps: 1e-5, momentum: 0.1 }
    }
    fn gradient(&mut self, g: &ConvGeom) -> Option<BnGradient> {
        Some(BnGradient { x: self.tensor(g.y_len()), coef: self.f32(4 * g.c_out) })
    }
}

/// The fused kernels of one shape with bfloat16 tensors, each with every rounding point it has.
fn fused_kernels(g: ConvGeom) -> Vec<ConvKernel> {
    let gs = ConvGeom { c_out: 5, ..g };
    let mut kernels = Vec::new();
    for precision in [Precision::Fp32, Precision::Tf32] {
        let l = &mut Layout::default();
        let (x, x_norm, w, y) = (l.tensor(g.x_len()), Some(l.f32(4 * g.c_in)), l.f32(g.w_len()), l.tensor(g.y_len()));
        let bn = Some(l.statistics(g.c_out));
        kernels.push(ConvKernel::Forward { g, x, x_norm, w, y, relu: true, bn, precision, sibling: None });
        let l = &mut Layout::default();
        let (x, w, y, w2, y2) = (l.tensor(g.x_len()), l.f32(g.w_len()), l.tensor(g.y_len()), l.f32(gs.w_len()), l.tensor(gs.y_len()));
        let sibling = Some(SiblingForward { c_out: gs.c_out, w: w2, y: y2, bn: Some(l.statistics(gs.c_out)) });
        kernels.push(ConvKernel::Forward { g, x, x_norm: None, w, y, relu: false, bn: Some(l.statistics(g.c_out)), precision, sibling });
    }
    // The gradients at each product's precision: its operands rounded where the stored ones are read.
    for precision in [Precision::Fp32, Precision::Tf32, Precision::Bf16] {
        let l = &mut Layout::default();
        let (dy, bn, w, dx) = (l.tensor(g.y_len()), l.gradient(&g), l.f32(g.w_len()), l.tensor(g.x_len()));
        let (mask, mask_norm) = (Some(l.tensor(g.x_len())), Some(l.f32(4 * g.c_in)));
        kernels.push(ConvKernel::BackwardInput { g, dy, bn, w, mask, mask_norm, dx, accumulate: true, precision });
        let l = &mut Layout::default();
        let (x, x_norm, dy, bn, dw) = (l.tensor(g.x_len()), Some(l.f32(4 * g.c_in)), l.tensor(g.y_len()), l.gradient(&g), l.f32(g.w_len()));
        kernels.push(ConvKernel::BackwardWeight { g, x, x_norm, dy, bn, dw, relu: true, precision });
        // A sibling, or dx's terms (stride-1 convolutions only, as in the self-test's cases).
        let term_modes: &[bool] = if g.stride == 1 { &[false, true] } else { &[false] };
        for &with_terms in term_modes {
            let l = &mut Layout::default();
            let (x, x_norm, dy, bn) = (l.tensor(g.x_len()), Some(l.f32(4 * g.c_in)), l.tensor(g.y_len()), l.gradient(&g));
            let (w, dw, dx) = (l.f32(g.w_len()), l.f32(g.w_len()), l.tensor(g.x_len()));
            let (sibling, dx_terms) = match with_terms {
                false => {
                    let (dy, bn, w, dw) = (l.tensor(gs.y_len()), l.gradient(&gs), l.f32(gs.w_len()), l.f32(gs.w_len()));
                    (Some(SiblingBackward { c_out: gs.c_out, dy, bn, w, dw }), DxTerms::default())
                }
                true => (None, DxTerms { added: Some(l.tensor(g.x_len())), pooled: Some(l.tensor(g.x_len())) }),
            };
            let sums = WeightSums::default();
            kernels.push(ConvKernel::Backward { g, x, x_norm, dy, bn, w, relu: true, dw, dx, accumulate: true, sibling, dx_terms, sums, precision });
        }
    }
    kernels
}

/// Each output of `kernel` as the CPU face and the emulated GPU write it, from the same random
/// memory: (location, CPU values, GPU values).
fn outputs_on_both(kernel: &Kernel, seed: u64) -> Vec<(Loc, Vec<f32>, Vec<f32>)> {
    let locs = kernel.locs();
    let end = |space: Space| locs.iter().filter(|l| l.space == space).map(Loc::end).max().unwrap_or(0);
    let layout = MemoryLayout { params: 0, state: 0, work: end(Space::Work), half: end(Space::Half), labels: 1 };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let init: Vec<(Loc, Vec<f32>)> =
        [Space::Work, Space::Half].map(|s| (Loc::new(s, 0, layout.len(s)), (0..layout.len(s)).map(|_| rng.random_range(-1.0f32..1.0)).collect())).to_vec();
    let outputs = &locs[locs.len() - kernel.outputs()..];
    let (cpu, gpu) = (Cpu, Gpu::emulated());
    let mut cm = <Cpu as Device<f32>>::alloc(&cpu, &layout).unwrap();
    let mut gm = gpu.alloc(&layout).unwrap();
    for (at, values) in &init {
        cpu.write(&mut cm, *at, values).unwrap();
        gpu.write(&mut gm, *at, values).unwrap();
    }
    cpu.launch(&mut cm, kernel).unwrap();
    gpu.launch(&mut gm, kernel).unwrap();
    outputs.iter().map(|&o| (o, cpu.read(&cm, o).unwrap(), gpu.read(&gm, o).unwrap())).collect()
}

#[test]
fn bf16_fused_kernels_round_where_their_cpu_faces_do() {
    // Odd shapes: a 3x3 and a strided one (the input gradient's phases), 7 input channels.
    let shapes = [(3, 1, 9), (3, 2, 9), (1, 1, 5)].map(|(k, stride, side)| ConvGeom { n: 3, c_in: 7, h: side, w: side, c_out: 8, k, stride, pad: k / 2 });
    for (i, kernel) in shapes.into_iter().flat_map(fused_kernels).enumerate() {
        let name = format!("{kernel:?}");
        for (at, want, got) in outputs_on_both(&kernel.into(), i as u64) {
            match at.space {
                Space::Half => {
                    let differing = want.iter().zip(&got).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                    assert!((differing as f64) <= FLIPS * want.len() as f64, "{differing} of {} values of {at:?} differ: {name}", want.len());
                }
                _ => {
                    let e = relative_error(&got, &want);
                    assert!(e <= F32_TOLERANCE, "{at:?} differs by {e:.2e}: {name}");
                }
            }
        }
    }
}

#[test]
fn a_convolution_refuses_tensors_of_two_storages() {
    // x in bfloat16, y in f32: no instantiation takes both.
    let g = ConvGeom { n: 1, c_in: 2, h: 3, w: 3, c_out: 8, k: 3, stride: 1, pad: 1 };
    let l = &mut Layout::default();
    let (x, w, y) = (l.tensor(g.x_len()), l.f32(g.w_len()), l.f32(g.y_len()));
    let kernel: Kernel = ConvKernel::Forward { g, x, x_norm: None, w, y, relu: false, bn: None, precision: Precision::Fp32, sibling: None }.into();
    let gpu = Gpu::emulated();
    let mut mem = gpu.alloc(&MemoryLayout { params: 0, state: 0, work: l.next[0], half: l.next[1], labels: 1 }).unwrap();
    let e = gpu.launch(&mut mem, &kernel).unwrap_err().to_string();
    assert!(e.contains("conv_forward: its tensors must be stored alike"), "{e}");
}
