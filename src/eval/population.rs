//! The architectures one method ranked, with their ground truth: what every metric reads.

use super::order::descending_order;

/// Parallel columns, one entry per architecture.
#[derive(Clone, Debug, Default)]
pub struct Population {
    /// NATS-Bench index (the tie-breaker of every ordering).
    pub index: Vec<usize>,
    /// Ground-truth accuracy.
    pub truth: Vec<f64>,
    /// The method's score; `f64::NEG_INFINITY` where the method gave none (a line whose status
    /// is not ok), so those architectures rank last, tied with each other.
    pub score: Vec<f64>,
    /// Wall-clock seconds the method spent on the architecture, when known.
    pub time_s: Vec<Option<f64>>,
}

impl Population {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Adds an architecture; a missing or NaN score becomes "ranked last".
    pub fn push(&mut self, index: usize, truth: f64, score: Option<f64>, time_s: Option<f64>) {
        self.index.push(index);
        self.truth.push(truth);
        self.score.push(score.filter(|s| !s.is_nan()).unwrap_or(f64::NEG_INFINITY));
        self.time_s.push(time_s);
    }

    /// Architectures without a score.
    pub fn unscored(&self) -> usize {
        self.score.iter().filter(|s| **s == f64::NEG_INFINITY).count()
    }

    /// Positions by ground truth, best first (ties by index).
    pub fn truth_order(&self) -> Vec<usize> {
        descending_order(&self.truth, &self.index)
    }

    /// Positions by score, best first (ties by index; unscored last).
    pub fn score_order(&self) -> Vec<usize> {
        descending_order(&self.score, &self.index)
    }

    /// The mean of the known times over `positions` (None if none is known).
    pub fn mean_time(&self, positions: &[usize]) -> Option<f64> {
        let known: Vec<f64> = positions.iter().filter_map(|&p| self.time_s[p]).collect();
        (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
    }

    /// The columns at `positions`: (truth, score).
    pub fn select(&self, positions: &[usize]) -> (Vec<f64>, Vec<f64>) {
        (positions.iter().map(|&p| self.truth[p]).collect(), positions.iter().map(|&p| self.score[p]).collect())
    }
}
