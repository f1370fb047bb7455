//! The launches of the implicit-GEMM convolutions in conv.cu: the tile each block owns,
//! how many input channels it stages in shared memory at a time, the split of the weight
//! gradient over blocks, and the dynamic shared memory each needs. Pure functions of the
//! geometry, so the plan is the same on every run (and the weight gradient's fixed-order
//! reduction gives the same bits).

use anyhow::{ensure, Result};

use super::{BnGradient, BnStatistics, ConvGeom, ConvKernel, PendingSum, SiblingBackward, SiblingForward, WeightSums};
use crate::engine::cuda::launch::threads::{FEAR_CONV_THREADS, FEAR_WGRAD_THREADS};
use crate::engine::cuda::launch::{launch_bounded_with_shared, stored_alike, stored_variant, Arg, Backend, DevicePtr, Dims, GpuAddresses, OnGpu};
use crate::engine::kernel::Loc;
use crate::engine::ops::batchnorm::launch::{bn_scratch, train_finalize, train_finalize_pair};
use crate::engine::ops::BnGeom;
use crate::engine::precision::Precision;

/// Output pixels and output channels each thread of the forward / input-gradient kernel owns
/// (FEAR_CONV_PIX, FEAR_CONV_CO in conv.cu).
const PIX: usize = 4;
const CO: usize = 8;
/// The weight gradient's block: output channels, input channels, pixels per staged tile, and the
/// floats per pixel of its staged dy (FEAR_WGRAD_COP, FEAR_WGRAD_CI, FEAR_WGRAD_DY_STRIDE).
const WGRAD_COP: usize = 64;
const WGRAD_CI: usize = 8;
const WGRAD_TILE_PIXELS: usize = 64;
const WGRAD_DY_STRIDE: usize = 68;
/// Dynamic shared memory a block may use: below the 48 KB every GPU grants without the opt-in,
/// and small enough for several blocks per SM.
pub const SHARED_BUDGET_BYTES: usize = 32 << 10;
/// Input channels staged at a time, at most (more gains little and costs occupancy).
const MAX_CHUNK: usize = 16;
/// Blocks the weight gradient aims for (about four per SM of a 132-SM H100).
const WGRAD_TARGET_BLOCKS: usize = 512;
/// Blocks a backward launch adds for a deferred sum, at most (they loop beyond).
const MAX_SUM_BLOCKS: usize = 256;

/// The shape of one forward or input-gradient launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TilePlan {
    /// Images, rows and columns of (phase-grid) output pixels per block.
    pub ti: usize,
    pub tr: usize,
    pub tc: usize,
    /// Source channels staged per round, and log2 of the channel groups (8 channels each).
    pub chunk: usize,
    pub glog2: u32,
    pub blocks: usize,
    pub shared_bytes: usize,
}

/// The GEMM one launch computes: a correlation with `taps` x `taps` taps stepping `step` in a
/// source of `c_src` channels, into `c_dst` channels on a grid of `phases` x `qh` x `qw` pixels.
struct Gemm {
    c_src: usize,
    c_dst: usize,
    taps: usize,
    step: usize,
    phases: usize,
    qh: usize,
    qw: usize,
}

fn check_shape(g: &ConvGeom) -> Result<()> {
    // conv.cu has bodies for these shapes only (taps known at compile time); the network needs no other.
    ensure!(matches!(g.k, 1 | 3), "the CUDA convolutions take 1x1 and 3x3 kernels, not {}x{}", g.k, g.k);
    ensure!(matches!(g.stride, 1 | 2), "the CUDA convolutions take strides 1 and 2, not {}", g.stride);
    ensure!(g.pad == g.k / 2, "the CUDA convolutions take 'same' padding (k / 2), not {} for k = {}", g.pad, g.k);
    Ok(())
}

fn tile_plan(n: usize, m: &Gemm) -> TilePlan {
    let groups = m.c_dst.min(64).div_ceil(CO).next_power_of_two();
    let glog2 = groups.trailing_zeros();
    let slots = FEAR_CONV_THREADS as usize / groups * PIX;
    let tc = m.qw.min(slots);
    let mut tr = m.qh.min(slots / tc);
    // Whole images smaller than the block go several to a tile.
    let ti = if tr == m.qh && tc == m.qw { (slots / (tr * tc)).clamp(1, n.max(1)) } else { 1 };
    let cw = CO << glog2;
    let budget = SHARED_BUDGET_BYTES / 4 - 4;
    let per_channel = |tr: usize| ti * ((tr - 1) * m.step + m.taps) * ((tc - 1) * m.step + m.taps) + m.taps * m.taps * cw;
    while tr > 1 && per_channel(tr) > budget {
        tr = tr.div_ceil(2);
    }
    let chunk = (budget / per_channel(tr)).clamp(1, MAX_CHUNK).min(m.c_src.max(1));
    let halo = ti * ((tr - 1) * m.step + m.taps) * ((tc - 1) * m.step + m.taps);
    let shared_bytes = ((chunk * halo).next_multiple_of(4) + chunk * m.taps * m.taps * cw) * 4;
    let tiles = m.qh.div_ceil(tr) * m.qw.div_ceil(tc);
    let blocks = n.div_ceil(ti) * m.phases * tiles * m.c_dst.div_ceil(cw);
    TilePlan { ti, tr, tc, chunk, glog2, blocks, shared_bytes }
}

