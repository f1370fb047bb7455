//! `fear bench`: step throughput, full training versus FEAR's frozen stage 2; with
//! `--cuda-graph`, also each step replayed as a CUDA graph against the same step launched kernel
//! by kernel; with `--resident-data`, full steps fed by the data kernel from images kept on the
//! device (what training on a GPU does) beside steps fed a ready batch from the host.

use std::time::Instant;

use anyhow::{anyhow, Result};
use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::augment::Augment;
use crate::data::dataset::Normalization;
use crate::engine::kernel::Space;
use crate::engine::{AnyDevice, Device, PlanOptions, ResidentImages, Session, StepOutput};
use crate::net::{stage2_prefixes, tiny_network, NetConfig};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Where to run: cpu, cuda, cuda:N, emulated, or auto (a GPU when there is one).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Architecture (index or arch string).
    #[arg(long, default_value = "1")]
    pub arch: String,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Untimed steps before measuring.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed steps; the median is reported.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also print the time spent in each kind of kernel (full step, then frozen step).
    #[arg(long)]
    pub profile: bool,
    /// Also time the steps captured once and replayed as a CUDA graph (GPU devices, the
    /// emulated one included), beside the same steps launched kernel by kernel.
    #[arg(long)]
    pub cuda_graph: bool,
    /// Also time full steps whose batch is cropped, flipped and normalised on the device from
    /// images kept there (as `fear rank` trains on a GPU), beside steps whose ready batch is
    /// uploaded from the host (GPU devices, the emulated one included).
    #[arg(long)]
    pub resident_data: bool,
    /// Print plan statistics instead of timing: launches per full and frozen step, the launches
    /// per kernel, and modelled bytes and flops, for the step planned for `--device` (cpu, or a
    /// GPU: cuda, cuda:N, emulated; no GPU is opened). Nothing is run.
    #[arg(long)]
    pub plan_stats: bool,
    /// Plan the GPU step unfused (each ReLU, batch-norm pass and sum its own kernel): with a
    /// GPU device or --plan-stats, to see what the fused plan buys.
    #[arg(long)]
    pub no_fuse: bool,
    /// What the step computes and stores in (see `fear rank --precision`): fp32, tf32, bf16 or fp16.
    #[arg(long, value_enum, default_value_t = super::args::PrecisionArg::Fp32)]
    pub precision: super::args::PrecisionArg,
}

#[derive(Serialize, Debug)]
pub struct BenchReport {
    pub arch: String,
    pub index: usize,
    pub device: String,
    pub batch: usize,
    pub steps: usize,
    pub full_step_ms: f64,
    pub frozen_step_ms: f64,
    /// frozen_step_ms / full_step_ms.
    pub frozen_ratio: f64,
    pub full_backward_nodes: usize,
    pub frozen_backward_nodes: usize,
    pub full_saved_bytes: usize,
    pub frozen_saved_bytes: usize,
    pub full_work_bytes: usize,
    pub frozen_work_bytes: usize,
    /// Training images per second in full steps.
    pub images_per_s: f64,
    pub frozen_images_per_s: f64,
    /// With `--cuda-graph`: the full step replayed as a CUDA graph.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_graph: Option<GraphTiming>,
    /// With `--cuda-graph`: the frozen step replayed as a CUDA graph.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen_graph: Option<GraphTiming>,
    /// With `--resident-data`: a full step whose batch is augmented on the device from
    /// resident images (instead of uploaded ready from the host), launched kernel by kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_resident_step_ms: Option<f64>,
    /// Why a step could not be captured or replayed (the eager times still stand).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_error: Option<String>,
}

