//! `fear rank --shortlist PROXY:FRACTION`: a zero-cost proxy scores every architecture, FEAR
//! runs only on the proxy's top FRACTION, and the ranking puts those, ordered by FEAR, above the
//! rest, ordered by the proxy. Each results line says which stage ranked it (`stage`: `fear` or
//! `proxy`); its `score` orders the whole list (1 + FEAR's score for the FEAR stage, the proxy's
//! normalised rank in (0, 1) below), its `time_s` is its proxy time plus, on the shortlist,
//! FEAR's. A shortlisted architecture FEAR cannot score (capped, diverged, failed) falls back to the
//! proxy stage. Not resumable: the proxy stage needs every architecture at once.

use anyhow::{anyhow, Result};
use serde_json::{json, Value};

use crate::data::{Batcher, Method};
use crate::eval::ensemble::{combined_scores, Rule, AZ_NAS_MEMBERS};
use crate::eval::order::{average_ranks, descending_order};
use crate::rank::zero_cost::score::{score_arch, ProxyBatch, Weights};
use crate::rank::zero_cost::{parse_proxies, Proxy};
use crate::run::{progress_bar, Collected, Runner};
use crate::schema::{LineHead, Status};
use crate::space::Arch;

use super::rank::{fear_config, rank_one, RankArgs};
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

pub fn run(args: &RankArgs, proxy: &str, fraction: f64) -> Result<()> {
    let prepared = args.run.prepare(&args.out)?;
    if prepared.todo.len() < args.run.select.archs()?.len() {
        return Err(UsageError(format!("{}: a shortlist run is not resumable; remove the file or choose another --out", args.out.display())).into());
    }
    let (data, net, archs) = (&prepared.data, &prepared.net, &prepared.todo);
    let cfg = fear_config(&args.fear, &args.run, data, net, Method::Fear);
    let seed = args.run.select.seed;
    let proxies = parse_proxies(proxy).map_err(|e| anyhow!(e))?;
    let batcher = Batcher::train(&data.train, args.run.select.recipe.train_augment(data, Method::ZeroCost), PROXY_BATCH, seed, 0);
    let b = batcher.batch(0);
    let batch = ProxyBatch { images: &b.images, labels: &b.labels };

    let bar = progress_bar(archs.len());
    let mut raw: Vec<Vec<Option<f64>>> = Vec::new(); // per arch, per proxy
    let mut proxy_time = Vec::new();
    for arch in archs {
        bar.set_message(format!("proxy {proxy}: arch {}", arch.index()));
        let scores = score_arch::<f32>(arch, net, &proxies, Some(&batch), &Weights::Init(seed))?;
        let mut times: Vec<f64> = scores.iter().map(|s| s.seconds).collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        proxy_time.push(times.iter().sum::<f64>());
        raw.push(scores.iter().map(|s| arch.is_connected().then_some(s.score).filter(|v| v.is_finite())).collect());
        bar.inc(1);
    }
    bar.finish_and_clear();
    let value = proxy_values(proxy, &proxies, &raw);
    let index: Vec<usize> = archs.iter().map(Arch::index).collect();
    let order = descending_order(&value, &index);
    let keep = ((archs.len() as f64 * fraction).ceil() as usize).min(archs.len());
    let shortlist: Vec<usize> = order[..keep].iter().copied().filter(|&p| value[p] > f64::NEG_INFINITY).collect();
    eprintln!("proxy {proxy} scored {} architectures; FEAR runs on the top {}", archs.len(), shortlist.len());

    let ranks = average_ranks(&value);
    // FEAR on the shortlist through the runner (every device, failures as lines), its lines
    // kept in memory: the file is written in the ranking's order once all are done.
    let position: std::collections::HashMap<usize, usize> = index.iter().enumerate().map(|(p, &i)| (i, p)).collect();
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
            "proxy": proxy, "proxy_score": value[p].is_finite().then_some(value[p]), "proxy_time_s": proxy_time[p],
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
                line.insert("time_s".into(), json!(proxy_time[p] + fear["time_s"].as_f64().unwrap_or(0.0)));
            }
            None => {
                let ok = value[p] > f64::NEG_INFINITY;
                line.insert("stage".into(), json!("proxy"));
                line.insert("status".into(), json!(if ok { "ok" } else { "disconnected" }));
                line.insert("score".into(), json!(ok.then(|| ranks[p] / (archs.len() as f64 + 1.0))));
                line.insert("time_s".into(), json!(proxy_time[p]));
                line.insert("stage1_s".into(), json!(0.0));
            }
        }
        results.append(&Value::Object(line))?;
    }
    eprintln!("results: {}", args.out.display());
    Ok(())
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
