//! `fear rank --shortlist PROXY:FRACTION`: a zero-cost proxy scores every architecture, FEAR
//! runs only on the proxy's top FRACTION, and the ranking puts those, ordered by FEAR, above the
//! rest, ordered by the proxy. Each results line says which stage ranked it (`stage`: `fear` or
//! `proxy`); its `score` orders the whole list (1 + FEAR's score for the FEAR stage, the proxy's
//! normalised rank in (0, 1) below), its `time_s` is its proxy time plus, on the shortlist,
//! FEAR's. A shortlisted architecture FEAR cannot score (capped, diverged, failed) falls back to the
//! proxy stage. The proxy pass appends its lines to a `fear zero-cost` file beside `--out`
//! ([`proxy_results_path`]) as it goes, so a rerun after an interruption scores only the
//! architectures not there yet; the FEAR stage, whose lines are written in the ranking's order at
//! the end, runs again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use serde_json::{json, Value};

use crate::data::{Batcher, Dataset, Method, Recipe};
use crate::engine::{AnyDevice, Cpu, Device};
use crate::eval::ensemble::{combined_scores, Rule, AZ_NAS_MEMBERS};
use crate::eval::order::{average_ranks, descending_order};
use crate::net::NetConfig;
use crate::rank::zero_cost::score::{score_arch, ProxyBatch, Weights};
use crate::rank::zero_cost::{parse_proxies, Proxy};
use crate::run::{open_results, Collected, Runner};
use crate::schema::{LineHead, Status, ZeroCostConfig, ZeroCostRecord};
use crate::space::Arch;

use super::rank::{fear_config, rank_one, RankArgs};
use super::zero_cost::CONFIG_FIELDS as ZERO_COST_FIELDS;
use super::UsageError;

/// Images in the batch the data proxies read (as `fear zero-cost`'s default).
const PROXY_BATCH: usize = 256;

/// `PROXY:FRACTION`, FRACTION in (0, 1].
pub fn parse_shortlist(spec: &str) -> Result<(String, f64), String> {
    let (proxy, fraction) = spec.rsplit_once(':').ok_or_else(|| format!("{spec:?}: expected PROXY:FRACTION, e.g. az_nas:0.1"))?;
    let fraction: f64 = fraction.parse().map_err(|_| format!("{spec:?}: the fraction {fraction:?} is not a number"))?;
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(format!("{spec:?}: the fraction must be in (0, 1]"));
    }
    let proxies = parse_proxies(proxy)?;
    if proxy != "az_nas" && proxies.len() != 1 {
        return Err(format!("{spec:?}: name one proxy (or az_nas)"));
    }
    Ok((proxy.to_string(), fraction))
}

/// The proxy pass's results beside `out`: `s.jsonl` gives `s.proxy.jsonl`.
pub fn proxy_results_path(out: &Path) -> PathBuf {
    out.with_extension("proxy.jsonl")
}

