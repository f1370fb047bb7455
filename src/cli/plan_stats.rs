//! `fear bench --plan-stats`: what a training step costs by construction, without running it:
//! the launches a full and a frozen (FEAR stage-2) step make on the device, which kernels they
//! are, and a model of the bytes moved and the flops done, all from the planned kernels' shapes.
//! A plan statistic, not a timing: it shows what a kernel or planner change does to the step on
//! a machine with no GPU.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use crate::engine::kernel::Loc;
use crate::engine::ops::{BnKernel, BnOutput, ConvKernel, LinearKernel};
use crate::engine::plan::plan;
use crate::engine::precision::Precision;
use crate::engine::{Kernel, PlanOptions, Program};
use crate::net::{stage2_prefixes, tiny_network, NetConfig};
use crate::space::Arch;

/// Cells left trainable in the frozen step (as `fear bench` times it).
const FROZEN_CELLS: usize = 4;

#[derive(Serialize, Debug)]
pub struct PlanStats {
    pub arch: String,
    /// `cpu` (one call per planned kernel) or `gpu` (CUDA launches; emulated and real alike).
    pub device: String,
    pub batch: usize,
    /// The precision planned (`fp32`, `tf32`, `bf16`, `fp16`: see `PlanOptions::at_precision`).
    pub precision: &'static str,
    pub launches_full: usize,
    pub launches_frozen: usize,
    /// A model: every location a planned kernel names, read or written once, at the bytes an
    /// element of its space takes on the device planned (on a GPU 2 for a bfloat16 tensor in
    /// `Half`, else 4; the CPU holds every element as an f32).
    pub planned_bytes_full: u64,
    pub planned_bytes_frozen: u64,
    /// A model: 2 flops per multiply-add of the convolutions and linear layers (the rest is noise).
    pub flops_full: u64,
    pub flops_frozen: u64,
    /// Launches per kernel (CUDA kernel names on a GPU, op names on the CPU).
    pub kernels: Vec<KernelRow>,
    /// The bytes model per planned op (a model, as `planned_bytes_*`), largest first: where the
    /// step's traffic is.
    pub bytes_by_op: Vec<KernelRow>,
    pub note: &'static str,
}

#[derive(Serialize, Debug)]
pub struct KernelRow {
    pub kernel: &'static str,
    pub full: usize,
    pub frozen: usize,
}

/// The statistics of arch `arch` at `batch` planned for `device` (anything but `cpu` is a GPU),
/// fused as a GPU session plans it unless `fuse` is false, at `precision`.
pub fn plan_stats(arch: &Arch, device: &str, batch: usize, fuse: bool, precision: Precision) -> Result<PlanStats> {
    let gpu = device != "cpu";
    let cfg = NetConfig::default();
    let graph = tiny_network(arch, &cfg, batch);
    // What a session on the device plans (a GPU fuses, see `Device::fuses`).
    let opts = PlanOptions { train: true, fuse: gpu && fuse, ..PlanOptions::default() }.at_precision(precision)?;
    let full = plan(&graph, &vec![true; graph.params.len()], &opts);
    let keep = stage2_prefixes(&cfg, FROZEN_CELLS);
    let trainable: Vec<bool> = graph.params.iter().map(|p| keep.iter().any(|k| p.name == *k || p.name.starts_with(&format!("{k}.")))).collect();
    let frozen = plan(&graph, &trainable, &opts);
    let names = |k: &Kernel| if gpu { k.launch_names() } else { vec![k.name()] };
    let mut table: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    for (p, frozen_step) in [(&full, false), (&frozen, true)] {
        for name in step(p).flat_map(names) {
            let e = table.entry(name).or_default();
            if frozen_step {
                e.1 += 1
            } else {
                e.0 += 1
            }
        }
    }
    let mut by_op: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    for (p, frozen_step) in [(&full, false), (&frozen, true)] {
        for k in step(p) {
            let e = by_op.entry(k.name()).or_default();
            let b = bytes(k, gpu) as usize;
            if frozen_step {
                e.1 += b
            } else {
                e.0 += b
            }
        }
    }
    let launches = |frozen_step: bool| table.values().map(|e| if frozen_step { e.1 } else { e.0 }).sum();
    let mut kernels: Vec<KernelRow> = table.iter().map(|(k, e)| KernelRow { kernel: k, full: e.0, frozen: e.1 }).collect();
    kernels.sort_by(|a, b| b.full.cmp(&a.full).then(a.kernel.cmp(b.kernel)));
    let mut bytes_by_op: Vec<KernelRow> = by_op.iter().map(|(k, e)| KernelRow { kernel: k, full: e.0, frozen: e.1 }).collect();
    bytes_by_op.sort_by(|a, b| b.full.cmp(&a.full).then(a.kernel.cmp(b.kernel)));
    Ok(PlanStats {
        arch: arch.to_string(),
        device: if gpu { "gpu" } else { "cpu" }.into(),
        batch,
        precision: precision.name(),
        launches_full: launches(false),
        launches_frozen: launches(true),
        planned_bytes_full: step(&full).map(|k| bytes(k, gpu)).sum(),
        planned_bytes_frozen: step(&frozen).map(|k| bytes(k, gpu)).sum(),
        flops_full: step(&full).map(flops).sum(),
        flops_frozen: step(&frozen).map(flops).sum(),
        kernels,
        bytes_by_op,
        note: "plan statistics: counted from the planned step, bytes and flops modelled from shapes; nothing was run",
    })
}

