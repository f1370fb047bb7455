//! A network's forward computation as a graph of ops over values with fixed shapes.
//!
//! The network builder writes the forward pass once against a [`GraphBuilder`]; the planner
//! ([`super::plan`]) then lowers the graph to kernel lists for a given set of trainable
//! parameters. Parameters and BN running statistics are registered by their PyTorch names.

/// A value (a tensor) in the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

/// A parameter, by registration order (also its order in the flat parameter buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

/// A persistent non-trainable buffer (BN running statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StateId(pub usize);

/// How a parameter or state buffer starts (PyTorch defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(-bound, bound): PyTorch's kaiming_uniform(a = sqrt 5) for weights, i.e. 1/sqrt(fan_in),
    /// and the same bound for a linear bias.
    Uniform(f64),
    Zeros,
    Ones,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    pub offset: usize,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The input batch.
    Input,
    Param(ParamId),
    /// The output of node `i`.
    Node(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub shape: Vec<usize>,
    pub source: Source,
}

impl Value {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ops a graph node can apply.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// inputs [x, w]; no bias.
    Conv {
        stride: usize,
        pad: usize,
    },
    /// inputs [x, gamma, beta]; train mode uses batch statistics and updates the running ones.
    BatchNorm {
        running_mean: StateId,
        running_var: StateId,
        eps: f64,
        momentum: f64,
    },
    Relu,
    /// inputs [a, b, ...] of one shape (at least two).
    Sum,
    /// no inputs: a constant zero tensor (a cell node whose inputs are all `none`).
    Zeros,
    /// 3x3, stride 1, pad 1, count_include_pad = false.
    AvgPool3,
    /// 2x2, stride 2.
    AvgPool2,
    GlobalAvgPool,
    /// inputs [x, w, b].
    Linear,
    /// inputs [logits]; output the mean cross-entropy against the step's labels, shape [1].
    SoftmaxXent,
    /// inputs [x]; output the sum of all its elements, shape [1] (a terminal op: the value
    /// synflow and jacob_cov differentiate).
    SumAll,
}

/// What a graph's output is reduced to, i.e. what its backward pass differentiates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Head {
    /// The mean softmax cross-entropy against the step's labels (training).
    #[default]
    SoftmaxXent,
    /// The sum of every output (synflow's R, jacob_cov's d(sum of logits)/d(input)).
    SumAll,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
}

/// A built forward graph with its parameters and state buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    pub params: Vec<ParamSpec>,
    pub states: Vec<ParamSpec>,
    pub input: ValueId,
    pub logits: ValueId,
    pub loss: ValueId,
    /// The values marked as features, in order: the stem's and every cell's output on
    /// TinyNetwork (the cell features AZ-NAS scores; a cell that is the identity repeats a value).
    pub features: Vec<ValueId>,
    /// Values PyTorch forward hooks on every module would see, with how many modules output
    /// each (a BN inside `nn.Sequential` inside an op counts three times): the outputs MeCo
    /// scores, counted as on the network its authors hooked (see `zero_cost::meco`).
    pub taps: Vec<(ValueId, usize)>,
}

