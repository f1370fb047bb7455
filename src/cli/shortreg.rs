//! `fear shortreg`: rank architectures by the short-training baseline (README, "shortreg"), one
//! results line per architecture, resumable and shardable like `fear rank`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::data::Dataset;
use crate::engine::{AnyDevice, Device};
use crate::net::NetConfig;
use crate::rank::ShortregConfig;
use crate::run::Progress;
use crate::schema::{RunContext, ShortregRecord};
use crate::space::Arch;

use super::args::RunArgs;
use super::UsageError;

#[derive(Args, Debug)]
pub struct ShortregArgs {
    /// E: epochs to train (the cosine schedule anneals to 0 over these E epochs).
    #[arg(long)]
    pub epochs: usize,
    /// B: batch size.
    #[arg(long)]
    pub batch: usize,
    #[command(flatten)]
    pub run: RunArgs,
    /// Results (JSON Lines, appended as each architecture finishes; rerun to resume).
    #[arg(value_parser = crate::util::path_arg, long, default_value = "fear-shortreg.jsonl")]
    pub out: PathBuf,
}

/// The fields that must agree between a results file and a run that appends to it.
const CONFIG_FIELDS: [&str; 9] = ["dataset", "seed", "epochs", "batch", "lr", "channels", "cells_per_stage", "recipe", "precision"];

pub fn run(args: ShortregArgs) -> Result<()> {
    if args.epochs == 0 || args.batch == 0 {
        return Err(UsageError("--epochs and --batch must be positive".into()).into());
    }
    let prepared = args.run.prepare(&args.out)?;
    let (data, net) = (&prepared.data, &prepared.net);
    let cfg = args.run.shortreg_config(args.epochs, args.batch, data);
    let config = serde_json::json!({"dataset": data.name, "seed": args.run.select.seed, "epochs": cfg.epochs, "batch": cfg.batch, "lr": cfg.lr, "channels": net.c, "cells_per_stage": net.n, "recipe": cfg.recipe, "precision": cfg.precision.name()});
    prepared.run_all(&config, &CONFIG_FIELDS, |arch, data, net, dev, bar| shortreg_one(arch, data, net, dev, &cfg, args.run.select.seed, bar))?;
    if args.run.select.is_demo() {
        eprintln!("{}", super::args::DEMO_CAVEAT);
    }
    Ok(())
}

/// shortreg on one architecture, on `dev`.
/// shortreg on one architecture, on `dev`, as its results line.
pub(crate) fn shortreg_one(
    arch: &Arch,
    data: &Dataset,
    net: &NetConfig,
    dev: &AnyDevice,
    cfg: &ShortregConfig,
    seed: u64,
    bar: &Progress,
) -> Result<ShortregRecord> {
    let outcome = crate::run::shortreg_one(arch, data, net, dev, cfg, seed, bar)?;
    let device = dev.name();
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
        run: RunContext::new(&data.name, net, cfg.recipe, cfg.cutout, cfg.precision, device, seed),
    })
}
