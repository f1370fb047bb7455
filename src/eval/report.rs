//! A method's evaluation against the ground truth: every metric of the FEAR paper (README,
//! "Evaluation") and the zero-cost paper over the architectures its results file holds, and `vote`.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use serde::Serialize;

use super::bins::{bins, Bin};
use super::ground_truth::GroundTruth;
use super::methods::{ArchResult, Kind, MethodResults, VOTE_PROXIES};
use super::metrics::{kendall_tau_b, pairwise_accuracy, pairwise_accuracy_by, precision_at, regret_at, spearman};
use super::order::places;
use super::population::Population;

/// The k of precision@k and regret@k.
pub const TOP_K: [usize; 3] = [1, 10, 50];

/// precision@k and regret@k for one k.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TopK {
    pub k: usize,
    pub precision: Option<f64>,
    pub regret: Option<f64>,
}

/// One method's metrics (the `methods` entries of `fear evaluate --json`).
#[derive(Clone, Debug, Serialize)]
pub struct MethodReport {
    pub name: String,
    pub kind: Kind,
    pub file: String,
    /// Architectures evaluated.
    pub n: usize,
    /// Of those, the ones without a score (status not ok), ranked last (`--not-ok last`).
    pub not_ok: usize,
    /// Architectures left out before evaluating, per status (`--not-ok drop`; set by the caller).
    pub dropped: BTreeMap<String, usize>,
    pub spearman: Option<f64>,
    pub kendall: Option<f64>,
    pub pairwise_accuracy: Option<f64>,
    /// Mean time per architecture over all of them.
    pub mean_time_s: Option<f64>,
    pub top_k: Vec<TopK>,
    pub bins: Vec<Bin>,
}

/// The population of a method: its architectures with their ground truth.
pub fn population(method: &MethodResults, truth: &GroundTruth) -> Result<Population> {
    let mut pop = Population::default();
    for a in &method.archs {
        let t = truth.get(a.index).with_context(|| format!("{}: architecture {} has no {} ground truth", method.file, a.index, truth.column))?;
        pop.push(a.index, t, a.score, a.time_s);
    }
    Ok(pop)
}

/// Every metric of one method.
pub fn evaluate(method: &MethodResults, truth: &GroundTruth) -> Result<MethodReport> {
    let pop = population(method, truth)?;
    let (truth_order, score_order) = (pop.truth_order(), pop.score_order());
    let truth_by_score: Vec<f64> = score_order.iter().map(|&p| pop.truth[p]).collect();
    let all: Vec<usize> = (0..pop.len()).collect();
    Ok(MethodReport {
        name: method.name.clone(),
        kind: method.kind,
        file: method.file.clone(),
        n: pop.len(),
        not_ok: pop.unscored(),
        dropped: BTreeMap::new(),
        spearman: spearman(&pop.truth, &pop.score),
        kendall: kendall_tau_b(&pop.truth, &pop.score),
        pairwise_accuracy: pairwise_accuracy(&truth_by_score),
        mean_time_s: pop.mean_time(&all),
        top_k: TOP_K
            .iter()
            .map(|&k| TopK { k, precision: precision_at(&truth_order, &score_order, k), regret: regret_at(&pop.truth, &score_order, k) })
            .collect(),
        bins: bins(&pop),
    })
}

/// `vote` (the zero-cost paper): for each pair of architectures, the majority of synflow,
/// jacob_cov and snip (each a strict ordering) says which is better; its pairwise accuracy over
/// the architectures all three hold. None unless all three proxies are among `methods`.
pub fn vote(methods: &[MethodResults], truth: &GroundTruth) -> Result<Option<MethodReport>> {
    let find = |name: &str| methods.iter().find(|m| m.kind == Kind::ZeroCost && (m.name == name || m.name.starts_with(&format!("{name} ["))));
    let Some(voters) = VOTE_PROXIES.iter().map(|p| find(p)).collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    let by_index: Vec<HashMap<usize, &ArchResult>> = voters.iter().map(|m| m.archs.iter().map(|a| (a.index, a)).collect()).collect();
    let common: Vec<usize> = voters[0].archs.iter().map(|a| a.index).filter(|i| by_index.iter().all(|m| m.contains_key(i))).collect();
    // Each voter's strict order over the common architectures, as places (0 = best).
    let mut pops = Vec::new();
    for (m, lookup) in voters.iter().zip(&by_index) {
        let restricted = MethodResults { archs: common.iter().map(|i| lookup[i].clone()).collect(), ..(*m).clone() };
        pops.push(population(&restricted, truth)?);
    }
    let place: Vec<Vec<usize>> = pops.iter().map(|p| places(&p.score_order())).collect();
    let prefers_first = |i: usize, j: usize| place.iter().filter(|pl| pl[i] < pl[j]).count() >= 2;
    let unscored = (0..common.len()).filter(|&p| pops.iter().any(|pop| pop.score[p] == f64::NEG_INFINITY)).count();
    Ok(Some(MethodReport {
        name: "vote".into(),
        kind: Kind::Vote,
        file: voters.iter().map(|m| m.file.as_str()).collect::<Vec<_>>().join(" "),
        n: common.len(),
        not_ok: unscored,
        dropped: BTreeMap::new(),
        spearman: None,
        kendall: None,
        pairwise_accuracy: pairwise_accuracy_by(&pops[0].truth, prefers_first),
        // Voting costs all three proxies.
        mean_time_s: pops.iter().map(|p| p.mean_time(&(0..common.len()).collect::<Vec<_>>())).sum(),
        top_k: Vec::new(),
        bins: Vec::new(),
    }))
}
