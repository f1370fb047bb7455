//! Methods made from other methods of the same architectures: rank ensembles
//! (`--ensemble NAME=rule:m1,m2,...`), AZ-NAS's own aggregate `az_nas` (made whenever a file holds
//! its four scores), and FEAR's stage-1 signal `fear-epochs` (made from every FEAR file).
//!
//! Rules, over the architectures every member scored (ranks ascending from 1, ties sharing the
//! mean rank, as scipy's `rankdata`; a member's unscored architecture ranks lowest):
//! - `logrank`: sum over members of log(rank / m), m architectures (AZ-NAS's non-linear rank
//!   aggregation: one poor rank weighs more than one good one);
//! - `meanrank`: the mean rank (Borda);
//! - `vote`: Copeland's count of the pairwise majority: for each other architecture, 1 when more
//!   members rank this one above it than below, 0.5 when as many.
//!
//! An architecture some member did not score (status not ok) is not scored by the ensemble. Its
//! time is the sum of its members' distinct times (members sharing one pass, like AZ-NAS's
//! scores, report the same time and count once).

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::methods::{ArchResult, Kind, MethodResults};
use super::order::average_ranks;

/// How an ensemble combines its members' ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    LogRank,
    MeanRank,
    Vote,
}

/// `NAME=rule:m1,m2,...`.
#[derive(Clone, Debug, PartialEq)]
pub struct EnsembleSpec {
    pub name: String,
    pub rule: Rule,
    pub members: Vec<String>,
}

impl Rule {
    /// The name `--ensemble` takes.
    pub fn name(self) -> &'static str {
        match self {
            Rule::LogRank => "logrank",
            Rule::MeanRank => "meanrank",
            Rule::Vote => "vote",
        }
    }
}

/// As parsed: `NAME=rule:m1,m2,...`.
impl std::fmt::Display for EnsembleSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}:{}", self.name, self.rule.name(), self.members.join(","))
    }
}

/// Parses `NAME=rule:m1,m2,...` (at least two members).
pub fn parse_ensemble(spec: &str) -> Result<EnsembleSpec, String> {
    let bad = || format!("{spec:?}: expected NAME=RULE:METHOD,METHOD,... with RULE logrank, meanrank or vote");
    let (name, rest) = spec.split_once('=').ok_or_else(bad)?;
    let (rule, members) = rest.split_once(':').ok_or_else(bad)?;
    let rule = match rule.trim() {
        "logrank" => Rule::LogRank,
        "meanrank" => Rule::MeanRank,
        "vote" => Rule::Vote,
        other => return Err(format!("{spec:?}: unknown rule {other:?}; expected logrank, meanrank or vote")),
    };
    let members: Vec<String> = members.split(',').map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect();
    if name.trim().is_empty() || members.len() < 2 {
        return Err(format!("{spec:?}: an ensemble needs a name and at least two methods"));
    }
    Ok(EnsembleSpec { name: name.trim().to_string(), rule, members })
}

