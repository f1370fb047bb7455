//! Which data pipeline a run trains on: the FEAR paper's (`paper`, what the authors' code ran, per
//! dataset and per method) or NATS-Bench's 200-epoch recipe (`natsbench`). The table, from the
//! authors' configs and providers (`../shared/FEAR-FIDELITY.md` §1, §5, §6):
//!
//! | dataset | recipe | crop + flip | normalise | Cutout(16) |
//! |---|---|---|---|---|
//! | CIFAR-10/100, image folders | paper | yes | yes | FEAR (stage 1 and 2) only |
//! | ImageNet16-120 | paper | no | no (`ToTensor` only) | no |
//! | Synthetic CIFAR-10 | paper | no | its own decoding (the N(0,1) samples) | no |
//! | every dataset | natsbench | yes | yes | no |
//!
//! Per-dataset constants that used to be string matches on the dataset's name live in
//! [`DatasetKind`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::augment::Augment;
use super::dataset::{Dataset, Normalization};
use super::synthetic;

/// A training recipe (`--recipe`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Recipe {
    /// What the FEAR paper's authors ran, per dataset and method.
    #[default]
    Paper,
    /// NATS-Bench's own training recipe (crop, flip, normalise; no Cutout) on every dataset.
    Natsbench,
}

/// Which ranker trains: the paper's recipe differs between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// FEAR, stage 1 and stage 2 (`fear rank`).
    Fear,
    /// FEAR inside random search (`fear search --method fear`).
    SearchFear,
    /// shortreg, alone or inside random search.
    Shortreg,
    /// The zero-cost proxies' batch and `--trained-epochs` training.
    ZeroCost,
}

/// The datasets whose constants differ; an image folder takes CIFAR-10's (the folder is normally
/// CIFAR-10 as images).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    Cifar10,
    Cifar100,
    ImageNet16,
    SyntheticCifar10,
    /// `folder:DIR`, named after its folder.
    Folder,
}

impl DatasetKind {
    /// The kind of a loaded dataset, from its name.
    pub fn of(name: &str) -> DatasetKind {
        match name {
            "cifar10" => DatasetKind::Cifar10,
            "cifar100" => DatasetKind::Cifar100,
            "imagenet16-120" => DatasetKind::ImageNet16,
            synthetic::NAME => DatasetKind::SyntheticCifar10,
            _ => DatasetKind::Folder,
        }
    }

    /// FEAR's stage-1 threshold (the paper's values: README, "FEAR, step by step").
    pub fn threshold(self) -> f64 {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Folder => 0.6,
            DatasetKind::Cifar100 => 0.3,
            DatasetKind::ImageNet16 => 0.2,
            DatasetKind::SyntheticCifar10 => 0.15,
        }
    }

    /// FEAR's stage-2 batch size and epochs (the paper's values: README, "FEAR, step by step").
    pub fn stage2(self) -> (usize, usize) {
        match self {
            DatasetKind::Cifar10 | DatasetKind::Folder | DatasetKind::SyntheticCifar10 => (1024, 5),
            DatasetKind::Cifar100 => (512, 5),
            DatasetKind::ImageNet16 => (512, 10),
        }
    }

    /// NATS-Bench's ground-truth column for this dataset (None: it has no accuracies for it).
    pub fn ground_truth_column(self) -> Option<&'static str> {
        match self {
            DatasetKind::Cifar10 => Some("cifar10"),
            DatasetKind::Cifar100 => Some("cifar100"),
            DatasetKind::ImageNet16 => Some("imagenet16_120"),
            DatasetKind::SyntheticCifar10 | DatasetKind::Folder => None,
        }
    }

    /// The byte the crop padding holds: the synthetic set's encoding of 0.0, else black.
    pub fn pad_fill(self) -> u8 {
        match self {
            DatasetKind::SyntheticCifar10 => synthetic::ZERO_BYTE,
            _ => 0,
        }
    }
}

/// The Cutout side of the paper's CIFAR FEAR runs (`darts.yaml`'s `cutout: 16`).
pub const PAPER_CUTOUT: usize = 16;

impl Recipe {
    /// The training augmentation of `method` on `ds`, Cutout included.
    pub fn train_augment(self, ds: &Dataset, method: Method) -> Augment {
        let kind = DatasetKind::of(&ds.name);
        let natsbench = Augment::train(ds).with_cutout(self.cutout(kind, method));
        match (self, kind) {
            (Recipe::Natsbench, _) => natsbench,
            // No transform at all: the labels are the argmax over exact pixel positions.
            (Recipe::Paper, DatasetKind::SyntheticCifar10) => Augment { pad: 0, flip: false, ..natsbench },
            // `ToTensor()` only: the transform the authors built was never passed to the dataset.
            (Recipe::Paper, DatasetKind::ImageNet16) => Augment { pad: 0, flip: false, norm: Normalization::NONE, ..natsbench },
            (Recipe::Paper, _) => natsbench,
        }
    }

    /// The Cutout side of `method` on a `kind` dataset: 16 for the paper's CIFAR FEAR (stage 1
    /// and 2; inherited from `darts.yaml`), else none.
    pub fn cutout(self, kind: DatasetKind, method: Method) -> usize {
        let cifar = matches!(kind, DatasetKind::Cifar10 | DatasetKind::Cifar100 | DatasetKind::Folder);
        if self == Recipe::Paper && cifar && method == Method::Fear {
            PAPER_CUTOUT
        } else {
            0
        }
    }
}

impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Recipe::Paper => "paper",
            Recipe::Natsbench => "natsbench",
        })
    }
}
