//! What one reproduction runs: the dataset, the sample, the network and each ranker's settings.
//! They are saved as `DIR/reproduce.json` by the first run, so every later run, shard and report
//! over `DIR` uses the same ones.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::{DatasetKind, DatasetSpec, Recipe};

use super::grid::{demo_grid, paper_grid, Variant};

/// `--scale`: the paper's experiment, or a small demo of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// The paper's settings: NATS-Bench's network (C=16, N=5), 1000 sampled architectures,
    /// the full shortreg grid, every zero-cost proxy at batch 256.
    #[default]
    Paper,
    /// A few architectures, a reduced network (C=8, N=2) and data (Synthetic CIFAR-10 with 50
    /// images per class unless --dataset), a short shortreg grid: minutes on a CPU.
    Demo,
}

/// Everything a reproduction's runs depend on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub scale: Scale,
    /// `--dataset` as given (`cifar10:DIR`, ...).
    pub dataset: String,
    /// `--archs` (`sample:1000`, ...) and the seed that draws the sample and initialises.
    pub archs: String,
    pub seed: u64,
    pub recipe: Recipe,
    /// Synthetic CIFAR-10's training images per class (None: the loader's 5000).
    pub synthetic_size: Option<usize>,
    pub cache_dir: Option<PathBuf>,
    /// Network channels C and cells per stage N.
    pub channels: usize,
    pub cells_per_stage: usize,
    /// FEAR: None leaves `fear rank`'s per-dataset default (README, "FEAR, step by step").
    pub threshold: Option<f64>,
    pub max_stage1_epochs: Option<usize>,
    pub stage2_epochs: Option<usize>,
    /// shortreg's variants, (epochs, batch).
    pub shortreg_grid: Vec<Variant>,
    /// `fear zero-cost --proxy` and its batch.
    pub proxies: String,
    pub proxy_batch: usize,
}

impl Settings {
    /// The defaults of `scale` on `dataset` (required at the paper's scale; the demo's
    /// Synthetic CIFAR-10 without it).
    pub fn new(scale: Scale, dataset: Option<&str>) -> Result<Settings> {
        let dataset = match (dataset, scale) {
            (Some(d), _) => d.to_string(),
            (None, Scale::Demo) => "synthetic-cifar10".to_string(),
            (None, Scale::Paper) => bail!("--dataset is required (e.g. --dataset cifar10:~/data/cifar-10-batches-bin), or --scale demo"),
        };
        let kind = kind_of(&dataset)?;
        let demo = scale == Scale::Demo;
        Ok(Settings {
            scale,
            archs: if demo { "sample:12" } else { "sample:1000" }.to_string(),
            seed: 0,
            recipe: Recipe::Paper,
            synthetic_size: demo.then_some(50),
            cache_dir: None,
            channels: if demo { 8 } else { 16 },
            cells_per_stage: if demo { 2 } else { 5 },
            threshold: None,
            max_stage1_epochs: demo.then_some(30),
            stage2_epochs: None,
            shortreg_grid: if demo { demo_grid() } else { paper_grid(kind) },
            proxies: "all".to_string(),
            proxy_batch: if demo { 64 } else { 256 },
            dataset,
        })
    }

    /// Which dataset, for its per-dataset constants.
    pub fn kind(&self) -> DatasetKind {
        kind_of(&self.dataset).expect("checked when the settings were made")
    }

    /// The ground-truth column the results are measured against: the dataset's own, CIFAR-10's
    /// for Synthetic CIFAR-10 and image folders (NATS-Bench has none for them).
    pub fn ground_truth_column(&self) -> &'static str {
        match self.kind() {
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::ImageNet16 => "imagenet16_120",
            DatasetKind::Cifar10 | DatasetKind::SyntheticCifar10 | DatasetKind::Folder => "cifar10",
        }
    }

    /// Whether `other` runs the same job: the same settings but for where the data is.
    pub fn same_job(&self, other: &Settings) -> bool {
        let located_nowhere = |s: &Settings| Settings { dataset: format!("{:?}", s.kind()), cache_dir: None, ..s.clone() };
        located_nowhere(self) == located_nowhere(other)
    }

    /// The settings saved in `dir`, if any.
    pub fn saved(dir: &Path) -> Result<Option<Settings>> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(serde_json::from_str(&text).with_context(|| format!("{}: not the settings of a fear reproduce run", path.display()))?))
    }

    /// Saves these settings in `dir`, or checks that they are the ones saved there already.
    pub fn save_or_check(&self, dir: &Path) -> Result<()> {
        match Settings::saved(dir)? {
            Some(saved) if saved == *self => Ok(()),
            // The data moved (another folder, another cache): the same job, found elsewhere.
            Some(saved) if saved.same_job(self) => crate::util::write_atomically(&dir.join(FILE), (serde_json::to_string_pretty(self)? + "\n").as_bytes()),
            Some(saved) => bail!(
                "{} was started with other settings ({}); this run has {}: use another --out",
                dir.join(FILE).display(),
                serde_json::to_string(&saved)?,
                serde_json::to_string(self)?
            ),
            None => {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                crate::util::write_atomically(&dir.join(FILE), (serde_json::to_string_pretty(self)? + "\n").as_bytes())
            }
        }
    }
}

/// The settings file in a reproduction's folder.
pub const FILE: &str = "reproduce.json";

fn kind_of(dataset: &str) -> Result<DatasetKind> {
    let spec: DatasetSpec = dataset.parse()?;
    Ok(match spec {
        DatasetSpec::SyntheticCifar10 => DatasetKind::SyntheticCifar10,
        DatasetSpec::Cifar10(_) => DatasetKind::Cifar10,
        DatasetSpec::Cifar100(_) => DatasetKind::Cifar100,
        DatasetSpec::Folder(_) => DatasetKind::Folder,
        DatasetSpec::ImageNet16(_) => DatasetKind::ImageNet16,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_data_is_the_same_job_and_other_settings_are_refused() {
        let dir = std::env::temp_dir().join(format!("fear-reproduce-settings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = Settings::new(Scale::Paper, Some("cifar10:/data/a")).unwrap();
        first.save_or_check(&dir).unwrap();
        let moved = Settings { dataset: "cifar10:/elsewhere".into(), cache_dir: Some("/tmp/c".into()), ..first.clone() };
        moved.save_or_check(&dir).unwrap();
        assert_eq!(Settings::saved(&dir).unwrap(), Some(moved.clone()), "the new location is kept");
        let other = Settings { seed: 1, ..moved.clone() };
        assert!(other.save_or_check(&dir).unwrap_err().to_string().contains("other settings"));
        let other_data = Settings::new(Scale::Paper, Some("cifar100:/elsewhere")).unwrap();
        assert!(other_data.save_or_check(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