/// The method `name` among `methods`: its exact name, or a name made unique with its file.
fn find<'a>(methods: &'a [MethodResults], name: &str) -> Result<&'a MethodResults> {
    let matching: Vec<&MethodResults> = methods.iter().filter(|m| m.name == name || m.name.starts_with(&format!("{name} ["))).collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(anyhow!("no method {name:?} in the results (have: {})", methods.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "))),
        _ => bail!("method {name:?} is in several files; name one as shown: {}", matching.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")),
    }
}

/// The ensemble `spec` of `methods`.
pub fn ensemble(spec: &EnsembleSpec, methods: &[MethodResults]) -> Result<MethodResults> {
    let members = spec.members.iter().map(|m| find(methods, m)).collect::<Result<Vec<_>>>()?;
    Ok(combine(&spec.name, Kind::Ensemble, spec.rule, &members))
}

/// The members' combination over the architectures all of them hold.
fn combine(name: &str, kind: Kind, rule: Rule, members: &[&MethodResults]) -> MethodResults {
    let lookup: Vec<HashMap<usize, &ArchResult>> = members.iter().map(|m| m.archs.iter().map(|a| (a.index, a)).collect()).collect();
    let common: Vec<usize> = members[0].archs.iter().map(|a| a.index).filter(|i| lookup.iter().all(|l| l.contains_key(i))).collect();
    let ranks: Vec<Vec<f64>> = lookup
        .iter()
        .map(|l| {
            let scores: Vec<f64> = common.iter().map(|i| l[i].score.unwrap_or(f64::NEG_INFINITY)).collect();
            average_ranks(&scores)
        })
        .collect();
    let scores = combined_scores(rule, &ranks, common.len());
    let archs = common
        .iter()
        .enumerate()
        .map(|(p, &index)| {
            let all_scored = lookup.iter().all(|l| l[&index].score.is_some());
            let mut times: Vec<f64> = lookup.iter().filter_map(|l| l[&index].time_s).collect();
            times.sort_by(f64::total_cmp);
            times.dedup();
            ArchResult {
                index,
                score: all_scored.then_some(scores[p]),
                time_s: (!times.is_empty()).then(|| times.iter().sum()),
                stage1_s: None,
                reached_threshold: false,
            }
        })
        .collect();
    let file = members.iter().map(|m| m.file.as_str()).collect::<Vec<_>>().join(" ");
    MethodResults { name: name.to_string(), kind, file, archs }
}

/// Per architecture (position), the rule applied to the members' ranks of `m` architectures.
pub fn combined_scores(rule: Rule, ranks: &[Vec<f64>], m: usize) -> Vec<f64> {
    match rule {
        Rule::LogRank => (0..m).map(|p| ranks.iter().map(|r| (r[p] / m as f64).ln()).sum()).collect(),
        Rule::MeanRank => (0..m).map(|p| ranks.iter().map(|r| r[p]).sum::<f64>() / ranks.len() as f64).collect(),
        Rule::Vote => (0..m)
            .map(|p| {
                (0..m)
                    .filter(|&q| q != p)
                    .map(|q| {
                        let above = ranks.iter().filter(|r| r[p] > r[q]).count();
                        let below = ranks.iter().filter(|r| r[p] < r[q]).count();
                        match above.cmp(&below) {
                            std::cmp::Ordering::Greater => 1.0,
                            std::cmp::Ordering::Equal => 0.5,
                            std::cmp::Ordering::Less => 0.0,
                        }
                    })
                    .sum()
            })
            .collect(),
    }
}

/// AZ-NAS's four scores, in its aggregate.
pub const AZ_NAS_MEMBERS: [&str; 4] = ["az_expressivity", "az_progressivity", "az_trainability", "flops"];

/// `az_nas` (logrank of its four scores) for every file that holds all four.
pub fn az_nas_methods(methods: &[MethodResults]) -> Vec<MethodResults> {
    let mut files: Vec<&str> = methods.iter().map(|m| m.file.as_str()).collect();
    files.dedup();
    files
        .into_iter()
        .filter_map(|file| {
            let of_file: Vec<&MethodResults> = AZ_NAS_MEMBERS
                .iter()
                .map(|p| methods.iter().find(|m| m.file == file && m.kind == Kind::ZeroCost && m.name.split(" [").next() == Some(*p)))
                .collect::<Option<_>>()?;
            let mut az = combine("az_nas", Kind::ZeroCost, Rule::LogRank, &of_file);
            // The three scores share one pass: its time plus the FLOPs count's.
            for a in &mut az.archs {
                let time = |m: &MethodResults| m.archs.iter().find(|x| x.index == a.index).and_then(|x| x.time_s);
                a.time_s = time(of_file[0]).map(|t| t + time(of_file[3]).unwrap_or(0.0));
            }
            Some(az)
        })
        .collect()
}

/// Epochs stage 1 took to reach `threshold`, interpolated linearly within the crossing epoch
/// between the accuracy of the epoch before (0 before the first) and that epoch's; None when no
/// epoch reached it.
pub fn epochs_to_threshold(acc: &[f64], threshold: f64) -> Option<f64> {
    let k = acc.iter().position(|a| *a >= threshold)?;
    let before = if k == 0 { 0.0 } else { acc[k - 1] };
    let within = if acc[k] > before { ((threshold - before) / (acc[k] - before)).clamp(0.0, 1.0) } else { 1.0 };
    Some(k as f64 + within)
}

/// `fear-epochs` of a FEAR file's lines: minus the epochs to the threshold (fewer is better),
/// timed as stage 1; a line that is not ok or never reached the threshold is unscored.
pub fn fear_epochs_method(file: &str, lines: &[Value]) -> MethodResults {
    let archs = lines
        .iter()
        .map(|l| {
            let ok = l.get("status").and_then(Value::as_str).is_none_or(|s| s == "ok");
            let acc: Vec<f64> = l.get("stage1_acc").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
            let epochs = l.get("threshold").and_then(Value::as_f64).and_then(|t| epochs_to_threshold(&acc, t));
            ArchResult {
                index: l["index"].as_u64().expect("indices were checked") as usize,
                score: epochs.filter(|_| ok).map(|e| -e),
                time_s: l.get("stage1_s").and_then(Value::as_f64),
                stage1_s: l.get("stage1_s").and_then(Value::as_f64),
                reached_threshold: epochs.is_some(),
            }
        })
        .collect();
    MethodResults { name: "fear-epochs".into(), kind: Kind::FearEpochs, file: file.to_string(), archs }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(name: &str, scores: &[Option<f64>]) -> MethodResults {
        let archs = scores
            .iter()
            .enumerate()
            .map(|(i, s)| ArchResult { index: i, score: *s, time_s: Some(1.0 + i as f64), stage1_s: None, reached_threshold: false })
            .collect();
        MethodResults { name: name.into(), kind: Kind::ZeroCost, file: "z.jsonl".into(), archs }
    }

    #[test]
    fn rules_by_hand() {
        // Ranks: a = [1, 2, 3], b = [3, 2, 1] (reversed), c = [1, 3, 2].
        let ranks = vec![vec![1.0, 2.0, 3.0], vec![3.0, 2.0, 1.0], vec![1.0, 3.0, 2.0]];
        let log = combined_scores(Rule::LogRank, &ranks, 3);
        let want = |r: [f64; 3]| r.iter().map(|x| (x / 3.0).ln()).sum::<f64>();
        assert!((log[0] - want([1.0, 3.0, 1.0])).abs() < 1e-12 && (log[1] - want([2.0, 2.0, 3.0])).abs() < 1e-12);
        assert_eq!(combined_scores(Rule::MeanRank, &ranks, 3), vec![5.0 / 3.0, 7.0 / 3.0, 2.0]);
        // Pairwise: 1 beats 0 (a, c), 2 beats 0 (a, b), 1 beats 2 (a... a: 2<3 no; b: 2>1 yes; c: 3>2 yes).
        assert_eq!(combined_scores(Rule::Vote, &ranks, 3), vec![0.0, 2.0, 1.0]);
    }

    #[test]
    fn ensembles_use_common_scored_architectures() {
        let a = method("a", &[Some(1.0), Some(2.0), Some(3.0), None]);
        let mut b = method("b", &[Some(3.0), Some(2.0), Some(1.0), Some(0.0)]);
        b.archs.pop();
        b.archs[1].time_s = Some(2.0); // the same time as a's: counted once
        let spec = parse_ensemble("ab=meanrank:a,b").unwrap();
        let e = ensemble(&spec, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(e.archs.len(), 3);
        assert_eq!(e.archs.iter().map(|x| x.score).collect::<Vec<_>>(), vec![Some(2.0), Some(2.0), Some(2.0)]);
        assert_eq!(e.archs[1].time_s, Some(2.0));
        assert!(ensemble(&parse_ensemble("x=vote:a,zz").unwrap(), &[a, b]).unwrap_err().to_string().contains("no method \"zz\""));
        assert!(parse_ensemble("x=median:a,b").unwrap_err().contains("unknown rule"));
        assert!(parse_ensemble("x=vote:a").unwrap_err().contains("at least two"));
        for text in ["x=vote:a,b", "y=logrank:a,b,c", "z=meanrank:p,q"] {
            assert_eq!(parse_ensemble(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn epochs_interpolate_within_the_crossing_epoch() {
        assert_eq!(epochs_to_threshold(&[0.2, 0.4, 0.8], 0.6), Some(2.5));
        assert_eq!(epochs_to_threshold(&[0.75], 0.5), Some(0.5 / 0.75));
        assert_eq!(epochs_to_threshold(&[0.2, 0.3], 0.5), None);
    }
}
