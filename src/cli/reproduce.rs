//! `fear reproduce`: the FEAR paper's experiment for one dataset in one resumable, shardable
//! command (the work is in [`crate::reproduce`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::data::Recipe;
use crate::reproduce::{grid::parse_grid, report, run_shard, Scale, Settings, Shard};

use super::UsageError;

#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Dataset: cifar10:DIR, cifar100:DIR, imagenet16:DIR, folder:DIR or synthetic-cifar10
    /// (required, except at --scale demo, whose default is Synthetic CIFAR-10).
    #[arg(long)]
    pub dataset: Option<String>,
    /// The folder of the whole job: its settings (reproduce.json), each shard's results
    /// (shards/K-of-N/), the joined results (results/), table.md, evaluation.json, figures/.
    #[arg(value_parser = crate::util::path_arg, long)]
    pub out: PathBuf,
    /// `paper` (NATS-Bench's network, 1000 sampled architectures, the full shortreg grid) or
    /// `demo` (12 architectures, C=8 N=2, 50 synthetic images per class: minutes on a CPU).
    #[arg(long, value_enum, default_value_t = Scale::Paper)]
    pub scale: Scale,
    /// Architectures (default: sample:1000 at the paper's scale, sample:12 in the demo).
    #[arg(long)]
    pub archs: Option<String>,
    /// Seed of the sample, initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device of FEAR and shortreg (the zero-cost proxies run on the CPU): cpu, cuda, cuda:N,
    /// cuda:0,1,..., emulated or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Run task K of N (`K/N`, 0-based): a share of every unit's architectures; defaults to
    /// SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when those are set. A sharded task does not
    /// write the report: `fear reproduce --report --out DIR` does once all are done.
    #[arg(long)]
    pub shard: Option<String>,
    /// Only join the shards in --out and write the report (the settings come from --out).
    #[arg(long)]
    pub report: bool,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where generated data (Synthetic CIFAR-10) is cached.
    #[arg(value_parser = crate::util::path_arg, long)]
    pub cache_dir: Option<PathBuf>,
    /// The data pipeline (README's recipe table).
    #[arg(long, value_enum, default_value_t = Recipe::Paper)]
    pub recipe: Recipe,
    /// Overrides of the scale's settings, for smaller runs: Synthetic CIFAR-10 images per class.
    #[arg(long)]
    pub synthetic_size: Option<usize>,
    /// Network channels C.
    #[arg(long)]
    pub channels: Option<usize>,
    /// Cells per stage N (at least 2: stage 2 trains the last N-1 cells).
    #[arg(long)]
    pub cells_per_stage: Option<usize>,
    /// shortreg's variants as EPOCHS:BATCH[,EPOCHS:BATCH...] (default: the paper's grid for the
    /// dataset).
    #[arg(long)]
    pub shortreg_grid: Option<String>,
    /// Zero-cost proxies (as `fear zero-cost --proxy`; default all) and their batch.
    #[arg(long)]
    pub proxies: Option<String>,
    #[arg(long)]
    pub proxy_batch: Option<usize>,
    /// FEAR's stage-1 threshold, stage-1 epoch cap and stage-2 epochs (default: `fear rank`'s).
    #[arg(long)]
    pub threshold: Option<f64>,
    #[arg(long)]
    pub max_stage1_epochs: Option<usize>,
    #[arg(long)]
    pub stage2_epochs: Option<usize>,
}

pub fn run(args: ReproduceArgs) -> Result<()> {
    let usage = |m: String| anyhow::Error::from(UsageError(m));
    let shard = Shard::parse(args.shard.as_deref()).map_err(|e| usage(e.to_string()))?;
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global()?;
    }
    if args.report {
        report(&args.out)?;
        return Ok(());
    }
    let settings = settings(&args).map_err(|e| usage(e.to_string()))?;
    settings.save_or_check(&args.out)?;
    run_shard(&settings, &args.out, shard, &args.device)?;
    if shard.is_whole() {
        report(&args.out)?;
    } else {
        eprintln!("reproduce: shard {}/{} done; once every shard is, run: fear reproduce --report --out {}", shard.k, shard.n, args.out.display());
    }
    Ok(())
}

/// The scale's settings with the flags' overrides.
fn settings(args: &ReproduceArgs) -> Result<Settings> {
    let mut s = Settings::new(args.scale, args.dataset.as_deref())?;
    s.seed = args.seed;
    s.recipe = args.recipe;
    s.cache_dir = args.cache_dir.clone();
    if let Some(a) = &args.archs {
        s.archs = a.clone();
    }
    s.synthetic_size = args.synthetic_size.or(s.synthetic_size);
    s.channels = args.channels.unwrap_or(s.channels);
    s.cells_per_stage = args.cells_per_stage.unwrap_or(s.cells_per_stage);
    if s.channels == 0 || s.cells_per_stage < 2 {
        anyhow::bail!("--channels must be positive and --cells-per-stage at least 2 (at 1 FEAR's stage 2 trains no cell)");
    }
    if let Some(g) = &args.shortreg_grid {
        s.shortreg_grid = parse_grid(g).map_err(|e| anyhow::anyhow!("--shortreg-grid: {e}"))?;
    }
    s.proxies = args.proxies.clone().unwrap_or(s.proxies);
    s.proxy_batch = args.proxy_batch.unwrap_or(s.proxy_batch);
    s.threshold = args.threshold.or(s.threshold);
    s.max_stage1_epochs = args.max_stage1_epochs.or(s.max_stage1_epochs);
    s.stage2_epochs = args.stage2_epochs.or(s.stage2_epochs);
    crate::space::parse_arch_list(&s.archs, s.seed).map_err(|e| anyhow::anyhow!("--archs: {e}"))?;
    Ok(s)
}
