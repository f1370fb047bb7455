//! The threshold learner's MLP as an engine graph: its input is a batch of feature vectors
//! `[n, d]` rather than images; linear layers with PyTorch's default initialisation
//! (weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))), ReLU between them.

use crate::engine::{Graph, GraphBuilder, Init};

/// `d_in -> hidden[0] -> ReLU -> ... -> hidden[last] -> ReLU -> classes` for a batch of `batch`,
/// ending in the mean softmax cross-entropy. Parameters are `fc{i}.weight` / `fc{i}.bias`.
pub fn mlp_graph(d_in: usize, hidden: &[usize], classes: usize, batch: usize) -> Graph {
    let mut b = GraphBuilder::new(&[batch, d_in]);
    let mut x = b.input();
    let mut width = d_in;
    let widths: Vec<usize> = hidden.iter().copied().chain([classes]).collect();
    for (i, &out) in widths.iter().enumerate() {
        let bound = 1.0 / (width as f64).sqrt();
        let w = b.param(&format!("fc{i}.weight"), &[out, width], Init::Uniform(bound));
        let bias = b.param(&format!("fc{i}.bias"), &[out], Init::Uniform(bound));
        x = b.linear(x, w, bias);
        if i + 1 < widths.len() {
            x = b.relu(x);
        }
        width = out;
    }
    b.finish(x)
}