/// A step timed as a replayed capture.
#[derive(Serialize, Debug)]
pub struct GraphTiming {
    pub step_ms: f64,
    /// Eager step time / replayed step time.
    pub speedup: f64,
    /// Kernel launches the graph holds (one graph launch replaces them).
    pub launches: usize,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let arch = super::parse_arch_arg(&args.arch)?;
    if args.batch == 0 || args.steps == 0 {
        return Err(super::UsageError("--batch and --steps must be positive".into()).into());
    }
    if args.plan_stats {
        let device = if args.device == "auto" { "cuda" } else { args.device.as_str() };
        let stats = super::plan_stats::plan_stats(&arch, device, args.batch, !args.no_fuse, args.precision.into())?;
        if args.json {
            println!("{}", serde_json::to_string(&stats)?);
        } else {
            super::plan_stats::print_table(&stats);
        }
        return Ok(());
    }
    let device = crate::run::device::open_device(&args.device)?;
    if (args.cuda_graph || args.resident_data) && !device.is_gpu() {
        return Err(super::UsageError("--cuda-graph and --resident-data need a GPU device (cuda, cuda:N or emulated)".into()).into());
    }
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global()?;
    }
    let cfg = NetConfig::default();
    let build = Box::new(move |n| tiny_network(&arch, &cfg, n));
    let opts = PlanOptions { fuse: !args.no_fuse, ..PlanOptions::default() }.at_precision(args.precision.into())?;
    let mut session: Session<f32, AnyDevice> = Session::new(device.clone(), build, args.batch, opts)?;
    session.init_params(0)?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let images: Vec<f32> = (0..args.batch * 3 * 32 * 32).map(|_| rng.random_range(-2.0..2.0)).collect();
    let labels: Vec<u32> = (0..args.batch).map(|_| rng.random_range(0..10)).collect();

    let full = time_steps(&mut session, &images, &labels, &args, args.profile)?;
    let full_profile = session.profile();
    session.stop_profile();
    let full_resident_step_ms = if args.resident_data { Some(time_resident_steps(&mut session, &labels, &args)?) } else { None };
    let mut graph_error = None;
    let full_graph = time_graph(&mut session, &images, &labels, &args, full).unwrap_or_else(|e| {
        graph_error = Some(format!("full step: {e:#}"));
        None
    });
    let full_plan = session.program(args.batch, true)?.clone();
    let keep = stage2_prefixes(&cfg, 4);
    session.train_only(&keep);
    session.reset_momentum()?;
    let frozen = time_steps(&mut session, &images, &labels, &args, args.profile)?;
    let frozen_profile = session.profile();
    session.stop_profile();
    let frozen_graph = time_graph(&mut session, &images, &labels, &args, frozen).unwrap_or_else(|e| {
        graph_error.get_or_insert(format!("frozen step: {e:#}"));
        None
    });
    let frozen_plan = session.program(args.batch, true)?.clone();

    let report = BenchReport {
        arch: arch.to_string(),
        index: arch.index(),
        device: device.name(),
        batch: args.batch,
        steps: args.steps,
        full_step_ms: full,
        frozen_step_ms: frozen,
        frozen_ratio: frozen / full,
        full_backward_nodes: full_plan.backward_nodes,
        frozen_backward_nodes: frozen_plan.backward_nodes,
        full_saved_bytes: full_plan.saved_bytes,
        frozen_saved_bytes: frozen_plan.saved_bytes,
        full_work_bytes: work_bytes(&full_plan.layout),
        frozen_work_bytes: work_bytes(&frozen_plan.layout),
        images_per_s: args.batch as f64 / (full / 1e3),
        frozen_images_per_s: args.batch as f64 / (frozen / 1e3),
        full_graph,
        frozen_graph,
        full_resident_step_ms,
        graph_error,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    if args.profile {
        for (what, rows) in [("full", full_profile), ("frozen", frozen_profile)] {
            eprintln!("{what} step, ms per step by kernel ({}):", session.profile_clock());
            for (name, launches, secs) in rows {
                eprintln!("  {name:<24}{:>10.2}{:>8} launches", secs * 1e3 / args.steps as f64, launches / args.steps);
            }
        }
    }
    Ok(())
}

/// With `--cuda-graph`, the same steps captured and replayed, beside `eager_ms`. The capture is
/// made in the first warm-up step (or the first timed one without warm-up). Capture is off
/// again afterwards, whatever happened, so a failure here leaves the eager figures standing.
fn time_graph(session: &mut Session<f32, AnyDevice>, images: &[f32], labels: &[u32], args: &BenchArgs, eager_ms: f64) -> Result<Option<GraphTiming>> {
    if !args.cuda_graph {
        return Ok(None);
    }
    session.set_capture(true);
    let timed = time_steps(session, images, labels, args, false).and_then(|step_ms| {
        let captured = session.captured(args.batch, true, true).ok_or_else(|| anyhow!("{} made no capture", session.device().name()))?;
        Ok(GraphTiming { step_ms, speedup: eager_ms / step_ms, launches: captured.launches() })
    });
    session.set_capture(false);
    Ok(Some(timed?))
}

