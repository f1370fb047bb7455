//! FEAR (README, "FEAR, step by step"): train until the training accuracy reaches a threshold, then
//! freeze all but the last cells and train a few epochs more; the score is the last stage-2 epoch's
//! accuracy.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::data::recipe::{DatasetKind, Method, Recipe};
use crate::data::Dataset;
use crate::engine::precision::Precision;
use crate::engine::{Device, PlanOptions, Session};
use crate::net::{stage2_prefixes, NetConfig};
use crate::schema::Status;
use crate::train::{cosine_lr, train_epoch, EpochReport, StepProgress, TrainSplit};

/// FEAR's settings; [`FearConfig::for_dataset`] gives the paper's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FearConfig {
    /// Stage-1 training accuracy to reach (fraction).
    pub threshold: f64,
    pub lr: f64,
    pub stage1_batch: usize,
    /// T of stage 1's cosine schedule (200: the learning rate stays near `lr`).
    pub stage1_cosine_epochs: usize,
    /// Give up stage 1 after this many epochs.
    pub max_stage1_epochs: usize,
    /// Give up stage 1 once it has run this many seconds (random search's cut-off).
    pub stage1_time_budget_s: Option<f64>,
    pub stage2_batch: usize,
    pub stage2_epochs: usize,
    /// How many of the last cells stage 2 trains (with `lastact` and the classifier).
    pub stage2_cells: usize,
    pub grad_clip: Option<f64>,
    /// The data pipeline (crop, flip, normalisation) stage 1 and 2 train on.
    pub recipe: Recipe,
    /// Cutout side (0 = none); [`Recipe::cutout`] gives the recipe's.
    pub cutout: usize,
    /// What the network computes and stores in (`--precision`, [`PlanOptions::at_precision`]).
    pub precision: Precision,
}

impl FearConfig {
    /// The paper's values for a dataset: threshold CIFAR-10 0.6, CIFAR-100 0.3, ImageNet16-120 0.2,
    /// Synthetic CIFAR-10 0.15; stage 2 batch 1024 / 512 / 512 / 1024 for 5 / 5 / 10 / 5 epochs;
    /// the paper's recipe (Cutout 16 on CIFAR).
    pub fn for_dataset(name: &str) -> FearConfig {
        let kind = DatasetKind::of(name);
        let (stage2_batch, stage2_epochs) = kind.stage2();
        FearConfig {
            threshold: kind.threshold(),
            lr: 0.1,
            stage1_batch: 256,
            stage1_cosine_epochs: 200,
            max_stage1_epochs: 200,
            stage1_time_budget_s: None,
            stage2_batch,
            stage2_epochs,
            stage2_cells: 4,
            grad_clip: Some(5.0),
            recipe: Recipe::Paper,
            cutout: Recipe::Paper.cutout(kind, Method::Fear),
            precision: Precision::Fp32,
        }
    }
}

/// The result of FEAR on one architecture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FearOutcome {
    pub status: Status,
    /// The last stage-2 epoch's training accuracy (None unless `status` is ok).
    pub score: Option<f64>,
    /// The best stage-2 epoch's training accuracy (random search's score).
    pub best_stage2_acc: Option<f64>,
    pub reached_threshold: bool,
    pub stage1_epochs: usize,
    /// Seconds of stage-1 and stage-2 epochs (training and data loading only, as the paper times
    /// FEAR).
    pub stage1_s: f64,
    pub stage2_s: f64,
    pub time_s: f64,
    pub stage1: Vec<EpochReport>,
    pub stage2: Vec<EpochReport>,
}

impl FearOutcome {
    /// An architecture not trained at all: capped at once.
    pub fn skipped() -> FearOutcome {
        FearOutcome {
            status: Status::Capped,
            score: None,
            best_stage2_acc: None,
            reached_threshold: false,
            stage1_epochs: 0,
            stage1_s: 0.0,
            stage2_s: 0.0,
            time_s: 0.0,
            stage1: Vec::new(),
            stage2: Vec::new(),
        }
    }
}

/// What FEAR is doing, for progress displays.
#[derive(Clone, Copy, Debug)]
pub struct FearProgress {
    pub stage: u8,
    pub epoch: usize,
    pub step: StepProgress,
}

