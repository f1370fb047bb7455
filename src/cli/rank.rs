//! `fear rank`: rank architectures by FEAR on a dataset, one results line per architecture.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::data::{Dataset, DatasetSpec, LoadOptions};
use crate::engine::{Cpu, Device, PlanOptions, Session};
use crate::net::{tiny_network, NetConfig};
use crate::rank::results::ResultsFile;
use crate::rank::{run_fear, FearConfig, FearOutcome, Status};
use crate::space::{parse_arch_list, Arch};

use super::UsageError;

/// The architectures `fear rank` ranks when none are named: a spread of NATS-Bench cells from
/// strong (1, 6111) to weak (15624, an all-1x1 cell).
pub const DEFAULT_ARCHS: &str = "1,6111,123,15624";

#[derive(Args, Debug)]
pub struct RankArgs {
    /// Dataset: synthetic-cifar10, cifar10:DIR, cifar100:DIR, folder:DIR or imagenet16:DIR.
    /// Without it, `fear rank` runs the built-in demo: a small Synthetic CIFAR-10 (50 images per
    /// class) and a reduced network (C=8, N=2), so it finishes in minutes on a CPU.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Synthetic CIFAR-10 training images per class (default 5000, the paper's set; 50 in the demo).
    #[arg(long)]
    pub synthetic_size: Option<usize>,
    /// Where generated data is cached.
    #[arg(long, default_value = "data-cache")]
    pub cache_dir: PathBuf,
    /// Architectures: `all`, `sample:N`, `file:PATH`, or a comma list of indices / arch strings.
    #[arg(long, default_value = DEFAULT_ARCHS)]
    pub archs: String,
    /// Device: cpu, cuda[:N] or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Results (JSON Lines, appended as each architecture finishes; rerun to resume).
    #[arg(long, default_value = "fear-rank.jsonl")]
    pub out: PathBuf,
    /// Seed of initialisation, shuffling, augmentation and `sample:N`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Take every N-th architecture starting at K (`K/N`, 0-based); defaults to
    /// SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when those are set.
    #[arg(long)]
    pub shard: Option<String>,
    /// Stage-1 training-accuracy threshold (default per dataset: SPEC 4).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Stage-1 batch size (default 256; on a tiny dataset capped so an epoch has 8 steps).
    #[arg(long)]
    pub stage1_batch: Option<usize>,
    /// Give up stage 1 after this many epochs.
    #[arg(long, default_value_t = 200)]
    pub max_stage1_epochs: usize,
    /// Stage-2 batch size (default per dataset; on a tiny dataset capped so an epoch has 4 steps).
    #[arg(long)]
    pub stage2_batch: Option<usize>,
    /// Stage-2 epochs (default per dataset).
    #[arg(long)]
    pub stage2_epochs: Option<usize>,
    /// Learning rate of both stages.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Global gradient-norm clip (0 = none).
    #[arg(long, default_value_t = 5.0)]
    pub grad_clip: f64,
    /// Cutout side (0 = none).
    #[arg(long, default_value_t = 0)]
    pub cutout: usize,
    /// Network channels C (default 16, NATS-Bench's; 8 in the demo).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Cells per stage N (default 5, NATS-Bench's; 2 in the demo). Stage 2 trains the last N-1
    /// cells (cells 13-16 at N=5), `lastact` and the classifier.
    #[arg(long)]
    pub cells_per_stage: Option<usize>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// One results line.
#[derive(Serialize, Debug)]
pub struct RankRecord {
    pub index: usize,
    pub arch: String,
    pub status: Status,
    /// Why the status is not ok, when there is more to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub score: Option<f64>,
    pub reached_threshold: bool,
    pub stage1_epochs: usize,
    pub stage1_s: f64,
    pub stage2_s: f64,
    pub time_s: f64,
    pub stage1_acc: Vec<f64>,
    pub stage2_acc: Vec<f64>,
    pub threshold: f64,
    pub dataset: String,
    /// Network channels C and cells per stage N.
    pub channels: usize,
    pub cells_per_stage: usize,
    pub device: String,
    pub seed: u64,
}

/// The fields that must agree between a results file and a run that appends to it.
const CONFIG_FIELDS: [&str; 5] = ["dataset", "seed", "threshold", "channels", "cells_per_stage"];

/// Refuses to append to a results file written under another configuration.
fn check_same_config(results: &ResultsFile, now: &serde_json::Value) -> Result<()> {
    for line in &results.lines {
        for key in CONFIG_FIELDS {
            if line.get(key) != now.get(key) {
                anyhow::bail!(
                    "{} holds results with {key} = {}, but this run has {key} = {}: use another --out",
                    results.path().display(), line.get(key).unwrap_or(&serde_json::Value::Null), now[key]
                );
            }
        }
    }
    Ok(())
}

pub fn run(args: RankArgs) -> Result<()> {
    let demo = args.dataset.is_none();
    if demo {
        eprintln!("no --dataset given: running the built-in demo (Synthetic CIFAR-10, 50 images per class, network C=8 N=2); \
                   `fear rank --help` shows how to rank on real data with NATS-Bench's network");
    }
    let spec: DatasetSpec = args.dataset.as_deref().unwrap_or("synthetic-cifar10").parse()
        .map_err(|e: anyhow::Error| UsageError(e.to_string()))?;
    let archs = parse_arch_list(&args.archs, args.seed).map_err(|e| UsageError(e.to_string()))?;
    let archs = shard(archs, args.shard.as_deref())?;
    super::check_cpu_device(&args.device)?;
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global()?;
    }
    let mut results = ResultsFile::open(&args.out)?;
    let todo: Vec<Arch> = archs.iter().copied().filter(|a| !results.done.contains(&a.index())).collect();
    if todo.len() < archs.len() {
        eprintln!("{}: {} of {} architectures already done; resuming", args.out.display(), archs.len() - todo.len(), archs.len());
    }
    let started = Instant::now();
    let mut opts = LoadOptions { cache_dir: args.cache_dir.clone(), ..LoadOptions::default() };
    opts.synthetic_size = args.synthetic_size.unwrap_or(if demo { 50 } else { opts.synthetic_size });
    let data = spec.load(&opts).with_context(|| format!("loading {spec}"))?;
    eprintln!("{}: {} training images, {} classes, {}x{} (loaded in {:.1}s)", data.name, data.train.len(), data.classes, data.image_size, data.image_size, started.elapsed().as_secs_f64());
    let net = NetConfig {
        c: args.channels.unwrap_or(if demo { 8 } else { 16 }),
        n: args.cells_per_stage.unwrap_or(if demo { 2 } else { 5 }),
        classes: data.classes,
        image_size: data.image_size,
    };
    if net.c == 0 || net.n == 0 {
        return Err(UsageError("--channels and --cells-per-stage must be positive".into()).into());
    }
    let cfg = fear_config(&args, &data, &net);
    let config = serde_json::json!({"dataset": data.name, "seed": args.seed, "threshold": cfg.threshold, "channels": net.c, "cells_per_stage": net.n});
    check_same_config(&results, &config)?;
    let bar = progress_bar(todo.len());
    for arch in todo {
        let record = rank_one(&arch, &data, &net, &cfg, &args, &bar)?;
        results.append(&record)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    print_ranking(&results.lines);
    eprintln!("results: {}", args.out.display());
    Ok(())
}

fn fear_config(args: &RankArgs, data: &Dataset, net: &NetConfig) -> FearConfig {
    let mut cfg = FearConfig::for_dataset(&data.name);
    cfg.stage2_cells = net.n - 1;
    if let Some(t) = args.threshold {
        cfg.threshold = t;
    }
    // The paper's batch sizes assume tens of thousands of images; on a tiny set (the built-in
    // demo) they would leave one or two steps per epoch, so they are capped unless given.
    let n = data.train.len().max(1);
    cfg.stage1_batch = args.stage1_batch.unwrap_or(cfg.stage1_batch.min(n.div_ceil(8)));
    cfg.stage2_batch = args.stage2_batch.unwrap_or(cfg.stage2_batch.min(n.div_ceil(4)));
    if let Some(e) = args.stage2_epochs {
        cfg.stage2_epochs = e;
    }
    cfg.max_stage1_epochs = args.max_stage1_epochs;
    cfg.lr = args.lr;
    cfg.grad_clip = (args.grad_clip > 0.0).then_some(args.grad_clip);
    cfg.cutout = args.cutout;
    cfg
}

/// FEAR on one architecture, on the CPU.
fn rank_one(arch: &Arch, data: &Dataset, net: &NetConfig, cfg: &FearConfig, args: &RankArgs, bar: &ProgressBar) -> Result<RankRecord> {
    let device = Device::<f32>::name(&Cpu);
    let majority = data.train.class_counts(data.classes).into_iter().max().unwrap_or(0) as f64 / data.train.len().max(1) as f64;
    let (outcome, reason) = if !arch.is_connected() && cfg.threshold > majority {
        // The output ignores the input, so no training can beat the largest class's share.
        (FearOutcome::skipped(), Some(format!("disconnected cell: accuracy cannot exceed the largest class share {majority:.3}")))
    } else {
        let (a, n) = (*arch, *net);
        let mut session: Session<f32, Cpu> = Session::new(Cpu, Box::new(move |b| tiny_network(&a, &n, b)), cfg.stage1_batch, PlanOptions::default())?;
        session.init_params(args.seed)?;
        let mut on_progress = |p: crate::rank::FearProgress| {
            bar.set_message(format!("arch {} stage {} epoch {} step {}/{} acc {:.3}", arch.index(), p.stage, p.epoch + 1, p.step.step, p.step.steps, p.step.acc));
        };
        let outcome = run_fear(&mut session, data, net, cfg, args.seed, &mut on_progress)?;
        let reason = (outcome.status == Status::Capped).then(|| format!("threshold {} not reached in {} epochs", cfg.threshold, outcome.stage1_epochs));
        (outcome, reason)
    };
    bar.println(format!("arch {:>5}  {:<9} score {}  stage 1: {} epochs {:.1}s  stage 2: {:.1}s", arch.index(), format!("{:?}", outcome.status).to_lowercase(), outcome.score.map_or("-".into(), |s| format!("{s:.4}")), outcome.stage1_epochs, outcome.stage1_s, outcome.stage2_s));
    Ok(RankRecord {
        index: arch.index(),
        arch: arch.to_string(),
        status: outcome.status,
        reason,
        score: outcome.score,
        reached_threshold: outcome.reached_threshold,
        stage1_epochs: outcome.stage1_epochs,
        stage1_s: outcome.stage1_s,
        stage2_s: outcome.stage2_s,
        time_s: outcome.time_s,
        stage1_acc: outcome.stage1.iter().map(|r| r.train_acc).collect(),
        stage2_acc: outcome.stage2.iter().map(|r| r.train_acc).collect(),
        threshold: cfg.threshold,
        dataset: data.name.clone(),
        channels: net.c,
        cells_per_stage: net.n,
        device,
        seed: args.seed,
    })
}

/// Every N-th architecture starting at K, from `--shard K/N` or Slurm's array variables.
pub(crate) fn shard(archs: Vec<Arch>, arg: Option<&str>) -> Result<Vec<Arch>> {
    let from_env = || -> Option<String> {
        let k = std::env::var("SLURM_ARRAY_TASK_ID").ok()?;
        let n = std::env::var("SLURM_ARRAY_TASK_COUNT").ok()?;
        Some(format!("{k}/{n}"))
    };
    let Some(spec) = arg.map(str::to_string).or_else(from_env) else { return Ok(archs) };
    let bad = || UsageError(format!("--shard {spec:?}: expected K/N with 0 <= K < N"));
    let (k, n) = spec.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || k >= n {
        return Err(bad().into());
    }
    Ok(archs.into_iter().skip(k).step_by(n).collect())
}

pub(crate) fn progress_bar(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} archs  {msg}").unwrap().progress_chars("=> "));
    bar
}

/// The ranking of every line in the results file, best score first (non-ok lines last).
pub(crate) fn print_ranking(lines: &[serde_json::Value]) {
    let mut rows: Vec<&serde_json::Value> = lines.iter().collect();
    let score = |v: &serde_json::Value| v.get("score").and_then(|s| s.as_f64()).unwrap_or(f64::NEG_INFINITY);
    rows.sort_by(|a, b| score(b).total_cmp(&score(a)));
    println!("{:>4}  {:>5}  {:>8}  {:>8}  {:>9}  arch", "rank", "index", "score", "status", "time (s)");
    for (i, v) in rows.iter().enumerate() {
        println!(
            "{:>4}  {:>5}  {:>8}  {:>8}  {:>9.1}  {}",
            i + 1,
            v["index"].as_u64().map_or("?".into(), |i| i.to_string()),
            v.get("score").and_then(|s| s.as_f64()).map_or("-".into(), |s| format!("{s:.4}")),
            v["status"].as_str().unwrap_or("?"),
            v["time_s"].as_f64().unwrap_or(0.0),
            v["arch"].as_str().unwrap_or("?"),
        );
    }
}
