//! The results lines, typed: one [`Status`], one record type per method (FEAR, shortreg,
//! zero-cost, a failed architecture) written through serde, and [`LineHead`], the fields every
//! line shares, read through serde. A line is written as a JSON object with its keys sorted
//! (serde_json's map), so these types keep the files byte for byte as before.
//!
//! Search lines are a FEAR or shortreg record flattened into the search's own fields
//! ([`SearchRecord`]); `rank --shortlist` lines a FEAR record under the shortlist's fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::Recipe;
use crate::engine::precision::Precision;
use crate::net::NetConfig;

/// How an architecture's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// A loss went NaN or infinite.
    Diverged,
    /// Stage 1 never reached the threshold within its epoch cap or time budget (FEAR; a
    /// disconnected cell FEAR does not train is capped too, its `reason` says why).
    Capped,
    /// The run of this architecture ended in an error (a device error, an out-of-memory, a
    /// panic); the line's `reason` says which. See [`crate::rank::failure`].
    Failed,
    /// A zero-cost line (or a shortlist's proxy line) of a cell whose output ignores its
    /// input: its proxy scores are finite but meaningless, so `fear evaluate` treats it as
    /// not ok (drops it, or ranks it last under `--not-ok last`).
    Disconnected,
}

impl Status {
    /// The name written in results lines.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Diverged => "diverged",
            Status::Capped => "capped",
            Status::Failed => "failed",
            Status::Disconnected => "disconnected",
        }
    }
}

/// A `fear rank` line.
#[derive(Serialize, Deserialize, Debug)]
pub struct RankRecord {
    pub index: usize,
    pub arch: String,
    pub status: Status,
    /// Why the status is not ok, when there is more to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub score: Option<f64>,
    pub reached_threshold: bool,
    pub stage1_epochs: usize,
    pub stage1_s: f64,
    pub stage2_s: f64,
    pub time_s: f64,
    pub stage1_acc: Vec<f64>,
    pub stage2_acc: Vec<f64>,
    pub threshold: f64,
    #[serde(flatten)]
    pub run: RunContext,
}

/// What a FEAR or shortreg line records of the run it came from (flattened into the line: the
/// same keys as the record's own).
#[derive(Serialize, Deserialize, Debug)]
pub struct RunContext {
    pub dataset: String,
    /// The data recipe (`paper` or `natsbench`) and the Cutout side trained with.
    pub recipe: Recipe,
    pub cutout: usize,
    /// Network channels C and cells per stage N.
    pub channels: usize,
    pub cells_per_stage: usize,
    pub device: String,
    pub seed: u64,
    /// The convolutions' product precision (`fp32`, `tf32`); lines written before it existed
    /// were fp32.
    #[serde(default = "fp32")]
    pub precision: String,
}

fn fp32() -> String {
    "fp32".into()
}

impl RunContext {
    /// The context of a run on dataset `dataset` with network `net`, trained with `recipe`,
    /// Cutout side `cutout` and convolution products at `precision`, on `device`, from `seed`.
    pub fn new(dataset: &str, net: &NetConfig, recipe: Recipe, cutout: usize, precision: Precision, device: String, seed: u64) -> RunContext {
        RunContext { dataset: dataset.into(), recipe, cutout, channels: net.c, cells_per_stage: net.n, device, seed, precision: precision.name().into() }
    }
}

/// A `fear shortreg` line.
#[derive(Serialize, Deserialize, Debug)]
pub struct ShortregRecord {
    pub index: usize,
    pub arch: String,
    pub status: Status,
    /// The best epoch's training accuracy.
    pub score: Option<f64>,
    pub epochs: usize,
    pub batch: usize,
    /// Each epoch's training accuracy.
    pub train_acc: Vec<f64>,
    pub time_s: f64,
    pub lr: f64,
    #[serde(flatten)]
    pub run: RunContext,
}

/// The configuration of a `fear zero-cost` run, written into each of its lines.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ZeroCostConfig {
    /// The proxies, a comma list in the order asked for.
    pub proxies: String,
    /// None when no data was loaded (the data-free proxies of the demo).
    pub dataset: Option<String>,
    pub seed: u64,
    pub batch: usize,
    pub trained_epochs: usize,
    pub channels: usize,
    pub cells_per_stage: usize,
    pub recipe: Recipe,
}

/// A `fear zero-cost` line: each proxy's score under its name and its seconds under
/// `NAME_time_s` (null where not finite). Written only: `fear evaluate` reads a zero-cost file's
/// proxy columns by the names it finds (any proxy, also another tool's).
#[derive(Serialize, Debug)]
pub struct ZeroCostRecord {
    pub index: usize,
    pub arch: String,
    /// Ok, or disconnected.
    pub status: Status,
    #[serde(flatten)]
    pub scores: BTreeMap<String, Option<f64>>,
    #[serde(flatten)]
    pub config: ZeroCostConfig,
    pub device: String,
}