/// A training step's kernels: forward, backward, update.
fn step(p: &Program) -> impl Iterator<Item = &Kernel> {
    p.forward.iter().chain(&p.backward).chain(&p.update)
}

/// The bytes `k` reads and writes (a model): every location it names once (per half of a kernel
/// computing both gradients of a convolution), and on a GPU the
/// second pass of a batch norm that normalises (its statistics, then the apply kernel reading x
/// again) and of a batch-norm backward that writes dx (x and dy read again). An element is
/// [`Space::gpu_bytes`] on a GPU, 4 on the CPU.
fn bytes(k: &Kernel, gpu: bool) -> u64 {
    let b = |l: Loc| (l.len * if gpu { l.space.gpu_bytes() } else { 4 }) as u64;
    let opt = |l: Option<Loc>| l.map_or(0, b);
    if let Kernel::Conv(ConvKernel::Backward { x, dy, bn, w, relu, dw, dx, sibling, dx_terms, .. }) = *k {
        // Its two halves each read what they name: the weight gradient x once and, per
        // convolution (a sibling pair has two), dy through its batch norm and dw; the input
        // gradient per convolution dy and w, then the ReLU's mask (x), dx's other terms and dx.
        let bn_bytes = |g: Option<crate::engine::ops::BnGradient>| g.map_or(0, |g| b(g.x) + b(g.coef));
        let dys = b(dy) + bn_bytes(bn) + sibling.map_or(0, |s| b(s.dy) + bn_bytes(s.bn));
        let weight = b(x) + dys + b(dw) + sibling.map_or(0, |s| b(s.dw));
        let terms = opt(dx_terms.added) + opt(dx_terms.pooled);
        let input = dys + b(w) + sibling.map_or(0, |s| b(s.w)) + if relu { b(x) } else { 0 } + terms + b(dx);
        return weight + input;
    }
    let once: u64 = k.locs().into_iter().map(b).sum();
    let again = match *k {
        Kernel::Bn(BnKernel::TrainForward { x, y: BnOutput::Normalised(_), .. } | BnKernel::EvalForward { x, y: BnOutput::Normalised(_), .. }) => b(x),
        Kernel::Bn(BnKernel::Backward { x, dy, dx: Some(_), .. }) => b(x) + b(dy),
        _ => 0,
    };
    once + if gpu { again } else { 0 }
}

fn flops(k: &Kernel) -> u64 {
    let conv = |g: &crate::engine::ops::ConvGeom| 2 * (g.y_len() * g.c_in * g.k * g.k) as u64;
    match k {
        Kernel::Conv(ConvKernel::Forward { g, sibling, .. }) => conv(&ConvKernel::gemm_geom(g, sibling.map(|s| s.c_out))),
        Kernel::Conv(ConvKernel::BackwardInput { g, .. }) | Kernel::Conv(ConvKernel::BackwardWeight { g, .. }) => conv(g),
        Kernel::Conv(ConvKernel::Backward { g, sibling, .. }) => 2 * conv(&ConvKernel::gemm_geom(g, sibling.map(|s| s.c_out))),
        Kernel::Linear(LinearKernel::Forward { g, .. }) => 2 * (g.n * g.d_in * g.d_out) as u64,
        Kernel::Linear(LinearKernel::Backward { g, dx, dw, .. }) => 2 * (g.n * g.d_in * g.d_out) as u64 * (dx.is_some() as u64 + dw.is_some() as u64),
        _ => 0,
    }
}

/// The statistics as a short table.
pub fn print_table(s: &PlanStats) {
    println!("plan statistics ({} plan, batch {}): {}", s.device, s.batch, s.arch);
    println!("  launches per step   full {:>8}   frozen {:>8}", s.launches_full, s.launches_frozen);
    println!("  bytes (model)       full {:>8.2e}   frozen {:>8.2e}", s.planned_bytes_full as f64, s.planned_bytes_frozen as f64);
    println!("  flops (model)       full {:>8.2e}   frozen {:>8.2e}", s.flops_full as f64, s.flops_frozen as f64);
    for r in &s.kernels {
        println!("  {:<30}{:>6}{:>8}", r.kernel, r.full, r.frozen);
    }
    println!("  bytes (model) per op");
    for r in &s.bytes_by_op {
        println!("  {:<30}{:>10.2e}{:>10.2e}", r.kernel, r.full as f64, r.frozen as f64);
    }
}
