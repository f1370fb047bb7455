//! TinyNetwork, the NATS-Bench topology network (README, "Search space and network"), written as a
//! graph.
//!
//! Parameter names are those of the PyTorch TinyNetwork's `state_dict`
//! (`cells.13.layers.2.op.1.weight`), and parameters are registered in the same order, so the
//! flat parameter buffer follows the module order and FEAR's stage-2 parameters (cells 13-16,
//! `lastact`, `classifier`) form one contiguous run at its end.

use crate::engine::graph::ValueId;
use crate::engine::{Graph, GraphBuilder, Head, Init};
use crate::space::{Arch, Op, EDGES};

/// The network's size: C channels in the first stage, N cells per stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetConfig {
    pub c: usize,
    pub n: usize,
    pub classes: usize,
    /// Input height and width (32 for CIFAR, 16 for ImageNet16-120).
    pub image_size: usize,
}

impl Default for NetConfig {
    /// NATS-Bench's size on CIFAR-10: C = 16, N = 5, 10 classes, 32x32 inputs.
    fn default() -> Self {
        NetConfig { c: 16, n: 5, classes: 10, image_size: 32 }
    }
}

impl NetConfig {
    /// Number of cells: three stages of N normal cells with two reduction blocks between.
    pub fn cells(&self) -> usize {
        3 * self.n + 2
    }

    /// The cell indices of the reduction blocks.
    pub fn is_reduction(&self, cell: usize) -> bool {
        cell == self.n || cell == 2 * self.n + 1
    }
}

/// A form of the network other than the trained one: the zero-cost proxies score it with BN
/// removed (synflow) or differentiate the sum of its outputs instead of a loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetVariant {
    /// Keep the BN layers (false: every BN is the identity and has no parameters).
    pub batch_norm: bool,
    pub head: Head,
}

impl Default for NetVariant {
    /// The network as trained: BN everywhere, softmax cross-entropy.
    fn default() -> Self {
        NetVariant { batch_norm: true, head: Head::SoftmaxXent }
    }
}

/// Builds TinyNetwork for `arch` and a batch of `batch` images.
pub fn tiny_network(arch: &Arch, cfg: &NetConfig, batch: usize) -> Graph {
    tiny_network_variant(arch, cfg, batch, NetVariant::default())
}

/// Builds TinyNetwork for `arch` and a batch of `batch` images in the form `variant`.
pub fn tiny_network_variant(arch: &Arch, cfg: &NetConfig, batch: usize, variant: NetVariant) -> Graph {
    let mut b = GraphBuilder::new(&[batch, 3, cfg.image_size, cfg.image_size]);
    if !variant.batch_norm {
        b = b.without_batch_norm();
    }
    let x = b.input();
    let w = conv_weight(&mut b, "stem.0.weight", cfg.c, 3, 3);
    let x = b.conv(x, w, 1, 1);
    b.tap(x, 1);
    let mut x = b.batch_norm(x, "stem.1");
    b.tap(x, 3); // BN, its Sequential, the stem
    b.mark_feature(x);
    let mut channels = cfg.c;
    for i in 0..cfg.cells() {
        x = if cfg.is_reduction(i) {
            channels *= 2;
            reduction_block(&mut b, &format!("cells.{i}"), x, channels)
        } else {
            normal_cell(&mut b, &format!("cells.{i}"), arch, x)
        };
        // The cell; the last of a stage also ends that stage's nn.Sequential.
        let ends_stage = i + 1 == cfg.cells() || cfg.is_reduction(i + 1);
        b.tap(x, if ends_stage && !cfg.is_reduction(i) { 2 } else { 1 });
        b.mark_feature(x);
    }
    let x = b.batch_norm(x, "lastact.0");
    b.tap(x, 1);
    let x = b.relu(x);
    b.tap(x, 2); // the ReLU and lastact (pooled and later outputs have one value per channel: 0)
    let x = b.global_avg_pool(x);
    let bound = 1.0 / (channels as f64).sqrt();
    let w = b.param("classifier.weight", &[cfg.classes, channels], Init::Uniform(bound));
    let bias = b.param("classifier.bias", &[cfg.classes], Init::Uniform(bound));
    let logits = b.linear(x, w, bias);
    b.finish_with(logits, variant.head)
}

