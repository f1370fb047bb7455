//! Training: learning-rate schedules and epochs over a dataset.
pub mod schedule;
pub mod trainer;

pub use schedule::cosine_lr;
pub use trainer::{evaluate, train_epoch, EpochReport, StepProgress};
