//! The engine: element types, the CPU ops, kernels, devices, the graph, its plan and the tape.
pub mod any_device;
pub mod cpu;
pub mod cuda;
pub mod device;
pub mod float;
pub mod graph;
pub mod kernel;
pub mod plan;
pub mod session;

pub use any_device::AnyDevice;
pub use device::{Cpu, Device, MemoryLayout};
pub use float::Float;
pub use graph::{Graph, GraphBuilder, Head, Init, ParamSpec};
pub use kernel::{Kernel, Loc, Space};
pub use plan::{PlanOptions, Program};
pub use session::{initial_params, GraphFn, Session, StepOutput};
