//! The zero-cost proxies (SPEC 5): scores of a network at initialisation (or after a few epochs)
//! from one training batch, the baselines FEAR is compared against.
//!
//! - [`synflow`]: synflow and synflow_bn (float64, |W|, all-ones input; no data).
//! - [`saliency`]: snip, grad_norm and grasp, from the gradient of the mean cross-entropy of one
//!   augmented batch (train-mode BN) with respect to the conv and linear weights; grasp's
//!   Hessian-gradient product by central finite differences of that gradient.
//! - [`fisher`]: the per-channel Fisher term of every conv and linear output.
//! - [`jacob_cov`]: the correlation spectrum of the input Jacobians of the summed logits.
//! - [`naswot`]: log |det K| of the ReLU activation-pattern kernel.
//! - [`linalg`]: the symmetric eigenvalues and log-determinant these need.
//! - `params` and `flops`: the network's parameter count and FLOPs per image (as `fear arch`).
//! - [`score`]: one architecture by a set of proxies, with the time each took.
//! - [`trained`]: the weights after a few epochs of training (`--trained-epochs`).
//!
//! Only conv and linear weights are scored ([`scored_weights`]). A disconnected cell (no path
//! from input to output) gets finite scores: its gradients through the cells vanish, so synflow
//! is 0, and the degenerate cases of jacob_cov and naswot have defined values.

pub mod fisher;
pub mod jacob_cov;
pub mod linalg;
pub mod naswot;
pub mod saliency;
pub mod score;
pub mod synflow;
pub mod trained;

use std::fmt;
use std::str::FromStr;

use crate::engine::graph::{Graph, Op, Source};

/// A zero-cost proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proxy {
    Synflow,
    SynflowBn,
    Snip,
    Grasp,
    Fisher,
    GradNorm,
    JacobCov,
    Naswot,
    Params,
    Flops,
}

impl Proxy {
    /// Every proxy, in the order results files list them.
    pub const ALL: [Proxy; 10] = [
        Proxy::Synflow,
        Proxy::SynflowBn,
        Proxy::Snip,
        Proxy::Grasp,
        Proxy::Fisher,
        Proxy::GradNorm,
        Proxy::JacobCov,
        Proxy::Naswot,
        Proxy::Params,
        Proxy::Flops,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Proxy::Synflow => "synflow",
            Proxy::SynflowBn => "synflow_bn",
            Proxy::Snip => "snip",
            Proxy::Grasp => "grasp",
            Proxy::Fisher => "fisher",
            Proxy::GradNorm => "grad_norm",
            Proxy::JacobCov => "jacob_cov",
            Proxy::Naswot => "naswot",
            Proxy::Params => "params",
            Proxy::Flops => "flops",
        }
    }

    /// Whether the proxy reads a batch of training images (synflow, params and flops do not).
    pub fn needs_data(self) -> bool {
        !matches!(self, Proxy::Synflow | Proxy::SynflowBn | Proxy::Params | Proxy::Flops)
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Proxy {
    type Err = String;
    fn from_str(s: &str) -> Result<Proxy, String> {
        Proxy::ALL.iter().copied().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Proxy::ALL.iter().map(|p| p.name()).collect();
            format!("unknown proxy {s:?}; expected one of {} or all", names.join(", "))
        })
    }
}

/// Parses `P[,P...]` or `all` into distinct proxies in [`Proxy::ALL`] order.
pub fn parse_proxies(spec: &str) -> Result<Vec<Proxy>, String> {
    if spec.trim() == "all" {
        return Ok(Proxy::ALL.to_vec());
    }
    let mut out: Vec<Proxy> = spec.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?;
    if out.is_empty() {
        return Err("no proxy named".into());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Per parameter of `graph`: whether it is a conv or linear weight (the parameters every proxy
/// scores; BN affine parameters and the classifier bias are not).
pub fn scored_weights(graph: &Graph) -> Vec<bool> {
    let mut scored = vec![false; graph.params.len()];
    for node in &graph.nodes {
        if matches!(node.op, Op::Conv { .. } | Op::Linear) {
            if let Source::Param(p) = graph.values[node.inputs[1].0].source {
                scored[p.0] = true;
            }
        }
    }
    scored
}
