//! `--trained-epochs E`: the weights after E epochs of regular training (README, "Training recipe":
//! SGD 0.1, Nesterov, weight decay 5e-4, batch 256, cosine over 200 epochs, gradient clip 5), for
//! the paper's study of how the proxies degrade as training proceeds (its Figure 3).

use anyhow::Result;

use crate::data::{Augment, Dataset};
use crate::engine::{Cpu, PlanOptions, Session};
use crate::net::{tiny_network, NetConfig};
use crate::space::Arch;
use crate::train::{cosine_lr, train_epoch, TrainSplit};

use super::score::Weights;

/// The NATS-Bench schedule's length: the first E epochs of a 200-epoch run.
const SCHEDULE_EPOCHS: usize = 200;
const BATCH: usize = 256;

/// Trains `arch` from the initialisation drawn with `seed` for `epochs` epochs and returns every
/// parameter and BN statistic by name. `aug` is the recipe's augmentation ([`crate::data::Recipe::train_augment`]).
pub fn trained_weights(arch: &Arch, net: &NetConfig, data: &Dataset, aug: Augment, epochs: usize, seed: u64) -> Result<Weights> {
    let (a, n) = (*arch, *net);
    let batch = BATCH.min(data.train.len().max(1));
    let opts = PlanOptions { grad_clip: Some(5.0), ..PlanOptions::default() };
    let mut s: Session<f32, Cpu> = Session::new(Cpu, Box::new(move |b| tiny_network(&a, &n, b)), batch, opts)?;
    s.init_params(seed)?;
    let mut train = TrainSplit::on_host(&data.train, aug);
    for epoch in 0..epochs {
        let lr = cosine_lr(0.1, 0.0, epoch, SCHEDULE_EPOCHS);
        train_epoch(&mut s, &mut train, batch, seed, epoch, lr, &mut |_| {})?;
    }
    let widen = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
    let mut named = Vec::new();
    for p in s.params().to_vec() {
        named.push((p.name.clone(), widen(s.read_param(&p.name)?)));
    }
    for st in s.graph().states.clone() {
        named.push((st.name.clone(), widen(s.read_state(&st.name)?)));
    }
    Ok(Weights::Named(named))
}
