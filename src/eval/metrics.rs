//! The ranking metrics of the FEAR paper (README, "Evaluation") and the zero-cost paper: Spearman's
//! rho and Kendall's tau-b (tie-aware, as scipy's `spearmanr` and `kendalltau` compute them),
//! pairwise accuracy, precision@k and regret@k. A metric that is undefined (fewer than two
//! architectures, or every value tied) is None.

use rayon::prelude::*;

use super::order::{average_ranks, count_inversions, tied_pairs};

/// Spearman's rho: Pearson's correlation of the average ranks of `x` and `y`.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    assert_eq!(x.len(), y.len());
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Pearson's correlation coefficient.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n as f64;
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    // Rounding can carry |r| a hair past 1 for identical rankings.
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Kendall's tau-b: (concordant - discordant) / sqrt((n0 - tied x) (n0 - tied y)), in
/// O(n log n) by Knight's method: sort by (x, y); the discordant pairs are then the inversions of y.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    assert_eq!(x.len(), y.len());
    let n = x.len() as u64;
    if n < 2 {
        return None;
    }
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(y[a].total_cmp(&y[b])));
    let y_sorted: Vec<f64> = order.iter().map(|&p| y[p]).collect();
    let discordant = count_inversions(&y_sorted);
    let pairs = n * (n - 1) / 2;
    let (tied_x, tied_y) = (tied_pairs(x), tied_pairs(y));
    let tied_both = tied_pairs_jointly(&order, x, y);
    let untied = pairs - tied_x - tied_y + tied_both;
    let denominator = ((pairs - tied_x) as f64 * (pairs - tied_y) as f64).sqrt();
    if denominator == 0.0 {
        return None;
    }
    let concordant_minus_discordant = untied as f64 - 2.0 * discordant as f64;
    Some((concordant_minus_discordant / denominator).clamp(-1.0, 1.0))
}

/// Pairs tied in both x and y, given positions sorted by (x, y).
fn tied_pairs_jointly(order: &[usize], x: &[f64], y: &[f64]) -> u64 {
    let mut pairs = 0u64;
    let mut start = 0;
    while start < order.len() {
        let p = order[start];
        let t = order[start..].iter().take_while(|&&q| x[q] == x[p] && y[q] == y[p]).count() as u64;
        pairs += t * (t - 1) / 2;
        start += t as usize;
    }
    pairs
}

/// Pairwise accuracy of a strict ordering: among pairs of architectures whose ground truth
/// differs, the share the ordering puts the better one first. `truth_in_order` is the ground
/// truth of each architecture in the ordering's order (best first).
pub fn pairwise_accuracy(truth_in_order: &[f64]) -> Option<f64> {
    let n = truth_in_order.len() as u64;
    let comparable = (n * n.saturating_sub(1) / 2).checked_sub(tied_pairs(truth_in_order))?;
    // A correct pair is one where the earlier architecture has the higher ground truth.
    (comparable > 0).then(|| count_inversions(truth_in_order) as f64 / comparable as f64)
}

/// Pairwise accuracy of a preference that need not be an ordering (a majority vote):
/// `prefers_first(i, j)` says whether architecture i is judged better than j. O(n^2).
pub fn pairwise_accuracy_by(truth: &[f64], prefers_first: impl Fn(usize, usize) -> bool + Sync) -> Option<f64> {
    let n = truth.len();
    let (correct, comparable) = (0..n)
        .into_par_iter()
        .map(|i| {
            let (mut correct, mut comparable) = (0u64, 0u64);
            for j in i + 1..n {
                if truth[i] != truth[j] {
                    comparable += 1;
                    correct += u64::from(prefers_first(i, j) == (truth[i] > truth[j]));
                }
            }
            (correct, comparable)
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    (comparable > 0).then(|| correct as f64 / comparable as f64)
}

/// precision@k: the share of the method's top k that are among the top k by ground truth.
/// Both are prefixes of strict orderings (positions); None when fewer than k architectures.
pub fn precision_at(truth_order: &[usize], score_order: &[usize], k: usize) -> Option<f64> {
    (k > 0 && k <= truth_order.len()).then(|| overlap(&truth_order[..k], &score_order[..k]) as f64 / k as f64)
}

/// regret@k: the best ground truth of all minus the best ground truth among the method's top k
/// (in ground-truth units: accuracy points). None when fewer than k architectures.
pub fn regret_at(truth: &[f64], score_order: &[usize], k: usize) -> Option<f64> {
    if k == 0 || k > truth.len() {
        return None;
    }
    let best = truth.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let best_picked = score_order[..k].iter().map(|&p| truth[p]).fold(f64::NEG_INFINITY, f64::max);
    Some(best - best_picked)
}

/// How many positions two sets (given as lists of distinct positions) share.
pub fn overlap(a: &[usize], b: &[usize]) -> usize {
    let in_a: std::collections::HashSet<usize> = a.iter().copied().collect();
    b.iter().filter(|p| in_a.contains(p)).count()
}