/// The forward's launch shape.
pub fn forward_plan(g: &ConvGeom) -> TilePlan {
    let m = Gemm { c_src: g.c_in, c_dst: g.c_out, taps: g.k, step: g.stride, phases: 1, qh: g.out_h(), qw: g.out_w() };
    tile_plan(g.n, &m)
}

/// The input gradient's launch shape: per phase of dx, a stride-1 correlation of dy.
pub fn backward_input_plan(g: &ConvGeom) -> TilePlan {
    let s = g.stride;
    let m = Gemm { c_src: g.c_out, c_dst: g.c_in, taps: g.k.div_ceil(s), step: 1, phases: s * s, qh: g.h.div_ceil(s), qw: g.w.div_ceil(s) };
    tile_plan(g.n, &m)
}

/// The shape of a weight-gradient launch: pixel tile, splits, blocks and shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WgradPlan {
    pub tr: usize,
    pub tc: usize,
    pub splits: usize,
    pub blocks: usize,
    pub shared_bytes: usize,
}

/// The weight gradient's launch shape: as many pixel splits as fill the GPU, at most one per
/// tile and at most as many as the scratch holds partial weight gradients for.
pub fn backward_weight_plan(g: &ConvGeom, scratch_bytes: usize) -> WgradPlan {
    let (oh, ow) = (g.out_h(), g.out_w());
    let tc = ow.clamp(1, 32);
    let tr = oh.min(WGRAD_TILE_PIXELS / tc).max(1);
    let items = g.n * oh.div_ceil(tr) * ow.div_ceil(tc);
    let per_split = g.c_in.div_ceil(WGRAD_CI) * g.c_out.div_ceil(WGRAD_COP);
    let fit = scratch_bytes / (g.w_len() * 4).max(1);
    let splits = (WGRAD_TARGET_BLOCKS / per_split).min(items).min(fit).max(1);
    let halo = ((tr - 1) * g.stride + g.k) * ((tc - 1) * g.stride + g.k);
    let shared_bytes = (tr * tc * WGRAD_DY_STRIDE + WGRAD_CI * halo) * 4;
    WgradPlan { tr, tc, splits, blocks: splits * per_split, shared_bytes }
}

fn geometry_args(g: &ConvGeom) -> Result<Vec<Arg>> {
    [g.n, g.c_in, g.h, g.w, g.c_out, g.k, g.stride, g.pad, g.out_h(), g.out_w()].into_iter().map(Arg::len).collect()
}

/// [`launch_bounded_with_shared`] (which checks the block against the kernel's bound) after
/// checking the launch is not empty.
fn launch_bounded_shared(b: &dyn Backend, name: &str, dims: Dims, shared_bytes: usize, args: &[Arg]) -> Result<()> {
    ensure!(dims.grid[0] as usize * dims.block[0] as usize > 0, "{name}: an empty launch");
    // SAFETY: the pointers are bounds-checked locations (`OnGpu::p`) or the scratch; each
    // conv kernel reads and writes only the tensors of its geometry, the partials its plan
    // sizes, and the `shared_bytes` of shared memory it is given.
    unsafe { launch_bounded_with_shared(b, name, dims, shared_bytes as u32, args) }
}

/// One block of `threads` per item, every item in this one launch.
fn one_launch(name: &str, blocks: usize, threads: u32) -> Result<Dims> {
    let dims = Dims::per_item(blocks, threads);
    ensure!(dims.grid[0] as usize == blocks, "{name}: {blocks} blocks, more than one launch takes");
    Ok(dims)
}

impl TilePlan {
    /// The tile's kernel arguments: ti, tr, tc, chunk, glog2.
    fn args(&self) -> Result<Vec<Arg>> {
        [self.ti, self.tr, self.tc, self.chunk, self.glog2 as usize].into_iter().map(Arg::len).collect()
    }
}

