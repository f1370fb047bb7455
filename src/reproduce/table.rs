//! The paper's Table 1 for one dataset as Markdown: per top-x% bin, FEAR's Spearman and common
//! ratio with its mean time beside the nearest point on shortreg's Pareto frontier (the variant
//! on the frontier whose mean time is closest to FEAR's), then the zero-cost proxies.

use std::fmt::Write as _;

use crate::eval::methods::Kind;
use crate::eval::plots::figures::pareto_frontier;
use crate::eval::{Bin, MethodReport, BIN_PERCENTS};

use super::report::Gaps;
use super::settings::{Scale, Settings};

/// A point on shortreg's frontier in one bin: the variant, its value and its mean time.
#[derive(Clone, Debug, PartialEq)]
pub struct Nearest {
    pub variant: String,
    pub value: f64,
    pub time_s: f64,
}

/// The point of shortreg's Pareto frontier (mean time vs `metric` in the top `pct` % bin)
/// whose mean time is closest to `time_s`.
pub fn nearest_on_frontier(shortreg: &[&MethodReport], pct: usize, metric: fn(&Bin) -> Option<f64>, time_s: f64) -> Option<Nearest> {
    let points: Vec<(f64, f64, &str)> = shortreg
        .iter()
        .filter_map(|r| {
            let b = r.bins.iter().find(|b| b.top_pct == pct)?;
            Some((b.mean_time_s?, metric(b)?, r.name.as_str()))
        })
        .collect();
    let frontier = pareto_frontier(&points.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>());
    let best = frontier.into_iter().min_by(|a, b| (a.0 - time_s).abs().total_cmp(&(b.0 - time_s).abs()))?;
    let variant = points.iter().find(|p| (p.0, p.1) == best).map_or("?", |p| p.2);
    Some(Nearest { variant: variant.to_string(), value: best.1, time_s: best.0 })
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// The whole `table.md`.
pub fn render(s: &Settings, reports: &[MethodReport], gaps: &Gaps) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Table 1 on {}: FEAR beside the nearest point on shortreg's Pareto frontier\n", s.dataset);
    let _ = writeln!(
        out,
        "Architectures `{}` (seed {}), network C={} N={}, recipe `{}`, {} shortreg variants, ground truth: NATS-Bench's 200-epoch \
         test accuracy (`{}`). Architectures that never reached the threshold (and any other non-ok line) are left out of every \
         metric and mean time, as in the paper. Times are mean wall-clock seconds per architecture over the bin.\n",
        s.archs,
        s.seed,
        s.channels,
        s.cells_per_stage,
        format!("{:?}", s.recipe).to_lowercase(),
        s.shortreg_grid.len(),
        s.ground_truth_column()
    );
    if s.scale == Scale::Demo {
        let _ = writeln!(
            out,
            "**Demo scale**: a few architectures, a reduced network and data; the numbers show the pipeline works and say little about the methods.\n"
        );
    }
    if !gaps.0.is_empty() {
        let _ = writeln!(out, "**Incomplete**: {}. Finish the missing shards and run `fear reproduce --report` again.\n", gaps.0.join("; "));
    }
    let fear = reports.iter().find(|r| r.kind == Kind::Fear);
    let shortreg: Vec<&MethodReport> = reports.iter().filter(|r| r.kind == Kind::Shortreg).collect();
    let _ = writeln!(out, "## FEAR and shortreg\n");
    let _ = writeln!(out, "| top % | n | FEAR spe | time (s) | nearest shortreg spe | variant | time (s) | FEAR common | time (s) | nearest shortreg common | variant | time (s) |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for pct in BIN_PERCENTS {
        let bin = fear.and_then(|f| f.bins.iter().find(|b| b.top_pct == pct));
        let time = bin.and_then(|b| b.mean_time_s);
        let near = |metric: fn(&Bin) -> Option<f64>| time.and_then(|t| nearest_on_frontier(&shortreg, pct, metric, t));
        let cells = |n: Option<Nearest>| match n {
            Some(n) => format!("{:.2} | {} | {:.2}", n.value, n.variant, n.time_s),
            None => "- | - | -".into(),
        };
        let _ = writeln!(
            out,
            "| {pct} | {} | {} | {} | {} | {} | {} | {} |",
            bin.map_or("-".into(), |b| b.n.to_string()),
            num(bin.and_then(|b| b.spearman), 2),
            num(time, 2),
            cells(near(|b| b.spearman)),
            num(bin.and_then(|b| b.common_ratio), 2),
            num(time, 2),
            cells(near(|b| b.common_ratio)),
        );
    }
    zero_cost_table(&mut out, reports);
    overall(&mut out, reports);
    out
}

