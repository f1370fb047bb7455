//! `fear evaluate`: results files against NATS-Bench's ground truth (README, "Evaluation"):
//! correlations, the cumulative top-x% bins, precision and regret at k, pairwise accuracy and
//! `vote`; a table, or JSON, and optionally the paper's figures as SVG.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use crate::eval::ensemble::{az_nas_methods, ensemble, fear_epochs_method, parse_ensemble, EnsembleSpec};
use crate::eval::ground_truth::BUILTIN_NAME;
use crate::eval::plots::write_plots;
use crate::eval::{
    column_for_dataset, disambiguate, drop_unscored, evaluate, methods_from_lines, vote, GroundTruth, MethodReport, MethodResults, NotOk, BIN_PERCENTS,
};

use super::merge::read_results;
use super::UsageError;

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// Results files of `fear rank`, `fear shortreg`, `fear search` or `fear zero-cost` (each
    /// proxy of a zero-cost file is its own method).
    #[arg(value_parser = crate::util::path_arg, required = true)]
    pub results: Vec<PathBuf>,
    /// A ground-truth CSV (index,arch,cifar10,cifar100,imagenet16_120); default: the built-in
    /// table of NATS-Bench's 200-epoch test accuracies for all 15625 cells.
    #[arg(value_parser = crate::util::path_arg, long)]
    pub ground_truth: Option<PathBuf>,
    /// Which ground-truth column to compare with.
    #[arg(long, value_parser = ["cifar10", "cifar100", "imagenet16_120", "imagenet16-120"])]
    pub dataset: String,
    /// Print one JSON object (`dataset`, `ground_truth`, `methods`) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write the figures (SVG) into this folder.
    #[arg(value_parser = crate::util::path_arg, long)]
    pub plots: Option<PathBuf>,
    /// Architectures without a score (capped, disconnected, diverged, failed): `drop` leaves them
    /// out of every metric and mean time and counts them (the paper's protocol); `last` ranks
    /// them last, their time counted.
    #[arg(long, value_enum, default_value_t = NotOk::Drop)]
    pub not_ok: NotOk,
    /// A rank ensemble NAME=RULE:METHOD,METHOD,... of methods present (proxies, fear,
    /// fear-epochs, shortreg-eE-bB, az_nas, or an earlier ensemble); RULE is logrank (AZ-NAS's
    /// sum of log normalised ranks), meanrank or vote (Copeland count of the pairwise majority).
    /// Repeatable.
    #[arg(long, value_parser = parse_ensemble)]
    pub ensemble: Vec<EnsembleSpec>,
}

/// The `--json` output.
#[derive(Serialize)]
struct Evaluation<'a> {
    dataset: &'a str,
    ground_truth: String,
    methods: &'a [MethodReport],
    /// When the methods hold different sets of architectures: every method again over the
    /// architectures all of them hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    common: Option<CommonSet>,
}

/// The methods measured over the architectures every one of them holds.
#[derive(Serialize)]
struct CommonSet {
    n: usize,
    methods: Vec<MethodReport>,
}

pub fn run(args: EvaluateArgs) -> Result<()> {
    let column = column_for_dataset(&args.dataset).expect("clap checked the value");
    if let Some(path) = args.ground_truth.as_ref().filter(|p| !p.is_file()) {
        return Err(UsageError(format!("--ground-truth {}: no such file", path.display())).into());
    }
    if let Some(dir) = args.plots.as_ref().filter(|d| d.exists() && !d.is_dir()) {
        return Err(UsageError(format!("--plots {}: a file is there; --plots names a folder to write the SVG figures into", dir.display())).into());
    }
    let truth = GroundTruth::read_or_builtin(args.ground_truth.as_deref(), column)?;
    let truth_name = args.ground_truth.as_ref().map_or(BUILTIN_NAME.to_string(), |p| p.display().to_string());
    let loaded = load_methods(&args.results, args.not_ok, &args.ensemble, |file, lines| {
        warn_on_other_dataset(file, lines, column);
        warn_on_other_network(file, lines);
    })?;
    let (methods, dropped) = (loaded.methods, loaded.dropped);
    let mut reports = methods.iter().map(|m| evaluate(m, &truth)).collect::<Result<Vec<_>>>()?;
    for (r, d) in reports.iter_mut().zip(dropped) {
        r.dropped = d;
    }
    reports.extend(vote(&methods, &truth)?);
    let common = common_set(&methods, &truth)?;
    let text = if args.json {
        let out = Evaluation { dataset: column, ground_truth: truth_name, methods: &reports, common };
        serde_json::to_string_pretty(&out)? + "\n"
    } else {
        let mut text = tables(&reports, &truth, &truth_name);
        if let Some(c) = &common {
            let _ = write!(text, "\n\nOver the {} architectures every method holds:\n\n{}", c.n, tables(&c.methods, &truth, &truth_name));
        }
        text
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // A closed pipe (`fear evaluate ... | head`) is the reader's choice, not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    if let Some(dir) = &args.plots {
        let written = write_plots(dir, &reports, &methods, &truth)?;
        eprintln!("plots: {} SVG files in {}", written.len(), dir.display());
    }
    Ok(())
}

