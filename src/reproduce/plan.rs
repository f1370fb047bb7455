//! The work units of a reproduction and running a shard of them. A unit is one run of an
//! existing ranker over the sample, given as its command line: `fear rank` (FEAR), one
//! `fear shortreg` per variant of the grid, and `fear zero-cost` (every proxy in one file).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;

use crate::rank::results::parse_results;
use crate::space::parse_arch_list;

use super::settings::Settings;

/// One run: its name (the results file's stem) and its command line without `--out` and
/// `--shard`.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    pub name: String,
    pub argv: Vec<String>,
}

/// The units of `s`, FEAR first, then the zero-cost proxies (cheap), then the shortreg grid.
/// The trainers run on `device`; the proxies on the CPU (synflow needs float64).
pub fn units(s: &Settings, device: &str) -> Vec<Unit> {
    let strings = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let recipe = serde_json::to_value(s.recipe).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let mut select = strings(&["--dataset", &s.dataset, "--archs", &s.archs, "--seed", &s.seed.to_string(), "--recipe", &recipe]);
    if let Some(n) = s.synthetic_size {
        select.extend(strings(&["--synthetic-size", &n.to_string()]));
    }
    if let Some(dir) = &s.cache_dir {
        select.extend(["--cache-dir".to_string(), dir.display().to_string()]);
    }
    let net = strings(&["--channels", &s.channels.to_string(), "--cells-per-stage", &s.cells_per_stage.to_string()]);
    let on = |dev: &str| [select.clone(), strings(&["--device", dev]), net.clone()].concat();

    let mut fear = [strings(&["rank"]), on(device)].concat();
    let optional = [
        ("--threshold", s.threshold.map(|t| t.to_string())),
        ("--max-stage1-epochs", s.max_stage1_epochs.map(|e| e.to_string())),
        ("--stage2-epochs", s.stage2_epochs.map(|e| e.to_string())),
    ];
    for (flag, value) in optional {
        if let Some(v) = value {
            fear.extend([flag.to_string(), v]);
        }
    }
    let mut units = vec![Unit { name: "fear".into(), argv: fear }];
    units.push(Unit {
        name: "zero-cost".into(),
        argv: [strings(&["zero-cost", "--proxy", &s.proxies, "--batch", &s.proxy_batch.to_string()]), on("cpu")].concat(),
    });
    for &(e, b) in &s.shortreg_grid {
        let argv = [strings(&["shortreg", "--epochs", &e.to_string(), "--batch", &b.to_string()]), on(device)].concat();
        units.push(Unit { name: format!("shortreg-e{e}-b{b}"), argv });
    }
    units
}

/// Task K of N: `--shard K/N`, else Slurm's array variables, else the whole job (0 of 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl Shard {
    pub fn parse(arg: Option<&str>) -> Result<Shard> {
        let from_env =
            || -> Option<String> { Some(format!("{}/{}", std::env::var("SLURM_ARRAY_TASK_ID").ok()?, std::env::var("SLURM_ARRAY_TASK_COUNT").ok()?)) };
        let Some(spec) = arg.map(str::to_string).or_else(from_env) else { return Ok(Shard { k: 0, n: 1 }) };
        let bad = || anyhow::anyhow!("--shard {spec:?}: expected K/N with 0 <= K < N");
        let (k, n) = spec.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if n == 0 || k >= n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }

    /// Whether this is the whole job.
    pub fn is_whole(&self) -> bool {
        self.n == 1
    }

    /// Where this task's results files go.
    pub fn folder(&self, dir: &Path) -> PathBuf {
        dir.join(SHARDS).join(format!("{}-of-{}", self.k, self.n))
    }

    /// This task's `--shard` for the `j`-th unit. Each unit's architectures are dealt out
    /// starting one task further on, so a slow architecture does not land on the same task in
    /// every unit; over the N tasks every architecture of every unit is taken once.
    pub fn for_unit(&self, j: usize) -> String {
        format!("{}/{}", (self.k + self.n - j % self.n) % self.n, self.n)
    }
}

/// The folder of the shards' folders.
pub const SHARDS: &str = "shards";

/// Runs this task's share of every unit of `s` into `shard.folder(dir)`, skipping the units
/// whose results file already holds its share (a resumed job redoes nothing) and resuming the
/// others where their files stop.
pub fn run_shard(s: &Settings, dir: &Path, shard: Shard, device: &str) -> Result<()> {
    let folder = shard.folder(dir);
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    let all = units(s, device);
    for (j, unit) in all.iter().enumerate() {
        let share = shard.for_unit(j);
        let out = folder.join(format!("{}.jsonl", unit.name));
        if holds_share(s, &share, &out)? {
            eprintln!("reproduce: [{}/{}] {}: done", j + 1, all.len(), unit.name);
            continue;
        }
        eprintln!("reproduce: [{}/{}] {} (architectures {share} of {})", j + 1, all.len(), unit.name, s.archs);
        let argv = [vec!["fear".to_string()], unit.argv.clone(), vec!["--shard".into(), share, "--out".into(), out.display().to_string()]].concat();
        let cli = crate::cli::Cli::try_parse_from(&argv).map_err(|e| anyhow::anyhow!("reproduce built a bad command line {argv:?}: {e}"))?;
        crate::cli::run(cli).with_context(|| format!("reproduce: {}", unit.name))?;
    }
    Ok(())
}

/// Whether the results file `out` holds every architecture of `share` (`K/N` of the sample).
fn holds_share(s: &Settings, share: &str, out: &Path) -> Result<bool> {
    let Ok(bytes) = std::fs::read(out) else { return Ok(false) };
    let archs = parse_arch_list(&s.archs, s.seed).map_err(|e| anyhow::anyhow!("--archs {}: {e}", s.archs))?;
    let mine = crate::run::shard(archs, Some(share))?;
    let done: HashSet<u64> = parse_results(&out.display().to_string(), &bytes)?.lines.iter().map(|l| l.index).collect();
    Ok(mine.iter().all(|a| done.contains(&(a.index() as u64))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::{Scale, Settings};

    #[test]
    fn every_architecture_of_every_unit_goes_to_exactly_one_task() {
        for n in 1..5 {
            for j in 0..7 {
                let mut taken: Vec<usize> = (0..n).map(|k| Shard { k, n }.for_unit(j)).map(|s| s.split('/').next().unwrap().parse().unwrap()).collect();
                taken.sort();
                assert_eq!(taken, (0..n).collect::<Vec<_>>(), "n {n} unit {j}");
            }
        }
        assert!(Shard::parse(Some("2/2")).is_err() && Shard::parse(Some("x")).is_err());
        assert_eq!(Shard::parse(Some("1/3")).unwrap(), Shard { k: 1, n: 3 });
    }

    #[test]
    fn units_are_command_lines_the_cli_accepts() {
        let mut s = Settings::new(Scale::Demo, None).unwrap();
        s.threshold = Some(0.2);
        let all = units(&s, "cpu");
        assert_eq!(all.len(), 2 + s.shortreg_grid.len());
        assert_eq!((all[0].name.as_str(), all[1].name.as_str(), all[2].name.as_str()), ("fear", "zero-cost", "shortreg-e1-b64"));
        for u in &all {
            let argv = [vec!["fear".to_string()], u.argv.clone(), vec!["--shard".into(), "0/1".into(), "--out".into(), "x.jsonl".into()]].concat();
            crate::cli::Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
        assert!(all[0].argv.windows(2).any(|w| w == ["--threshold", "0.2"]));
    }
}
