//! The rankers: FEAR (and, to come, shortreg, the zero-cost proxies and random search).
pub mod failure;
pub mod fear;
pub mod results;
pub mod shortreg;

pub use fear::{run_fear, FearConfig, FearOutcome, FearProgress, Status};
pub use shortreg::{run_shortreg, ShortregConfig, ShortregOutcome, ShortregProgress};
