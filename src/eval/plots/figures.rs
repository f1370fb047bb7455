//! The paper's figures as SVG: per top-x% bin, mean time versus Spearman and versus common ratio
//! (Figures 5-7: every method a point, the shortreg variants joined by their Pareto frontier);
//! FEAR's time to threshold versus ground-truth accuracy (Figure 2); a histogram of each
//! method's scores.

use crate::eval::bins::Bin;
use crate::eval::ground_truth::GroundTruth;
use crate::eval::methods::{Kind, MethodResults};
use crate::eval::metrics::spearman;
use crate::eval::report::MethodReport;

use super::svg::{draw_legend_row, format_number, LegendEntry, Panel, Scale, Shape, Svg};

/// How a kind of method is drawn.
fn style(kind: Kind) -> (Shape, &'static str, &'static str) {
    match kind {
        Kind::Fear => (Shape::Circle, "#d62728", "FEAR"),
        Kind::Shortreg => (Shape::Square, "#1f77b4", "shortreg variants"),
        Kind::ZeroCost => (Shape::Triangle, "#2ca02c", "zero-cost proxies"),
        Kind::Score | Kind::Vote | Kind::Ensemble | Kind::FearEpochs => (Shape::Diamond, "#555555", "other"),
    }
}

/// The label beside a point: shortreg variants by their E and B only, to keep the plot legible.
fn point_label(r: &MethodReport) -> String {
    match r.kind {
        Kind::Shortreg => r.name.strip_prefix("shortreg-").unwrap_or(&r.name).to_string(),
        _ => r.name.clone(),
    }
}

/// One method's point in a bin: (mean time, metric).
struct BinPoint<'a> {
    report: &'a MethodReport,
    time: f64,
    value: f64,
}

/// The Pareto frontier of (time, value) points: the fastest point, then each point that beats
/// every faster one. Returned in time order.
pub fn pareto_frontier(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut frontier: Vec<(f64, f64)> = Vec::new();
    for p in sorted {
        if frontier.last().is_none_or(|last| p.1 > last.1) {
            frontier.push(p);
        }
    }
    frontier
}

/// Figure 5-7's pair of panels for the top `pct` % bin.
pub fn bin_figure(reports: &[MethodReport], pct: usize, column: &str) -> String {
    let bin_of = |r: &MethodReport| r.bins.iter().find(|b| b.top_pct == pct).cloned();
    let points = |metric: fn(&Bin) -> Option<f64>| -> Vec<BinPoint> {
        reports
            .iter()
            .filter_map(|r| {
                let b = bin_of(r)?;
                Some(BinPoint { report: r, time: b.mean_time_s?, value: metric(&b)? })
            })
            .collect()
    };
    let spearman_points = points(|b| b.spearman);
    let common_points = points(|b| b.common_ratio);
    let times: Vec<f64> = spearman_points.iter().chain(&common_points).map(|p| p.time).collect();
    let x = Scale::auto_positive(&times, 20.0);
    let x_label = if x.log { "mean wall-clock time per architecture (s, log scale)" } else { "mean wall-clock time per architecture (s)" };
    let lowest = spearman_points.iter().map(|p| p.value).fold(0.0, f64::min);

    let mut svg = Svg::new(1120.0, 530.0);
    let sizes: Vec<usize> = reports.iter().filter_map(|r| bin_of(r).map(|b| b.n)).collect();
    let n = if !sizes.is_empty() && sizes.iter().all(|s| *s == sizes[0]) { format!(", {} architectures", sizes[0]) } else { String::new() };
    svg.title(560.0, 28.0, 17.0, &format!("Top {pct}% of architectures by ground truth ({column}{n})"));
    let no_data = "no method has a defined value in this bin (too few architectures, or no times)";
    let left = Panel::new(95.0, 80.0, 420.0, 340.0, x.clone(), Scale::linear(lowest, 1.0));
    if spearman_points.is_empty() {
        left.draw_no_data(&mut svg, "Mean time vs Spearman's rho", no_data);
    } else {
        left.draw_axes(&mut svg, "Mean time vs Spearman's rho", x_label, "Spearman's rho with ground truth");
        draw_points(&mut svg, &left, &spearman_points);
    }
    let right = Panel::new(660.0, 80.0, 420.0, 340.0, x, Scale::linear(0.0, 1.0));
    if common_points.is_empty() {
        right.draw_no_data(&mut svg, "Mean time vs common ratio", no_data);
    } else {
        right.draw_axes(&mut svg, "Mean time vs common ratio", x_label, &format!("common ratio with the ground-truth top {pct}%"));
        draw_points(&mut svg, &right, &common_points);
    }
    legend(&mut svg, 95.0, 505.0, reports);
    svg.finish()
}

