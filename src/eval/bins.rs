//! The FEAR paper's cumulative bins (README, "Evaluation"): sort the architectures by ground truth,
//! best first; for x = 10, 20, ..., 100 % take the top n = floor(N x / 100) and report, within that
//! set, Spearman between ground truth and score, the common ratio |top n by ground truth ∩ top n by
//! score| / n (the score's top n taken over the whole population), and the mean time.

use serde::Serialize;

use super::metrics::{overlap, spearman};
use super::population::Population;

/// The bins' sizes, in percent of the population.
pub const BIN_PERCENTS: [usize; 10] = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];

/// One cumulative bin.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bin {
    pub top_pct: usize,
    pub n: usize,
    pub spearman: Option<f64>,
    pub common_ratio: Option<f64>,
    pub mean_time_s: Option<f64>,
}

/// The ten bins of a population.
pub fn bins(pop: &Population) -> Vec<Bin> {
    let (truth_order, score_order) = (pop.truth_order(), pop.score_order());
    BIN_PERCENTS.iter().map(|&pct| bin(pop, &truth_order, &score_order, pct)).collect()
}

/// The top `pct` % bin, given the population's two strict orderings.
pub fn bin(pop: &Population, truth_order: &[usize], score_order: &[usize], pct: usize) -> Bin {
    let n = pop.len() * pct / 100;
    let members = &truth_order[..n];
    let (truth, score) = pop.select(members);
    Bin {
        top_pct: pct,
        n,
        spearman: spearman(&truth, &score),
        common_ratio: (n > 0).then(|| overlap(members, &score_order[..n]) as f64 / n as f64),
        mean_time_s: pop.mean_time(members),
    }
}
