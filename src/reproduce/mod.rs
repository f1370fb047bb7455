//! `fear reproduce`: the FEAR paper's experiment for one dataset as one resumable, shardable job.
//! FEAR with the paper's settings, the paper's shortreg grid ([`grid`]) and the zero-cost proxies
//! over one sample of architectures ([`plan`]: the work units), then the evaluation and the paper's
//! Table 1 for that dataset ([`report`](mod@report), [`table`]).
//!
//! Each unit is one run of an existing ranker (`fear rank`, `fear shortreg`, `fear zero-cost`),
//! so resuming, failure lines and the configuration checks are theirs. A shard (`--shard K/N` or
//! Slurm's array variables) takes a share of every unit's architectures into its own folder,
//! `DIR/shards/K-of-N/`; the report joins the shards into `DIR/results/` and measures them.

pub mod grid;
pub mod plan;
pub mod report;
pub mod settings;
pub mod table;

pub use plan::{run_shard, Shard, Unit};
pub use report::report;
pub use settings::{Scale, Settings};
