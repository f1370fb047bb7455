//! `fear search`: random search with FEAR or shortreg in its inner loop (the FEAR paper's random
//! search), written as a resumable JSON Lines trajectory.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::eval::{GroundTruth, GROUND_TRUTH_COLUMNS};
use crate::rank::search::{Candidate, SearchState};
use crate::schema::{RankRecord, SearchProgress, SearchRecord};
use crate::space::{parse_arch_list, Arch, NUM_ARCHS};

use super::args::RunArgs;
use super::rank::{fear_config, warn_if_stage2_trains_no_cell, FearArgs};
use super::shortreg::shortreg_one;
use super::UsageError;

#[derive(Args, Debug)]
// The search draws its own architectures: `--archs` and `--shard` do not apply.
#[command(mut_arg("archs", |a| a.hide(true)), mut_arg("shard", |a| a.hide(true)))]
pub struct SearchArgs {
    /// The ranker in the inner loop.
    #[arg(long, value_parser = ["fear", "shortreg"])]
    pub method: String,
    /// Architectures to evaluate, drawn uniformly without replacement (from `--seed`).
    #[arg(long, default_value_t = 500)]
    pub archs_budget: usize,
    /// FEAR: cut a candidate's stage 1 off once it runs longer than this many times the fastest
    /// time to threshold seen so far.
    #[arg(long, default_value_t = 4.0)]
    pub cutoff_ratio: f64,
    /// Add each candidate's and the best one's ground truth to the trajectory: from the built-in
    /// NATS-Bench table (the flag alone) or from the CSV named.
    #[arg(value_parser = crate::util::path_arg, long, num_args = 0..=1, default_missing_value = "", value_name = "CSV")]
    pub ground_truth: Option<PathBuf>,
    /// Ground-truth column (default: the dataset's own; needed for other datasets).
    #[arg(long, value_parser = GROUND_TRUTH_COLUMNS)]
    pub ground_truth_column: Option<String>,
    /// shortreg: E, the epochs to train.
    #[arg(long, required_if_eq("method", "shortreg"))]
    pub epochs: Option<usize>,
    /// shortreg: B, the batch size.
    #[arg(long, required_if_eq("method", "shortreg"))]
    pub batch: Option<usize>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub fear: FearArgs,
    /// The trajectory (JSON Lines, one line per architecture evaluated; rerun to resume).
    #[arg(value_parser = crate::util::path_arg, long, default_value = "fear-search.jsonl")]
    pub out: PathBuf,
}

/// The fields that must agree between a trajectory and a run that appends to it.
const CONFIG_FIELDS: [&str; 14] = [
    "method",
    "dataset",
    "seed",
    "archs_budget",
    "cutoff_ratio",
    "threshold",
    "stage2_batch",
    "stage2_epochs",
    "epochs",
    "batch",
    "channels",
    "cells_per_stage",
    "recipe",
    "precision",
];

pub fn run(args: SearchArgs) -> Result<()> {
    check_args(&args)?;
    let truth = read_ground_truth(&args)?;
    let archs = parse_arch_list(&format!("sample:{}", args.archs_budget), args.run.select.seed).map_err(|e| UsageError(e.to_string()))?;
    let mut prepared = args.run.prepare_archs(archs, &args.out)?;
    // Random search is sequential: each candidate's cut-off depends on the ones before it.
    prepared.devices.truncate(1);
    let state = SearchState::replay(&prepared.results.lines);
    if state.evaluated > 0 && !prepared.todo.is_empty() {
        eprintln!("{}: resuming after {} architectures, {:.1} s of search", args.out.display(), state.evaluated, state.search_time_s);
    }
    let (data, net) = (&prepared.data, &prepared.net);
    let seed = args.run.select.seed;
    let state = Mutex::new(state);
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let truth_of = |index: usize| truth.as_ref().and_then(|t| t.get(index));
    let step = |state: &SearchState, c: &Candidate, cutoff_s: Option<f64>| SearchProgress {
        evaluated: state.evaluated,
        search_time_s: state.search_time_s,
        best_index: state.best.map(|b| b.index),
        best_arch: state.best.map(|b| Arch::from_index(b.index).expect("an index in range").to_string()),
        best_score: state.best.map(|b| b.score),
        ground_truth: truth_of(c.index),
        best_ground_truth: state.best.and_then(|b| truth_of(b.index)),
        cutoff_s,
        search_score: c.score,
    };
    match args.method.as_str() {
        "fear" => {
            let cfg = fear_config(&args.fear, &args.run, data, net, crate::data::Method::SearchFear);
            warn_if_stage2_trains_no_cell(net);
            let config = serde_json::json!({"method": "fear", "dataset": data.name, "seed": seed, "archs_budget": args.archs_budget,
                "cutoff_ratio": args.cutoff_ratio, "threshold": cfg.threshold, "stage2_batch": cfg.stage2_batch, "stage2_epochs": cfg.stage2_epochs,
                "channels": net.c, "cells_per_stage": net.n, "recipe": cfg.recipe, "precision": cfg.precision.name()});
            prepared.run_all(&config, &CONFIG_FIELDS, |arch, data, net, dev, bar| {
                let cutoff_s = lock().cutoff_s(args.cutoff_ratio);
                let cfg = crate::rank::FearConfig { stage1_time_budget_s: cutoff_s, ..cfg.clone() };
                let crate::run::FearRun { outcome, reason } = crate::run::fear_one(arch, data, net, dev, &cfg, seed, bar)?;
                let ok = outcome.status == crate::rank::Status::Ok;
                let candidate = Candidate {
                    index: arch.index(),
                    // As the paper's search ran it: in random search FEAR's score is its best
                    // stage-2 epoch.
                    score: outcome.best_stage2_acc.filter(|_| ok),
                    time_s: outcome.time_s,
                    time_to_threshold_s: outcome.reached_threshold.then_some(outcome.stage1_s),
                };
                let record = RankRecord::new(arch, &outcome, reason, &cfg, data, net, crate::engine::Device::<f32>::name(dev), seed);
                let mut state = lock();
                state.observe(&candidate);
                let p = step(&state, &candidate, cutoff_s);
                Ok(p.record(record, "fear", &args, Some(&cfg)))
            })?;
        }
        _ => {
            let cfg = args.run.shortreg_config(args.epochs.expect("clap requires it"), args.batch.expect("clap requires it"), data);
            let config = serde_json::json!({"method": "shortreg", "dataset": data.name, "seed": seed, "archs_budget": args.archs_budget,
                "cutoff_ratio": null, "stage2_batch": null, "stage2_epochs": null,
                "epochs": cfg.epochs, "batch": cfg.batch, "channels": net.c, "cells_per_stage": net.n, "recipe": cfg.recipe, "precision": cfg.precision.name()});
            prepared.run_all(&config, &CONFIG_FIELDS, |arch, data, net, dev, bar| {
                let record = shortreg_one(arch, data, net, dev, &cfg, seed, bar)?;
                let candidate = Candidate { index: record.index, score: record.score, time_s: record.time_s, time_to_threshold_s: None };
                let mut state = lock();
                state.observe(&candidate);
                let p = step(&state, &candidate, None);
                Ok(p.record(record, "shortreg", &args, None))
            })?;
        }
    }
    print_summary(&lock(), truth.as_ref());
    Ok(())
}

