//! FEAR's threshold learner (README, "FEAR, step by step", step 1): HoG features
//! ([`crate::features::hog`]) of every image into a 324 -> 2048 -> ReLU -> 2048 -> ReLU -> classes
//! MLP, trained with SGD (lr 0.5, momentum 0.9, no Nesterov, weight decay 3e-4, batch 1024, cosine
//! to 0.001 over 200 epochs) on the engine. Its training accuracy is the threshold FEAR's stage 1
//! trains to (the paper's 0.6 / 0.3 / 0.2 are this learner's on CIFAR-10 / CIFAR-100 /
//! ImageNet16-120).
//!
//! - [`mlp`]: the network as an engine graph over a batch of feature vectors.
//! - [`learner`]: features, the training recipe, per-epoch train and test accuracy.
pub mod learner;
pub mod mlp;

pub use learner::{train_threshold_learner, EpochAccuracy, Features, MlpRecipe};
pub use mlp::mlp_graph;