impl WgradPlan {
    /// The weight gradient's kernel arguments: tr, tc, splits.
    fn args(&self) -> Result<Vec<Arg>> {
        [self.tr, self.tc, self.splits].into_iter().map(Arg::len).collect()
    }
}

/// The weight gradient's launch shape with its partials in `scratch` (address, bytes), checked to fit.
fn weight_plan_in(scratch: (DevicePtr, usize), g: &ConvGeom) -> Result<(WgradPlan, Arg)> {
    let (at, bytes) = scratch;
    let p = backward_weight_plan(g, bytes);
    ensure!(p.splits * g.w_len() * 4 <= bytes, "a weight gradient of {} floats needs more than the {bytes} bytes of scratch", g.w_len());
    Ok((p, Arg::Ptr(at)))
}

/// Where a backward's partials go: the general scratch (summed by a reduce launch right after),
/// or the slot they wait in for a later launch to sum (`defer_to`).
fn partials_scratch(mem: &dyn GpuAddresses, defer_to: Option<usize>) -> Result<(DevicePtr, usize)> {
    defer_to.map_or(Ok(mem.reduce_scratch()), |slot| mem.weight_partials(slot))
}

/// A sum of weight-gradient partials as the arguments of fear_conv_sum_partials in conv.cu:
/// dw += the partials at `partials`, summed split 0 first; with a sibling, its rows (after the
/// first's `g.w_len() * split / g.c_out` elements) into its own dw (`sibling_dw`, else null).
#[derive(Clone, Copy, Debug)]
struct WeightSumArgs {
    args: [Arg; 6],
    len: usize,
}

impl WeightSumArgs {
    fn new(g: &ConvGeom, splits: usize, partials: Arg, dw: Arg, sibling_dw: Arg, split: usize) -> Result<WeightSumArgs> {
        let first = g.w_len() / g.c_out.max(1) * split;
        Ok(WeightSumArgs { args: [partials, dw, Arg::len(g.w_len())?, Arg::len(splits)?, sibling_dw, Arg::len(first)?], len: g.w_len() })
    }

    /// No sum (a backward's launch performing none): null pointers, no elements.
    fn none() -> WeightSumArgs {
        WeightSumArgs { args: [Arg::Ptr(0), Arg::Ptr(0), Arg::I32(0), Arg::I32(0), Arg::Ptr(0), Arg::I32(0)], len: 0 }
    }

    /// A sum a backward left pending: its partials in their slot, split as that launch split them.
    fn pending(on: &OnGpu, sum: &PendingSum) -> Result<WeightSumArgs> {
        let (p, partials) = weight_plan_in(on.mem.weight_partials(sum.slot)?, &sum.g)?;
        WeightSumArgs::new(&sum.g, p.splits, partials, on.p(sum.dw)?, on.opt(sum.sibling_dw)?, sum.split)
    }

    /// The blocks a backward launch adds for the sum.
    fn blocks(&self) -> usize {
        self.len.div_ceil(FEAR_CONV_THREADS as usize).min(MAX_SUM_BLOCKS)
    }

    /// The sum in a launch of its own.
    fn launch(&self, b: &dyn Backend) -> Result<()> {
        launch_bounded_shared(b, "fear_conv_backward_weight_reduce", Dims::elementwise(self.len), 0, &self.args)
    }
}

/// The second convolution of a sibling pair as kernel arguments (see conv.cu's FearConvSibling):
/// its tensors (null pointers without one) and `split`, where its channels start in the pair's
/// GEMM, whose geometry counts both convolutions' output channels ([`ConvKernel::gemm_geom`]).
#[derive(Clone, Copy, Debug)]
pub struct Sibling {
    pub dy: Arg,
    pub w: Arg,
    pub y: Arg,
    pub bn: [Arg; 2],
    pub dw: Arg,
    pub split: usize,
}

impl Sibling {
    /// No sibling: the split is at the end of the GEMM's `c_out` channels.
    pub fn none(c_out: usize) -> Sibling {
        Sibling { dy: Arg::Ptr(0), w: Arg::Ptr(0), y: Arg::Ptr(0), bn: [Arg::Ptr(0); 2], dw: Arg::Ptr(0), split: c_out }
    }

    fn split(&self) -> Result<Arg> {
        Arg::len(self.split)
    }
}

fn launch_tiles(b: &dyn Backend, name: &str, g: &ConvGeom, t: TilePlan, ptrs: [Arg; 3], extra: &[Arg]) -> Result<()> {
    let args = [ptrs.to_vec(), geometry_args(g)?, t.args()?, extra.to_vec()].concat();
    launch_bounded_shared(b, name, one_launch(name, t.blocks, FEAR_CONV_THREADS)?, t.shared_bytes, &args)
}