impl SearchProgress {
    fn record<R: Serialize>(self, candidate: R, method: &'static str, args: &SearchArgs, fear: Option<&crate::rank::FearConfig>) -> SearchRecord<R> {
        SearchRecord {
            candidate,
            method,
            archs_budget: args.archs_budget,
            cutoff_ratio: fear.map(|_| args.cutoff_ratio),
            stage2_batch: fear.map(|c| c.stage2_batch),
            stage2_epochs: fear.map(|c| c.stage2_epochs),
            progress: self,
        }
    }
}

fn check_args(args: &SearchArgs) -> Result<()> {
    if args.run.select.archs.is_some() || args.run.select.shard.is_some() {
        return Err(UsageError("fear search draws its own architectures: use --archs-budget (and --seed), not --archs or --shard".into()).into());
    }
    if !(1..=NUM_ARCHS).contains(&args.archs_budget) {
        return Err(UsageError(format!("--archs-budget {}: expected 1..={NUM_ARCHS}", args.archs_budget)).into());
    }
    if !(args.cutoff_ratio.is_finite() && args.cutoff_ratio >= 1.0) {
        return Err(UsageError(format!("--cutoff-ratio {}: expected a number >= 1", args.cutoff_ratio)).into());
    }
    if args.epochs == Some(0) || args.batch == Some(0) {
        return Err(UsageError("--epochs and --batch must be positive".into()).into());
    }
    if args.method == "fear" && (args.epochs.is_some() || args.batch.is_some()) {
        return Err(UsageError("--epochs and --batch are shortreg's: with --method fear use --stage2-epochs, --stage1-batch, --stage2-batch".into()).into());
    }
    Ok(())
}

/// The ground truth of `--ground-truth`, in the dataset's column unless one is named.
fn read_ground_truth(args: &SearchArgs) -> Result<Option<GroundTruth>> {
    let Some(path) = &args.ground_truth else {
        if args.ground_truth_column.is_some() {
            return Err(UsageError("--ground-truth-column needs --ground-truth".into()).into());
        }
        return Ok(None);
    };
    let dataset = args.run.select.dataset.as_deref().unwrap_or("synthetic-cifar10");
    let inferred = args.run.select.dataset_spec()?.kind().ground_truth_column();
    let Some(column) = args.ground_truth_column.as_deref().or(inferred) else {
        return Err(UsageError(format!("NATS-Bench has no ground truth for dataset {dataset}: name one with --ground-truth-column")).into());
    };
    // The flag alone (an empty value) means the built-in table.
    let path = Some(path.as_path()).filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = path.filter(|p| !p.is_file()) {
        return Err(UsageError(format!("--ground-truth {}: no such file", p.display())).into());
    }
    Ok(Some(GroundTruth::read_or_builtin(path, column)?))
}

fn print_summary(state: &SearchState, truth: Option<&GroundTruth>) {
    let Some(best) = state.best else {
        eprintln!("search: {} architectures in {:.1} s, none finished", state.evaluated, state.search_time_s);
        return;
    };
    let gt = truth.and_then(|t| t.get(best.index)).map_or(String::new(), |g| format!(", ground truth {g:.2}"));
    eprintln!(
        "search: best {} {} (score {:.4}{gt}) after {} architectures in {:.1} s",
        best.index,
        Arch::from_index(best.index).expect("in range"),
        best.score,
        state.evaluated,
        state.search_time_s
    );
}
