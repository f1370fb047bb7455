//! Running a ranker over many architectures: the devices (`--device`), the progress lines and
//! the one runner every ranker shares (resume, shard, a worker pool over the devices, failure
//! lines), plus each method's run on one architecture.

pub mod device;
pub mod one;
pub mod progress;
pub mod ranking;
pub mod runner;

pub use one::{fear_one, shortreg_one, FearRun};
pub use progress::{progress_bar, Progress};
pub use runner::{check_same_config, forget_new_results, open_results, shard, Collected, Prepared, Runner, Sink, STOP_AFTER_FAILURES_IN_A_ROW};