/// Shared memory the forward's batch-norm statistics take (fear_conv_bn_partials in conv.cu): the
/// parked accumulators, then two doubles per thread and channel.
const STATS_SHARED_BYTES: usize = FEAR_CONV_THREADS as usize * (PIX * CO * 4 + 2 * CO * 8);

/// Shared memory the tensor-core forward and input gradient need at least
/// (fear_conv_mma_unpark in conv.cu): the block's outputs, parked to move from the fragments'
/// owners to the epilogue's.
const MMA_SHARED_BYTES: usize = FEAR_CONV_THREADS as usize * PIX * CO * 4;

/// The convolution kernels, each with its FP32, TF32, BF16 and FP16 product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Product {
    Forward,
    BackwardInput,
    BackwardWeight,
    /// Both gradients in one launch.
    Backward,
}

impl Product {
    /// The kernel of a precision. The `_tf32` (`_bf16mma`) kernels round both operands to TF32
    /// (bfloat16) as they stage them and multiply them with `mma.sync.m16n8k8.tf32` (`.bf16`) on
    /// sm_80 and newer; their sm_70 builds (no tf32 or bf16 tensor cores there) multiply the same
    /// rounded operands with FP32 FMAs, so every GPU rounds where the CPU face does and the host
    /// launches them everywhere. The `_f16mma` kernels round them to IEEE halves and multiply
    /// with `mma.sync.m8n8k4.f16` (sm_70 and newer). The 16-bit ones are named for their product
    /// ("bf16mma", "f16mma"): a `_bf16` or `_f16` suffix names the tensors' storage
    /// ([`ConvKernel::stored`]).
    fn kernel(self, precision: Precision) -> &'static str {
        let names = match self {
            Product::Forward => ["fear_conv_forward", "fear_conv_forward_tf32", "fear_conv_forward_bf16mma", "fear_conv_forward_f16mma"],
            Product::BackwardInput => {
                ["fear_conv_backward_input", "fear_conv_backward_input_tf32", "fear_conv_backward_input_bf16mma", "fear_conv_backward_input_f16mma"]
            }
            Product::BackwardWeight => {
                ["fear_conv_backward_weight", "fear_conv_backward_weight_tf32", "fear_conv_backward_weight_bf16mma", "fear_conv_backward_weight_f16mma"]
            }
            Product::Backward => ["fear_conv_backward", "fear_conv_backward_tf32", "fear_conv_backward_bf16mma", "fear_conv_backward_f16mma"],
        };
        match precision {
            Precision::Fp32 => names[0],
            Precision::Tf32 => names[1],
            Precision::Bf16 => names[2],
            Precision::F16 => names[3],
        }
    }
}

/// The shared memory a forward or input-gradient tile takes at `precision`: the tensor-core
/// kernels park their outputs through it.
fn tile_shared_bytes(t: &TilePlan, precision: Precision) -> usize {
    match precision {
        Precision::Fp32 => t.shared_bytes,
        _ => t.shared_bytes.max(MMA_SHARED_BYTES),
    }
}

/// y = conv(x, w), or conv(relu(x), w) with `relu`, its operands rounded to `precision`, by
/// kernel `name` (that precision's, for the tensors' storage: [`ConvKernel::stored`]); with
/// `stats` (a pointer, or null), each block also writes its batch-norm partials of y there,
/// `forward_plan(g).blocks / passes` per channel ([`stats_parts`]). With a sibling, `g` is the
/// pair's GEMM and channels from its split on are the sibling's (y and statistics). `x`: the
/// input, and the coefficients of a batch norm it is the input of (read normalised) or null.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    b: &dyn Backend,
    name: &str,
    g: &ConvGeom,
    x: [Arg; 2],
    w: Arg,
    y: Arg,
    relu: bool,
    stats: Arg,
    precision: Precision,
    sib: &Sibling,
) -> Result<()> {
    check_shape(g)?;
    ensure!(
        sib.split == g.c_out || sib.split.is_multiple_of(CO),
        "a sibling forward's first convolution has {} output channels, not a multiple of {CO}",
        sib.split
    );
    if g.y_len() == 0 {
        return Ok(());
    }
    let mut plan = forward_plan(g);
    if !matches!(stats, Arg::Ptr(0)) {
        plan.shared_bytes = plan.shared_bytes.max(STATS_SHARED_BYTES);
    }
    plan.shared_bytes = tile_shared_bytes(&plan, precision);
    launch_tiles(b, name, g, plan, [x[0], w, y], &[Arg::I32(relu as i32), stats, sib.w, sib.y, sib.split()?, x[1]])
}