/// Runs FEAR on a session whose parameters are initialised and all trainable.
pub fn run_fear<D: Device<f32>>(
    session: &mut Session<f32, D>,
    data: &Dataset,
    net: &NetConfig,
    cfg: &FearConfig,
    seed: u64,
    on_progress: &mut dyn FnMut(FearProgress),
) -> Result<FearOutcome> {
    let aug = cfg.recipe.train_augment(data, Method::Fear).with_cutout(cfg.cutout);
    let mut train = TrainSplit::for_device(session.device(), &data.train, aug)?;
    session.set_options(PlanOptions { grad_clip: cfg.grad_clip, ..PlanOptions::default() }.at_precision(cfg.precision)?);
    session.set_trainable(|_| true);
    let mut out = FearOutcome::skipped();
    let stage1_start = Instant::now();
    for epoch in 0..cfg.max_stage1_epochs {
        let lr = cosine_lr(cfg.lr, 0.0, epoch, cfg.stage1_cosine_epochs);
        let mut step = |s| on_progress(FearProgress { stage: 1, epoch, step: s });
        let r = train_epoch(session, &mut train, cfg.stage1_batch, seed, epoch, lr, &mut step)?;
        out.stage1_s += r.seconds;
        out.stage1_epochs += 1;
        let (diverged, acc) = (r.diverged, r.train_acc);
        out.stage1.push(r);
        if diverged {
            out.status = Status::Diverged;
            break;
        }
        if acc >= cfg.threshold {
            out.reached_threshold = true;
            break;
        }
        if cfg.stage1_time_budget_s.is_some_and(|b| stage1_start.elapsed().as_secs_f64() > b) {
            break;
        }
    }
    if out.reached_threshold {
        stage2(session, &mut train, net, cfg, seed, &mut out, on_progress)?;
    }
    out.time_s = out.stage1_s + out.stage2_s;
    Ok(out)
}

/// Stage 2: the last cells, `lastact` and the classifier trainable, everything else frozen (its
/// BN layers still in train mode), a fresh optimiser, cosine over the stage-2 epochs.
#[allow(clippy::too_many_arguments)]
fn stage2<D: Device<f32>>(
    session: &mut Session<f32, D>,
    train: &mut TrainSplit<D::Resident>,
    net: &NetConfig,
    cfg: &FearConfig,
    seed: u64,
    out: &mut FearOutcome,
    on_progress: &mut dyn FnMut(FearProgress),
) -> Result<()> {
    let keep = stage2_prefixes(net, cfg.stage2_cells);
    session.train_only(&keep);
    session.reset_momentum()?;
    // Stage 2 shuffles with its own stream, unrelated to stage 1's epochs.
    let seed2 = crate::data::augment::derive_seed(seed, 2, 0, 0x5354_4732);
    for epoch in 0..cfg.stage2_epochs {
        let lr = cosine_lr(cfg.lr, 0.0, epoch, cfg.stage2_epochs);
        let mut step = |s| on_progress(FearProgress { stage: 2, epoch, step: s });
        let r = train_epoch(session, train, cfg.stage2_batch, seed2, epoch, lr, &mut step)?;
        out.stage2_s += r.seconds;
        let (diverged, acc) = (r.diverged, r.train_acc);
        out.stage2.push(r);
        if diverged {
            out.status = Status::Diverged;
            return Ok(());
        }
        out.best_stage2_acc = Some(out.best_stage2_acc.map_or(acc, |b: f64| b.max(acc)));
    }
    out.status = Status::Ok;
    out.score = out.stage2.last().map(|r| r.train_acc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::FearConfig;

    #[test]
    fn paper_defaults_per_dataset() {
        let t = |name: &str| {
            let c = FearConfig::for_dataset(name);
            (c.threshold, c.stage2_batch, c.stage2_epochs)
        };
        assert_eq!(t("cifar10"), (0.6, 1024, 5));
        assert_eq!(t("cifar100"), (0.3, 512, 5));
        assert_eq!(t("imagenet16-120"), (0.2, 512, 10));
        assert_eq!(t("synthetic-cifar10"), (0.15, 1024, 5));
        let c = FearConfig::for_dataset("cifar10");
        assert_eq!((c.lr, c.stage1_batch, c.stage1_cosine_epochs, c.grad_clip, c.stage2_cells), (0.1, 256, 200, Some(5.0), 4));
        // The paper's FEAR ran CIFAR with Cutout(16) (issue 15, difference 2), nothing else with it.
        assert_eq!((c.recipe, c.cutout), (super::Recipe::Paper, 16));
        assert_eq!((FearConfig::for_dataset("cifar100").cutout, FearConfig::for_dataset("imagenet16-120").cutout), (16, 0));
        assert_eq!(FearConfig::for_dataset("synthetic-cifar10").cutout, 0);
    }
}