/// A conv weight [c_out, c_in, k, k] with PyTorch's default bound 1/sqrt(c_in * k * k).
fn conv_weight(b: &mut GraphBuilder, name: &str, c_out: usize, c_in: usize, k: usize) -> ValueId {
    let bound = 1.0 / ((c_in * k * k) as f64).sqrt();
    b.param(name, &[c_out, c_in, k, k], Init::Uniform(bound))
}

/// NATS-Bench's ReLUConvBN: ReLU, conv (no bias), BN; named `prefix.op.1` and `prefix.op.2`.
fn relu_conv_bn(b: &mut GraphBuilder, prefix: &str, x: ValueId, c_out: usize, k: usize, stride: usize) -> ValueId {
    let c_in = b.shape(x)[1];
    let x = b.relu(x);
    b.tap(x, 1);
    let w = conv_weight(b, &format!("{prefix}.op.1.weight"), c_out, c_in, k);
    let x = b.conv(x, w, stride, k / 2);
    b.tap(x, 1);
    let x = b.batch_norm(x, &format!("{prefix}.op.2"));
    b.tap(x, 3); // BN, the op's Sequential, the ReLUConvBN
    x
}

/// A cell: node j is the sum over its incoming edges of the edge's op applied to node i.
fn normal_cell(b: &mut GraphBuilder, prefix: &str, arch: &Arch, input: ValueId) -> ValueId {
    let shape = b.shape(input).to_vec();
    let c = shape[1];
    let mut nodes = vec![input];
    for to in 1..4 {
        let mut terms = Vec::new();
        for (e, &(edge_to, from)) in EDGES.iter().enumerate() {
            if edge_to != to {
                continue;
            }
            let x = nodes[from];
            let layer = format!("{prefix}.layers.{e}");
            match arch.ops[e] {
                Op::None => {} // its output x * 0 has no correlation: 0
                Op::SkipConnect => {
                    b.tap(x, 1);
                    terms.push(x)
                }
                Op::NorConv1x1 => terms.push(relu_conv_bn(b, &layer, x, c, 1, 1)),
                Op::NorConv3x3 => terms.push(relu_conv_bn(b, &layer, x, c, 3, 1)),
                Op::AvgPool3x3 => {
                    let y = b.avg_pool3(x);
                    b.tap(y, 2); // the pool and its op
                    terms.push(y)
                }
            }
        }
        let node = b.sum(&terms, &shape);
        nodes.push(node);
    }
    nodes[3]
}

/// NATS-Bench's ResNetBasicblock with stride 2: `conv_b(conv_a(x)) + downsample(x)`.
fn reduction_block(b: &mut GraphBuilder, prefix: &str, x: ValueId, c_out: usize) -> ValueId {
    let c_in = b.shape(x)[1];
    let a = relu_conv_bn(b, &format!("{prefix}.conv_a"), x, c_out, 3, 2);
    let main = relu_conv_bn(b, &format!("{prefix}.conv_b"), a, c_out, 3, 1);
    let pooled = b.avg_pool2(x);
    b.tap(pooled, 1);
    let w = conv_weight(b, &format!("{prefix}.downsample.1.weight"), c_out, c_in, 1);
    let shortcut = b.conv(pooled, w, 1, 0);
    b.tap(shortcut, 2); // the conv and the downsample Sequential
    let shape = b.shape(main).to_vec();
    b.sum(&[shortcut, main], &shape)
}

/// Prefixes of the parameters FEAR's stage 2 trains: the last `cells` cells, `lastact` and the
/// classifier (cells 13-16 on the default network).
pub fn stage2_prefixes(cfg: &NetConfig, cells: usize) -> Vec<String> {
    let total = cfg.cells();
    let mut prefixes: Vec<String> = (total.saturating_sub(cells)..total).map(|i| format!("cells.{i}")).collect();
    prefixes.push("lastact".into());
    prefixes.push("classifier".into());
    prefixes
}