/// Each proxy's Spearman per bin, and its mean time.
fn zero_cost_table(out: &mut String, reports: &[MethodReport]) {
    let proxies: Vec<&MethodReport> = reports.iter().filter(|r| r.kind == Kind::ZeroCost).collect();
    if proxies.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n## Zero-cost proxies: Spearman within the top x%\n");
    let names: Vec<&str> = proxies.iter().map(|r| r.name.as_str()).collect();
    let _ = writeln!(out, "| top % | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
    for pct in BIN_PERCENTS {
        let row: Vec<String> = proxies.iter().map(|r| num(r.bins.iter().find(|b| b.top_pct == pct).and_then(|b| b.spearman), 2)).collect();
        let _ = writeln!(out, "| {pct} | {} |", row.join(" | "));
    }
    let times: Vec<String> = proxies.iter().map(|r| num(r.mean_time_s, 3)).collect();
    let _ = writeln!(out, "| mean time (s) | {} |", times.join(" | "));
}

/// Every method over all its architectures, with what was left out.
fn overall(out: &mut String, reports: &[MethodReport]) {
    let _ = writeln!(out, "\n## Every method over all its architectures\n");
    let _ = writeln!(out, "| method | n | left out | spearman | kendall | mean time (s) |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for r in reports {
        let left: Vec<String> = r.dropped.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let left = if left.is_empty() { "0".to_string() } else { left.join(", ") };
        let _ = writeln!(out, "| {} | {} | {left} | {} | {} | {} |", r.name, r.n, num(r.spearman, 3), num(r.kendall, 3), num(r.mean_time_s, 2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, kind: Kind, points: &[(usize, f64, f64)]) -> MethodReport {
        MethodReport {
            name: name.into(),
            kind,
            file: String::new(),
            n: 10,
            not_ok: 0,
            dropped: Default::default(),
            spearman: None,
            kendall: None,
            pairwise_accuracy: None,
            mean_time_s: None,
            top_k: Vec::new(),
            bins: points.iter().map(|&(pct, spe, t)| Bin { top_pct: pct, n: 1, spearman: Some(spe), common_ratio: Some(spe), mean_time_s: Some(t) }).collect(),
        }
    }

    #[test]
    fn the_nearest_point_is_on_the_frontier_and_closest_in_time() {
        let a = report("shortreg-e1-b256", Kind::Shortreg, &[(10, 0.1, 10.0)]);
        let b = report("shortreg-e2-b256", Kind::Shortreg, &[(10, 0.3, 20.0)]);
        // Slower and worse than b: off the frontier, though closest to 31 s.
        let c = report("shortreg-e3-b512", Kind::Shortreg, &[(10, 0.2, 30.0)]);
        let d = report("shortreg-e9-b256", Kind::Shortreg, &[(10, 0.5, 90.0)]);
        let all = [&a, &b, &c, &d];
        let near = nearest_on_frontier(&all, 10, |b| b.spearman, 31.0).unwrap();
        assert_eq!(near, Nearest { variant: "shortreg-e2-b256".into(), value: 0.3, time_s: 20.0 });
        assert_eq!(nearest_on_frontier(&all, 10, |b| b.spearman, 70.0).unwrap().variant, "shortreg-e9-b256");
        assert_eq!(nearest_on_frontier(&all, 20, |b| b.spearman, 70.0), None);
    }
}