pub fn run(args: &RankArgs, proxy: &str, fraction: f64) -> Result<()> {
    let prepared = args.run.prepare(&args.out)?;
    let proxy_path = proxy_results_path(&args.out);
    if prepared.todo.len() < args.run.select.archs()?.len() {
        return Err(UsageError(format!(
            "{}: already holds a shortlist ranking; remove it or choose another --out (an interrupted run resumes its proxy pass from {})",
            args.out.display(),
            proxy_path.display()
        ))
        .into());
    }
    let (data, net, archs) = (&prepared.data, &prepared.net, &prepared.todo);
    let cfg = fear_config(&args.fear, &args.run, data, net, Method::Fear);
    let seed = args.run.select.seed;
    let proxies = parse_proxies(proxy).map_err(|e| anyhow!(e))?;
    let scored = proxy_pass(&proxy_path, archs, &proxies, data, net, args.run.select.recipe, seed, args.run.select.force)?;
    let raw: Vec<Vec<Option<f64>>> = scored.iter().map(|s| s.scores.clone()).collect();
    let value = proxy_values(proxy, &proxies, &raw);
    let index: Vec<usize> = archs.iter().map(Arch::index).collect();
    let order = descending_order(&value, &index);
    let keep = ((archs.len() as f64 * fraction).ceil() as usize).min(archs.len());
    let shortlist: Vec<usize> = order[..keep].iter().copied().filter(|&p| value[p] > f64::NEG_INFINITY).collect();
    eprintln!("proxy {proxy} scored {} architectures ({}); FEAR runs on the top {}", archs.len(), proxy_path.display(), shortlist.len());

    let ranks = average_ranks(&value);
    // FEAR on the shortlist through the runner (every device, failures as lines), its lines
    // kept in memory: the file is written in the ranking's order once all are done.
    let position: HashMap<usize, usize> = index.iter().enumerate().map(|(p, &i)| (i, p)).collect();
    let fear_run = Runner {
        todo: shortlist.iter().map(|&p| archs[p]).collect(),
        results: Collected { lines: Vec::new(), path: args.out.clone() },
        devices: prepared.devices.clone(),
        force: true,
    };
    let fear_config =
        json!({"dataset": data.name, "seed": seed, "threshold": cfg.threshold, "channels": net.c, "cells_per_stage": net.n, "recipe": cfg.recipe});
    let done = fear_run.run(&fear_config, &[], |arch, device, bar| rank_one(arch, data, net, device, &cfg, seed, bar))?;
    let mut results = prepared.results;
    let mut fear_lines: Vec<Option<Value>> = vec![None; archs.len()];
    for line in done.lines {
        let head = LineHead::of(&line).unwrap_or_default();
        if head.status() == Status::Ok && head.score.is_some() {
            fear_lines[position[&(head.index as usize)]] = Some(line);
        }
    }
    // Lines in the ranking's order: the FEAR stage by FEAR's score, then the rest by the proxy.
    let fear_score = |p: usize| fear_lines[p].as_ref().and_then(|l| l["score"].as_f64());
    let mut ranked: Vec<usize> = order.iter().copied().filter(|&p| fear_score(p).is_some()).collect();
    ranked.sort_by(|&a, &b| fear_score(b).unwrap().total_cmp(&fear_score(a).unwrap()).then(index[a].cmp(&index[b])));
    ranked.extend(order.iter().copied().filter(|&p| fear_score(p).is_none()));
    for &p in &ranked {
        let arch = &archs[p];
        let base = json!({
            "index": arch.index(), "arch": arch.to_string(), "shortlist": format!("{proxy}:{fraction}"),
            "proxy": proxy, "proxy_score": value[p].is_finite().then_some(value[p]), "proxy_time_s": scored[p].time_s,
            "dataset": data.name, "seed": seed, "channels": net.c, "cells_per_stage": net.n, "threshold": cfg.threshold,
        });
        let mut line = base.as_object().unwrap().clone();
        match &fear_lines[p] {
            Some(fear) => {
                for (k, v) in fear.as_object().unwrap() {
                    line.entry(k.clone()).or_insert(v.clone());
                }
                let fear_score = fear["score"].as_f64().unwrap();
                line.insert("stage".into(), json!("fear"));
                line.insert("fear_score".into(), json!(fear_score));
                line.insert("score".into(), json!(1.0 + fear_score));
                line.insert("time_s".into(), json!(scored[p].time_s + fear["time_s"].as_f64().unwrap_or(0.0)));
            }
            None => {
                let ok = value[p] > f64::NEG_INFINITY;
                // Unscored: as its proxy line says (disconnected, failed), else disconnected.
                let status = if ok { Status::Ok } else { Some(scored[p].status).filter(|s| *s != Status::Ok).unwrap_or(Status::Disconnected) };
                line.insert("stage".into(), json!("proxy"));
                line.insert("status".into(), json!(status));
                line.insert("score".into(), json!(ok.then(|| ranks[p] / (archs.len() as f64 + 1.0))));
                line.insert("time_s".into(), json!(scored[p].time_s));
                line.insert("stage1_s".into(), json!(0.0));
            }
        }
        results.append(&Value::Object(line))?;
    }
    eprintln!("results: {}", args.out.display());
    Ok(())
}

