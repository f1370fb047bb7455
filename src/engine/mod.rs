//! The engine: element types, the ops (each family's geometry, CPU and CUDA faces, launches and
//! self-test cases in one folder of [`ops`]), kernels (an op on fixed locations), devices, the
//! graph, its plan and the tape.
pub mod any_device;
pub mod cpu_device;
pub mod cuda;
pub mod deferred_sums;
pub mod device;
pub mod float;
pub mod gradient_terms;
pub mod graph;
pub mod kernel;
pub mod loss_scale;
pub mod ops;
pub mod plan;
pub mod precision;
pub mod session;
pub mod siblings;

pub use any_device::AnyDevice;
pub use cpu_device::Cpu;
pub use device::{Device, MemoryLayout, ResidentImages};
pub use float::Float;
pub use graph::{Graph, GraphBuilder, Head, Init, ParamSpec};
pub use kernel::{Kernel, Loc, Space};
pub use plan::{PlanOptions, Program};
pub use session::{initial_params, GraphFn, Session, StepOutput};
