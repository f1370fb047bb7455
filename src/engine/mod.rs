//! The engine: element types, the CPU ops, devices, tensors and the autograd tape.
pub mod cpu;
pub mod float;

pub use float::Float;
