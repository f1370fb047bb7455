//! The NATS-Bench network and its weights on disk.
pub mod tiny;
pub mod weights;

pub use tiny::{stage2_prefixes, tiny_network, tiny_network_variant, NetConfig, NetVariant};
