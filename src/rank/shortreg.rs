//! shortreg (README, "shortreg"): the short-training baseline. Plain training for E epochs with a
//! cosine schedule over those E epochs (annealing to 0), batch B; the score is the best epoch's
//! training accuracy.

use anyhow::Result;
use serde::Serialize;

use crate::data::recipe::{Method, Recipe};
use crate::data::Dataset;
use crate::engine::precision::Precision;
use crate::engine::{Device, PlanOptions, Session};
use crate::train::{cosine_lr, train_epoch, EpochReport, StepProgress, TrainSplit};

use super::Status;

/// shortreg's settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShortregConfig {
    /// E: the epochs trained, and T of the cosine schedule.
    pub epochs: usize,
    /// B.
    pub batch: usize,
    pub lr: f64,
    pub grad_clip: Option<f64>,
    /// The data pipeline (crop, flip, normalisation) it trains on.
    pub recipe: Recipe,
    /// Cutout side (0 = none: shortreg ran without it under both recipes).
    pub cutout: usize,
    /// What the network computes and stores in (`--precision`, [`PlanOptions::at_precision`]).
    pub precision: Precision,
}

impl ShortregConfig {
    /// SGD 0.1, gradient clip 5, no cutout, the paper's data recipe, for `epochs` epochs at `batch`.
    pub fn new(epochs: usize, batch: usize) -> ShortregConfig {
        ShortregConfig { epochs, batch, lr: 0.1, grad_clip: Some(5.0), recipe: Recipe::Paper, cutout: 0, precision: Precision::Fp32 }
    }
}

/// The result of shortreg on one architecture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShortregOutcome {
    /// `Ok`, or `Diverged` when a loss went NaN or infinite (training stops there).
    pub status: Status,
    /// The best epoch's training accuracy (None unless `status` is ok).
    pub score: Option<f64>,
    /// Seconds of training epochs (data loading and training only, as FEAR's are counted).
    pub time_s: f64,
    pub epochs: Vec<EpochReport>,
}

/// What shortreg is doing, for progress displays.
#[derive(Clone, Copy, Debug)]
pub struct ShortregProgress {
    pub epoch: usize,
    pub step: StepProgress,
}

/// Runs shortreg on a session whose parameters are initialised; every parameter is made
/// trainable and the optimiser starts from zero momentum.
pub fn run_shortreg<D: Device<f32>>(
    session: &mut Session<f32, D>,
    data: &Dataset,
    cfg: &ShortregConfig,
    seed: u64,
    on_progress: &mut dyn FnMut(ShortregProgress),
) -> Result<ShortregOutcome> {
    anyhow::ensure!(cfg.batch > 0, "shortreg: batch size must be positive");
    let aug = cfg.recipe.train_augment(data, Method::Shortreg).with_cutout(cfg.cutout);
    let mut train = TrainSplit::for_device(session.device(), &data.train, aug)?;
    session.set_options(PlanOptions { grad_clip: cfg.grad_clip, ..PlanOptions::default() }.at_precision(cfg.precision)?);
    session.set_trainable(|_| true);
    session.reset_momentum()?;
    let mut out = ShortregOutcome { status: Status::Ok, score: None, time_s: 0.0, epochs: Vec::new() };
    for epoch in 0..cfg.epochs {
        let lr = cosine_lr(cfg.lr, 0.0, epoch, cfg.epochs);
        let mut step = |s| on_progress(ShortregProgress { epoch, step: s });
        let r = train_epoch(session, &mut train, cfg.batch, seed, epoch, lr, &mut step)?;
        out.time_s += r.seconds;
        let diverged = r.diverged;
        out.epochs.push(r);
        if diverged {
            out.status = Status::Diverged;
            return Ok(out);
        }
    }
    out.score = out.epochs.iter().map(|r| r.train_acc).filter(|a| !a.is_nan()).reduce(f64::max);
    Ok(out)
}
