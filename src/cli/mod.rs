//! The `fear` command line: one module per subcommand.

use clap::{Parser, Subcommand};

pub mod arch;
pub mod args;
pub mod bench;
pub mod doctor;
pub mod ensemble;
pub mod evaluate;
pub mod merge;
pub mod plan_stats;
pub mod rank;
pub mod reproduce;
pub mod search;
pub mod shortlist;
pub mod shortreg;
pub mod threshold;
pub mod zero_cost;

/// Rank NATS-Bench architectures by FEAR on a hand-written CPU/GPU engine.
#[derive(Parser, Debug)]
#[command(name = "fear", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Describe an architecture: index, arch string, parameter count, FLOPs.
    Arch(arch::ArchArgs),
    /// Rank architectures by FEAR on a dataset (JSON Lines out, resumable).
    Rank(rank::RankArgs),
    /// Time a full training step and a FEAR stage-2 (frozen) step.
    Bench(bench::BenchArgs),
    /// Rank architectures by short training (shortreg): the best epoch's training accuracy.
    Shortreg(shortreg::ShortregArgs),
    /// What this machine has (CUDA driver, GPUs, embedded kernels) and a self-test of every
    /// kernel against its CPU op on each device (the host emulation included).
    Doctor(doctor::DoctorArgs),
    /// Join results files (shards of rank or shortreg) into one, each architecture once.
    Merge(merge::MergeArgs),
    /// Measure results files against NATS-Bench's 200-epoch test accuracies, with optional SVG plots.
    Evaluate(evaluate::EvaluateArgs),
    /// Write rank ensembles of results files (and AZ-NAS's az_nas) as a results file of their own.
    Ensemble(ensemble::EnsembleArgs),
    /// Random search with FEAR or shortreg in the inner loop (JSON Lines trajectory, resumable).
    Search(search::SearchArgs),
    /// Score architectures by zero-cost proxies (synflow, snip, ...; JSON Lines out, resumable).
    ZeroCost(zero_cost::ZeroCostArgs),
    /// The paper's experiment for one dataset (FEAR, the shortreg grid, the zero-cost proxies,
    /// then Table 1 and the figures), resumable and shardable.
    Reproduce(reproduce::ReproduceArgs),
    /// Train the HoG + MLP threshold learner on a dataset and suggest a stage-1 threshold.
    Threshold(threshold::ThresholdArgs),
}

pub use crate::util::UsageError;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Arch(args) => arch::run(args),
        Command::Rank(args) => rank::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Shortreg(args) => shortreg::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Ensemble(args) => ensemble::run(args),
        Command::Search(args) => search::run(args),
        Command::ZeroCost(args) => zero_cost::run(args),
        Command::Threshold(args) => threshold::run(args),
        Command::Reproduce(args) => reproduce::run(args),
    }
}

/// Parses an architecture given on the command line as an index or an arch string.
pub fn parse_arch_arg(s: &str) -> anyhow::Result<crate::space::Arch> {
    crate::space::parse_arch(s).map_err(|e| UsageError(e.to_string()).into())
}
