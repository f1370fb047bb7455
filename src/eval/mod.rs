//! Evaluation against NATS-Bench's ground truth (README, "Evaluation"): read results files as
//! methods ([`methods`]), put each beside the ground truth ([`ground_truth`], [`population`]) and
//! measure it ([`metrics`], [`bins`](mod@bins), [`report`]); [`plots`] draws the paper's figures
//! as SVG.
//!
//! Orderings are strict, ties broken by architecture index ascending ([`order`]); correlations
//! rank ties equally, as scipy does. Architectures without a score (status not ok) are left out
//! ([`drop_unscored`], the paper's protocol) or rank last.

pub mod bins;
pub mod ensemble;
pub mod ground_truth;
pub mod methods;
pub mod metrics;
pub mod order;
pub mod plots;
pub mod population;
pub mod report;

pub use bins::{bins, Bin, BIN_PERCENTS};
pub use ground_truth::{column_for_dataset, GroundTruth, GROUND_TRUTH_COLUMNS};
pub use methods::{disambiguate, drop_unscored, methods_from_lines, ArchResult, Kind, MethodResults, NotOk};
pub use population::Population;
pub use report::{evaluate, vote, MethodReport, TopK};