/// The points of one panel, the shortreg frontier under them, each labelled.
fn draw_points(svg: &mut Svg, panel: &Panel, points: &[BinPoint]) {
    let shortreg: Vec<(f64, f64)> = points.iter().filter(|p| p.report.kind == Kind::Shortreg).map(|p| (p.time, p.value)).collect();
    let frontier: Vec<(f64, f64)> = pareto_frontier(&shortreg).into_iter().map(|(t, v)| panel.at(t, v)).collect();
    if frontier.len() > 1 {
        svg.polyline(&frontier, style(Kind::Shortreg).1, 2.0);
    }
    let mut labels = LabelPlacer::default();
    for p in points {
        let (shape, color, _) = style(p.report.kind);
        let (px, py) = panel.at(p.time, p.value);
        svg.marker(shape, px, py, 10.0, color, false);
    }
    for p in points {
        let (px, py) = panel.at(p.time, p.value);
        let label = point_label(p.report);
        let (x, y) = labels.place(px + 8.0, py - 6.0, &label);
        svg.text(x, y, 10.5, "start", &label);
    }
}

/// Places point labels so they do not overlap: each goes to the first of a few positions
/// beside its point that no earlier label covers.
#[derive(Default)]
struct LabelPlacer {
    /// Boxes taken: (left, top, right, bottom).
    taken: Vec<(f64, f64, f64, f64)>,
}

impl LabelPlacer {
    /// Where to put the baseline of `text`, preferring (x, y).
    fn place(&mut self, x: f64, y: f64, text: &str) -> (f64, f64) {
        // About 6 px a character at 10.5 px.
        let width = 6.0 * text.chars().count() as f64;
        let boxed = |y: f64| (x, y - 9.0, x + width, y + 2.0);
        let overlaps = |b: (f64, f64, f64, f64), t: &(f64, f64, f64, f64)| b.0 < t.2 && t.0 < b.2 && b.1 < t.3 && t.1 < b.3;
        let shifts = [0.0, 12.0, -12.0, 24.0, -24.0, 36.0, -36.0, 48.0, -48.0];
        let y = shifts.iter().map(|d| y + d).find(|&y| !self.taken.iter().any(|t| overlaps(boxed(y), t))).unwrap_or(y);
        self.taken.push(boxed(y));
        (x, y)
    }
}

/// The legend: one entry per kind present, and the frontier when shortreg is.
fn legend(svg: &mut Svg, x: f64, y: f64, reports: &[MethodReport]) {
    let mut entries = Vec::new();
    for kind in [Kind::Fear, Kind::Shortreg, Kind::ZeroCost, Kind::Score] {
        if reports.iter().any(|r| r.kind == kind && !r.bins.is_empty()) {
            let (shape, color, label) = style(kind);
            entries.push(LegendEntry { shape: Some(shape), color: color.into(), hollow: false, label: label.into() });
            if kind == Kind::Shortreg {
                entries.push(LegendEntry { shape: None, color: color.into(), hollow: false, label: "shortreg Pareto frontier".into() });
            }
        }
    }
    draw_legend_row(svg, x, y, &entries);
}

/// Figure 2: each architecture's stage-1 time (time to reach the threshold) against its
/// ground-truth accuracy; those that never reached it are drawn hollow at the time they ran.
pub fn time_to_threshold_figure(method: &MethodResults, truth: &GroundTruth) -> String {
    let mut reached = Vec::new();
    let mut not_reached = Vec::new();
    for a in &method.archs {
        if let (Some(t), Some(acc)) = (a.stage1_s, truth.get(a.index)) {
            if a.reached_threshold {
                reached.push((t, acc))
            } else {
                not_reached.push((t, acc))
            }
        }
    }
    let all: Vec<&(f64, f64)> = reached.iter().chain(&not_reached).collect();
    let max_t = all.iter().map(|p| p.0).fold(0.0, f64::max);
    let (lo, hi) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let y = if all.is_empty() { Scale::linear(0.0, 100.0) } else { Scale::linear(lo, hi) };
    let mut svg = Svg::new(800.0, 600.0);
    svg.title(400.0, 28.0, 17.0, &format!("Time to threshold vs final accuracy: {} ({} architectures)", method.name, all.len()));
    let (ts, accs): (Vec<f64>, Vec<f64>) = reached.iter().copied().unzip();
    let rho = spearman(&ts, &accs).map_or("-".into(), |r| format!("{r:.3}"));
    svg.text(400.0, 50.0, 13.0, "middle", &format!("Spearman's rho of time and accuracy over the {} that reached the threshold: {rho}", reached.len()));
    let panel = Panel::new(95.0, 85.0, 660.0, 390.0, Scale::linear(0.0, max_t), y);
    if all.is_empty() {
        panel.draw_no_data(&mut svg, "", "no architecture has both a stage-1 time and a ground truth");
        return svg.finish();
    }
    panel.draw_axes(&mut svg, "", "stage-1 time: training until the threshold accuracy (s)", &format!("200-epoch test accuracy, {} (%)", truth.column));
    let color = style(Kind::Fear).1;
    for &(t, acc) in &reached {
        let (px, py) = panel.at(t, acc);
        svg.marker(Shape::Circle, px, py, 7.0, color, false);
    }
    for &(t, acc) in &not_reached {
        let (px, py) = panel.at(t, acc);
        svg.marker(Shape::Circle, px, py, 7.0, "#555555", true);
    }
    draw_legend_row(
        &mut svg,
        95.0,
        570.0,
        &[
            LegendEntry { shape: Some(Shape::Circle), color: color.into(), hollow: false, label: format!("reached the threshold ({})", reached.len()) },
            LegendEntry {
                shape: Some(Shape::Circle),
                color: "#555555".into(),
                hollow: true,
                label: format!("did not: capped, cut off or diverged ({})", not_reached.len()),
            },
        ],
    );
    svg.finish()
}

