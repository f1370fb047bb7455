//! Scoring one architecture by a set of proxies: which networks and passes each proxy needs,
//! and how long each took.
//!
//! Passes: synflow / synflow_bn run their own float64 batch-1 network ([`super::synflow`]);
//! snip, grad_norm and fisher share one cross-entropy forward and backward; grasp runs its own
//! in float64 and then at least four more for its Hessian-gradient product; jacob_cov runs the network ending in the sum of its
//! logits with an input gradient; naswot one forward with the ReLU codes gathered. Each proxy's
//! time is the time of the passes it needs (a shared pass counts for each proxy that uses it),
//! i.e. what computing that proxy alone would cost.

use std::time::Instant;

use anyhow::{anyhow, Result};

use crate::engine::{Cpu, Device, Float, Head, PlanOptions, Session};
use crate::net::{tiny_network, tiny_network_variant, NetConfig, NetVariant};
use crate::space::Arch;

use super::az_nas::normal_params;
use super::az_nas::{az_scores, kaiming_normal_params, standard_normal_batch, AzScores, AZ_BATCH};
use super::swap::{swap_patterns, SWAP_REPEATS, SWAP_SAMPLES};
use super::synflow::{synflow_graph, synflow_with_params};
use super::{fisher, jacob_cov, meco, naswot, saliency, scored_weights, zico, Proxy};

/// The weights the proxies see.
#[derive(Clone, Debug, PartialEq)]
pub enum Weights {
    /// PyTorch's default initialisation drawn from this seed.
    Init(u64),
    /// Every parameter and BN statistic of the (BN) network by name, e.g. after training.
    Named(Vec<(String, Vec<f64>)>),
}

/// One proxy's score and the seconds it took.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProxyScore {
    pub proxy: Proxy,
    pub score: f64,
    pub seconds: f64,
}

/// One batch of images (`[n, 3, S, S]`, normalised and augmented) and labels.
pub struct ProxyBatch<'a, T> {
    pub images: &'a [T],
    pub labels: &'a [u32],
}

/// Scores `arch` by `proxies` (in that order) on the CPU. `batch` is needed by the proxies that
/// read data.
pub fn score_arch<T: Float>(arch: &Arch, net: &NetConfig, proxies: &[Proxy], batch: Option<&ProxyBatch<T>>, weights: &Weights) -> Result<Vec<ProxyScore>>
where
    Cpu: Device<T>,
{
    score_arch_on(&Cpu, arch, net, proxies, batch, weights)
}