/// The run fields a results line of any method may carry (zero-cost's configuration, FEAR's
/// and shortreg's [`RunContext`]), each read where present and of the right type. A `fear
/// ensemble` line carries those every line of its inputs agrees on ([`RunFields::common`]).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RunFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<Recipe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells_per_stage: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// A zero-cost run's proxy batch, a shortreg run's training batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_epochs: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl RunFields {
    /// The keys, which no other field of a line that flattens these may take.
    pub const KEYS: [&'static str; 8] = ["dataset", "recipe", "channels", "cells_per_stage", "seed", "batch", "trained_epochs", "device"];

    /// The run fields of `line` that read (a field of another type, from another tool, is None).
    pub fn of(line: &Value) -> RunFields {
        fn read<T: serde::de::DeserializeOwned>(line: &Value, key: &str) -> Option<T> {
            line.get(key).and_then(|v| T::deserialize(v).ok())
        }
        RunFields {
            dataset: read(line, "dataset"),
            recipe: read(line, "recipe"),
            channels: read(line, "channels"),
            cells_per_stage: read(line, "cells_per_stage"),
            seed: read(line, "seed"),
            batch: read(line, "batch"),
            trained_epochs: read(line, "trained_epochs"),
            device: read(line, "device"),
        }
    }

    /// The fields `self` and `other` both hold with the same value.
    pub fn common(self, other: &RunFields) -> RunFields {
        fn same<T: PartialEq>(a: Option<T>, b: &Option<T>) -> Option<T> {
            a.filter(|x| b.as_ref() == Some(x))
        }
        RunFields {
            dataset: same(self.dataset, &other.dataset),
            recipe: same(self.recipe, &other.recipe),
            channels: same(self.channels, &other.channels),
            cells_per_stage: same(self.cells_per_stage, &other.cells_per_stage),
            seed: same(self.seed, &other.seed),
            batch: same(self.batch, &other.batch),
            trained_epochs: same(self.trained_epochs, &other.trained_epochs),
            device: same(self.device, &other.device),
        }
    }
}

/// A `fear ensemble` line: each ensemble's score under its name and its seconds under
/// `NAME_time_s`, as a zero-cost line holds its proxies', so `fear evaluate` reads every
/// ensemble as a method.
#[derive(Serialize, Debug)]
pub struct EnsembleRecord {
    pub index: usize,
    pub arch: String,
    /// Ok when some ensemble scored the architecture; else the status of an input line that
    /// was not ok (under `--not-ok last`).
    pub status: Status,
    #[serde(flatten)]
    pub scores: BTreeMap<String, Option<f64>>,
    /// How each column was made: `NAME=RULE:M1,M2,...`, joined by `; `.
    pub ensembles: String,
    /// `drop` or `last`: the `--not-ok` the ranks were taken under.
    pub not_ok: String,
    #[serde(flatten)]
    pub run: RunFields,
}

impl EnsembleRecord {
    /// The keys a line has besides its scores: an ensemble may not be named so.
    pub const OWN: [&'static str; 5] = ["index", "arch", "status", "ensembles", "not_ok"];
}

/// The line of an architecture whose run failed: its reason and the run's configuration.
#[derive(Serialize, Debug)]
pub struct FailedRecord {
    pub index: usize,
    pub arch: String,
    pub status: Status,
    pub reason: String,
    pub score: Option<f64>,
    pub time_s: f64,
    pub device: String,
    /// The run's configuration fields (so resuming checks them as on any other line); never
    /// one of the fields above.
    #[serde(flatten)]
    pub config: Map<String, Value>,
}

impl FailedRecord {
    const OWN: [&'static str; 7] = ["index", "arch", "status", "reason", "score", "time_s", "device"];

    pub fn new(index: usize, arch: String, device: &str, reason: &str, config: &Value) -> FailedRecord {
        let config = config.as_object().into_iter().flatten().filter(|(k, _)| !Self::OWN.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        FailedRecord { index, arch, status: Status::Failed, reason: reason.to_string(), score: None, time_s: 0.0, device: device.to_string(), config }
    }
}

/// One `fear search` trajectory line: the candidate's own results line ([`RankRecord`] or
/// [`ShortregRecord`]), the search's settings and where the search stands after it.
#[derive(Serialize, Debug)]
pub struct SearchRecord<R: Serialize> {
    #[serde(flatten)]
    pub candidate: R,
    pub method: &'static str,
    pub archs_budget: usize,
    /// FEAR only.
    pub cutoff_ratio: Option<f64>,
    pub stage2_batch: Option<usize>,
    pub stage2_epochs: Option<usize>,
    #[serde(flatten)]
    pub progress: SearchProgress,
}

/// Where the search stands after a candidate, written beside its record.
#[derive(Serialize, Debug)]
pub struct SearchProgress {
    /// The stage-1 time budget this candidate ran under (none before any reached the threshold).
    pub cutoff_s: Option<f64>,
    /// The score the search ranks by: FEAR's best stage-2 epoch, shortreg's score.
    pub search_score: Option<f64>,
    /// After this candidate: architectures evaluated, seconds spent (cut-off runs included), the best.
    pub evaluated: usize,
    pub search_time_s: f64,
    pub best_index: Option<usize>,
    pub best_arch: Option<String>,
    pub best_score: Option<f64>,
    /// Ground truth (with `--ground-truth`) of this candidate and of the best so far.
    pub ground_truth: Option<f64>,
    pub best_ground_truth: Option<f64>,
}

/// The fields every results line (of any method, or of another tool for `fear evaluate`) may
/// share, read through serde; the rest of the line is ignored.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct LineHead {
    pub index: u64,
    #[serde(default)]
    pub arch: Option<String>,
    /// Absent: ok (a file of another tool).
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(default)]
    pub score: Option<f64>,
    #[serde(default)]
    pub time_s: Option<f64>,
    /// FEAR's.
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub reached_threshold: Option<bool>,
    #[serde(default)]
    pub stage1_s: Option<f64>,
    /// shortreg's.
    #[serde(default)]
    pub epochs: Option<u64>,
    #[serde(default)]
    pub batch: Option<u64>,
    /// A search line's.
    #[serde(default)]
    pub search_score: Option<f64>,
}

impl LineHead {
    /// The shared fields of `line` (None when it has no architecture index or a field of the
    /// wrong type).
    pub fn of(line: &Value) -> Option<LineHead> {
        LineHead::deserialize(line).ok()
    }

