//! `fear`: rank NATS-Bench architectures by FEAR on a hand-written engine.
//!
//! Read top-down: [`engine`] (element types, ops, kernels, devices, the planned tape),
//! [`space`] (the NATS-Bench topology search space), [`net`] (TinyNetwork), [`data`] (datasets,
//! augmentation, batches), [`train`] (schedule, epochs), [`rank`] (FEAR, shortreg, results files),
//! [`features`] (HoG), [`threshold`] (the HoG + MLP threshold learner), [`eval`] (metrics
//! against the ground truth, plots) and [`cli`] (the `fear` subcommands).
pub mod cli;
pub mod data;
pub mod engine;
pub mod eval;
pub mod features;
pub mod net;
pub mod rank;
pub mod reproduce;
pub mod run;
pub mod schema;
pub mod space;
pub mod threshold;
pub mod train;
pub mod util;