/// The batch-norm partials per channel a forward with statistics writes: one per block of a
/// channel pass.
pub fn stats_parts(g: &ConvGeom) -> usize {
    let t = forward_plan(g);
    t.blocks / g.c_out.div_ceil(CO << t.glog2)
}

/// The forward with the statistics of the batch norm reading y (and of the sibling's, both or
/// neither): the convolution writing its partials into the scratch, then the batch norm's
/// finalize (one launch for both of a pair).
#[allow(clippy::too_many_arguments)]
fn forward_with_statistics(
    on: &OnGpu,
    name: &str,
    g: &ConvGeom,
    x: [Arg; 2],
    w: Loc,
    y: Loc,
    relu: bool,
    bn: &BnStatistics,
    precision: Precision,
    sibling: Option<&SiblingForward>,
) -> Result<()> {
    let gemm = ConvKernel::gemm_geom(g, sibling.map(|s| s.c_out));
    if gemm.y_len() == 0 {
        return Ok(());
    }
    let parts = stats_parts(&gemm);
    let (partial, _) = bn_scratch(on, gemm.c_out, parts)?;
    let sib = forward_sibling(on, g, sibling)?;
    forward(on.backend, name, &gemm, x, on.p(w)?, on.p(y)?, relu, partial, precision, &sib)?;
    let outputs = |bn: &BnStatistics| -> Result<[Arg; 7]> {
        let mut args = [Arg::Ptr(0); 7];
        for (arg, loc) in args.iter_mut().zip([bn.gamma, bn.beta, bn.running_mean, bn.running_var, bn.mean, bn.invstd, bn.coef]) {
            *arg = on.p(loc)?;
        }
        Ok(args)
    };
    let geom = |c: usize| BnGeom { n: g.n, c, hw: g.out_h() * g.out_w() };
    match sibling.map(|s| (s.c_out, s.bn)) {
        // The sibling's partials follow the first's channels: both finalized in one launch.
        Some((c, Some(sbn))) => {
            let (g1, g2) = (geom(g.c_out), geom(c));
            train_finalize_pair(on, [&g1, &g2], parts, partial, [outputs(bn)?, outputs(&sbn)?], [bn.eps, sbn.eps], [bn.momentum, sbn.momentum])
        }
        _ => train_finalize(on, &geom(g.c_out), parts, partial, outputs(bn)?, bn.eps, bn.momentum),
    }
}

/// A forward sibling's arguments.
fn forward_sibling(on: &OnGpu, g: &ConvGeom, sibling: Option<&SiblingForward>) -> Result<Sibling> {
    let mut sib = Sibling::none(g.c_out);
    if let Some(s) = sibling {
        (sib.w, sib.y) = (on.p(s.w)?, on.p(s.y)?);
    }
    Ok(sib)
}

/// dx += conv_transpose(dy, w), or dx = 0 + ... without `accumulate`; where `mask` > 0 only when
/// it is not null (a fused ReLU's input). `name`: fear_conv_backward_input of `precision` for
/// the tensors' storage ([`ConvKernel::stored`]), its operands rounded to `precision`.
/// `bn`: (x, coef) of a batch norm whose backward the gradient applies to dy, or null pointers.
/// `mask`: the mask, and the coefficients of a batch norm it is the input of, or nulls.
#[allow(clippy::too_many_arguments)]
pub fn backward_input(
    b: &dyn Backend,
    name: &str,
    g: &ConvGeom,
    dy: Arg,
    w: Arg,
    dx: Arg,
    accumulate: bool,
    mask: [Arg; 2],
    bn: [Arg; 2],
    precision: Precision,
) -> Result<()> {
    check_shape(g)?;
    if g.x_len() == 0 {
        return Ok(());
    }
    let sib = Sibling::none(g.c_out);
    let extra = [Arg::I32(accumulate as i32), mask[0], bn[0], bn[1], sib.dy, sib.w, sib.bn[0], sib.bn[1], sib.split()?, mask[1]];
    let mut plan = backward_input_plan(g);
    plan.shared_bytes = tile_shared_bytes(&plan, precision);
    launch_tiles(b, name, g, plan, [dy, w, dx], &extra)
}

