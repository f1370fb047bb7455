//! What a results file holds, as methods to evaluate. A file of `fear rank` or `fear search
//! --method fear` (lines with `score` and `stage1_s`) is one FEAR method; one of `fear shortreg`
//! (`score`, `epochs`, `batch`) one shortreg variant; one of `fear zero-cost` holds one method per
//! proxy: a numeric field that is a known proxy or that has a `<name>_time_s` beside it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::Value;

use crate::schema::{LineHead, Status};
use crate::space::NUM_ARCHS;

/// The proxies `fear zero-cost` writes (README, "Zero-cost proxies").
pub const PROXIES: [&str; 10] = ["synflow", "synflow_bn", "snip", "grasp", "fisher", "grad_norm", "jacob_cov", "naswot", "params", "flops"];

/// The proxies `vote` takes the majority of.
pub const VOTE_PROXIES: [&str; 3] = ["synflow", "jacob_cov", "snip"];

/// Which ranker produced a method's scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Fear,
    Shortreg,
    ZeroCost,
    /// A file with a `score` field of unknown origin.
    Score,
    /// The majority vote of three proxies.
    Vote,
    /// A rank ensemble of other methods (`--ensemble`).
    Ensemble,
    /// FEAR's epochs to the threshold (from a FEAR file's stage-1 accuracies).
    FearEpochs,
}

/// One architecture's line, as a method saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchResult {
    pub index: usize,
    /// None when the line's status is not ok or the value is missing.
    pub score: Option<f64>,
    pub time_s: Option<f64>,
    /// FEAR's time to threshold (stage 1), and whether stage 1 reached the threshold.
    pub stage1_s: Option<f64>,
    pub reached_threshold: bool,
}

/// A method's results.
#[derive(Clone, Debug)]
pub struct MethodResults {
    pub name: String,
    pub kind: Kind,
    /// The file it came from, as given.
    pub file: String,
    pub archs: Vec<ArchResult>,
}

/// Reads the methods in one results file's lines; `file` names the file in messages and output.
pub fn methods_from_lines(file: &str, lines: &[Value]) -> Result<Vec<MethodResults>> {
    if lines.is_empty() {
        bail!("{file}: no results in it");
    }
    check_indices(file, lines)?;
    if lines.iter().any(|l| l.get("score").is_some()) {
        let kind = score_kind(lines);
        let name = match kind {
            // `fear rank --shortlist P:F` lines name their ranker.
            Kind::Fear => lines.iter().find_map(|l| l.get("shortlist").and_then(Value::as_str)).map_or("fear".to_string(), |s| format!("shortlist-{s}")),
            Kind::Shortreg => shortreg_name(lines),
            _ => file_stem(file),
        };
        let archs = lines.iter().map(|l| arch_result(l, "score", "time_s")).collect();
        return Ok(vec![MethodResults { name, kind, file: file.to_string(), archs }]);
    }
    let proxies = proxy_fields(lines);
    if proxies.is_empty() {
        bail!("{file}: no `score` field and no proxy field (a number with a `<name>_time_s` beside it, or one of {})", PROXIES.join(", "));
    }
    Ok(proxies
        .into_iter()
        .map(|proxy| {
            let archs = lines.iter().map(|l| arch_result(l, &proxy, &format!("{proxy}_time_s"))).collect();
            MethodResults { name: proxy, kind: Kind::ZeroCost, file: file.to_string(), archs }
        })
        .collect())
}

/// Every line needs an index in range, each index once.
fn check_indices(file: &str, lines: &[Value]) -> Result<()> {
    let mut seen = vec![None; NUM_ARCHS];
    for (no, line) in lines.iter().enumerate() {
        let Some(index) = line.get("index").and_then(Value::as_u64).map(|i| i as usize).filter(|i| *i < NUM_ARCHS) else {
            bail!("{file}: line {}: no architecture index in 0..{NUM_ARCHS}", no + 1);
        };
        if let Some(first) = seen[index].replace(no + 1) {
            bail!("{file}: architecture {index} appears twice (lines {first} and {}); join shards with `fear merge`", no + 1);
        }
    }
    Ok(())
}

fn score_kind(lines: &[Value]) -> Kind {
    let has = |key: &str| lines.iter().any(|l| l.get(key).is_some());
    if has("stage1_s") {
        Kind::Fear
    } else if has("epochs") && has("batch") {
        Kind::Shortreg
    } else {
        Kind::Score
    }
}

/// `shortreg-e{E}-b{B}` from the first line (a file holds one variant: `fear shortreg` refuses
/// to mix them).
fn shortreg_name(lines: &[Value]) -> String {
    let field = |key: &str| lines.iter().find_map(|l| l.get(key).and_then(Value::as_u64)).map_or("?".into(), |v| v.to_string());
    format!("shortreg-e{}-b{}", field("epochs"), field("batch"))
}

fn file_stem(file: &str) -> String {
    std::path::Path::new(file).file_stem().map_or(file.to_string(), |s| s.to_string_lossy().into_owned())
}

/// The proxy fields of a zero-cost file, in the order of [`PROXIES`] then by name.
fn proxy_fields(lines: &[Value]) -> Vec<String> {
    let mut found = BTreeSet::new();
    for line in lines {
        let Some(obj) = line.as_object() else { continue };
        for (key, value) in obj {
            let numeric = value.is_number() || value.is_null();
            let timed = obj.contains_key(&format!("{key}_time_s"));
            if numeric && (timed || PROXIES.contains(&key.as_str())) && key != "index" {
                found.insert(key.clone());
            }
        }
    }
    let mut fields: Vec<String> = PROXIES.iter().filter(|p| found.contains(**p)).map(|p| p.to_string()).collect();
    fields.extend(found.into_iter().filter(|f| !PROXIES.contains(&f.as_str())));
    fields
}

