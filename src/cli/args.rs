//! The flags `fear rank`, `fear shortreg`, `fear search` and `fear zero-cost` share: the data,
//! architectures, network and device; and from them a [`Prepared`] run for the library's runner
//! ([`crate::run`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::data::{Dataset, DatasetKind, DatasetSpec, LoadOptions, Method, Recipe};
use crate::engine::precision::Precision;
use crate::net::NetConfig;
use crate::rank::ShortregConfig;
use crate::run::{forget_new_results, open_results, shard, Prepared};
use crate::space::{parse_arch_list, Arch};

use super::UsageError;

/// The architectures ranked when none are named: a spread of NATS-Bench cells from strong
/// (1, 6111) to weak (15624, an all-1x1 cell).
pub const DEFAULT_ARCHS: &str = "1,6111,123,15624";

/// The flags of every run over a list of architectures (`fear rank`, `fear shortreg`,
/// `fear search`, `fear zero-cost`): the data, the architectures, the seed, the shard, the
/// threads, and whether to mix configurations in one results file. Each command keeps its own
/// device, network and output flags, whose defaults differ.
#[derive(Args, Debug)]
pub struct SelectArgs {
    /// Dataset: synthetic-cifar10, cifar10:DIR, cifar100:DIR, folder:DIR or imagenet16:DIR.
    /// Without it, the built-in demo: a small Synthetic CIFAR-10 (50 images per class) and a
    /// reduced network (C=8, N=2), so a run finishes in minutes on a CPU.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Synthetic CIFAR-10 training images per class (default 5000, the paper's set; 50 without --dataset).
    #[arg(long)]
    pub synthetic_size: Option<usize>,
    /// Where generated data (Synthetic CIFAR-10) is cached (default: $FEAR_CACHE_DIR, else
    /// $XDG_CACHE_HOME/fear, else ~/.cache/fear).
    #[arg(value_parser = crate::util::path_arg, long)]
    pub cache_dir: Option<PathBuf>,
    /// Architectures: `all`, `sample:N`, `file:PATH`, or a comma list of indices / arch strings.
    /// Required with --dataset; without it, the demo's four (1,6111,123,15624).
    #[arg(long)]
    pub archs: Option<String>,
    /// Seed of initialisation, shuffling, augmentation and `sample:N`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Take every N-th architecture starting at K (`K/N`, 0-based); defaults to
    /// SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when those are set.
    #[arg(long)]
    pub shard: Option<String>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Append to a results file even though it was written under another configuration.
    #[arg(long)]
    pub force: bool,
    /// The data pipeline: `paper` (what the FEAR paper's authors ran, per dataset and method:
    /// README's recipe table) or `natsbench` (NATS-Bench's crop, flip and normalisation everywhere).
    #[arg(long, value_enum, default_value_t = Recipe::Paper)]
    pub recipe: Recipe,
}

impl SelectArgs {
    /// This shard's share of `--archs` (`sample:N` drawn from `--seed`).
    pub fn archs(&self) -> Result<Vec<Arch>> {
        let spec = match (&self.archs, self.is_demo()) {
            (Some(spec), _) => spec.as_str(),
            (None, true) => DEFAULT_ARCHS,
            (None, false) => {
                return Err(UsageError(
                    "--archs is required with --dataset: e.g. --archs sample:1000, --archs all, --archs file:archs.txt or --archs 1,6111".into(),
                )
                .into())
            }
        };
        let archs = parse_arch_list(spec, self.seed).map_err(|e| UsageError(e.to_string()))?;
        shard(archs, self.shard.as_deref())
    }

    /// The demo runs when no `--dataset` is given; each command says what its demo is.
    pub fn is_demo(&self) -> bool {
        self.dataset.is_none()
    }

    /// `--dataset`, or the demo's Synthetic CIFAR-10 without one.
    pub fn dataset_spec(&self) -> Result<DatasetSpec> {
        Ok(self.dataset.as_deref().unwrap_or("synthetic-cifar10").parse().map_err(|e: anyhow::Error| UsageError(e.to_string()))?)
    }

    /// Loads `spec` (50 synthetic images per class in the demo) and says what it loaded.
    pub fn load(&self, spec: &DatasetSpec) -> Result<Dataset> {
        let started = Instant::now();
        let mut opts = LoadOptions { cache_dir: self.cache_dir.clone().unwrap_or_else(crate::util::default_cache_dir), ..LoadOptions::default() };
        opts.synthetic_size = self.synthetic_size.unwrap_or(if self.is_demo() { 50 } else { opts.synthetic_size });
        let data = spec.load(&opts).with_context(|| format!("loading {spec}"))?;
        eprintln!(
            "{}: {} training images, {} classes, {}x{} (loaded in {:.1}s)",
            data.name,
            data.train.len(),
            data.classes,
            data.image_size,
            data.image_size,
            started.elapsed().as_secs_f64()
        );
        Ok(data)
    }

    /// Sizes rayon's global pool by `--threads` (left to rayon without it).
    pub fn set_threads(&self) -> Result<()> {
        if let Some(t) = self.threads {
            rayon::ThreadPoolBuilder::new().num_threads(t).build_global()?;
        }
        Ok(())
    }
}