/// With `--resident-data`: median milliseconds of full steps whose batch (`labels.len()` random
/// images, CIFAR augmentation) the data kernel makes on the device from resident bytes.
fn time_resident_steps(session: &mut Session<f32, AnyDevice>, labels: &[u32], args: &BenchArgs) -> Result<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let bytes: Vec<u8> = (0..labels.len() * 3 * 32 * 32).map(|_| rng.random()).collect();
    let aug = Augment { size: 32, pad: 4, flip: true, cutout: 0, fill: 0, norm: Normalization::CIFAR10 };
    let device = session.device().clone();
    let mut split = device.make_resident(&bytes, &aug)?.ok_or_else(|| anyhow!("{} keeps no images", device.name()))?;
    split.set_order(&(0..labels.len() as u32).collect::<Vec<_>>())?;
    time_median(session, args, false, |s, i| s.train_step_resident(&split, 0, i as u64, 0, labels, 0.01))
}

/// Median milliseconds of `args.steps` training steps after `args.warmup` untimed ones, timing
/// each kernel too with `profile`.
fn time_steps(session: &mut Session<f32, AnyDevice>, images: &[f32], labels: &[u32], args: &BenchArgs, profile: bool) -> Result<f64> {
    time_median(session, args, profile, |s, _| s.train_step(images, labels, 0.01))
}

/// Median milliseconds of `args.steps` runs of `step` (given the step's number) after
/// `args.warmup` untimed ones, the device idle before and after each; with `profile`, the timed
/// steps also time each kernel.
fn time_median(
    session: &mut Session<f32, AnyDevice>,
    args: &BenchArgs,
    profile: bool,
    mut step: impl FnMut(&mut Session<f32, AnyDevice>, usize) -> Result<StepOutput>,
) -> Result<f64> {
    let mut times = Vec::with_capacity(args.steps);
    for i in 0..args.warmup + args.steps {
        if i == args.warmup && profile {
            session.start_profile();
        }
        session.device().synchronize()?;
        let start = Instant::now();
        step(session, i)?;
        session.device().synchronize()?;
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn print_table(r: &BenchReport) {
    println!("arch {} ({}) on {}, batch {}, median of {} steps", r.index, r.arch, r.device, r.batch, r.steps);
    println!("{:<22}{:>14}{:>18}", "", "full", "frozen (stage 2)");
    println!("{:<22}{:>14.2}{:>18.2}", "step (ms)", r.full_step_ms, r.frozen_step_ms);
    println!("{:<22}{:>14.1}{:>18.1}", "images/s", r.images_per_s, r.frozen_images_per_s);
    println!("{:<22}{:>14}{:>18}", "backward nodes", r.full_backward_nodes, r.frozen_backward_nodes);
    println!("{:<22}{:>14.1}{:>18.1}", "saved activations MB", r.full_saved_bytes as f64 / 1e6, r.frozen_saved_bytes as f64 / 1e6);
    println!("{:<22}{:>14.1}{:>18.1}", "work memory MB", r.full_work_bytes as f64 / 1e6, r.frozen_work_bytes as f64 / 1e6);
    if let Some(e) = &r.graph_error {
        println!("CUDA graph: failed: {e}");
    }
    if let (Some(f), Some(z)) = (&r.full_graph, &r.frozen_graph) {
        println!("{:<22}{:>14.2}{:>18.2}", "step, CUDA graph (ms)", f.step_ms, z.step_ms);
        println!("{:<22}{:>14.2}{:>18.2}", "graph speed-up", f.speedup, z.speedup);
        println!("{:<22}{:>14}{:>18}", "launches per graph", f.launches, z.launches);
    }
    if let Some(ms) = r.full_resident_step_ms {
        println!("{:<22}{:>14.2}", "step, resident (ms)", ms);
    }
    println!("frozen / full step time: {:.2}", r.frozen_ratio);
}

/// Bytes of a step's scratch memory as a GPU holds it: `Work` in f32, `Half` in bfloat16.
fn work_bytes(layout: &crate::engine::MemoryLayout) -> usize {
    layout.work * Space::Work.gpu_bytes() + layout.half * Space::Half.gpu_bytes()
}
