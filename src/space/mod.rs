//! The NATS-Bench topology search space.