/// A histogram of a method's scores (those with a score). Scores spanning more than three
/// decades, all positive (synflow's reach 1e50), are binned by log10.
pub fn score_histogram(method: &MethodResults) -> String {
    let scores: Vec<f64> = method.archs.iter().filter_map(|a| a.score).collect();
    let missing = method.archs.len() - scores.len();
    let (lo, hi) = scores.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    let log = !scores.is_empty() && lo > 0.0 && hi / lo > 1e3;
    let values: Vec<f64> = if log { scores.iter().map(|s| s.log10()).collect() } else { scores.clone() };
    let counts_range = histogram(&values, (values.len() as f64).sqrt().clamp(5.0, 40.0) as usize);
    let (edges, counts) = counts_range;
    let max_count = counts.iter().copied().max().unwrap_or(0) as f64;
    let x = if edges.len() >= 2 { Scale::linear(edges[0], edges[edges.len() - 1]) } else { Scale::linear(0.0, 1.0) };
    let mut svg = Svg::new(800.0, 560.0);
    svg.title(400.0, 28.0, 17.0, &format!("Scores of {}: {} architectures", method.name, scores.len()));
    if missing > 0 {
        svg.text(400.0, 50.0, 13.0, "middle", &format!("{missing} more without a score (status not ok) are not shown"));
    }
    let panel = Panel::new(95.0, 85.0, 660.0, 380.0, x, Scale::counts(max_count));
    if scores.is_empty() {
        panel.draw_no_data(&mut svg, "", "no architecture has a score");
        return svg.finish();
    }
    let x_label = if log { "log10(score)".to_string() } else { "score".to_string() };
    panel.draw_axes(&mut svg, "", &x_label, "architectures");
    let color = style(method.kind).1;
    for (i, &c) in counts.iter().enumerate() {
        let (x0, y0) = panel.at(edges[i], c as f64);
        let (x1, y1) = panel.at(edges[i + 1], 0.0);
        svg.rect(x0, y0, (x1 - x0).max(0.5), y1 - y0, color, "white");
    }
    svg.text(95.0, 540.0, 12.0, "start", &format!("range {} .. {}; {} bins", format_number(lo), format_number(hi), counts.len()));
    svg.finish()
}

/// `bins` equal-width bins over the values' range: (edges, counts). The last bin holds its
/// upper edge.
pub fn histogram(values: &[f64], bins: usize) -> (Vec<f64>, Vec<usize>) {
    if values.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let mut hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi == lo {
        hi = lo + 1.0;
    }
    let width = (hi - lo) / bins as f64;
    let edges: Vec<f64> = (0..=bins).map(|i| lo + i as f64 * width).collect();
    let mut counts = vec![0; bins];
    for v in values {
        let i = (((v - lo) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    (edges, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_keeps_points_that_beat_every_faster_one() {
        let pts = [(10.0, 0.5), (5.0, 0.4), (20.0, 0.45), (40.0, 0.8), (5.0, 0.3), (30.0, 0.8)];
        assert_eq!(pareto_frontier(&pts), [(5.0, 0.4), (10.0, 0.5), (30.0, 0.8)]);
    }

    #[test]
    fn histogram_counts_every_value_once() {
        let (edges, counts) = histogram(&[0.0, 0.1, 0.5, 0.99, 1.0], 4);
        assert_eq!(edges, [0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(counts, [2, 0, 1, 2]);
        assert_eq!(histogram(&[3.0, 3.0], 2).1, [2, 0]);
    }
}