/// The methods of results files, as `fear evaluate` and `fear ensemble` read them.
pub(crate) struct Loaded {
    /// Each file's own methods (with `fear-epochs` of a FEAR file), then `az_nas` of each file
    /// holding its four scores, then the ensembles asked for; names made unique.
    pub methods: Vec<MethodResults>,
    /// Per file method (the first of `methods`; `az_nas` follow them up to the ensembles), what
    /// `--not-ok drop` left out, per status.
    pub dropped: Vec<BTreeMap<String, usize>>,
}

/// Reads `results` as methods (unscored architectures dropped under `--not-ok drop`), makes
/// `az_nas` and the `ensembles` of them; `inspect` sees each file's lines as it is read.
pub(crate) fn load_methods(results: &[PathBuf], not_ok: NotOk, ensembles: &[EnsembleSpec], mut inspect: impl FnMut(&str, &[Value])) -> Result<Loaded> {
    let mut methods = Vec::new();
    let mut dropped = Vec::new();
    for path in results {
        if !path.is_file() {
            return Err(UsageError(format!("{}: no such results file", path.display())).into());
        }
        let lines: Vec<Value> = read_results(path)?.into_iter().map(|l| l.value).collect();
        inspect(&path.display().to_string(), &lines);
        let file_methods = methods_from_lines(&path.display().to_string(), &lines)?;
        // Files of `fear rank` carry the per-epoch stage-1 accuracies fear-epochs is made from.
        let fear = file_methods.iter().any(|m| m.kind == crate::eval::Kind::Fear) && lines.iter().any(|l| l.get("stage1_acc").is_some());
        let epochs = fear.then(|| fear_epochs_method(&path.display().to_string(), &lines));
        for mut m in file_methods.into_iter().chain(epochs) {
            dropped.push(if not_ok == NotOk::Drop { drop_unscored(&mut m, &lines) } else { Default::default() });
            methods.push(m);
        }
    }
    let az = az_nas_methods(&methods);
    methods.extend(az);
    disambiguate(&mut methods);
    for spec in ensembles {
        let made = ensemble(spec, &methods).map_err(|e| UsageError(format!("--ensemble {}: {e}", spec.name)))?;
        methods.push(made);
    }
    Ok(Loaded { methods, dropped })
}

/// Results written on one dataset compared with another's ground truth are most likely a slip;
/// results on a dataset NATS-Bench has no accuracies for (Synthetic CIFAR-10, a folder of
/// images) are compared with a column of another dataset's.
fn warn_on_other_dataset(file: &str, lines: &[Value], column: &str) {
    let written_on = lines.iter().find_map(|l| l.get("dataset").and_then(Value::as_str));
    if let Some(ds) = written_on {
        match column_for_dataset(ds) {
            Some(c) if c == column => {}
            Some(_) => eprintln!("warning: {file} was written on {ds} but is compared with the {column} ground truth"),
            None => eprintln!("warning: {file} was written on {ds}, which NATS-Bench has no ground truth for; it is compared with the {column} column"),
        }
    }
}

/// The ground truth is for NATS-Bench's network (C=16, N=5): results of a reduced one (the
/// demo's C=8, N=2) measure another network.
fn warn_on_other_network(file: &str, lines: &[Value]) {
    let field = |key: &str| lines.iter().find_map(|l| l.get(key).and_then(Value::as_u64));
    if let (Some(c), Some(n)) = (field("channels"), field("cells_per_stage")) {
        if (c, n) != (16, 5) {
            eprintln!("warning: {file} was written with the network C={c}, N={n}; the ground truth is for NATS-Bench's C=16, N=5");
        }
    }
}

