//! Each method's run on one architecture on one device, with its progress shown: the unit of
//! work the runner hands its workers. They return the domain outcome; the commands turn it into
//! their results line.

use anyhow::Result;

use crate::data::Dataset;
use crate::engine::{AnyDevice, PlanOptions, Session};
use crate::net::{tiny_network, NetConfig};
use crate::rank::{run_fear, run_shortreg, FearConfig, FearOutcome, FearProgress, ShortregConfig, ShortregOutcome, ShortregProgress, Status};
use crate::space::Arch;

use super::progress::Progress;

/// FEAR's outcome on one architecture, and why its status is not ok when there is more to say.
pub struct FearRun {
    pub outcome: FearOutcome,
    pub reason: Option<String>,
}

/// FEAR on one architecture, on `dev`. A disconnected cell is not trained when the threshold
/// is above the largest class's share (its output ignores the input, so it cannot get there).
pub fn fear_one(arch: &Arch, data: &Dataset, net: &NetConfig, dev: &AnyDevice, cfg: &FearConfig, seed: u64, bar: &Progress) -> Result<FearRun> {
    let majority = data.train.class_counts(data.classes).into_iter().max().unwrap_or(0) as f64 / data.train.len().max(1) as f64;
    let (outcome, reason) = if !arch.is_connected() && cfg.threshold > majority {
        (FearOutcome::skipped(), Some(format!("disconnected cell: accuracy cannot exceed the largest class share {majority:.3}")))
    } else {
        let (a, n) = (*arch, *net);
        let mut session: Session<f32, AnyDevice> =
            Session::new(dev.clone(), Box::new(move |b| tiny_network(&a, &n, b)), cfg.stage1_batch, PlanOptions::default())?;
        session.init_params(seed)?;
        let mut on_progress = |p: FearProgress| {
            let (i, e, s) = (arch.index(), p.epoch + 1, p.step);
            bar.set_message(if p.stage == 1 {
                // Only the whole epoch's accuracy is compared with the threshold.
                format!("arch {i} stage 1 epoch {e} step {}/{} running acc {:.3} (threshold {}, checked at epoch end)", s.step, s.steps, s.acc, cfg.threshold)
            } else {
                format!("arch {i} stage 2 epoch {e}/{} step {}/{} acc {:.3}", cfg.stage2_epochs, s.step, s.steps, s.acc)
            });
        };
        let outcome = run_fear(&mut session, data, net, cfg, seed, &mut on_progress)?;
        let gave_up = outcome.stage1.iter().chain(&outcome.stage2).find_map(|r| r.diverged_because.clone());
        let reason = match outcome.status {
            Status::Capped => Some(format!("threshold {} not reached in {} epochs", cfg.threshold, outcome.stage1_epochs)),
            Status::Diverged => gave_up,
            _ => None,
        };
        (outcome, reason)
    };
    let skipped: u64 = outcome.stage1.iter().chain(&outcome.stage2).map(|r| r.skipped_steps).sum();
    bar.println(format!(
        "arch {:>5}  {:<9} score {}  time {:.1}s (stage 1: {} epochs {:.1}s, stage 2: {:.1}s){}{}",
        arch.index(),
        format!("{:?}", outcome.status).to_lowercase(),
        outcome.score.map_or("-".into(), |s| format!("{s:.4}")),
        outcome.time_s,
        outcome.stage1_epochs,
        outcome.stage1_s,
        outcome.stage2_s,
        if skipped > 0 { format!(", {skipped} steps skipped by fp16 loss scaling") } else { String::new() },
        reason.as_ref().filter(|_| outcome.status == Status::Diverged).map_or(String::new(), |r| format!(": {r}"))
    ));
    Ok(FearRun { outcome, reason })
}

/// shortreg on one architecture, on `dev`.
pub fn shortreg_one(arch: &Arch, data: &Dataset, net: &NetConfig, dev: &AnyDevice, cfg: &ShortregConfig, seed: u64, bar: &Progress) -> Result<ShortregOutcome> {
    let (a, n) = (*arch, *net);
    let mut session: Session<f32, AnyDevice> = Session::new(dev.clone(), Box::new(move |b| tiny_network(&a, &n, b)), cfg.batch, PlanOptions::default())?;
    session.init_params(seed)?;
    let mut on_progress = |p: ShortregProgress| {
        bar.set_message(format!("arch {} epoch {}/{} step {}/{} acc {:.3}", arch.index(), p.epoch + 1, cfg.epochs, p.step.step, p.step.steps, p.step.acc));
    };
    let outcome = run_shortreg(&mut session, data, cfg, seed, &mut on_progress)?;
    bar.println(format!(
        "arch {:>5}  {:<9} score {}  time {:.1}s ({} epochs)",
        arch.index(),
        format!("{:?}", outcome.status).to_lowercase(),
        outcome.score.map_or("-".into(), |s| format!("{s:.4}")),
        outcome.time_s,
        outcome.epochs.len()
    ));
    Ok(outcome)
}