impl Graph {
    /// Total parameter elements (the flat buffer's length).
    pub fn param_len(&self) -> usize {
        self.params.iter().map(ParamSpec::len).sum()
    }
    pub fn state_len(&self) -> usize {
        self.states.iter().map(ParamSpec::len).sum()
    }
    pub fn param_by_name(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
    pub fn batch(&self) -> usize {
        self.values[self.input.0].shape[0]
    }
    /// Forward FLOPs per input image, counted as NATS-Bench counts them (its `get_model_infos`):
    /// multiply-accumulates of convolutions and the classifier (plus its bias), and
    /// kernel-size-squared operations per output element of each average pool.
    pub fn flops_per_image(&self) -> usize {
        let flops: usize = self
            .nodes
            .iter()
            .map(|node| {
                let out = self.values[node.output.0].len();
                match node.op {
                    Op::Conv { .. } => out * self.values[node.inputs[1].0].shape[1..].iter().product::<usize>(),
                    Op::Linear => out * (self.values[node.inputs[1].0].shape[1] + 1),
                    Op::AvgPool3 => out * 9,
                    Op::AvgPool2 => out * 4,
                    _ => 0,
                }
            })
            .sum();
        flops / self.batch()
    }
}

/// Writes a graph: each method adds a value (and the node producing it) and returns its id.
pub struct GraphBuilder {
    values: Vec<Value>,
    nodes: Vec<Node>,
    params: Vec<ParamSpec>,
    states: Vec<ParamSpec>,
    input: ValueId,
    /// When false, `batch_norm` is the identity and registers nothing (synflow's network).
    batch_norm: bool,
    features: Vec<ValueId>,
    taps: Vec<(ValueId, usize)>,
}

impl GraphBuilder {
    /// Starts a graph whose input batch has `shape` ([n, c, h, w]).
    pub fn new(shape: &[usize]) -> GraphBuilder {
        GraphBuilder {
            values: vec![Value { shape: shape.to_vec(), source: Source::Input }],
            nodes: Vec::new(),
            params: Vec::new(),
            states: Vec::new(),
            input: ValueId(0),
            batch_norm: true,
            features: Vec::new(),
            taps: Vec::new(),
        }
    }

    /// Makes every later `batch_norm` the identity (no parameters, no statistics): the network
    /// with BN removed that synflow scores.
    pub fn without_batch_norm(mut self) -> GraphBuilder {
        self.batch_norm = false;
        self
    }

    pub fn input(&self) -> ValueId {
        self.input
    }

    pub fn shape(&self, v: ValueId) -> &[usize] {
        &self.values[v.0].shape
    }

    /// Registers a parameter under its PyTorch name.
    pub fn param(&mut self, name: &str, shape: &[usize], init: Init) -> ValueId {
        assert!(self.params.iter().all(|p| p.name != name), "parameter {name} registered twice");
        let offset = self.params.iter().map(ParamSpec::len).sum();
        let id = ParamId(self.params.len());
        self.params.push(ParamSpec { name: name.to_string(), shape: shape.to_vec(), init, offset });
        self.push_value(shape.to_vec(), Source::Param(id))
    }

    /// Registers a state buffer (BN running statistics) under its PyTorch name.
    pub fn state(&mut self, name: &str, len: usize, init: Init) -> StateId {
        let offset = self.states.iter().map(ParamSpec::len).sum();
        self.states.push(ParamSpec { name: name.to_string(), shape: vec![len], init, offset });
        StateId(self.states.len() - 1)
    }

    fn push_value(&mut self, shape: Vec<usize>, source: Source) -> ValueId {
        self.values.push(Value { shape, source });
        ValueId(self.values.len() - 1)
    }

    fn node(&mut self, op: Op, inputs: Vec<ValueId>, shape: Vec<usize>) -> ValueId {
        let output = self.push_value(shape, Source::Node(self.nodes.len()));
        self.nodes.push(Node { op, inputs, output });
        output
    }

    /// Convolution of x [n, c_in, h, w] with w [c_out, c_in, k, k].
    pub fn conv(&mut self, x: ValueId, w: ValueId, stride: usize, pad: usize) -> ValueId {
        let (xs, ws) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        assert_eq!(xs[1], ws[1], "conv input channels");
        let out = |s: usize| (s + 2 * pad - ws[2]) / stride + 1;
        self.node(Op::Conv { stride, pad }, vec![x, w], vec![xs[0], ws[0], out(xs[2]), out(xs[3])])
    }