/// When the methods hold different sets of architectures, says so and measures every method
/// again over the architectures all of them hold (None when the sets agree).
fn common_set(methods: &[MethodResults], truth: &GroundTruth) -> Result<Option<CommonSet>> {
    let sets: Vec<BTreeSet<usize>> = methods.iter().map(|m| m.archs.iter().map(|a| a.index).collect()).collect();
    if sets.windows(2).all(|w| w[0] == w[1]) {
        return Ok(None);
    }
    let common: BTreeSet<usize> = sets.iter().skip(1).fold(sets[0].clone(), |acc, s| acc.intersection(s).copied().collect());
    let sizes: Vec<String> = methods.iter().zip(&sets).map(|(m, s)| format!("{} {}", m.name, s.len())).collect();
    eprintln!(
        "warning: the methods cover different architectures ({}); each is measured over its own, and again over the {} all of them hold",
        sizes.join(", "),
        common.len()
    );
    let restricted: Vec<MethodResults> =
        methods.iter().map(|m| MethodResults { archs: m.archs.iter().filter(|a| common.contains(&a.index)).cloned().collect(), ..m.clone() }).collect();
    let mut reports = restricted.iter().map(|m| evaluate(m, truth)).collect::<Result<Vec<_>>>()?;
    reports.extend(vote(&restricted, truth)?);
    Ok(Some(CommonSet { n: common.len(), methods: reports }))
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// The terminal report: one row per method, then one table per bin metric.
fn tables(reports: &[MethodReport], truth: &GroundTruth, path: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "ground truth: {path} ({}, 200-epoch test accuracy)\n", truth.column);
    let w = reports.iter().map(|r| r.name.chars().count()).max().unwrap_or(6).max(6);
    let _ = writeln!(
        out,
        "{:<w$}  {:>5}  {:>6}  {:>8}  {:>7}  {:>8}  {:>5}  {:>5}  {:>5}  {:>8}  {:>9}  {:>9}  {:>13}",
        "method", "n", "not ok", "spearman", "kendall", "pairwise", "p@1", "p@10", "p@50", "regret@1", "regret@10", "regret@50", "mean time (s)"
    );
    for r in reports {
        let top = |k: usize| r.top_k.iter().find(|t| t.k == k);
        let _ = writeln!(
            out,
            "{:<w$}  {:>5}  {:>6}  {:>8}  {:>7}  {:>8}  {:>5}  {:>5}  {:>5}  {:>8}  {:>9}  {:>9}  {:>13}",
            r.name,
            r.n,
            r.not_ok,
            num(r.spearman, 3),
            num(r.kendall, 3),
            num(r.pairwise_accuracy, 3),
            num(top(1).and_then(|t| t.precision), 2),
            num(top(10).and_then(|t| t.precision), 2),
            num(top(50).and_then(|t| t.precision), 2),
            num(top(1).and_then(|t| t.regret), 2),
            num(top(10).and_then(|t| t.regret), 2),
            num(top(50).and_then(|t| t.regret), 2),
            num(r.mean_time_s, 2),
        );
    }
    if reports.iter().any(|r| r.not_ok > 0) {
        let _ = writeln!(out, "(not ok: lines whose status is not ok, or with no score; they rank last)");
    }
    let dropped: Vec<String> = reports
        .iter()
        .filter(|r| !r.dropped.is_empty())
        .map(|r| {
            let counts: Vec<String> = r.dropped.iter().map(|(s, n)| format!("{n} {s}")).collect();
            format!("{}: {}", r.name, counts.join(", "))
        })
        .collect();
    if !dropped.is_empty() {
        let _ = writeln!(out, "dropped (--not-ok drop): {}", dropped.join("; "));
    }
    let binned: Vec<&MethodReport> = reports.iter().filter(|r| !r.bins.is_empty()).collect();
    bin_table(&mut out, "Spearman's rho within the top x% by ground truth", &binned, w, |b| num(b.spearman, 3));
    bin_table(&mut out, "Common ratio: top x% by ground truth vs top x% by score", &binned, w, |b| num(b.common_ratio, 3));
    bin_table(&mut out, "Mean time per architecture (s) over the top x%", &binned, w, |b| num(b.mean_time_s, 2));
    out
}

fn bin_table(out: &mut String, title: &str, reports: &[&MethodReport], w: usize, cell: impl Fn(&crate::eval::Bin) -> String) {
    let _ = writeln!(out, "\n{title}");
    let header: String = BIN_PERCENTS.iter().map(|p| format!("  {:>7}", format!("{p}%"))).collect();
    let _ = writeln!(out, "{:<w$}{header}", "method");
    for r in reports {
        let row: String = r.bins.iter().map(|b| format!("  {:>7}", cell(b))).collect();
        let _ = writeln!(out, "{:<w$}{row}", r.name);
    }
}
