//! `fear shortreg`: rank architectures by the short-training baseline (SPEC 5), one results line
//! per architecture, resumable and shardable like `fear rank`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::ProgressBar;
use serde::Serialize;

use crate::data::{Dataset, DatasetSpec, LoadOptions};
use crate::engine::{Cpu, Device, PlanOptions, Session};
use crate::net::{tiny_network, NetConfig};
use crate::rank::results::ResultsFile;
use crate::rank::{run_shortreg, ShortregConfig, ShortregProgress, Status};
use crate::space::{parse_arch_list, Arch};

use super::rank::{print_ranking, progress_bar, shard, DEFAULT_ARCHS};
use super::UsageError;

#[derive(Args, Debug)]
pub struct ShortregArgs {
    /// E: epochs to train (the cosine schedule anneals to 0 over these E epochs).
    #[arg(long)]
    pub epochs: usize,
    /// B: batch size.
    #[arg(long)]
    pub batch: usize,
    /// Dataset: synthetic-cifar10, cifar10:DIR, cifar100:DIR, folder:DIR or imagenet16:DIR.
    /// Without it, the built-in demo data of `fear rank`: a small Synthetic CIFAR-10 (50 images
    /// per class) and a reduced network (C=8, N=2).
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
    #[arg(long, default_value = "fear-shortreg.jsonl")]
    pub out: PathBuf,
    /// Seed of initialisation, shuffling, augmentation and `sample:N`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Take every N-th architecture starting at K (`K/N`, 0-based); defaults to
    /// SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when those are set.
    #[arg(long)]
    pub shard: Option<String>,
    /// Initial learning rate.
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
    /// Cells per stage N (default 5, NATS-Bench's; 2 in the demo).
    #[arg(long)]
    pub cells_per_stage: Option<usize>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// One results line.
#[derive(Serialize, Debug)]
pub struct ShortregRecord {
    pub index: usize,
    pub arch: String,
    pub status: Status,
    /// The best epoch's training accuracy (null unless status is ok).
    pub score: Option<f64>,
    /// E and B.
    pub epochs: usize,
    pub batch: usize,
    /// Training accuracy of each epoch run.
    pub train_acc: Vec<f64>,
    pub time_s: f64,
    pub lr: f64,
    pub dataset: String,
    /// Network channels C and cells per stage N.
    pub channels: usize,
    pub cells_per_stage: usize,
    pub device: String,
    pub seed: u64,
}

/// The fields that must agree between a results file and a run that appends to it.
const CONFIG_FIELDS: [&str; 7] = ["dataset", "seed", "epochs", "batch", "lr", "channels", "cells_per_stage"];

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

pub fn run(args: ShortregArgs) -> Result<()> {
    if args.epochs == 0 || args.batch == 0 {
        return Err(UsageError("--epochs and --batch must be positive".into()).into());
    }
    let demo = args.dataset.is_none();
    if demo {
        eprintln!("no --dataset given: using the built-in demo data (Synthetic CIFAR-10, 50 images per class, network C=8 N=2)");
    }
    let spec: DatasetSpec = args.dataset.as_deref().unwrap_or("synthetic-cifar10").parse()
        .map_err(|e: anyhow::Error| UsageError(e.to_string()))?;
    let archs = parse_arch_list(&args.archs, args.seed).map_err(|e| UsageError(e.to_string()))?;
    let archs = shard(archs, args.shard.as_deref())?;
    super::check_cpu_device(&args.device)?;
    let net_c = args.channels.unwrap_or(if demo { 8 } else { 16 });
    let net_n = args.cells_per_stage.unwrap_or(if demo { 2 } else { 5 });
    if net_c == 0 || net_n == 0 {
        return Err(UsageError("--channels and --cells-per-stage must be positive".into()).into());
    }
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
    let net = NetConfig { c: net_c, n: net_n, classes: data.classes, image_size: data.image_size };
    let cfg = ShortregConfig {
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        grad_clip: (args.grad_clip > 0.0).then_some(args.grad_clip),
        cutout: args.cutout,
    };
    let config = serde_json::json!({"dataset": data.name, "seed": args.seed, "epochs": cfg.epochs, "batch": cfg.batch, "lr": cfg.lr, "channels": net.c, "cells_per_stage": net.n});
    check_same_config(&results, &config)?;
    let bar = progress_bar(todo.len());
    for arch in todo {
        let record = shortreg_one(&arch, &data, &net, &cfg, args.seed, &bar)?;
        results.append(&record)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    print_ranking(&results.lines);
    eprintln!("results: {}", args.out.display());
    Ok(())
}

/// shortreg on one architecture, on the CPU.
fn shortreg_one(arch: &Arch, data: &Dataset, net: &NetConfig, cfg: &ShortregConfig, seed: u64, bar: &ProgressBar) -> Result<ShortregRecord> {
    let device = Device::<f32>::name(&Cpu);
    let (a, n) = (*arch, *net);
    let mut session: Session<f32, Cpu> = Session::new(Cpu, Box::new(move |b| tiny_network(&a, &n, b)), cfg.batch, PlanOptions::default())?;
    session.init_params(seed)?;
    let mut on_progress = |p: ShortregProgress| {
        bar.set_message(format!("arch {} epoch {}/{} step {}/{} acc {:.3}", arch.index(), p.epoch + 1, cfg.epochs, p.step.step, p.step.steps, p.step.acc));
    };
    let outcome = run_shortreg(&mut session, data, cfg, seed, &mut on_progress)?;
    bar.println(format!("arch {:>5}  {:<9} score {}  {} epochs {:.1}s", arch.index(), format!("{:?}", outcome.status).to_lowercase(), outcome.score.map_or("-".into(), |s| format!("{s:.4}")), outcome.epochs.len(), outcome.time_s));
    Ok(ShortregRecord {
        index: arch.index(),
        arch: arch.to_string(),
        status: outcome.status,
        score: outcome.score,
        epochs: cfg.epochs,
        batch: cfg.batch,
        train_acc: outcome.epochs.iter().map(|r| r.train_acc).collect(),
        time_s: outcome.time_s,
        lr: cfg.lr,
        dataset: data.name.clone(),
        channels: net.c,
        cells_per_stage: net.n,
        device,
        seed,
    })
}
