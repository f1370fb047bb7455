//! The rankers: FEAR, shortreg and the zero-cost proxies, per-architecture failure handling, and
//! the results files they write.
pub mod failure;
pub mod fear;
pub mod results;
pub mod search;
pub mod shortreg;

pub use crate::schema::Status;
pub use fear::{run_fear, FearConfig, FearOutcome, FearProgress};
pub use shortreg::{run_shortreg, ShortregConfig, ShortregOutcome, ShortregProgress};
pub mod zero_cost;
