//! `fear rank`: rank architectures by FEAR on a dataset, one results line per architecture.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::data::{Dataset, Method};
use crate::engine::{AnyDevice, Device};
use crate::net::NetConfig;
use crate::rank::{FearConfig, FearOutcome};
use crate::run::{fear_one, FearRun, Progress};
use crate::schema::{RankRecord, RunContext};
use crate::space::Arch;

use super::args::RunArgs;

#[derive(Args, Debug)]
pub struct RankArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Results (JSON Lines, appended as each architecture finishes; rerun to resume).
    #[arg(value_parser = crate::util::path_arg, long, default_value = "fear-rank.jsonl")]
    pub out: PathBuf,
    #[command(flatten)]
    pub fear: FearArgs,
    /// PROXY:FRACTION (e.g. az_nas:0.1): score every architecture by the zero-cost proxy, run
    /// FEAR only on its top FRACTION, and rank those by FEAR above the rest by the proxy. The
    /// proxy scores go to OUT's sibling `<OUT stem>.proxy.jsonl` (a zero-cost file) as they come:
    /// a rerun after an interruption scores only the architectures not there yet.
    #[arg(long, value_parser = super::shortlist::parse_shortlist)]
    pub shortlist: Option<(String, f64)>,
}

/// FEAR's own flags (shared with `fear search`).
#[derive(Args, Debug)]
pub struct FearArgs {
    /// Stage-1 training-accuracy threshold, in (0, 1] (default per dataset: CIFAR-10 0.6,
    /// CIFAR-100 0.3, ImageNet16-120 0.2, Synthetic CIFAR-10 0.15).
    #[arg(long, value_parser = threshold_arg, allow_negative_numbers = true)]
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
}

/// `--threshold`: a training accuracy FEAR's stage 1 can reach, in (0, 1]. Outside it a run
/// stops at once (<= 0) or trains every architecture to the epoch cap (> 1).
fn threshold_arg(s: &str) -> Result<f64, String> {
    let t: f64 = s.trim().parse().map_err(|_| format!("expected a number in (0, 1], not {s:?}"))?;
    if t > 0.0 && t <= 1.0 {
        Ok(t)
    } else {
        Err(format!("{t} is outside (0, 1]: the threshold is a training accuracy stage 1 must reach"))
    }
}

/// The fields that must agree between a results file and a run that appends to it.
const CONFIG_FIELDS: [&str; 7] = ["dataset", "seed", "threshold", "channels", "cells_per_stage", "recipe", "precision"];

pub fn run(args: RankArgs) -> Result<()> {
    if let Some((proxy, fraction)) = &args.shortlist {
        return super::shortlist::run(&args, proxy, *fraction);
    }
    let prepared = args.run.prepare(&args.out)?;
    let (data, net) = (&prepared.data, &prepared.net);
    let cfg = fear_config(&args.fear, &args.run, data, net, Method::Fear);
    warn_if_stage2_trains_no_cell(net);
    let config = serde_json::json!({"dataset": data.name, "seed": args.run.select.seed, "threshold": cfg.threshold, "channels": net.c, "cells_per_stage": net.n, "recipe": cfg.recipe, "precision": cfg.precision.name()});
    prepared.run_all(&config, &CONFIG_FIELDS, |arch, data, net, dev, bar| rank_one(arch, data, net, dev, &cfg, args.run.select.seed, bar))?;
    if args.run.select.is_demo() {
        eprintln!("{}", super::args::DEMO_CAVEAT);
    }
    Ok(())
}

/// Stage 2 trains the last N-1 cells: at N=1 none, only `lastact` and the classifier.
pub(crate) fn warn_if_stage2_trains_no_cell(net: &NetConfig) {
    if net.n < 2 {
        eprintln!(
            "warning: --cells-per-stage 1: stage 2 trains no cell, only lastact and the classifier \
                   (a linear probe on frozen features, not FEAR); use --cells-per-stage 2 or more"
        );
    }
}

/// FEAR's settings for a run of `method` (`fear rank`'s or random search's): the dataset's
/// defaults (README, "FEAR, step by step"), then the flags.
pub(crate) fn fear_config(args: &FearArgs, run: &RunArgs, data: &Dataset, net: &NetConfig, method: Method) -> FearConfig {
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
    cfg.lr = run.lr;
    cfg.grad_clip = run.grad_clip();
    cfg.recipe = run.select.recipe;
    cfg.cutout = run.cutout(data, method);
    cfg.precision = run.precision.into();
    cfg
}

/// FEAR on one architecture, on `dev`, as its results line.
pub(crate) fn rank_one(arch: &Arch, data: &Dataset, net: &NetConfig, dev: &AnyDevice, cfg: &FearConfig, seed: u64, bar: &Progress) -> Result<RankRecord> {
    let FearRun { outcome, reason } = fear_one(arch, data, net, dev, cfg, seed, bar)?;
    Ok(RankRecord::new(arch, &outcome, reason, cfg, data, net, dev.name(), seed))
}

impl RankRecord {
    /// The results line of FEAR's `outcome` on `arch`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        arch: &Arch,
        outcome: &FearOutcome,
        reason: Option<String>,
        cfg: &FearConfig,
        data: &Dataset,
        net: &NetConfig,
        device: String,
        seed: u64,
    ) -> RankRecord {
        RankRecord {
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
            run: RunContext::new(&data.name, net, cfg.recipe, cfg.cutout, cfg.precision, device, seed),
        }
    }
}
