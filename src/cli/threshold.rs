//! `fear threshold`: train FEAR's threshold learner (HoG features into a
//! 324-2048-2048-C MLP) on a dataset, printing train and test accuracy per epoch and the
//! training-accuracy threshold it suggests for `fear rank --threshold`.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::data::{DatasetSpec, LoadOptions};
use crate::threshold::{train_threshold_learner, Features, MlpRecipe};

use super::UsageError;

#[derive(Args, Debug)]
pub struct ThresholdArgs {
    /// Dataset: synthetic-cifar10, cifar10:DIR, cifar100:DIR, folder:DIR or imagenet16:DIR
    /// (without it, the demo's small Synthetic CIFAR-10).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Synthetic CIFAR-10 training images per class (default 5000; 50 without --dataset).
    #[arg(long)]
    pub synthetic_size: Option<usize>,
    /// Where generated data (Synthetic CIFAR-10) is cached (default: $FEAR_CACHE_DIR, else
    /// $XDG_CACHE_HOME/fear, else ~/.cache/fear).
    #[arg(value_parser = crate::util::path_arg, long)]
    pub cache_dir: Option<std::path::PathBuf>,
    /// Epochs (the cosine schedule runs over these).
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Initial learning rate (cosine down to 0.001).
    #[arg(long, default_value_t = 0.5)]
    pub lr: f64,
    /// Seed of initialisation and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(args: ThresholdArgs) -> Result<()> {
    if args.epochs == 0 || args.batch == 0 || args.lr.is_nan() || args.lr <= 0.0 {
        return Err(UsageError("--epochs, --batch and --lr must be positive".into()).into());
    }
    let spec: DatasetSpec = args.dataset.as_deref().unwrap_or("synthetic-cifar10").parse().map_err(|e: anyhow::Error| UsageError(e.to_string()))?;
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global()?;
    }
    let demo = args.dataset.is_none();
    if demo {
        eprintln!("no --dataset given: the demo's Synthetic CIFAR-10 (50 images per class)");
    }
    let mut opts = LoadOptions { cache_dir: args.cache_dir.clone().unwrap_or_else(crate::util::default_cache_dir), ..LoadOptions::default() };
    opts.synthetic_size = args.synthetic_size.unwrap_or(if demo { 50 } else { opts.synthetic_size });
    let data = spec.load(&opts).with_context(|| format!("loading {spec}"))?;
    let t = Instant::now();
    let train = Features::hog(&data.train, data.image_size);
    let test = Features::hog(&data.test, data.image_size);
    eprintln!(
        "{}: HoG of {} training and {} test images ({} features each) in {:.1}s",
        data.name,
        train.len(),
        test.len(),
        train.dim,
        t.elapsed().as_secs_f64()
    );
    let recipe = MlpRecipe { lr: args.lr, batch: args.batch, epochs: args.epochs, ..MlpRecipe::default() };
    let total = recipe.epochs;
    let epochs = train_threshold_learner(&train, &test, data.classes, &recipe, args.seed, &mut |e| {
        println!(
            "epoch {:>3}/{total}  lr {:.4}  train acc {:.4}  loss {:.4}  test acc {}  {:.1}s",
            e.epoch + 1,
            e.lr,
            e.train_acc,
            e.train_loss,
            e.test_acc.map_or("-".into(), |a| format!("{a:.4}")),
            e.seconds
        );
    })?;
    let last = epochs.last().expect("at least one epoch");
    // FEAR's stage 1 must reach the threshold, so round the learner's accuracy down.
    let suggested = (last.train_acc * 100.0).floor() / 100.0;
    println!(
        "suggested threshold for {}: {suggested:.2} (the learner's final training accuracy {:.4}; test accuracy {})",
        data.name,
        last.train_acc,
        last.test_acc.map_or("-".into(), |a| format!("{a:.4}"))
    );
    Ok(())
}
