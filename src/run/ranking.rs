//! The ranking printed at the end of a run of `fear rank`, `shortreg` or `search`.

/// The ranking of every line in the results file, best score first (non-ok lines last).
pub fn print_ranking(lines: &[serde_json::Value]) {
    let mut rows: Vec<&serde_json::Value> = lines.iter().collect();
    let score = |v: &serde_json::Value| v.get("score").and_then(|s| s.as_f64()).unwrap_or(f64::NEG_INFINITY);
    rows.sort_by(|a, b| score(b).total_cmp(&score(a)));
    if let Some(what) = lines.first().and_then(score_meaning) {
        println!("{what}");
    }
    println!("{:>4}  {:>5}  {:>8}  {:>8}  {:>9}  arch", "rank", "index", "score", "status", "time (s)");
    for (i, v) in rows.iter().enumerate() {
        println!(
            "{:>4}  {:>5}  {:>8}  {:>8}  {:>9.1}  {}",
            i + 1,
            v["index"].as_u64().map_or("?".into(), |i| i.to_string()),
            v.get("score").and_then(|s| s.as_f64()).map_or("-".into(), |s| format!("{s:.4}")),
            v["status"].as_str().unwrap_or("?"),
            v["time_s"].as_f64().unwrap_or(0.0),
            v["arch"].as_str().unwrap_or("?"),
        );
    }
    if let Some(summary) = not_ok_summary(lines) {
        println!("{summary}");
    }
}

/// What `score` means in a results line, for the ranking's heading.
fn score_meaning(line: &serde_json::Value) -> Option<String> {
    if let Some(t) = line.get("threshold").and_then(|t| t.as_f64()) {
        return Some(format!("score: FEAR, the training accuracy of the last stage-2 epoch (higher is better); stage-1 threshold {t}"));
    }
    let (e, b) = (line.get("epochs")?.as_u64()?, line.get("batch")?.as_u64()?);
    Some(format!("score: shortreg, the best epoch's training accuracy in {e} epochs at batch {b} (higher is better)"))
}

/// "N of M architectures not ok (ranked last): a diverged, b capped, c failed", or None when
/// every line is ok.
pub fn not_ok_summary(lines: &[serde_json::Value]) -> Option<String> {
    let status = |v: &serde_json::Value| v.get("status").and_then(|s| s.as_str()).unwrap_or("?").to_string();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for s in lines.iter().map(status).filter(|s| s != "ok") {
        *counts.entry(s).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    (total > 0).then(|| {
        let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        format!("{total} of {} architectures not ok (ranked last): {}", lines.len(), parts.join(", "))
    })
}
