//! Dataset names as the command line spells them, and loading them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Result;

use super::dataset::{Dataset, Normalization};
use super::recipe::DatasetKind;
use super::{cifar, folder, imagenet16, synthetic};

/// The valid forms, for error messages and `--help` texts.
pub const DATASET_FORMS: &str = "synthetic-cifar10, cifar10:DIR (data_batch_1..5.bin, test_batch.bin), \
cifar100:DIR (train.bin, test.bin), folder:DIR (DIR/train/<class>/*.jpg|png, DIR/test/<class>/...), \
imagenet16:DIR (train_data_batch_1..10, val_data)";

/// Which dataset, as named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetSpec {
    /// `synthetic-cifar10`: generated ([`crate::data::synthetic`]), cached in
    /// [`LoadOptions::cache_dir`].
    SyntheticCifar10,
    /// `cifar10:DIR`: the CIFAR-10 binary version.
    Cifar10(PathBuf),
    /// `cifar100:DIR`: the CIFAR-100 binary version (fine labels).
    Cifar100(PathBuf),
    /// `folder:DIR`: `DIR/train/<class>/*` and `DIR/test/<class>/*` images.
    Folder(PathBuf),
    /// `imagenet16:DIR`: ImageNet16-120 from the downsampled-ImageNet 16x16 pickles.
    ImageNet16(PathBuf),
}

/// What loading needs beyond the name.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// Where generated data (the synthetic set) is cached. Default: the user's cache folder
    /// ([`crate::util::default_cache_dir`]).
    pub cache_dir: PathBuf,
    /// Synthetic CIFAR-10: training images per class (test gets a fifth of it). Default 5000.
    pub synthetic_size: usize,
    /// Synthetic CIFAR-10: the generator's seed. Default 42.
    pub synthetic_seed: u64,
    /// Replaces the dataset's own normalisation (e.g. the CIFAR-10 constants for a folder
    /// holding CIFAR-10 as JPEGs, whose measured statistics differ in the third decimal).
    pub norm: Option<Normalization>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            cache_dir: crate::util::default_cache_dir(),
            synthetic_size: synthetic::DEFAULT_SIZE,
            synthetic_seed: synthetic::DEFAULT_SEED,
            norm: None,
        }
    }
}

impl DatasetSpec {
    /// The kind of dataset this names.
    pub fn kind(&self) -> DatasetKind {
        match self {
            DatasetSpec::SyntheticCifar10 => DatasetKind::SyntheticCifar10,
            DatasetSpec::Cifar10(_) => DatasetKind::Cifar10,
            DatasetSpec::Cifar100(_) => DatasetKind::Cifar100,
            DatasetSpec::Folder(_) => DatasetKind::Folder,
            DatasetSpec::ImageNet16(_) => DatasetKind::ImageNet16,
        }
    }

    /// Reads (or generates) the dataset.
    pub fn load(&self, opts: &LoadOptions) -> Result<Dataset> {
        let mut ds = match self {
            DatasetSpec::SyntheticCifar10 => synthetic::load_or_generate(&opts.cache_dir, opts.synthetic_seed, opts.synthetic_size)?,
            DatasetSpec::Cifar10(dir) => cifar::load_cifar10(dir)?,
            DatasetSpec::Cifar100(dir) => cifar::load_cifar100(dir)?,
            DatasetSpec::Folder(dir) => folder::load_folder(dir)?,
            DatasetSpec::ImageNet16(dir) => imagenet16::load_imagenet16(dir)?,
        };
        if let Some(norm) = opts.norm {
            ds.norm = norm;
        }
        Ok(ds)
    }

    /// The directory named, if any.
    pub fn dir(&self) -> Option<&std::path::Path> {
        match self {
            DatasetSpec::SyntheticCifar10 => None,
            DatasetSpec::Cifar10(d) | DatasetSpec::Cifar100(d) | DatasetSpec::Folder(d) | DatasetSpec::ImageNet16(d) => Some(d),
        }
    }
}

impl FromStr for DatasetSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "synthetic-cifar10" {
            return Ok(DatasetSpec::SyntheticCifar10);
        }
        let bad = || anyhow::anyhow!("unknown dataset '{s}': expected one of {DATASET_FORMS}");
        let (kind, dir) = s.split_once(':').ok_or_else(bad)?;
        if dir.is_empty() {
            anyhow::bail!("dataset '{s}' names no directory: expected one of {DATASET_FORMS}");
        }
        let dir = crate::util::expand_tilde(dir);
        match kind {
            "cifar10" => Ok(DatasetSpec::Cifar10(dir)),
            "cifar100" => Ok(DatasetSpec::Cifar100(dir)),
            "folder" => Ok(DatasetSpec::Folder(dir)),
            "imagenet16" | "imagenet16-120" => Ok(DatasetSpec::ImageNet16(dir)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::SyntheticCifar10 => write!(f, "synthetic-cifar10"),
            DatasetSpec::Cifar10(d) => write!(f, "cifar10:{}", d.display()),
            DatasetSpec::Cifar100(d) => write!(f, "cifar100:{}", d.display()),
            DatasetSpec::Folder(d) => write!(f, "folder:{}", d.display()),
            DatasetSpec::ImageNet16(d) => write!(f, "imagenet16:{}", d.display()),
        }
    }
}