/// dw += the weight gradient (x read as relu(x) with `relu`, normalised first by the coefficients
/// `x[1]` when not null): partials per split into the scratch by `name` (fear_conv_backward_weight
/// of the product's precision for the tensors' storage), then their fixed-order sum.
#[allow(clippy::too_many_arguments)]
pub fn backward_weight(
    b: &dyn Backend,
    name: &str,
    mem: &dyn GpuAddresses,
    g: &ConvGeom,
    x: [Arg; 2],
    dy: Arg,
    dw: Arg,
    relu: bool,
    bn: [Arg; 2],
) -> Result<()> {
    check_shape(g)?;
    if g.w_len() == 0 {
        return Ok(());
    }
    let (p, scratch) = weight_plan_in(mem.reduce_scratch(), g)?;
    let sib = Sibling::none(g.c_out);
    let args =
        [vec![x[0], dy, scratch], geometry_args(g)?, p.args()?, vec![Arg::I32(relu as i32), bn[0], bn[1], sib.dy, sib.bn[0], sib.bn[1], sib.split()?, x[1]]]
            .concat();
    launch_bounded_shared(b, name, one_launch(name, p.blocks, FEAR_WGRAD_THREADS)?, p.shared_bytes, &args)?;
    WeightSumArgs::new(g, p.splits, scratch, dw, sib.dw, sib.split)?.launch(b)
}

/// Both gradients in one launch (fear_conv_backward: the input gradient's blocks, then the weight
/// gradient's, then those of the `pending` sum it performs), then the weight gradient's
/// fixed-order sum unless its partials wait in slot `defer_to` for a later launch to sum.
/// `relu`: x is the fused ReLU's input (the weight gradient reads relu(x), the input gradient is
/// masked by x). With a sibling, `g` is the pair's GEMM: both weight gradients, and the sum of
/// both input gradients. `dx_terms`: ([`super::DxTerms`]) added and pooled, or null
/// pointers. `x_norm`: the coefficients of a batch norm x is the input of (the kernels read x
/// normalised), or null. `name`: fear_conv_backward of `precision` (both products') for the
/// tensors' storage.
#[allow(clippy::too_many_arguments)]
fn backward(
    b: &dyn Backend,
    name: &str,
    mem: &dyn GpuAddresses,
    g: &ConvGeom,
    x: Arg,
    dy: Arg,
    w: Arg,
    dw: Arg,
    dx: Arg,
    accumulate: bool,
    relu: bool,
    bn: [Arg; 2],
    sib: &Sibling,
    defer_to: Option<usize>,
    pending: &WeightSumArgs,
    dx_terms: [Arg; 2],
    x_norm: Arg,
    precision: Precision,
) -> Result<()> {
    check_shape(g)?;
    let mut t = backward_input_plan(g);
    t.shared_bytes = tile_shared_bytes(&t, precision);
    let (p, scratch) = weight_plan_in(partials_scratch(mem, defer_to)?, g)?;
    let mask = if relu { x } else { Arg::Ptr(0) };
    let args = [
        vec![x, dy, w, dx, scratch],
        geometry_args(g)?,
        t.args()?,
        vec![Arg::I32(accumulate as i32), mask],
        p.args()?,
        vec![Arg::I32(relu as i32), bn[0], bn[1], Arg::len(t.blocks)?],
        vec![sib.dy, sib.w, sib.bn[0], sib.bn[1], sib.split()?, Arg::len(p.blocks)?],
        pending.args.to_vec(),
        vec![Arg::len(pending.blocks())?],
        dx_terms.to_vec(),
        vec![x_norm],
    ]
    .concat();
    let blocks = t.blocks + p.blocks + pending.blocks();
    launch_bounded_shared(b, name, one_launch(name, blocks, FEAR_CONV_THREADS)?, t.shared_bytes.max(p.shared_bytes), &args)?;
    match defer_to {
        Some(_) => Ok(()),
        None => WeightSumArgs::new(g, p.splits, scratch, dw, sib.dw, sib.split)?.launch(b),
    }
}

/// A backward sibling's arguments.
fn backward_sibling(on: &OnGpu, g: &ConvGeom, sibling: Option<&SiblingBackward>) -> Result<Sibling> {
    let mut sib = Sibling::none(g.c_out);
    if let Some(s) = sibling {
        (sib.dy, sib.w, sib.dw, sib.bn) = (on.p(s.dy)?, on.p(s.w)?, on.p(s.dw)?, bn_args(on, s.bn)?);
    }
    Ok(sib)
}

/// The (x, coef) pointers of a batch norm's backward applied by a gradient, or nulls.
fn bn_args(on: &OnGpu, bn: Option<BnGradient>) -> Result<[Arg; 2]> {
    Ok([on.opt(bn.map(|b| b.x))?, on.opt(bn.map(|b| b.coef))?])
}

