//! The report of a reproduction: the shards joined into `DIR/results/`, measured as
//! `fear evaluate` measures them (non-ok architectures dropped, the paper's protocol), and
//! written as `DIR/table.md` (the paper's Table 1), `DIR/evaluation.json` and `DIR/figures/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::merge::{read_results, MergeArgs};
use crate::eval::plots::write_plots;
use crate::eval::{drop_unscored, evaluate, methods_from_lines, vote, GroundTruth, MethodReport};
use crate::space::parse_arch_list;

use super::plan::{units, SHARDS};
use super::settings::Settings;
use super::table::render;

/// What the report found missing: units with no results, or with fewer lines than the sample.
#[derive(Debug, Default)]
pub struct Gaps(pub Vec<String>);

/// Joins the shards of `dir`, measures every unit and writes the table, the JSON and the
/// figures; returns the table's path.
pub fn report(dir: &Path) -> Result<PathBuf> {
    let s = Settings::saved(dir)?.with_context(|| format!("{}: no {} here: run fear reproduce into it first", dir.display(), super::settings::FILE))?;
    let expected = parse_arch_list(&s.archs, s.seed).map_err(|e| anyhow::anyhow!("--archs {}: {e}", s.archs))?.len();
    let truth = GroundTruth::read_or_builtin(None, s.ground_truth_column())?;
    let joined = dir.join("results");
    std::fs::create_dir_all(&joined).with_context(|| format!("creating {}", joined.display()))?;
    let (mut methods, mut reports, mut gaps) = (Vec::new(), Vec::new(), Gaps::default());
    for unit in units(&s, "cpu") {
        let file = format!("{}.jsonl", unit.name);
        let inputs = shard_files(dir, &file)?;
        if inputs.is_empty() {
            gaps.0.push(format!("{}: no results yet", unit.name));
            continue;
        }
        let out = joined.join(&file);
        crate::cli::merge::run(MergeArgs { out: out.clone(), inputs, force: true })?;
        let lines: Vec<serde_json::Value> = read_results(&out)?.into_iter().map(|l| l.value).collect();
        if lines.is_empty() {
            gaps.0.push(format!("{}: no results yet", unit.name));
            continue;
        }
        if lines.len() < expected {
            gaps.0.push(format!("{}: {} of {expected} architectures", unit.name, lines.len()));
        }
        for mut m in methods_from_lines(&format!("results/{file}"), &lines)? {
            let dropped = drop_unscored(&mut m, &lines);
            let mut r = evaluate(&m, &truth)?;
            r.dropped = dropped;
            reports.push(r);
            methods.push(m);
        }
    }
    let voted: Vec<MethodReport> = vote(&methods, &truth)?.into_iter().collect();
    let everything: Vec<MethodReport> = reports.iter().cloned().chain(voted).collect();
    let json = serde_json::json!({"settings": s, "ground_truth": truth.column, "gaps": gaps.0, "methods": everything});
    crate::util::write_atomically(&dir.join("evaluation.json"), (serde_json::to_string_pretty(&json)? + "\n").as_bytes())?;
    let figures = write_plots(&dir.join("figures"), &reports, &methods, &truth)?;
    let table = dir.join("table.md");
    let text = render(&s, &reports, &gaps);
    crate::util::write_atomically(&table, text.as_bytes())?;
    println!("{text}");
    eprintln!("reproduce: {} (and evaluation.json, {} figures in {})", table.display(), figures.len(), dir.join("figures").display());
    Ok(table)
}

/// Every shard's file named `file`, in a stable order.
fn shard_files(dir: &Path, file: &str) -> Result<Vec<PathBuf>> {
    let shards = dir.join(SHARDS);
    let Ok(entries) = std::fs::read_dir(&shards) else { return Ok(Vec::new()) };
    let mut found: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("reading {}", shards.display()))?.path().join(file);
        if path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}