    /// The status, ok when the line has none.
    pub fn status(&self) -> Status {
        self.status.unwrap_or(Status::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_by_name() {
        for s in [Status::Ok, Status::Diverged, Status::Capped, Status::Failed, Status::Disconnected] {
            let v = serde_json::to_value(s).unwrap();
            assert_eq!(v, Value::String(s.name().into()));
            assert_eq!(serde_json::from_value::<Status>(v).unwrap(), s);
        }
    }

    #[test]
    fn a_failed_line_keeps_its_own_fields_over_the_configuration() {
        let cfg = serde_json::json!({"dataset": "d", "seed": 3, "status": "not this", "score": 1.0});
        let l = serde_json::to_value(FailedRecord::new(1, "a".into(), "cpu", "boom", &cfg)).unwrap();
        assert_eq!((l["status"].as_str(), l["score"].is_null(), l["seed"].as_u64()), (Some("failed"), true, Some(3)));
    }

    #[test]
    fn run_fields_keep_what_every_line_agrees_on() {
        let zc = RunFields::of(&serde_json::json!({"dataset": "cifar10", "seed": 0, "batch": 64, "channels": 16, "recipe": "paper", "device": "cpu"}));
        let fear = RunFields::of(&serde_json::json!({"dataset": "cifar10", "seed": 0, "channels": "16", "recipe": "paper", "device": "cuda:0"}));
        assert_eq!(zc.batch, Some(64));
        assert_eq!(fear.channels, None, "a field of another type does not read");
        let common = zc.common(&fear);
        assert_eq!(serde_json::to_value(&common).unwrap(), serde_json::json!({"dataset": "cifar10", "seed": 0, "recipe": "paper"}));
        let keys: Vec<String> = serde_json::to_value(RunFields::of(&serde_json::json!({"dataset": "d", "recipe": "paper", "channels": 1, "cells_per_stage": 1, "seed": 1, "batch": 1, "trained_epochs": 1, "device": "d"})))
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut want: Vec<&str> = RunFields::KEYS.to_vec();
        want.sort();
        assert_eq!(keys, want);
    }

    #[test]
    fn zero_cost_lines_are_written_as_before() {
        // A line as the hand-built map of earlier versions wrote it (keys sorted).
        let text = r#"{"arch":"a","batch":8,"cells_per_stage":1,"channels":4,"dataset":null,"device":"cpu","index":3,"params":12.0,"params_time_s":null,"proxies":"params","recipe":"paper","seed":0,"status":"disconnected","trained_epochs":0}"#;
        let config = ZeroCostConfig {
            proxies: "params".into(),
            dataset: None,
            seed: 0,
            batch: 8,
            trained_epochs: 0,
            channels: 4,
            cells_per_stage: 1,
            recipe: Recipe::Paper,
        };
        let scores = [("params".to_string(), Some(12.0)), ("params_time_s".to_string(), None)].into_iter().collect();
        let r = ZeroCostRecord { index: 3, arch: "a".into(), status: Status::Disconnected, scores, config, device: "cpu".into() };
        let written = serde_json::to_vec(&serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(String::from_utf8(written).unwrap(), text);
    }
}