impl ConvKernel {
    /// The instantiation of kernel `base` for the storage of this kernel's [`ConvKernel::tensors`]
    /// (`base`, or `base_bf16` for bfloat16: [`stored_variant`]).
    fn stored(&self, base: &'static str) -> &'static str {
        self.tensors().first().map_or(base, |&t| stored_variant(base, t))
    }

    /// Refuses tensors of two storages: each kernel takes one type for all of them.
    fn check_storage(&self) -> Result<()> {
        let tensors = self.tensors();
        if !tensors.is_empty() {
            stored_alike(self.name(), &tensors)?;
        }
        Ok(())
    }

    /// The CUDA kernels [`ConvKernel::launch`] launches, in order (for the plan statistics; held
    /// to the launches by the self-test).
    pub fn launch_names(&self) -> Vec<&'static str> {
        match *self {
            ConvKernel::Forward { g, bn, precision, sibling, .. } if ConvKernel::gemm_geom(&g, sibling.map(|s| s.c_out)).y_len() > 0 => {
                let mut names = vec![self.stored(Product::Forward.kernel(precision))];
                // One finalize launch for the batch norm(s): a sibling pair's are finalized together.
                names.extend(bn.map(|_| "fear_bn_train_finalize"));
                names
            }
            ConvKernel::BackwardInput { g, precision, .. } if g.x_len() > 0 => {
                vec![self.stored(Product::BackwardInput.kernel(precision))]
            }
            ConvKernel::BackwardWeight { g, precision, .. } if g.w_len() > 0 => {
                vec![self.stored(Product::BackwardWeight.kernel(precision)), "fear_conv_backward_weight_reduce"]
            }
            ConvKernel::WeightSum { sum } if sum.g.w_len() > 0 => vec!["fear_conv_backward_weight_reduce"],
            ConvKernel::Backward { g, sums, precision, .. } if g.x_len() > 0 && g.w_len() > 0 => {
                let mut names = vec![self.stored(Product::Backward.kernel(precision))];
                names.extend(sums.defer_to.is_none().then_some("fear_conv_backward_weight_reduce"));
                names
            }
            ConvKernel::Backward { .. } => {
                let (weight, input) = self.halves();
                [weight.launch_names(), input.launch_names()].concat()
            }
            _ => vec![],
        }
    }