/// [`score_arch`] with the networks on `dev`; synflow, synflow_bn and grasp, which need
/// float64, run on the CPU.
pub fn score_arch_on<T: Float, D: Device<T> + Clone>(
    dev: &D,
    arch: &Arch,
    net: &NetConfig,
    proxies: &[Proxy],
    batch: Option<&ProxyBatch<T>>,
    weights: &Weights,
) -> Result<Vec<ProxyScore>> {
    let mut out: Vec<ProxyScore> = Vec::new();
    let mut push = |proxy, score, seconds| out.push(ProxyScore { proxy, score, seconds });
    let wants = |p: Proxy| proxies.contains(&p);
    let data = || batch.ok_or_else(|| anyhow!("these proxies need a batch of training images"));
    for bn in [false, true] {
        let proxy = if bn { Proxy::SynflowBn } else { Proxy::Synflow };
        if wants(proxy) {
            let t = Instant::now();
            let graph = synflow_graph(arch, net, bn);
            let params = match weights {
                Weights::Init(seed) => crate::engine::initial_params(&graph, *seed),
                Weights::Named(named) => flat_params(&graph.params, named)?,
            };
            push(proxy, synflow_with_params(&graph, &params)?, t.elapsed().as_secs_f64());
        }
    }
    let gradient_proxies = [Proxy::Snip, Proxy::GradNorm, Proxy::Fisher];
    if gradient_proxies.iter().any(|p| wants(*p)) {
        let b = data()?;
        let t = Instant::now();
        let opts = PlanOptions { fisher: wants(Proxy::Fisher), ..PlanOptions::default() };
        let mut s = weight_gradient_session::<T, D>(dev, arch, net, b.labels.len(), opts, weights)?;
        s.forward_backward(b.images, b.labels)?;
        let layers = saliency::layer_grads(&s)?;
        let shared = t.elapsed().as_secs_f64();
        if wants(Proxy::Snip) {
            push(Proxy::Snip, saliency::snip(&layers), shared);
        }
        if wants(Proxy::GradNorm) {
            push(Proxy::GradNorm, saliency::grad_norm(&layers), shared);
        }
        if wants(Proxy::Fisher) {
            push(Proxy::Fisher, fisher::fisher(&s, b.labels.len())?, shared);
        }
    }
    if wants(Proxy::Grasp) {
        // Always float64: its finite-difference step is far below float32's resolution.
        let b = data()?;
        let t = Instant::now();
        let images: Vec<f64> = b.images.iter().map(|v| v.as_f64()).collect();
        let mut s = weight_gradient_session::<f64, Cpu>(&Cpu, arch, net, b.labels.len(), PlanOptions::default(), weights)?;
        s.forward_backward(&images, b.labels)?;
        let layers = saliency::layer_grads(&s)?;
        let score = saliency::grasp(&mut s, &images, b.labels, &layers)?;
        push(Proxy::Grasp, score, t.elapsed().as_secs_f64());
    }
    if wants(Proxy::JacobCov) {
        let b = data()?;
        let t = Instant::now();
        let variant = NetVariant { batch_norm: true, head: Head::SumAll };
        let opts = PlanOptions { input_grad: true, ..PlanOptions::default() };
        let mut s = session::<T, D>(dev, arch, net, variant, b.labels.len(), opts, weights)?;
        s.set_trainable(|_| false);
        push(Proxy::JacobCov, jacob_cov::jacob_cov(&mut s, b.images, b.labels)?, t.elapsed().as_secs_f64());
    }
    if wants(Proxy::Naswot) {
        let b = data()?;
        let t = Instant::now();
        let opts = PlanOptions { relu_codes: true, ..PlanOptions::default() };
        let mut s = session::<T, D>(dev, arch, net, NetVariant::default(), b.labels.len(), opts, weights)?;
        s.set_trainable(|_| false);
        push(Proxy::Naswot, naswot::naswot(&mut s, b.images, b.labels)?, t.elapsed().as_secs_f64());
    }
    if proxies.iter().any(|p| p.is_az()) {
        let t = Instant::now();
        let az = az_scores_on::<T, D>(dev, arch, net, weights, None)?;
        let seconds = t.elapsed().as_secs_f64();
        for (proxy, score) in [(Proxy::AzExpressivity, az.expressivity), (Proxy::AzProgressivity, az.progressivity), (Proxy::AzTrainability, az.trainability)] {
            if wants(proxy) {
                push(proxy, score, seconds);
            }
        }
    }
    if wants(Proxy::Meco) {
        let b = data()?;
        let t = Instant::now();
        let opts = PlanOptions { taps: true, ..PlanOptions::default() };
        let mut s = session::<T, D>(dev, arch, net, NetVariant::default(), 1, opts, weights)?;
        s.set_trainable(|_| false);
        let image = &b.images[..b.images.len() / b.labels.len()];
        push(Proxy::Meco, meco::meco(&mut s, image)?, t.elapsed().as_secs_f64());
    }
    if wants(Proxy::Swap) {
        let b = data()?;
        let t = Instant::now();
        push(Proxy::Swap, swap_of(dev, arch, net, b, weights)?, t.elapsed().as_secs_f64());
    }
    if wants(Proxy::Zico) {
        let b = data()?;
        let t = Instant::now();
        push(Proxy::Zico, zico_of(dev, arch, net, b, weights)?, t.elapsed().as_secs_f64());
    }
    if wants(Proxy::Params) || wants(Proxy::Flops) {
        let t = Instant::now();
        let graph = tiny_network(arch, net, 1);
        let seconds = t.elapsed().as_secs_f64();
        if wants(Proxy::Params) {
            push(Proxy::Params, graph.param_len() as f64, seconds);
        }
        if wants(Proxy::Flops) {
            push(Proxy::Flops, graph.flops_per_image() as f64, seconds);
        }
    }
    out.sort_by_key(|s| proxies.iter().position(|p| *p == s.proxy));
    Ok(out)
}

/// AZ-NAS's scores of `arch` on `images` (a batch of [`AZ_BATCH`] standard-normal images drawn
/// from the weights' seed when None). `Weights::Init(seed)` stands for AZ-NAS's own
/// kaiming-normal initialisation from `seed`; the cotangent signs are drawn from the same seed
/// (0 for named weights).
pub fn az_scores_of<T: Float>(arch: &Arch, net: &NetConfig, weights: &Weights, images: Option<&[T]>) -> Result<AzScores>
where
    Cpu: Device<T>,
{
    az_scores_on(&Cpu, arch, net, weights, images)
}

/// [`az_scores_of`] on `dev`.
pub fn az_scores_on<T: Float, D: Device<T> + Clone>(dev: &D, arch: &Arch, net: &NetConfig, weights: &Weights, images: Option<&[T]>) -> Result<AzScores> {
    let seed = match weights {
        Weights::Init(seed) => *seed,
        Weights::Named(_) => 0,
    };
    let image_len = 3 * net.image_size * net.image_size;
    let drawn: Vec<T>;
    let images = match images {
        Some(images) => images,
        None => {
            drawn = standard_normal_batch(AZ_BATCH * image_len, seed).into_iter().map(T::from_f64).collect();
            &drawn
        }
    };
    anyhow::ensure!(!images.is_empty() && images.len() % image_len == 0, "AZ-NAS: {} input values are not whole images of {image_len}", images.len());
    let batch = images.len() / image_len;
    let variant = NetVariant { batch_norm: true, head: Head::SumAll };
    let named = match weights {
        Weights::Init(seed) => Weights::Named(kaiming_normal_params(&tiny_network_variant(arch, net, 1, variant), *seed)),
        named => named.clone(),
    };
    let opts = PlanOptions { input_grad: true, cell_probes: Some(seed), ..PlanOptions::default() };
    let mut s = session::<T, D>(dev, arch, net, variant, batch, opts, &named)?;
    s.set_trainable(|_| false);
    az_scores(&mut s, images)
}