/// The flags of `fear rank`, `fear shortreg` and `fear search`: [`SelectArgs`], the device and
/// the training recipe.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Device: cpu, cuda, cuda:N, cuda:0,1,... (one worker per GPU), emulated, or auto (a GPU
    /// when the CUDA driver finds one, else the CPU).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Workers per device: K architectures train at once on each GPU, each session on its own
    /// CUDA stream (K=2-4 fills a large GPU with the small NATS-Bench networks).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Learning rate (initial, for cosine schedules).
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Global gradient-norm clip (0 = none).
    #[arg(long, default_value_t = 5.0)]
    pub grad_clip: f64,
    /// Cutout side, 0 = none (default: the recipe's: 16 for FEAR on CIFAR under `paper`, else none).
    #[arg(long)]
    pub cutout: Option<usize>,
    /// Network channels C (default 16, NATS-Bench's; 8 in the demo).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Cells per stage N (default 5, NATS-Bench's; 2 in the demo). FEAR's stage 2 trains the last
    /// N-1 cells (cells 13-16 at N=5), `lastact` and the classifier: at N=1 no cell at all.
    #[arg(long)]
    pub cells_per_stage: Option<usize>,
    /// What the network computes and stores in: fp32; tf32 (convolution forwards' operands rounded
    /// to TF32, FP32 accumulate and storage: tensor cores on sm_80+, the same rounding on the CPU
    /// and sm_70); bf16 (activations and activation gradients stored as bfloat16, everything
    /// else FP32: weights, BN statistics, loss, optimiser; the CPU rounds at the same stores); or
    /// fp16 (the V100's mode: the same, stored as IEEE half, products in FP32).
    /// Written into the results lines; a file of another precision is not appended to.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32)]
    pub precision: PrecisionArg,
}

/// `--precision`'s values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    Fp32,
    Tf32,
    Bf16,
    Fp16,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Tf32 => Precision::Tf32,
            PrecisionArg::Bf16 => Precision::Bf16,
            PrecisionArg::Fp16 => Precision::F16,
        }
    }
}

impl RunArgs {
    /// The gradient clip as an option.
    pub fn grad_clip(&self) -> Option<f64> {
        (self.grad_clip > 0.0).then_some(self.grad_clip)
    }

    /// shortreg's recipe (`fear shortreg`, `fear search --method shortreg`): E and B, with these
    /// flags' learning rate, clip, data recipe and Cutout.
    pub fn shortreg_config(&self, epochs: usize, batch: usize, data: &Dataset) -> ShortregConfig {
        let recipe = self.select.recipe;
        let cutout = self.cutout(data, Method::Shortreg);
        ShortregConfig { epochs, batch, lr: self.lr, grad_clip: self.grad_clip(), recipe, cutout, precision: self.precision.into() }
    }

    /// `--cutout`, or the recipe's for `method` on `data`.
    pub fn cutout(&self, data: &Dataset, method: Method) -> usize {
        self.cutout.unwrap_or_else(|| self.select.recipe.cutout(DatasetKind::of(&data.name), method))
    }

    /// Checks the flags, opens `out` (skipping what it already holds), then loads the data.
    /// Everything that can be wrong with the command line is reported before the data loads.
    pub fn prepare(&self, out: &Path) -> Result<Prepared> {
        self.prepare_archs(self.select.archs()?, out)
    }

    /// [`RunArgs::prepare`] for architectures chosen otherwise than by `--archs` and `--shard`.
    pub fn prepare_archs(&self, archs: Vec<Arch>, out: &Path) -> Result<Prepared> {
        let demo = self.select.is_demo();
        if demo {
            eprintln!(
                "no --dataset given: running the built-in demo (Synthetic CIFAR-10, 50 images per class, network C=8 N=2); \
                       --help shows how to rank on real data with NATS-Bench's network"
            );
        }
        let spec = self.select.dataset_spec()?;
        if self.jobs == 0 {
            return Err(UsageError("--jobs must be at least 1".into()).into());
        }
        let devices = crate::run::device::open_devices(&self.device)?;
        let devices = devices.iter().flat_map(|d| std::iter::repeat_n(d.clone(), self.jobs)).collect();
        let (c, n) = (self.channels.unwrap_or(if demo { 8 } else { 16 }), self.cells_per_stage.unwrap_or(if demo { 2 } else { 5 }));
        if c == 0 || n == 0 {
            return Err(UsageError("--channels and --cells-per-stage must be positive".into()).into());
        }
        self.select.set_threads()?;
        let existed = out.exists();
        let (results, todo) = open_results(out, &archs)?;
        let data = self.select.load(&spec).inspect_err(|_| forget_new_results(out, existed))?;
        let net = NetConfig { c, n, classes: data.classes, image_size: data.image_size };
        Ok(Prepared { todo, results, data, net, force: self.select.force, devices })
    }
}

/// Printed after a demo run's ranking: so small a run ranks the pipeline, not the architectures.
pub const DEMO_CAVEAT: &str = "note: this was the built-in demo (50 images per class, a reduced network, a few epochs): \
its scores show the pipeline works and say little about the architectures; pass --dataset and --archs for a real ranking";
