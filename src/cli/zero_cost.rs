//! `fear zero-cost`: score architectures by zero-cost proxies (README, "Zero-cost proxies"), one
//! results line per architecture, resumable and shardable like `fear rank`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::data::{Batcher, Dataset, Method};
use crate::engine::{AnyDevice, Cpu, Device};
use crate::net::NetConfig;
use crate::rank::zero_cost::parse_proxies;
use crate::rank::zero_cost::score::{score_arch_on, ProxyBatch, ProxyScore, Weights};
use crate::rank::zero_cost::trained::trained_weights;
use crate::schema::{LineHead, Status, ZeroCostConfig, ZeroCostRecord};
use crate::space::Arch;

use crate::run::{forget_new_results, open_results, Runner};

use super::args::SelectArgs;
use super::UsageError;

#[derive(Args, Debug)]
// Without --dataset the data-free proxies need no data at all: the shared help would mislead.
#[command(mut_arg("dataset", |a| a.help(DATASET_HELP)))]
pub struct ZeroCostArgs {
    /// Proxies: a comma list of synflow, synflow_bn, snip, grasp, fisher, grad_norm, jacob_cov,
    /// naswot, params, flops, az_nas (= az_expressivity, az_progressivity, az_trainability and
    /// flops), meco, zico, swap; or `all`.
    #[arg(long)]
    pub proxy: String,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Images in the one augmented training batch the data proxies read.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Device: cpu, auto (= cpu), cuda, cuda:N or emulated: the networks of every proxy run
    /// there, except synflow, synflow_bn and grasp (float64, always on the CPU).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Results (JSON Lines, appended as architectures finish; rerun to resume).
    #[arg(value_parser = crate::util::path_arg, long, default_value = "fear-zero-cost.jsonl")]
    pub out: PathBuf,
    /// Score the network after E epochs of regular training (the NATS-Bench recipe, batch 256) instead
    /// of at initialisation.
    #[arg(long, default_value_t = 0)]
    pub trained_epochs: usize,
    /// Network channels C.
    #[arg(long, default_value_t = 16)]
    pub channels: usize,
    /// Cells per stage N.
    #[arg(long, default_value_t = 5)]
    pub cells_per_stage: usize,
}

const DATASET_HELP: &str = "Dataset of the training batch: synthetic-cifar10, cifar10:DIR, cifar100:DIR, folder:DIR \
    or imagenet16:DIR. synflow, synflow_bn, params and flops need none (a 10-class 32x32 network); without it the other \
    proxies use the demo's small Synthetic CIFAR-10";

/// The fields that must agree between a results file and a run that appends to it (also the
/// proxy file of `rank --shortlist`).
pub(crate) const CONFIG_FIELDS: [&str; 8] = ["proxies", "dataset", "seed", "batch", "trained_epochs", "channels", "cells_per_stage", "recipe"];

pub fn run(args: ZeroCostArgs) -> Result<()> {
    let usage = |m: String| anyhow::Error::from(UsageError(m));
    let proxies = parse_proxies(&args.proxy).map_err(|e| usage(format!("--proxy: {e}")))?;
    let archs = args.select.archs()?;
    let dev = zero_cost_device(&args.device)?;
    if args.batch == 0 || args.channels == 0 || args.cells_per_stage == 0 {
        return Err(usage("--batch, --channels and --cells-per-stage must be positive".into()));
    }
    args.select.set_threads()?;
    let existed = args.out.exists();
    let (results, todo) = open_results(&args.out, &archs)?;
    let needs_data = proxies.iter().any(|p| p.needs_data()) || args.trained_epochs > 0;
    let data = if needs_data || !args.select.is_demo() { Some(load_data(&args.select).inspect_err(|_| forget_new_results(&args.out, existed))?) } else { None };
    let net = NetConfig {
        c: args.channels,
        n: args.cells_per_stage,
        classes: data.as_ref().map_or(10, |d| d.classes),
        image_size: data.as_ref().map_or(32, |d| d.image_size),
    };
    let names: Vec<&str> = proxies.iter().map(|p| p.name()).collect();
    let zero_cost_config = ZeroCostConfig {
        proxies: names.join(","),
        dataset: data.as_ref().map(|d| d.name.clone()),
        seed: args.select.seed,
        batch: args.batch,
        trained_epochs: args.trained_epochs,
        channels: net.c,
        cells_per_stage: net.n,
        recipe: args.select.recipe,
    };
    let config = serde_json::to_value(&zero_cost_config)?;
    let device = dev.name();
    let on_cpu = matches!(dev, AnyDevice::Cpu(_));
    let batcher = needs_data.then(|| {
        let data = data.as_ref().unwrap();
        Batcher::train(&data.train, args.select.recipe.train_augment(data, Method::ZeroCost), args.batch, args.select.seed, 0)
    });
    let b = batcher.as_ref().map(|batcher| batcher.batch(0));
    if let Some(b) = b.as_ref().filter(|b| b.len < args.batch) {
        eprintln!("note: the training split has {} images; the batch holds all of them", b.len);
    }
    let batch = b.as_ref().map(|b| ProxyBatch { images: &b.images, labels: &b.labels });
    // Without data each architecture is a small single-image network, so on the CPU one worker
    // per thread scores architectures side by side rather than each op over the threads. (On a
    // GPU, and with data, one at a time: the device or the ops use the parallelism.)
    let workers = if on_cpu && !needs_data { rayon::current_num_threads() } else { 1 };
    let scored = todo.len();
    let runner = Runner { todo, results, devices: vec![dev.clone(); workers], force: args.select.force };
    let started = Instant::now();
    let results = runner.run(&config, &CONFIG_FIELDS, |arch, dev, bar| {
        bar.set_message(format!("arch {}", arch.index()));
        let weights = match &data {
            Some(data) if args.trained_epochs > 0 => {
                let aug = args.select.recipe.train_augment(data, Method::ZeroCost);
                trained_weights(arch, &net, data, aug, args.trained_epochs, args.select.seed)?
            }
            _ => Weights::Init(args.select.seed),
        };
        let scores = score_arch_on::<f32, AnyDevice>(dev, arch, &net, &proxies, batch.as_ref(), &weights)?;
        let line = ZeroCostRecord::new(arch, &scores, &zero_cost_config, &device);
        bar.println(summary(&line, &names));
        Ok(line)
    })?;
    print_scores(&results.lines, &names);
    eprintln!("{} architectures scored in {:.1}s; results: {}", scored, started.elapsed().as_secs_f64(), args.out.display());
    Ok(())
}