/// SWAP of `arch` on the first [`SWAP_SAMPLES`] images of the batch (all of them when fewer):
/// the mean over [`SWAP_REPEATS`] N(0, 1) initialisations drawn from the seed of
/// `Weights::Init`, or the count at the given weights.
fn swap_of<T: Float, D: Device<T> + Clone>(dev: &D, arch: &Arch, net: &NetConfig, b: &ProxyBatch<T>, weights: &Weights) -> Result<f64> {
    let n = b.labels.len().min(SWAP_SAMPLES);
    let images = &b.images[..n * (b.images.len() / b.labels.len())];
    let opts = PlanOptions { relu_patterns: true, ..PlanOptions::default() };
    let draws: Vec<Weights> = match weights {
        Weights::Init(seed) => {
            let graph = tiny_network(arch, net, 1);
            (0..SWAP_REPEATS as u64).map(|r| Weights::Named(normal_params(&graph, seed.wrapping_mul(SWAP_REPEATS as u64).wrapping_add(r), |_| 1.0))).collect()
        }
        named => vec![named.clone()],
    };
    let mut s = session::<T, D>(dev, arch, net, NetVariant::default(), n, opts, &draws[0])?;
    s.set_trainable(|_| false);
    let mut total = 0.0;
    for (i, w) in draws.iter().enumerate() {
        if i > 0 {
            let Weights::Named(named) = w else { unreachable!("draws after the first are named") };
            for (name, values) in named {
                s.write_named(name, &values.iter().map(|x| T::from_f64(*x)).collect::<Vec<T>>())?;
            }
        }
        total += swap_patterns(&mut s, images)? as f64;
    }
    Ok(total / draws.len() as f64)
}

/// ZiCo of `arch` over the two halves of the batch.
fn zico_of<T: Float, D: Device<T> + Clone>(dev: &D, arch: &Arch, net: &NetConfig, b: &ProxyBatch<T>, weights: &Weights) -> Result<f64> {
    let half = b.labels.len() / 2;
    anyhow::ensure!(half >= 1, "zico needs a batch of at least 2 images (two halves)");
    let image_len = b.images.len() / b.labels.len();
    let mut s = weight_gradient_session::<T, D>(dev, arch, net, half, PlanOptions::default(), weights)?;
    let mut batches = Vec::new();
    for part in 0..2 {
        let images = &b.images[part * half * image_len..(part + 1) * half * image_len];
        s.forward_backward(images, &b.labels[part * half..(part + 1) * half])?;
        batches.push(saliency::layer_grads(&s)?);
    }
    Ok(zico::zico_score(&batches))
}

/// A session of the trained form of the network with only the scored weights trainable.
fn weight_gradient_session<T: Float, D: Device<T> + Clone>(
    dev: &D,
    arch: &Arch,
    net: &NetConfig,
    batch: usize,
    opts: PlanOptions,
    weights: &Weights,
) -> Result<Session<T, D>> {
    let mut s = session::<T, D>(dev, arch, net, NetVariant::default(), batch, opts, weights)?;
    let scored = scored_weights(s.graph());
    let names: Vec<String> = s.params().iter().zip(&scored).filter(|(_, k)| **k).map(|(p, _)| p.name.clone()).collect();
    s.set_trainable(|name| names.iter().any(|n| n == name));
    Ok(s)
}

/// A CPU session of the network in form `variant`, holding `weights`.
fn session<T: Float, D: Device<T> + Clone>(
    dev: &D,
    arch: &Arch,
    net: &NetConfig,
    variant: NetVariant,
    batch: usize,
    opts: PlanOptions,
    weights: &Weights,
) -> Result<Session<T, D>> {
    let (a, n) = (*arch, *net);
    let mut s: Session<T, D> = Session::new(dev.clone(), Box::new(move |b| tiny_network_variant(&a, &n, b, variant)), batch, opts)?;
    match weights {
        Weights::Init(seed) => s.init_params(*seed)?,
        Weights::Named(named) => {
            for (name, values) in named {
                let v: Vec<T> = values.iter().map(|x| T::from_f64(*x)).collect();
                s.write_named(name, &v)?;
            }
        }
    }
    Ok(s)
}

/// The flat parameter vector of a graph with parameters `specs`, taken by name from `named`.
fn flat_params(specs: &[crate::engine::ParamSpec], named: &[(String, Vec<f64>)]) -> Result<Vec<f64>> {
    let mut flat = Vec::with_capacity(specs.iter().map(|s| s.len()).sum());
    for spec in specs {
        let (_, v) = named.iter().find(|(n, _)| *n == spec.name).ok_or_else(|| anyhow!("no weights given for {}", spec.name))?;
        anyhow::ensure!(v.len() == spec.len(), "{}: {} values given, {} expected", spec.name, v.len(), spec.len());
        flat.extend_from_slice(v);
    }
    Ok(flat)
}