/// One line's result for the method scored by `score_key`.
fn arch_result(line: &Value, score_key: &str, time_key: &str) -> ArchResult {
    // The method's own columns (a proxy's score and time) are named at run time; the rest is typed.
    let number = |key: &str| line.get(key).and_then(Value::as_f64);
    // A line whose shared fields do not read (an unknown status) is not ok.
    let head = LineHead::of(line);
    let ok = head.as_ref().is_some_and(|h| h.status() == Status::Ok);
    let head = head.unwrap_or_default();
    ArchResult {
        index: line["index"].as_u64().expect("checked") as usize,
        score: number(score_key).filter(|s| ok && s.is_finite()),
        time_s: number(time_key).or(head.time_s),
        stage1_s: head.stage1_s,
        reached_threshold: head.reached_threshold.unwrap_or(false),
    }
}

/// What `fear evaluate` does with architectures that have no score (`--not-ok`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum NotOk {
    /// Leave them out of every metric and the mean time, and count them: the FEAR paper's
    /// analysis (archai's `num_archs_unmet_cond`).
    #[default]
    Drop,
    /// Rank them last, tied with each other, their time in the means.
    Last,
}

/// Leaves out of `method` the architectures without a score (a status other than ok, or no
/// value), as the paper's analysis did, and returns how many per status (`no score` for an ok
/// line without one). `lines` is the file the method was read from.
pub fn drop_unscored(method: &mut MethodResults, lines: &[Value]) -> BTreeMap<String, usize> {
    let status: HashMap<u64, Status> = lines.iter().filter_map(LineHead::of).map(|h| (h.index, h.status())).collect();
    let mut dropped = BTreeMap::new();
    method.archs.retain(|a| {
        if a.score.is_some() {
            return true;
        }
        let s = status.get(&(a.index as u64)).filter(|s| **s != Status::Ok).map_or("no score", |s| s.name());
        *dropped.entry(s.to_string()).or_insert(0) += 1;
        false
    });
    dropped
}

/// Makes names unique: a name used by more than one method gets ` [file]` appended.
pub fn disambiguate(methods: &mut [MethodResults]) {
    let names: Vec<String> = methods.iter().map(|m| m.name.clone()).collect();
    for m in methods.iter_mut() {
        if names.iter().filter(|n| **n == m.name).count() > 1 {
            m.name = format!("{} [{}]", m.name, m.file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fear_shortreg_and_zero_cost_files() {
        let fear = [
            json!({"index": 3, "score": 0.5, "status": "ok", "stage1_s": 2.0, "time_s": 3.0, "reached_threshold": true}),
            json!({"index": 4, "score": null, "status": "capped", "stage1_s": 9.0, "time_s": 9.0, "reached_threshold": false}),
        ];
        let m = methods_from_lines("r.jsonl", &fear).unwrap();
        assert_eq!((m.len(), m[0].name.as_str(), m[0].kind), (1, "fear", Kind::Fear));
        assert_eq!(m[0].archs[1], ArchResult { index: 4, score: None, time_s: Some(9.0), stage1_s: Some(9.0), reached_threshold: false });

        let sr = [json!({"index": 3, "score": 0.5, "status": "diverged", "epochs": 10, "batch": 512, "time_s": 1.0})];
        let m = methods_from_lines("s.jsonl", &sr).unwrap();
        assert_eq!((m[0].name.as_str(), m[0].kind, m[0].archs[0].score), ("shortreg-e10-b512", Kind::Shortreg, None));

        let zc = [
            json!({"index": 3, "arch": "x", "snip": 2.0, "snip_time_s": 0.1, "mystery": 7, "mystery_time_s": 0.2, "synflow": 1e40, "batch": 256}),
            json!({"index": 5, "arch": "y", "snip": null, "snip_time_s": 0.1, "mystery": 8, "mystery_time_s": 0.2, "synflow": 1e41, "batch": 256}),
        ];
        let m = methods_from_lines("z.jsonl", &zc).unwrap();
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["synflow", "snip", "mystery"]);
        assert_eq!(m[1].archs[0].time_s, Some(0.1));
        assert_eq!(m[1].archs[1].score, None);
        assert_eq!(m[0].archs[0].time_s, None);

        let err = methods_from_lines("z.jsonl", &[json!({"index": 1}), json!({"index": 1})]).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
        assert!(methods_from_lines("z.jsonl", &[json!({"index": 1, "arch": "x"})]).is_err());
        assert!(methods_from_lines("z.jsonl", &[]).unwrap_err().to_string().contains("no results"));
        assert!(methods_from_lines("z.jsonl", &[json!({"index": 15625, "score": 1})]).is_err());
    }

    #[test]
    fn repeated_names_get_their_file() {
        let line = [json!({"index": 1, "score": 0.1, "stage1_s": 1.0})];
        let mut m = methods_from_lines("a.jsonl", &line).unwrap();
        m.extend(methods_from_lines("b.jsonl", &line).unwrap());
        disambiguate(&mut m);
        assert_eq!((m[0].name.as_str(), m[1].name.as_str()), ("fear [a.jsonl]", "fear [b.jsonl]"));
    }
}