/// One architecture's proxy line, read back.
struct ProxyLine {
    /// Per proxy asked for (az_nas: its four scores); None when the line is not ok.
    scores: Vec<Option<f64>>,
    /// The sum of the proxies' distinct times (those sharing a pass count once).
    time_s: f64,
    status: Status,
}

/// The proxy lines of `archs` (in that order): those `path` holds already (a run interrupted
/// before), the rest scored on the CPU and appended there as each finishes, as `fear zero-cost`
/// lines (one training batch of [`PROXY_BATCH`] images, the network at initialisation).
#[allow(clippy::too_many_arguments)]
fn proxy_pass(
    path: &Path,
    archs: &[Arch],
    proxies: &[Proxy],
    data: &Dataset,
    net: &NetConfig,
    recipe: Recipe,
    seed: u64,
    force: bool,
) -> Result<Vec<ProxyLine>> {
    let (results, todo) = open_results(path, archs)?;
    let names: Vec<&str> = proxies.iter().map(|p| p.name()).collect();
    let config = ZeroCostConfig {
        proxies: names.join(","),
        dataset: Some(data.name.clone()),
        seed,
        batch: PROXY_BATCH,
        trained_epochs: 0,
        channels: net.c,
        cells_per_stage: net.n,
        recipe,
    };
    let cpu = AnyDevice::Cpu(Cpu);
    let device = cpu.name();
    let batcher = Batcher::train(&data.train, recipe.train_augment(data, Method::ZeroCost), PROXY_BATCH, seed, 0);
    let b = batcher.batch(0);
    let batch = ProxyBatch { images: &b.images, labels: &b.labels };
    let runner = Runner { todo, results, devices: vec![cpu], force };
    let done = runner.run(&serde_json::to_value(&config)?, &ZERO_COST_FIELDS, |arch, _, bar| {
        bar.set_message(format!("proxy {}: arch {}", config.proxies, arch.index()));
        let scores = score_arch::<f32>(arch, net, proxies, Some(&batch), &Weights::Init(seed))?;
        Ok(ZeroCostRecord::new(arch, &scores, &config, &device))
    })?;
    let by_index: HashMap<u64, &Value> = done.lines.iter().filter_map(|l| Some((l.get("index")?.as_u64()?, l))).collect();
    archs
        .iter()
        .map(|arch| {
            let line = by_index.get(&(arch.index() as u64)).ok_or_else(|| anyhow!("{}: no line for architecture {}", path.display(), arch.index()))?;
            let status = LineHead::of(line).map_or(Status::Failed, |h| h.status());
            // A proxy's score and time are the line's fields of its name (the record's flattened scores).
            let number = |key: &str| line.get(key).and_then(Value::as_f64).filter(|v| v.is_finite());
            let scores = names.iter().map(|n| number(n).filter(|_| status == Status::Ok)).collect();
            let mut times: Vec<f64> = names.iter().filter_map(|n| number(&format!("{n}_time_s"))).collect();
            times.sort_by(f64::total_cmp);
            times.dedup();
            Ok(ProxyLine { scores, time_s: times.iter().sum(), status })
        })
        .collect()
}

/// Per architecture, the proxy's value (higher is better; unscored: -inf): the one proxy's
/// score, or for `az_nas` the log-rank aggregate of its four scores over these architectures.
fn proxy_values(name: &str, proxies: &[Proxy], raw: &[Vec<Option<f64>>]) -> Vec<f64> {
    let column = |k: usize| raw.iter().map(|r| r[k].unwrap_or(f64::NEG_INFINITY)).collect::<Vec<f64>>();
    if name != "az_nas" {
        return column(0);
    }
    let ranks: Vec<Vec<f64>> = AZ_NAS_MEMBERS
        .iter()
        .map(|m| {
            let k = proxies.iter().position(|p| p.name() == *m).expect("az_nas names its four scores");
            average_ranks(&column(k))
        })
        .collect();
    let agg = combined_scores(Rule::LogRank, &ranks, raw.len());
    agg.into_iter().zip(raw).map(|(v, r)| if r.iter().all(Option::is_some) { v } else { f64::NEG_INFINITY }).collect()
}
