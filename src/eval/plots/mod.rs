//! The evaluation's figures as hand-written SVG ([`svg`] draws, [`figures`] composes).

pub mod figures;
pub mod svg;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::bins::BIN_PERCENTS;
use super::ground_truth::GroundTruth;
use super::methods::{Kind, MethodResults};
use super::report::MethodReport;

/// Writes every figure into `dir` (created if needed) and returns the files written:
/// `bins-top10.svg` .. `bins-top100.svg`, `time-to-threshold-<method>.svg` for each FEAR method,
/// `scores-<method>.svg` for each method with scores.
pub fn write_plots(dir: &Path, reports: &[MethodReport], methods: &[MethodResults], truth: &GroundTruth) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut write = |name: String, svg: String| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    for pct in BIN_PERCENTS {
        write(format!("bins-top{pct}.svg"), figures::bin_figure(reports, pct, &truth.column))?;
    }
    for m in methods {
        if m.kind == Kind::Fear {
            write(format!("time-to-threshold-{}.svg", slug(&m.name)), figures::time_to_threshold_figure(m, truth))?;
        }
        write(format!("scores-{}.svg", slug(&m.name)), figures::score_histogram(m))?;
    }
    Ok(written)
}

/// A method name as a file-name part: letters, digits and `-` only.
pub fn slug(name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}
