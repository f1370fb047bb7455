//! The ranking printed at the end of a run of `fear rank`, `shortreg` or `search`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::schema::{LineHead, Status};

/// The ranking of every line in the results file, best score first (non-ok lines last).
pub fn print_ranking(lines: &[Value]) {
    let heads: Vec<LineHead> = lines.iter().map(|l| LineHead::of(l).unwrap_or_default()).collect();
    let mut rows: Vec<(&LineHead, &Value)> = heads.iter().zip(lines).collect();
    let score = |h: &LineHead| h.score.unwrap_or(f64::NEG_INFINITY);
    rows.sort_by(|a, b| score(b.0).total_cmp(&score(a.0)));
    if let Some(what) = heads.first().and_then(score_meaning) {
        println!("{what}");
    }
    println!("{:>4}  {:>5}  {:>8}  {:>8}  {:>9}  arch", "rank", "index", "score", "status", "time (s)");
    for (i, (h, v)) in rows.iter().enumerate() {
        // A line without an index never reaches a results file; "?" for one without a status.
        let status = v.get("status").map_or("?", |_| h.status().name());
        println!(
            "{:>4}  {:>5}  {:>8}  {:>8}  {:>9.1}  {}",
            i + 1,
            h.index,
            h.score.map_or("-".into(), |s| format!("{s:.4}")),
            status,
            h.time_s.unwrap_or(0.0),
            h.arch.as_deref().unwrap_or("?"),
        );
    }
    if let Some(summary) = not_ok_summary(&heads) {
        println!("{summary}");
    }
}

/// What `score` means in a results line, for the ranking's heading.
fn score_meaning(line: &LineHead) -> Option<String> {
    if let Some(t) = line.threshold {
        return Some(format!("score: FEAR, the training accuracy of the last stage-2 epoch (higher is better); stage-1 threshold {t}"));
    }
    let (e, b) = (line.epochs?, line.batch?);
    Some(format!("score: shortreg, the best epoch's training accuracy in {e} epochs at batch {b} (higher is better)"))
}

/// "N of M architectures not ok (ranked last): a diverged, b capped, c failed", or None when
/// every line is ok.
pub fn not_ok_summary(lines: &[LineHead]) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in lines.iter().map(LineHead::status).filter(|s| *s != Status::Ok) {
        *counts.entry(s.name()).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    (total > 0).then(|| {
        let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        format!("{total} of {} architectures not ok (ranked last): {}", lines.len(), parts.join(", "))
    })
}
