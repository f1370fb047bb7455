//! `fear evaluate`: results files against NATS-Bench's ground truth (SPEC 6): correlations,
//! the cumulative top-x% bins, precision and regret at k, pairwise accuracy and `vote`; a table,
//! or JSON, and optionally the paper's figures as SVG.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use crate::eval::ensemble::{az_nas_methods, ensemble, fear_epochs_method, parse_ensemble, EnsembleSpec};
use crate::eval::plots::write_plots;
use crate::eval::{column_for_dataset, disambiguate, evaluate, methods_from_lines, vote, GroundTruth, MethodReport, BIN_PERCENTS};

use super::merge::read_results;
use super::UsageError;

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// Results files of `fear rank`, `fear shortreg`, `fear search` or `fear zero-cost` (each
    /// proxy of a zero-cost file is its own method).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// The ground-truth CSV (NATS-Bench 200-epoch test accuracy: index,arch,cifar10,cifar100,imagenet16_120).
    #[arg(long)]
    pub ground_truth: PathBuf,
    /// Which ground-truth column to compare with.
    #[arg(long, value_parser = ["cifar10", "cifar100", "imagenet16_120", "imagenet16-120"])]
    pub dataset: String,
    /// Print one JSON object (`dataset`, `ground_truth`, `methods`) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write the figures (SVG) into this folder.
    #[arg(long)]
    pub plots: Option<PathBuf>,
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
}

pub fn run(args: EvaluateArgs) -> Result<()> {
    let column = column_for_dataset(&args.dataset).expect("clap checked the value");
    if !args.ground_truth.is_file() {
        return Err(UsageError(format!("--ground-truth {}: no such file", args.ground_truth.display())).into());
    }
    let truth = GroundTruth::read(&args.ground_truth, column)?;
    let mut methods = Vec::new();
    for path in &args.results {
        if !path.is_file() {
            return Err(UsageError(format!("{}: no such results file", path.display())).into());
        }
        let lines: Vec<Value> = read_results(path)?.into_iter().map(|l| l.value).collect();
        warn_on_other_dataset(&path.display().to_string(), &lines, column);
        let file_methods = methods_from_lines(&path.display().to_string(), &lines)?;
        // Files of `fear rank` carry the per-epoch stage-1 accuracies fear-epochs is made from.
        let fear = file_methods.iter().any(|m| m.kind == crate::eval::Kind::Fear) && lines.iter().any(|l| l.get("stage1_acc").is_some());
        methods.extend(file_methods);
        if fear {
            methods.push(fear_epochs_method(&path.display().to_string(), &lines));
        }
    }
    let az = az_nas_methods(&methods);
    methods.extend(az);
    disambiguate(&mut methods);
    for spec in &args.ensemble {
        let made = ensemble(spec, &methods).map_err(|e| UsageError(format!("--ensemble {}: {e}", spec.name)))?;
        methods.push(made);
    }
    let mut reports = methods.iter().map(|m| evaluate(m, &truth)).collect::<Result<Vec<_>>>()?;
    reports.extend(vote(&methods, &truth)?);
    let text = if args.json {
        let out = Evaluation { dataset: column, ground_truth: args.ground_truth.display().to_string(), methods: &reports };
        serde_json::to_string_pretty(&out)? + "\n"
    } else {
        tables(&reports, &truth, &args.ground_truth.display().to_string())
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

/// Results written on one dataset compared with another's ground truth are most likely a slip.
fn warn_on_other_dataset(file: &str, lines: &[Value], column: &str) {
    let written_on = lines.iter().find_map(|l| l.get("dataset").and_then(Value::as_str));
    if let Some(ds) = written_on {
        if column_for_dataset(ds).is_some_and(|c| c != column) {
            eprintln!("warning: {file} was written on {ds} but is compared with the {column} ground truth");
        }
    }
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
            r.name, r.n, r.not_ok, num(r.spearman, 3), num(r.kendall, 3), num(r.pairwise_accuracy, 3),
            num(top(1).and_then(|t| t.precision), 2), num(top(10).and_then(|t| t.precision), 2), num(top(50).and_then(|t| t.precision), 2),
            num(top(1).and_then(|t| t.regret), 2), num(top(10).and_then(|t| t.regret), 2), num(top(50).and_then(|t| t.regret), 2),
            num(r.mean_time_s, 2),
        );
    }
    if reports.iter().any(|r| r.not_ok > 0) {
        let _ = writeln!(out, "(not ok: lines whose status is not ok, or with no score; they rank last)");
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
