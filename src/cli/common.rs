//! What `fear rank`, `fear shortreg`, `fear search` and `fear zero-cost` share: the flags that
//! choose the data, architectures, network and device, and the set-up of a resumable run over a
//! list of architectures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use crate::data::{Dataset, DatasetKind, DatasetSpec, LoadOptions, Method, Recipe};
use crate::engine::AnyDevice;
use crate::net::NetConfig;
use crate::rank::{failure, ShortregConfig};
use crate::rank::results::ResultsFile;
use crate::space::{parse_arch_list, Arch};

pub(crate) use super::progress::progress_bar;
use super::progress::Progress;
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
                return Err(UsageError("--archs is required with --dataset: e.g. --archs sample:1000, --archs all, --archs file:archs.txt or --archs 1,6111".into()).into())
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
            data.name, data.train.len(), data.classes, data.image_size, data.image_size, started.elapsed().as_secs_f64()
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

/// Opens the results file `out` and keeps of `archs` those it does not hold yet, saying so when
/// a run resumes.
pub fn open_results(out: &Path, archs: &[Arch]) -> Result<(ResultsFile, Vec<Arch>)> {
    let results = ResultsFile::open(out)?;
    let todo: Vec<Arch> = archs.iter().copied().filter(|a| !results.done.contains(&a.index())).collect();
    if todo.is_empty() && !archs.is_empty() {
        eprintln!("{}: all {} architectures already done; nothing to run (use another --out to start over)", out.display(), archs.len());
    } else if todo.len() < archs.len() {
        eprintln!("{}: {} of {} architectures already done; resuming", out.display(), archs.len() - todo.len(), archs.len());
    }
    Ok((results, todo))
}

