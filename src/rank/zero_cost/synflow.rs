//! synflow and synflow_bn (README, "Zero-cost proxies"): the network in float64, every parameter
//! replaced by its absolute value, one all-ones input image, R = the sum of the outputs; the score
//! is sum |W * dR/dW| over conv and linear weights. synflow removes every BN (the identity);
//! synflow_bn keeps them (train mode, as PyTorch's default module mode is).
//!
//! Fast path for scoring thousands of cells: no [`crate::engine::Session`]; each cell's graph is
//! planned at batch 1 with only the scored weights trainable (no BN-parameter, bias or input
//! gradients, no optimiser), and runs on a per-thread memory arena that is allocated once and
//! grown when a larger cell comes, so a cell costs its kernels and nothing else.

use std::cell::RefCell;

use anyhow::Result;

use crate::engine::cpu_device::CpuMemory;
use crate::engine::plan::plan;
use crate::engine::{initial_params, Cpu, Device, Graph, Head, Kernel, Loc, MemoryLayout, PlanOptions, Space};
use crate::net::{tiny_network_variant, NetConfig, NetVariant};
use crate::space::Arch;

use super::scored_weights;

/// The synflow network of `arch`: batch 1, BN kept or removed, the sum of the logits as output.
pub fn synflow_graph(arch: &Arch, cfg: &NetConfig, batch_norm: bool) -> Graph {
    tiny_network_variant(arch, cfg, 1, NetVariant { batch_norm, head: Head::SumAll })
}

/// synflow (`batch_norm` false) or synflow_bn of `arch` from the parameters PyTorch's default
/// initialisation draws with `seed` (their signs are dropped, so only the magnitudes matter).
pub fn synflow(arch: &Arch, cfg: &NetConfig, seed: u64, batch_norm: bool) -> Result<f64> {
    let graph = synflow_graph(arch, cfg, batch_norm);
    let params: Vec<f64> = initial_params(&graph, seed);
    synflow_with_params(&graph, &params)
}

/// synflow of a graph built by [`synflow_graph`] with parameters `params` (flat, signed).
pub fn synflow_with_params(graph: &Graph, params: &[f64]) -> Result<f64> {
    let scored = scored_weights(graph);
    let opts = PlanOptions { train: true, ..PlanOptions::default() };
    let program = plan(graph, &scored, &opts);
    let abs: Vec<f64> = params.iter().map(|w| w.abs()).collect();
    ARENA.with(|arena| {
        let mut arena = arena.borrow_mut();
        let mem = arena.fit(&program.layout)?;
        let dev = Cpu;
        let all = Loc::new(Space::Params, 0, abs.len());
        dev.write(mem, all, &abs)?;
        dev.write(mem, program.input, &vec![1.0; program.input.len])?;
        let state = Loc::new(Space::State, 0, graph.state_len());
        dev.write(mem, state, &vec![0.0; state.len])?;
        for k in program.forward.iter().chain(&program.backward) {
            launch(&dev, mem, k)?;
        }
        let grads = dev.read(mem, Loc::new(Space::ParamGrads, 0, abs.len()))?;
        let mut score = 0.0;
        for (spec, _) in graph.params.iter().zip(&scored).filter(|(_, s)| **s) {
            let range = spec.offset..spec.offset + spec.len();
            score += abs[range.clone()].iter().zip(&grads[range]).map(|(w, g)| (w * g).abs()).sum::<f64>();
        }
        Ok(score)
    })
}

fn launch(dev: &Cpu, mem: &mut CpuMemory<f64>, k: &Kernel) -> Result<()> {
    Device::<f64>::launch(dev, mem, k)
}

/// A thread's reusable memory: allocated for the largest layout seen so far.
#[derive(Default)]
struct Arena {
    layout: MemoryLayout,
    mem: Option<CpuMemory<f64>>,
}

impl Arena {
    fn fit(&mut self, need: &MemoryLayout) -> Result<&mut CpuMemory<f64>> {
        let have = self.layout;
        let fits = self.mem.is_some()
            && need.params <= have.params
            && need.state <= have.state
            && need.work <= have.work
            && need.half <= have.half
            && need.labels <= have.labels;
        if !fits {
            self.layout = MemoryLayout {
                params: need.params.max(have.params),
                state: need.state.max(have.state),
                work: need.work.max(have.work),
                half: need.half.max(have.half),
                labels: need.labels.max(have.labels),
            };
            self.mem = None; // free the old one before allocating the larger one
            self.mem = Some(Device::<f64>::alloc(&Cpu, &self.layout)?);
        }
        Ok(self.mem.as_mut().unwrap())
    }
}

thread_local! {
    static ARENA: RefCell<Arena> = RefCell::new(Arena::default());
}