impl ZeroCostRecord {
    /// The results line of `arch`'s proxy `scores` (a non-finite value written as null).
    pub fn new(arch: &Arch, scores: &[ProxyScore], config: &ZeroCostConfig, device: &str) -> ZeroCostRecord {
        let mut by_name = BTreeMap::new();
        for s in scores {
            by_name.insert(s.proxy.name().to_string(), Some(s.score).filter(|v| v.is_finite()));
            by_name.insert(format!("{}_time_s", s.proxy.name()), Some(s.seconds).filter(|v| v.is_finite()));
        }
        ZeroCostRecord {
            index: arch.index(),
            arch: arch.to_string(),
            status: if arch.is_connected() { Status::Ok } else { Status::Disconnected },
            scores: by_name,
            config: config.clone(),
            device: device.to_string(),
        }
    }
}

/// A finished architecture's progress line: index, status, each proxy's score, the time.
fn summary(line: &ZeroCostRecord, names: &[&str]) -> String {
    let score = |key: &str| line.scores.get(key).copied().flatten();
    let time: f64 = names.iter().filter_map(|n| score(&format!("{n}_time_s"))).sum();
    let scores: Vec<String> = names.iter().map(|n| format!("{n} {}", score_text(score(n)))).collect();
    format!("arch {:>5}  {:<12} {}  time {time:.2}s", line.index, line.status.name(), scores.join("  "))
}

fn score_text(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.4e}"))
}

/// The scores of every line of the results file, best first by the first proxy (higher is
/// better for every proxy); lines without that score (failed) last.
fn print_scores(lines: &[Value], names: &[&str]) {
    let Some(first) = names.first() else { return };
    // A proxy's score is the line's field of that name (the record's flattened scores).
    let number = |v: &Value, n: &str| v.get(n).and_then(Value::as_f64);
    let score = |v: &Value| number(v, first).unwrap_or(f64::NEG_INFINITY);
    let mut rows: Vec<&Value> = lines.iter().collect();
    rows.sort_by(|a, b| score(b).total_cmp(&score(a)));
    println!("zero-cost scores (higher is better), ranked by {first}:");
    let header: String = names.iter().map(|n| format!("  {n:>11}")).collect();
    println!("{:>4}  {:>5}  {:<12}{header}  arch", "rank", "index", "status");
    for (i, v) in rows.iter().enumerate() {
        let cells: String = names.iter().map(|n| format!("  {:>11}", score_text(number(v, n)))).collect();
        let head = LineHead::of(v).unwrap_or_default();
        println!("{:>4}  {:>5}  {:<12}{cells}  {}", i + 1, head.index, head.status().name(), head.arch.as_deref().unwrap_or("?"));
    }
}

/// Loads `--dataset` (the demo's small Synthetic CIFAR-10 without one).
fn load_data(select: &SelectArgs) -> Result<Dataset> {
    if select.is_demo() {
        eprintln!("no --dataset given: the data proxies read the demo's Synthetic CIFAR-10 (50 images per class)");
    }
    select.load(&select.dataset_spec()?)
}

/// The device the networks run on: `auto` is the CPU (synflow needs float64 and the CPU
/// path scores several architectures at once); a GPU only when asked for, the first of a list.
fn zero_cost_device(device: &str) -> Result<AnyDevice> {
    match crate::run::device::parse_device(device)? {
        crate::run::device::DeviceSpec::Cpu | crate::run::device::DeviceSpec::Auto => Ok(AnyDevice::Cpu(Cpu)),
        _ => Ok(crate::run::device::open_devices(device)?.remove(0)),
    }
}
