//! Training the threshold learner: HoG features of the train and test splits, the paper's
//! recipe, and per epoch the running training accuracy (each step's top-1 on its batch, as FEAR
//! measures its own) and the test accuracy.

use std::time::Instant;

use anyhow::{ensure, Result};
use serde::Serialize;

use crate::data::{epoch_order, Split};
use crate::engine::{Cpu, PlanOptions, Session};
use crate::features::{feature_len, hog_dataset, HogParams};
use crate::train::cosine_lr;

use super::mlp::mlp_graph;

/// A split as feature vectors: `x` is `[n, dim]` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub x: Vec<f32>,
    pub labels: Vec<u32>,
    pub dim: usize,
}

impl Features {
    /// HoG ([`HogParams::for_image_size`]) of every image of `split`.
    pub fn hog(split: &Split, image_size: usize) -> Features {
        let p = HogParams::for_image_size(image_size);
        Features { x: hog_dataset(&split.images, image_size, &p), labels: split.labels.clone(), dim: feature_len(image_size, &p) }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The learner's network size and training recipe.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MlpRecipe {
    pub hidden: Vec<usize>,
    pub lr: f64,
    /// Where the cosine schedule ends.
    pub lr_min: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub batch: usize,
    pub epochs: usize,
}

impl Default for MlpRecipe {
    /// The paper's: 2048-2048 hidden, SGD lr 0.5, momentum 0.9, no Nesterov, weight decay 3e-4,
    /// batch 1024, cosine to 0.001 over 200 epochs.
    fn default() -> Self {
        MlpRecipe { hidden: vec![2048, 2048], lr: 0.5, lr_min: 0.001, momentum: 0.9, weight_decay: 3e-4, batch: 1024, epochs: 200 }
    }
}

/// One epoch of the learner.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochAccuracy {
    pub epoch: usize,
    pub lr: f64,
    /// Batch-size-weighted mean of each step's top-1 accuracy.
    pub train_acc: f64,
    pub train_loss: f64,
    /// Accuracy on the test features after the epoch (None without test features).
    pub test_acc: Option<f64>,
    pub seconds: f64,
}

/// Trains the MLP from PyTorch's default initialisation drawn with `seed` (shuffles from
/// `seed` too) and reports every epoch to `on_epoch` as it ends.
pub fn train_threshold_learner(
    train: &Features,
    test: &Features,
    classes: usize,
    recipe: &MlpRecipe,
    seed: u64,
    on_epoch: &mut dyn FnMut(&EpochAccuracy),
) -> Result<Vec<EpochAccuracy>> {
    ensure!(!train.is_empty(), "no training features");
    ensure!(test.is_empty() || test.dim == train.dim, "train and test features differ in length");
    ensure!(recipe.batch > 0, "batch size must be positive");
    let (dim, hidden) = (train.dim, recipe.hidden.clone());
    let batch = recipe.batch.min(train.len());
    let opts = PlanOptions { momentum: recipe.momentum, weight_decay: recipe.weight_decay, nesterov: false, ..PlanOptions::default() };
    let mut s: Session<f32, Cpu> = Session::new(Cpu, Box::new(move |b| mlp_graph(dim, &hidden, classes, b)), batch, opts)?;
    s.init_params(seed)?;
    let mut xb = vec![0f32; batch * dim];
    let mut yb = vec![0u32; batch];
    let mut out = Vec::new();
    for epoch in 0..recipe.epochs {
        let start = Instant::now();
        let lr = cosine_lr(recipe.lr, recipe.lr_min, epoch, recipe.epochs);
        let order = epoch_order(train.len(), seed, epoch as u64);
        let (mut correct, mut loss_sum) = (0usize, 0f64);
        for chunk in order.chunks(batch) {
            for (k, &i) in chunk.iter().enumerate() {
                let i = i as usize;
                xb[k * dim..(k + 1) * dim].copy_from_slice(&train.x[i * dim..(i + 1) * dim]);
                yb[k] = train.labels[i];
            }
            let m = chunk.len();
            let step = s.train_step(&xb[..m * dim], &yb[..m], lr)?;
            correct += step.correct;
            loss_sum += step.loss * m as f64;
        }
        let test_acc = if test.is_empty() { None } else { Some(accuracy(&mut s, test, batch)?) };
        let report = EpochAccuracy {
            epoch,
            lr,
            train_acc: correct as f64 / train.len() as f64,
            train_loss: loss_sum / train.len() as f64,
            test_acc,
            seconds: start.elapsed().as_secs_f64(),
        };
        on_epoch(&report);
        out.push(report);
    }
    Ok(out)
}

/// Top-1 accuracy of the session's MLP on `f`.
fn accuracy(s: &mut Session<f32, Cpu>, f: &Features, batch: usize) -> Result<f64> {
    let mut correct = 0;
    for (x, y) in f.x.chunks(batch * f.dim).zip(f.labels.chunks(batch)) {
        correct += s.evaluate(x, y)?.correct;
    }
    Ok(correct as f64 / f.len() as f64)
}
