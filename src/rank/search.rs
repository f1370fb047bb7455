//! Random search (the FEAR paper's, README "`fear search`"): architectures drawn without
//! replacement are evaluated one after another; FEAR's stage 1 is cut off once it runs longer than
//! `ratio` times the fastest time to threshold seen so far (the time spent still counts); the best
//! is the highest search score (FEAR: the best stage-2 epoch; shortreg: its score), ties going to
//! the lower index.
//!
//! This module keeps the search's state; training each candidate is the caller's.

use serde_json::Value;

use crate::schema::LineHead;

/// What the search learns from one evaluated architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub index: usize,
    /// The score the search ranks by; None when the run did not finish (capped, cut off, diverged).
    pub score: Option<f64>,
    /// Seconds spent on it, counted toward the search time.
    pub time_s: f64,
    /// FEAR's stage-1 time when it reached the threshold.
    pub time_to_threshold_s: Option<f64>,
}

impl Candidate {
    /// The candidate a trajectory line records (fields `index`, `search_score`, `time_s`,
    /// `reached_threshold`, `stage1_s`).
    pub fn from_line(line: &Value) -> Option<Candidate> {
        let head = LineHead::of(line)?;
        Some(Candidate {
            index: head.index as usize,
            score: head.search_score,
            time_s: head.time_s.unwrap_or(0.0),
            time_to_threshold_s: if head.reached_threshold.unwrap_or(false) { head.stage1_s } else { None },
        })
    }
}

/// The best architecture found so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Best {
    pub index: usize,
    pub score: f64,
}

/// Where a search stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchState {
    /// Architectures evaluated.
    pub evaluated: usize,
    /// Total seconds spent, cut-off runs included.
    pub search_time_s: f64,
    /// The fastest time to threshold seen.
    pub fastest_threshold_s: Option<f64>,
    pub best: Option<Best>,
}

impl SearchState {
    /// The state after the candidates of an existing trajectory, in file order (to resume).
    pub fn replay(lines: &[Value]) -> SearchState {
        let mut state = SearchState::default();
        for c in lines.iter().filter_map(Candidate::from_line) {
            state.observe(&c);
        }
        state
    }

    /// The stage-1 time budget of the next candidate: `ratio` times the fastest time to
    /// threshold so far; none before any candidate has reached the threshold.
    pub fn cutoff_s(&self, ratio: f64) -> Option<f64> {
        self.fastest_threshold_s.map(|t| ratio * t)
    }

    /// Takes one evaluated candidate into account.
    pub fn observe(&mut self, c: &Candidate) {
        self.evaluated += 1;
        self.search_time_s += c.time_s;
        if let Some(t) = c.time_to_threshold_s {
            self.fastest_threshold_s = Some(self.fastest_threshold_s.map_or(t, |f| f.min(t)));
        }
        if let Some(score) = c.score.filter(|s| !s.is_nan()) {
            let better = self.best.is_none_or(|b| score > b.score || (score == b.score && c.index < b.index));
            if better {
                self.best = Some(Best { index: c.index, score });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cand(index: usize, score: Option<f64>, time_s: f64, ttt: Option<f64>) -> Candidate {
        Candidate { index, score, time_s, time_to_threshold_s: ttt }
    }

    #[test]
    fn cutoff_follows_the_fastest_time_to_threshold() {
        let mut s = SearchState::default();
        assert_eq!(s.cutoff_s(4.0), None, "no budget before a threshold was reached");
        s.observe(&cand(10, Some(0.5), 30.0, Some(20.0)));
        assert_eq!(s.cutoff_s(4.0), Some(80.0));
        // Cut off: no score, its 85 s still count.
        s.observe(&cand(11, None, 85.0, None));
        assert_eq!((s.cutoff_s(4.0), s.search_time_s), (Some(80.0), 115.0));
        s.observe(&cand(12, Some(0.4), 12.0, Some(5.0)));
        assert_eq!(s.cutoff_s(4.0), Some(20.0));
        assert_eq!(s.best, Some(Best { index: 10, score: 0.5 }));
        // A tie goes to the lower index, whatever the order met.
        s.observe(&cand(3, Some(0.5), 1.0, None));
        assert_eq!(s.best, Some(Best { index: 3, score: 0.5 }));
        s.observe(&cand(7, Some(0.5), 1.0, None));
        assert_eq!(s.best, Some(Best { index: 3, score: 0.5 }));
        assert_eq!(s.evaluated, 5);
    }

    #[test]
    fn replay_rebuilds_the_state_from_lines() {
        let lines = [
            json!({"index": 10, "search_score": 0.5, "time_s": 30.0, "reached_threshold": true, "stage1_s": 20.0}),
            json!({"index": 11, "search_score": null, "time_s": 85.0, "reached_threshold": false, "stage1_s": 85.0}),
        ];
        let mut direct = SearchState::default();
        direct.observe(&cand(10, Some(0.5), 30.0, Some(20.0)));
        direct.observe(&cand(11, None, 85.0, None));
        assert_eq!(SearchState::replay(&lines), direct);
    }
}