    pub fn launch(&self, on: &OnGpu) -> Result<()> {
        self.check_storage()?;
        match *self {
            ConvKernel::Forward { g, x, x_norm, w, y, relu, bn: None, precision, sibling } => {
                ensure!(sibling.is_none_or(|s| s.bn.is_none()), "a sibling forward takes both batch norms' statistics or neither");
                let gemm = ConvKernel::gemm_geom(&g, sibling.map(|s| s.c_out));
                let (name, x) = (self.stored(Product::Forward.kernel(precision)), [on.p(x)?, on.opt(x_norm)?]);
                forward(on.backend, name, &gemm, x, on.p(w)?, on.p(y)?, relu, Arg::Ptr(0), precision, &forward_sibling(on, &g, sibling.as_ref())?)
            }
            ConvKernel::Forward { g, x, x_norm, w, y, relu, bn: Some(bn), precision, sibling } => {
                ensure!(sibling.is_none_or(|s| s.bn.is_some()), "a sibling forward takes both batch norms' statistics or neither");
                let name = self.stored(Product::Forward.kernel(precision));
                forward_with_statistics(on, name, &g, [on.p(x)?, on.opt(x_norm)?], w, y, relu, &bn, precision, sibling.as_ref())
            }
            ConvKernel::BackwardInput { g, dy, bn, w, mask, mask_norm, dx, accumulate, precision } => {
                let (name, mask) = (self.stored(Product::BackwardInput.kernel(precision)), [on.opt(mask)?, on.opt(mask_norm)?]);
                backward_input(on.backend, name, &g, on.p(dy)?, on.p(w)?, on.p(dx)?, accumulate, mask, bn_args(on, bn)?, precision)
            }
            ConvKernel::BackwardWeight { g, x, x_norm, dy, bn, dw, relu, precision } => {
                let (name, x) = (self.stored(Product::BackwardWeight.kernel(precision)), [on.p(x)?, on.opt(x_norm)?]);
                backward_weight(on.backend, name, on.mem, &g, x, on.p(dy)?, on.p(dw)?, relu, bn_args(on, bn)?)
            }
            ConvKernel::Backward { g, x, x_norm, dy, bn, w, relu, dw, dx, accumulate, sibling, dx_terms, sums, precision }
                if g.x_len() > 0 && g.w_len() > 0 =>
            {
                let gemm = ConvKernel::gemm_geom(&g, sibling.map(|s| s.c_out));
                let sib = backward_sibling(on, &g, sibling.as_ref())?;
                let apart = sums.performs.is_none_or(|s| sums.defer_to != Some(s.slot));
                ensure!(apart, "a convolution backward would write its partials over the pending sum it performs (slot {:?})", sums.defer_to);
                let pending = sums.performs.map_or(Ok(WeightSumArgs::none()), |s| WeightSumArgs::pending(on, &s))?;
                let terms = [on.opt(dx_terms.added)?, on.opt(dx_terms.pooled)?];
                let (x, dy, w, dw, dx) = (on.p(x)?, on.p(dy)?, on.p(w)?, on.p(dw)?, on.p(dx)?);
                let name = self.stored(Product::Backward.kernel(precision));
                backward(
                    on.backend,
                    name,
                    on.mem,
                    &gemm,
                    x,
                    dy,
                    w,
                    dw,
                    dx,
                    accumulate,
                    relu,
                    bn_args(on, bn)?,
                    &sib,
                    sums.defer_to,
                    &pending,
                    terms,
                    on.opt(x_norm)?,
                    precision,
                )
            }
            ConvKernel::Backward { sums, .. } => {
                ensure!(sums == WeightSums::default(), "a convolution backward with an empty gradient takes no part in deferred sums");
                let (weight, input) = self.halves();
                weight.launch(on)?;
                input.launch(on)
            }
            ConvKernel::WeightSum { sum } if sum.g.w_len() > 0 => WeightSumArgs::pending(on, &sum)?.launch(on.backend),
            ConvKernel::WeightSum { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(n: usize, c: usize, side: usize, k: usize, stride: usize) -> ConvGeom {
        ConvGeom { n, c_in: c, h: side, w: side, c_out: if stride == 2 { 2 * c } else { c }, k, stride, pad: k / 2 }
    }

    #[test]
    fn every_launch_fits_the_shared_budget_and_covers_the_outputs() {
        for (n, c, side) in [(256, 16, 32), (256, 32, 16), (256, 64, 8), (3, 7, 5), (3, 7, 9), (1, 130, 40)] {
            for (k, stride) in [(3, 1), (3, 2), (1, 1), (1, 2)] {
                let g = geom(n, c, side, k, stride);
                for (t, m) in
                    [(forward_plan(&g), (g.c_out, g.out_h(), g.out_w())), (backward_input_plan(&g), (g.c_in, g.h.div_ceil(stride), g.w.div_ceil(stride)))]
                {
                    assert!(t.shared_bytes <= SHARED_BUDGET_BYTES, "{g:?}: {t:?}");
                    let slots = FEAR_CONV_THREADS as usize >> t.glog2 << 2;
                    assert!(t.ti * t.tr * t.tc <= slots, "{g:?}: a tile larger than the block: {t:?}");
                    assert!((CO << t.glog2) >= m.0.min(64), "{g:?}: {t:?}");
                    assert!(t.chunk >= 1 && t.tr >= 1 && t.tc >= 1 && (t.ti == 1 || (t.tr, t.tc) == (m.1, m.2)), "{g:?}: {t:?}");
                }
                let w = backward_weight_plan(&g, 8 << 20);
                assert!(w.shared_bytes <= SHARED_BUDGET_BYTES && w.splits >= 1 && w.tr * w.tc <= WGRAD_TILE_PIXELS, "{g:?}: {w:?}");
            }
        }
    }

    #[test]
    fn every_product_has_fp32_tf32_bf16_and_f16_kernels() {
        for (p, base) in [
            (Product::Forward, "fear_conv_forward"),
            (Product::BackwardInput, "fear_conv_backward_input"),
            (Product::BackwardWeight, "fear_conv_backward_weight"),
            (Product::Backward, "fear_conv_backward"),
        ] {
            assert_eq!(p.kernel(Precision::Fp32), base);
            assert_eq!(p.kernel(Precision::Tf32), format!("{base}_tf32"));
            assert_eq!(p.kernel(Precision::Bf16), format!("{base}_bf16mma"));
            assert_eq!(p.kernel(Precision::F16), format!("{base}_f16mma"));
            for precision in [Precision::Fp32, Precision::Tf32, Precision::Bf16, Precision::F16] {
                let name = p.kernel(precision);
                assert!(crate::engine::cuda::artifacts::KERNEL_NAMES.contains(&name), "{name}");
            }
        }
    }

    #[test]
    fn arch_1_stage_shapes_keep_whole_rows_and_all_channels_per_block() {
        let t = forward_plan(&geom(256, 16, 32, 3, 1));
        assert_eq!((t.ti, t.tr, t.tc, t.glog2), (1, 8, 32, 1), "{t:?}");
        let t = forward_plan(&geom(256, 64, 8, 3, 1));
        assert_eq!((t.ti, t.tr, t.tc, t.glog2), (1, 8, 8, 3), "{t:?}");
        let w = backward_weight_plan(&geom(256, 64, 8, 3, 1), 8 << 20);
        assert_eq!((w.tr, w.tc, w.splits), (8, 8, 56), "{w:?}");
    }
}
