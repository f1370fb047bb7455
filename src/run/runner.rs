//! The runner every ranker shares (`fear rank`, `shortreg`, `zero-cost`, `search`, `rank
//! --shortlist` and so `reproduce`): a resumable, shardable run over a list of architectures,
//! one worker per device (and per `--jobs`), each architecture's outcome or failure appended as
//! one results line as it finishes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::Result;
use serde::Serialize;

use crate::data::Dataset;
use crate::engine::AnyDevice;
use crate::net::NetConfig;
use crate::rank::failure;
use crate::rank::results::ResultsFile;
use crate::space::Arch;
use crate::util::UsageError;

use super::progress::{progress_bar, Progress};
use super::ranking::print_ranking;

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
pub fn forget_new_results(out: &Path, existed: bool) {
    if !existed && std::fs::metadata(out).is_ok_and(|m| m.len() == 0) {
        let _ = std::fs::remove_file(out);
    }
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

impl Prepared {
    /// [`Runner::run`] with this run's data and network, then the ranking of the whole file.
    pub fn run_all<R: Serialize>(
        self,
        config: &serde_json::Value,
        fields: &[&str],
        one: impl Fn(&Arch, &Dataset, &NetConfig, &AnyDevice, &Progress) -> Result<R> + Sync,
    ) -> Result<()> {
        let Prepared { todo, results, data, net, force, devices } = self;
        let runner = Runner { todo, results, devices, force };
        let results = runner.run(config, fields, |arch, device, bar| one(arch, &data, &net, device, bar))?;
        print_ranking(&results.lines);
        eprintln!("results: {}", results.path().display());
        Ok(())
    }
}

/// Where a run's lines go as they finish.
pub trait Sink: Send {
    fn append(&mut self, line: &serde_json::Value) -> Result<()>;
    /// Every line so far (those of an earlier run included).
    fn lines(&self) -> &[serde_json::Value];
    /// The file the lines end up in, for messages.
    fn path(&self) -> &Path;
}

impl Sink for ResultsFile {
    fn append(&mut self, line: &serde_json::Value) -> Result<()> {
        ResultsFile::append(self, line)
    }
    fn lines(&self) -> &[serde_json::Value] {
        &self.lines
    }
    fn path(&self) -> &Path {
        ResultsFile::path(self)
    }
}

/// Lines kept in memory, for a run that writes its file itself at the end (`rank --shortlist`,
/// whose order is known only when every architecture is done).
pub struct Collected {
    pub lines: Vec<serde_json::Value>,
    pub path: PathBuf,
}

impl Sink for Collected {
    fn append(&mut self, line: &serde_json::Value) -> Result<()> {
        self.lines.push(line.clone());
        Ok(())
    }
    fn lines(&self) -> &[serde_json::Value] {
        &self.lines
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

/// The architectures left to run, where their lines go, and one worker per device.
pub struct Runner<S: Sink = ResultsFile> {
    pub todo: Vec<Arch>,
    pub results: S,
    /// One worker per entry (a device repeated K times gives it K workers).
    pub devices: Vec<AnyDevice>,
    /// Skip the configuration check of an existing results file.
    pub force: bool,
}

impl<S: Sink> Runner<S> {
    /// Refuses a results file written under another configuration (`config`, compared on
    /// `fields`), then runs `one` on every architecture left, appending each record as it
    /// finishes, and returns where they went. With several devices, one worker
    /// per device takes the next architecture as it frees up. An architecture whose `one` fails
    /// (an error or a panic) gets a `failed` line with the reason and the run goes on, unless
    /// [`STOP_AFTER_FAILURES_IN_A_ROW`] fail in a row (a lost device, not a bad architecture).
    pub fn run<R: Serialize>(self, config: &serde_json::Value, fields: &[&str], one: impl Fn(&Arch, &AnyDevice, &Progress) -> Result<R> + Sync) -> Result<S> {
        if !self.force {
            check_same_config(&self.results, config, fields)?;
        }
        let bar = progress_bar(self.todo.len());
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let in_a_row = AtomicUsize::new(0);
        let gave_up = AtomicBool::new(false);
        let results = Mutex::new(self.results);
        let todo = &self.todo;
        let sticky = StickyErrors::new(&self.devices);
        let work = |device: &AnyDevice| -> Result<()> {
            let mut device = device.clone();
            while !stop.load(Ordering::Relaxed) {
                let Some(arch) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                let line = match failure::attempt(arch, || one(arch, &device, &bar)) {
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
                            let line = serde_json::to_value(failure::failed_line(arch, &crate::engine::Device::<f32>::name(&device), &reason, config))?;
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
                        serde_json::to_value(failure::failed_line(arch, &crate::engine::Device::<f32>::name(&device), &reason, config))?
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
        Ok(results)
    }
}

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

/// Fields older fear did not write, and the value every run before them had.
const WRITTEN_LATER: [(&str, &str); 1] = [("precision", "fp32")];

/// Refuses to append to a results file whose lines disagree with `now` on any of `fields`.
pub fn check_same_config(results: &impl Sink, now: &serde_json::Value, fields: &[&str]) -> Result<()> {
    for line in results.lines() {
        for key in fields {
            let implied = WRITTEN_LATER.iter().find(|(k, _)| k == key).map(|(_, v)| serde_json::Value::from(*v));
            if line.get(key).is_none() && implied.is_some() {
                if now.get(key) != implied.as_ref() {
                    anyhow::bail!(
                        "{} holds results written before {key} was recorded (so {key} = {}), but this run has {key} = {}: use another --out (or --force to mix them)",
                        results.path().display(),
                        implied.unwrap_or_default(),
                        now[key]
                    );
                }
                continue;
            }
            if line.get(key).is_none() && now.get(key).is_some() {
                anyhow::bail!(
                    "{} holds results without {key} (written by an older fear), but this run has {key} = {}: use another --out (or --force to mix them)",
                    results.path().display(),
                    now[key]
                );
            }
            if line.get(key) != now.get(key) {
                anyhow::bail!(
                    "{} holds results with {key} = {}, but this run has {key} = {}: use another --out (or --force to mix them)",
                    results.path().display(),
                    line.get(key).unwrap_or(&serde_json::Value::Null),
                    now[key]
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
