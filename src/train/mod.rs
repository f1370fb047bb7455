//! Training: learning-rate schedules and epochs over a dataset.
pub mod feed;
pub mod schedule;
pub mod trainer;

pub use feed::TrainSplit;
pub use schedule::cosine_lr;
pub use trainer::{evaluate, train_epoch, EpochReport, StepProgress};
