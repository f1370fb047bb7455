//! Training epochs on a session: batches from the data module, one SGD step each, and the epoch's
//! running training accuracy as FEAR's stage 1 compares with its threshold (each step's top-1 on
//! its own augmented batch, from that step's train-mode forward, weighted by batch size).

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::data::augment::Augment;
use crate::data::batches::Batcher;
use crate::data::dataset::Split;
use crate::engine::device::ResidentImages;
use crate::engine::{Device, Session};

use super::feed::TrainSplit;

/// What one epoch did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub lr: f64,
    /// Batch-size-weighted mean of each step's top-1 accuracy.
    pub train_acc: f64,
    pub train_loss: f64,
    /// Wall-clock seconds, batch preparation included.
    pub seconds: f64,
    pub images: usize,
    /// A step's loss was NaN or infinite; the epoch stopped there.
    pub diverged: bool,
    /// Steps whose update loss scaling skipped (a non-finite gradient; `--precision fp16` only).
    pub skipped_steps: u64,
    /// Why the epoch diverged, when loss scaling gave up (its scale collapsed).
    pub diverged_because: Option<String>,
}

/// Where an epoch is, for progress displays.
#[derive(Clone, Copy, Debug)]
pub struct StepProgress {
    pub step: usize,
    pub steps: usize,
    /// Running accuracy of the epoch so far.
    pub acc: f64,
}

/// One epoch over `data` with batches of `batch`, shuffled and augmented from `(seed, epoch)`.
pub fn train_epoch<D: Device<f32>>(
    session: &mut Session<f32, D>,
    data: &mut TrainSplit<D::Resident>,
    batch: usize,
    seed: u64,
    epoch: usize,
    lr: f64,
    on_step: &mut dyn FnMut(StepProgress),
) -> Result<EpochReport> {
    let start = Instant::now();
    let skipped_before = session.loss_scale()?.map_or(0, |s| s.skipped);
    let batcher = Batcher::train(data.split, data.aug, batch, seed, epoch as u64);
    if let Some(resident) = data.resident.as_mut() {
        resident.set_order(batcher.order())?;
    }
    let floats = data.aug.image_floats();
    let mut images = if data.resident.is_some() { Vec::new() } else { vec![0f32; batch * floats] };
    let mut labels = vec![0u32; batch];
    let (mut seen, mut correct, mut loss_sum, mut diverged) = (0usize, 0usize, 0f64, false);
    let steps = batcher.num_batches();
    // One step's figures into the epoch's sums; false once a loss is not finite.
    let mut account = |k: usize, loss: f64, hits: usize, n: usize| {
        if !loss.is_finite() {
            diverged = true;
            return false;
        }
        seen += n;
        correct += hits;
        loss_sum += loss * n as f64;
        on_step(StepProgress { step: k + 1, steps, acc: correct as f64 / seen as f64 });
        true
    };
    match &data.resident {
        Some(resident) if resident.has_labels() => {
            // Fed from the device alone: every step queued (a replayed graph), the figures read once.
            let queued = queue_epoch(session, resident, &batcher, batch, seed, epoch, lr)?;
            for (k, (loss, hits)) in queued.into_iter().enumerate() {
                if !account(k, loss, hits, batcher.indices(k).len()) {
                    break;
                }
            }
        }
        _ => {
            for k in 0..steps {
                let out = match &data.resident {
                    Some(resident) => {
                        let indices = batcher.indices(k);
                        let labels = &mut labels[..indices.len()];
                        labels.iter_mut().zip(indices).for_each(|(l, &i)| *l = data.split.labels[i as usize]);
                        session.train_step_resident(resident, seed, epoch as u64, k * batch, labels, lr)?
                    }
                    None => {
                        let n = batcher.fill(k, &mut images, &mut labels);
                        session.train_step(&images[..n * floats], &labels[..n], lr)?
                    }
                };
                if !account(k, out.loss, out.correct, out.n) {
                    break;
                }
            }
        }
    }
    let per = |v: f64| if seen > 0 { v / seen as f64 } else { f64::NAN };
    let scaler = session.loss_scale()?;
    let skipped_steps = scaler.map_or(0, |s| s.skipped.saturating_sub(skipped_before));
    let diverged_because = scaler.zip(session.options().loss_scaling).and_then(|(s, rules)| s.gave_up(&rules)).filter(|_| diverged);
    Ok(EpochReport {
        epoch,
        lr,
        train_acc: per(correct as f64),
        train_loss: per(loss_sum),
        seconds: start.elapsed().as_secs_f64(),
        images: seen,
        diverged,
        skipped_steps,
        diverged_because,
    })
}

/// Every training step of an epoch queued on the device with no host synchronisation between
/// them (labels gathered and the learning rate written by the data kernel, each step's loss and
/// hits kept on the device, each step a replayed CUDA graph), then the figures of all steps read
/// at once. Unlike the step-by-step loop this runs the steps after a diverged one too; the report
/// stops at the divergence all the same, and a diverged architecture's weights are not used.
fn queue_epoch<D: Device<f32>>(
    session: &mut Session<f32, D>,
    resident: &D::Resident,
    batcher: &Batcher,
    batch: usize,
    seed: u64,
    epoch: usize,
    lr: f64,
) -> Result<Vec<(f64, usize)>> {
    let steps = batcher.num_batches();
    session.begin_queued_steps(steps)?;
    let was_capturing = session.capturing();
    if !was_capturing {
        session.set_capture(true);
    }
    let queued = (0..steps).try_for_each(|k| session.train_step_queued(resident, seed, epoch as u64, k * batch, batcher.indices(k).len(), lr, k));
    if !was_capturing {
        session.set_capture(false);
    }
    queued?;
    session.read_queued_steps(steps)
}

/// Accuracy of the network in eval mode (running BN statistics) over `split`.
pub fn evaluate<D: Device<f32>>(session: &mut Session<f32, D>, split: &Split, aug: &Augment, batch: usize) -> Result<f64> {
    let batcher = Batcher::eval(split, *aug, batch);
    let floats = aug.image_floats();
    let mut images = vec![0f32; batch * floats];
    let mut labels = vec![0u32; batch];
    let mut correct = 0;
    for k in 0..batcher.num_batches() {
        let n = batcher.fill(k, &mut images, &mut labels);
        correct += session.evaluate(&images[..n * floats], &labels[..n])?.correct;
    }
    Ok(correct as f64 / split.len().max(1) as f64)
}
