//! The zero-cost proxies (README, "Zero-cost proxies"): scores of a network at initialisation (or
//! after a few epochs) from one training batch, the baselines FEAR is compared against.
//!
//! - [`synflow`]: synflow and synflow_bn (float64, |W|, all-ones input; no data).
//! - [`saliency`]: snip, grad_norm and grasp, from the gradient of the mean cross-entropy of one
//!   augmented batch (train-mode BN) with respect to the conv and linear weights; grasp's
//!   Hessian-gradient product by central finite differences of that gradient.
//! - [`fisher`]: the per-channel Fisher term of every conv and linear output.
//! - [`jacob_cov`]: the correlation spectrum of the input Jacobians of the summed logits.
//! - [`naswot`]: log |det K| of the ReLU activation-pattern kernel.
//! - [`linalg`]: the symmetric eigenvalues and log-determinant these need.
//! - [`az_nas`]: AZ-NAS's expressivity, progressivity and trainability (its fourth score is
//!   `flops`; `az_nas` itself, their rank aggregate, is a population score `fear evaluate` makes).
//! - [`meco`]: MeCo's smallest eigenvalues of the channel correlations of every module output.
//! - [`swap`]: SWAP's count of distinct sample-wise ReLU activation patterns.
//! - [`zico`]: ZiCo's inverse coefficient of variation of the weight gradients over two batches.
//! - `params` and `flops`: the network's parameter count and FLOPs per image (as `fear arch`).
//! - [`score`]: one architecture by a set of proxies, with the time each took.
//! - [`trained`]: the weights after a few epochs of training (`--trained-epochs`).
//!
//! Only conv and linear weights are scored ([`scored_weights`]). A disconnected cell (no path
//! from input to output) gets finite scores: its gradients through the cells vanish, so synflow
//! is 0, and the degenerate cases of jacob_cov and naswot have defined values. `fear zero-cost`
//! writes them with the status `disconnected` ([`crate::schema::Status`]), so `fear evaluate`
//! leaves them out as not ok (or ranks them last under `--not-ok last`): they mean nothing.

pub mod az_nas;
pub mod fisher;
pub mod jacob_cov;
pub mod linalg;
pub mod meco;
pub mod naswot;
pub mod saliency;
pub mod score;
pub mod swap;
pub mod synflow;
pub mod trained;
pub mod zico;

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
    AzExpressivity,
    AzProgressivity,
    AzTrainability,
    Meco,
    Zico,
    Swap,
}

impl Proxy {
    /// Every proxy, in the order results files list them.
    pub const ALL: [Proxy; 16] = [
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
        Proxy::AzExpressivity,
        Proxy::AzProgressivity,
        Proxy::AzTrainability,
        Proxy::Meco,
        Proxy::Zico,
        Proxy::Swap,
    ];

    /// AZ-NAS's four scores, which `az_nas` in a proxy list stands for.
    pub const AZ_NAS: [Proxy; 4] = [Proxy::AzExpressivity, Proxy::AzProgressivity, Proxy::AzTrainability, Proxy::Flops];

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
            Proxy::AzExpressivity => "az_expressivity",
            Proxy::AzProgressivity => "az_progressivity",
            Proxy::AzTrainability => "az_trainability",
            Proxy::Meco => "meco",
            Proxy::Zico => "zico",
            Proxy::Swap => "swap",
        }
    }

    /// Whether the proxy reads a batch of training images (synflow, params, flops and AZ-NAS,
    /// which reads standard-normal images, do not).
    pub fn needs_data(self) -> bool {
        !matches!(
            self,
            Proxy::Synflow | Proxy::SynflowBn | Proxy::Params | Proxy::Flops | Proxy::AzExpressivity | Proxy::AzProgressivity | Proxy::AzTrainability
        )
    }

    /// Whether the proxy is one of AZ-NAS's scores computed by its own pass.
    pub fn is_az(self) -> bool {
        matches!(self, Proxy::AzExpressivity | Proxy::AzProgressivity | Proxy::AzTrainability)
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
            format!("unknown proxy {s:?}; expected one of {}, az_nas or all", names.join(", "))
        })
    }
}

/// Parses `P[,P...]` (`az_nas` standing for its four scores) or `all` into distinct proxies in [`Proxy::ALL`] order.
pub fn parse_proxies(spec: &str) -> Result<Vec<Proxy>, String> {
    if spec.trim() == "all" {
        return Ok(Proxy::ALL.to_vec());
    }
    let mut out: Vec<Proxy> = Vec::new();
    for name in spec.split(',').map(str::trim) {
        if name == "az_nas" {
            out.extend(Proxy::AZ_NAS);
        } else {
            out.push(name.parse()?);
        }
    }
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