    /// BatchNorm2d(c) named `prefix` (`prefix.weight`, `.bias`, `.running_mean`, `.running_var`),
    /// PyTorch defaults: eps 1e-5, momentum 0.1, affine, tracking running statistics.
    /// With BN removed ([`GraphBuilder::without_batch_norm`]) it returns `x`.
    pub fn batch_norm(&mut self, x: ValueId, prefix: &str) -> ValueId {
        if !self.batch_norm {
            return x;
        }
        let c = self.shape(x)[1];
        let gamma = self.param(&format!("{prefix}.weight"), &[c], Init::Ones);
        let beta = self.param(&format!("{prefix}.bias"), &[c], Init::Zeros);
        let running_mean = self.state(&format!("{prefix}.running_mean"), c, Init::Zeros);
        let running_var = self.state(&format!("{prefix}.running_var"), c, Init::Ones);
        let shape = self.shape(x).to_vec();
        let op = Op::BatchNorm { running_mean, running_var, eps: 1e-5, momentum: 0.1 };
        self.node(op, vec![x, gamma, beta], shape)
    }

    /// Marks `x` as the next feature ([`Graph::features`]).
    pub fn mark_feature(&mut self, x: ValueId) {
        self.features.push(x);
    }

    /// Records that `modules` hooked modules output `x` ([`Graph::taps`]).
    pub fn tap(&mut self, x: ValueId, modules: usize) {
        self.taps.push((x, modules));
    }

    pub fn relu(&mut self, x: ValueId) -> ValueId {
        let shape = self.shape(x).to_vec();
        self.node(Op::Relu, vec![x], shape)
    }

    /// The sum of `terms`; one term is returned as it is, none gives a zero tensor of `shape`.
    pub fn sum(&mut self, terms: &[ValueId], shape: &[usize]) -> ValueId {
        match terms {
            [] => self.node(Op::Zeros, vec![], shape.to_vec()),
            [one] => *one,
            _ => {
                assert!(terms.iter().all(|t| self.shape(*t) == shape), "sum of mismatched shapes");
                self.node(Op::Sum, terms.to_vec(), shape.to_vec())
            }
        }
    }

    pub fn avg_pool3(&mut self, x: ValueId) -> ValueId {
        let shape = self.shape(x).to_vec();
        self.node(Op::AvgPool3, vec![x], shape)
    }

    pub fn avg_pool2(&mut self, x: ValueId) -> ValueId {
        let s = self.shape(x).to_vec();
        self.node(Op::AvgPool2, vec![x], vec![s[0], s[1], s[2] / 2, s[3] / 2])
    }

    pub fn global_avg_pool(&mut self, x: ValueId) -> ValueId {
        let s = self.shape(x).to_vec();
        self.node(Op::GlobalAvgPool, vec![x], vec![s[0], s[1]])
    }

    /// x [n, d_in] times w [d_out, d_in] transposed, plus b [d_out].
    pub fn linear(&mut self, x: ValueId, w: ValueId, b: ValueId) -> ValueId {
        let (n, d_out) = (self.shape(x)[0], self.shape(w)[0]);
        assert_eq!(self.shape(x)[1], self.shape(w)[1], "linear input features");
        self.node(Op::Linear, vec![x, w, b], vec![n, d_out])
    }

    /// Finishes the graph with the mean softmax cross-entropy of `logits` against the labels.
    pub fn finish(self, logits: ValueId) -> Graph {
        self.finish_with(logits, Head::SoftmaxXent)
    }

    /// Finishes the graph with `head` over `logits` as its loss.
    pub fn finish_with(mut self, logits: ValueId, head: Head) -> Graph {
        assert_eq!(self.shape(logits).len(), 2, "logits must be [n, classes]");
        let op = match head {
            Head::SoftmaxXent => Op::SoftmaxXent,
            Head::SumAll => Op::SumAll,
        };
        let loss = self.node(op, vec![logits], vec![1]);
        Graph {
            values: self.values,
            nodes: self.nodes,
            params: self.params,
            states: self.states,
            input: self.input,
            logits,
            loss,
            features: self.features,
            taps: self.taps,
        }
    }
}