/// After a failure before any work (the data did not load), removes the results file `out`
/// again if this run created it: a failed start leaves no empty file behind.
pub(crate) fn forget_new_results(out: &Path, existed: bool) {
    if !existed && std::fs::metadata(out).is_ok_and(|m| m.len() == 0) {
        let _ = std::fs::remove_file(out);
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
}

/// A run ready to go: what is left to do, where results go, the data and the network.
pub struct Prepared {
    pub todo: Vec<Arch>,
    pub results: ResultsFile,
    pub data: Dataset,
    pub net: NetConfig,
    /// Skip the configuration check of an existing results file.
    pub force: bool,
    /// One worker per entry (`--device cuda:0,1,2,3` gives four; `--jobs K` repeats each
    /// device K times: entries of one GPU share it, each session on its own stream).
    pub devices: Vec<AnyDevice>,
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
        ShortregConfig { epochs, batch, lr: self.lr, grad_clip: self.grad_clip(), recipe, cutout }
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
            eprintln!("no --dataset given: running the built-in demo (Synthetic CIFAR-10, 50 images per class, network C=8 N=2); \
                       --help shows how to rank on real data with NATS-Bench's network");
        }
        let spec = self.select.dataset_spec()?;
        if self.jobs == 0 {
            return Err(UsageError("--jobs must be at least 1".into()).into());
        }
        let devices = super::device::open_devices(&self.device)?;
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

impl Prepared {
    /// Refuses a results file written under another configuration (`config`, compared on
    /// `fields`), then runs `one` on every architecture left, appending each record as it
    /// finishes, and prints the ranking of the whole file. With several devices, one worker
    /// per device takes the next architecture as it frees up. An architecture whose `one` fails
    /// (an error or a panic) gets a `failed` line with the reason and the run goes on, unless
    /// [`STOP_AFTER_FAILURES_IN_A_ROW`] fail in a row (a lost device, not a bad architecture).
    pub fn run_all<R: Serialize>(
        self,
        config: &serde_json::Value,
        fields: &[&str],
        one: impl Fn(&Arch, &Dataset, &NetConfig, &AnyDevice, &Progress) -> Result<R> + Sync,
    ) -> Result<()> {
        if !self.force {
            check_same_config(&self.results, config, fields)?;
        }
        let bar = progress_bar(self.todo.len());
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let in_a_row = AtomicUsize::new(0);
        let gave_up = AtomicBool::new(false);
        let results = Mutex::new(self.results);
        let (todo, data, net) = (&self.todo, &self.data, &self.net);
        let sticky = StickyErrors::new(&self.devices);
        let work = |device: &AnyDevice| -> Result<()> {
            let mut device = device.clone();
            while !stop.load(Ordering::Relaxed) {
                let Some(arch) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                let line = match failure::attempt(arch, || one(arch, data, net, &device, &bar)) {
                    Ok(record) => {
                        in_a_row.store(0, Ordering::Relaxed);
                        serde_json::to_value(record)?
                    }
                    Err(reason) if device.is_poisoned() => {
                        // A sticky CUDA error: this device's context is lost, for this
                        // architecture and for every other one on the device. Only the first
                        // to see it gets a `failed` line; the others stay undone for a rerun.
                        let first = sticky.first_to_see(&device);
                        if first {
                            bar.suspend(|| eprintln!("arch {:>5}  failed: {reason}", arch.index()));
                            let line = failure::failed_line(arch, &crate::engine::Device::<f32>::name(&device), &reason, config);
                            results.lock().unwrap_or_else(|e| e.into_inner()).append(&line)?;
                            bar.inc(1);
                        }
                        if sticky.shared(&device) || !first {
                            stop.store(true, Ordering::Relaxed);
                            break;
                        }
                        match device.reopen() {
                            Ok(fresh) => {
                                bar.suspend(|| eprintln!("{}: reopened after a sticky error", crate::engine::Device::<f32>::name(&fresh)));
                                device = fresh;
                                continue;
                            }
                            Err(e) => {
                                sticky.could_not_reopen(format!("{e:#}"));
                                stop.store(true, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                    Err(reason) => {
                        // Always shown, also when stderr is no terminal (where the bar and its lines are hidden).
                        bar.suspend(|| eprintln!("arch {:>5}  failed: {reason}", arch.index()));
                        if in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= STOP_AFTER_FAILURES_IN_A_ROW {
                            gave_up.store(true, Ordering::Relaxed);
                            stop.store(true, Ordering::Relaxed);
                        }
                        failure::failed_line(arch, &crate::engine::Device::<f32>::name(&device), &reason, config)
                    }
                };
                results.lock().unwrap_or_else(|e| e.into_inner()).append(&line).inspect_err(|_| stop.store(true, Ordering::Relaxed))?;
                bar.inc(1);
            }
            Ok(())
        };
        let outcomes: Vec<Result<()>> = std::thread::scope(|s| {
            let workers: Vec<_> = self.devices.iter().map(|d| s.spawn(|| work(d))).collect();
            workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))).collect()
        });
        bar.finish_and_clear();
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        outcomes.into_iter().collect::<Result<()>>()?;
        if let Some(why) = sticky.stopped() {
            anyhow::bail!(
                "stopped: {why}; rerun the same command to resume (finished architectures are kept in {}, \
                 the one that faulted is recorded as failed)",
                results.path().display()
            );
        }
        if gave_up.into_inner() {
            anyhow::bail!(
                "stopped: the last {STOP_AFTER_FAILURES_IN_A_ROW} architectures all failed (see their reasons above); \
                 to retry them, delete their \"failed\" lines from {} and rerun",
                results.path().display()
            );
        }
        print_ranking(&results.lines);
        eprintln!("results: {}", results.path().display());
        Ok(())
    }
}

/// Printed after a demo run's ranking: so small a run ranks the pipeline, not the architectures.
pub const DEMO_CAVEAT: &str = "note: this was the built-in demo (50 images per class, a reduced network, a few epochs): \
its scores show the pipeline works and say little about the architectures; pass --dataset and --archs for a real ranking";

/// Sticky CUDA errors seen by the workers of a run: which devices hit one, and why the run
/// stops if it must (a device shared by several workers, or one that would not reopen).
struct StickyErrors {
    /// How many workers drive each device (by its identity).
    workers: std::collections::HashMap<Option<usize>, usize>,
    seen: Mutex<std::collections::HashSet<Option<usize>>>,
    stop: Mutex<Option<String>>,
}

impl StickyErrors {
    fn new(devices: &[AnyDevice]) -> StickyErrors {
        let mut workers = std::collections::HashMap::new();
        for d in devices {
            *workers.entry(d.device_key()).or_default() += 1;
        }
        StickyErrors { workers, seen: Mutex::default(), stop: Mutex::default() }
    }

    /// Whether this worker is the first to see `device`'s sticky error.
    fn first_to_see(&self, device: &AnyDevice) -> bool {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(device.device_key())
    }

    /// Whether other workers share `device` (then reopening it would pull their context away,
    /// so the run stops instead); records why.
    fn shared(&self, device: &AnyDevice) -> bool {
        let shared = self.workers.get(&device.device_key()).copied().unwrap_or(1) > 1;
        if shared {
            let name = crate::engine::Device::<f32>::name(device);
            self.stop.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(format!("{name} hit a sticky error while several workers (--jobs) shared it"));
        }
        shared
    }

    fn could_not_reopen(&self, why: String) {
        self.stop.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(format!("a GPU hit a sticky error and could not be reopened: {why}"));
    }

    fn stopped(&self) -> Option<String> {
        self.stop.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// So many failures in a row stop a run: the device is gone, not one architecture bad.
pub const STOP_AFTER_FAILURES_IN_A_ROW: usize = 5;

/// Refuses to append to a results file whose lines disagree with `now` on any of `fields`.
pub(crate) fn check_same_config(results: &ResultsFile, now: &serde_json::Value, fields: &[&str]) -> Result<()> {
    for line in &results.lines {
        for key in fields {
            if line.get(key).is_none() && now.get(key).is_some() {
                anyhow::bail!(
                    "{} holds results without {key} (written by an older fear), but this run has {key} = {}: use another --out (or --force to mix them)",
                    results.path().display(), now[key]
                );
            }
            if line.get(key) != now.get(key) {
                anyhow::bail!(
                    "{} holds results with {key} = {}, but this run has {key} = {}: use another --out (or --force to mix them)",
                    results.path().display(), line.get(key).unwrap_or(&serde_json::Value::Null), now[key]
                );
            }
        }
    }
    Ok(())
}

/// Every N-th architecture starting at K, from `--shard K/N` or Slurm's array variables.
pub fn shard(archs: Vec<Arch>, arg: Option<&str>) -> Result<Vec<Arch>> {
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

/// The ranking of every line in the results file, best score first (non-ok lines last).
fn print_ranking(lines: &[serde_json::Value]) {
    let mut rows: Vec<&serde_json::Value> = lines.iter().collect();
    let score = |v: &serde_json::Value| v.get("score").and_then(|s| s.as_f64()).unwrap_or(f64::NEG_INFINITY);
    rows.sort_by(|a, b| score(b).total_cmp(&score(a)));
    if let Some(what) = lines.first().and_then(score_meaning) {
        println!("{what}");
    }
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
    if let Some(summary) = not_ok_summary(lines) {
        println!("{summary}");
    }
}

/// What `score` means in a results line, for the ranking's heading.
fn score_meaning(line: &serde_json::Value) -> Option<String> {
    if let Some(t) = line.get("threshold").and_then(|t| t.as_f64()) {
        return Some(format!("score: FEAR, the training accuracy of the last stage-2 epoch (higher is better); stage-1 threshold {t}"));
    }
    let (e, b) = (line.get("epochs")?.as_u64()?, line.get("batch")?.as_u64()?);
    Some(format!("score: shortreg, the best epoch's training accuracy in {e} epochs at batch {b} (higher is better)"))
}

/// "N of M architectures not ok (ranked last): a diverged, b capped, c failed", or None when
/// every line is ok.
pub fn not_ok_summary(lines: &[serde_json::Value]) -> Option<String> {
    let status = |v: &serde_json::Value| v.get("status").and_then(|s| s.as_str()).unwrap_or("?").to_string();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for s in lines.iter().map(status).filter(|s| s != "ok") {
        *counts.entry(s).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    (total > 0).then(|| {
        let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        format!("{total} of {} architectures not ok (ranked last): {}", lines.len(), parts.join(", "))
    })
}
