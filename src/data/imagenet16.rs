//! ImageNet16-120 (`--dataset imagenet16:DIR`): the downsampled-ImageNet 16x16 pickles
//! `train_data_batch_1` .. `train_data_batch_10` and `val_data`, each a dict with `data` (numpy
//! uint8 `N x 768`: planes R, G, B of 16x16) and `labels` (ints 1..1000). Labels 1..120 are kept,
//! shifted to 0..119: 151,700 train and 6,000 validation images on the real files.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::dataset::{Dataset, Normalization, Split};
use super::pickle::{self, NdArray};

/// Image side.
pub const SIZE: usize = 16;
/// Bytes per image.
pub const IMAGE_BYTES: usize = 3 * SIZE * SIZE;
/// Classes kept (labels 1..=120).
pub const CLASSES: usize = 120;
/// The training files, in order.
pub const TRAIN_FILES: [&str; 10] = [
    "train_data_batch_1",
    "train_data_batch_2",
    "train_data_batch_3",
    "train_data_batch_4",
    "train_data_batch_5",
    "train_data_batch_6",
    "train_data_batch_7",
    "train_data_batch_8",
    "train_data_batch_9",
    "train_data_batch_10",
];
/// The validation file (the test split).
pub const VAL_FILE: &str = "val_data";

/// Decodes one pickle already in memory and keeps the images whose label (1-based, 1..1000) is
/// at most `keep`, shifted to 0-based. `name` goes into every error.
pub fn parse_batch(name: &str, bytes: &[u8], keep: usize) -> Result<Split> {
    let top = pickle::parse(bytes).with_context(|| format!("{name}: reading the pickle"))?;
    let data = top.dict_get("data").with_context(|| format!("{name}: the pickle is a {} without a 'data' entry (keys: {:?})", top.kind(), top.dict_keys()))?;
    let labels =
        top.dict_get("labels").with_context(|| format!("{name}: the pickle is a {} without a 'labels' entry (keys: {:?})", top.kind(), top.dict_keys()))?;
    let arr = NdArray::from_value(&data).with_context(|| format!("{name}: 'data'"))?;
    if arr.dtype != "|u1" {
        bail!("{name}: 'data' has dtype {}, expected uint8 (|u1)", arr.dtype);
    }
    if arr.shape.len() != 2 || arr.shape[1] != IMAGE_BYTES {
        bail!("{name}: 'data' has shape {:?}, expected (N, {IMAGE_BYTES})", arr.shape);
    }
    if arr.fortran_order && arr.shape[0] > 1 {
        bail!("{name}: 'data' is in Fortran order, expected C order");
    }
    let labels = pickle::int_list(&labels).with_context(|| format!("{name}: 'labels'"))?;
    if labels.len() != arr.shape[0] {
        bail!("{name}: {} labels for {} images", labels.len(), arr.shape[0]);
    }
    let mut split = Split::default();
    for (i, (&l, img)) in labels.iter().zip(arr.data.chunks_exact(IMAGE_BYTES)).enumerate() {
        if !(1..=1000).contains(&l) {
            bail!("{name}: label {l} of image {i} is outside 1..1000");
        }
        if l as usize <= keep {
            split.labels.push(l as u32 - 1);
            split.images.extend_from_slice(img);
        }
    }
    Ok(split)
}

/// Reads one file, keeping labels `1..=keep`.
pub fn read_batch(path: &Path, keep: usize) -> Result<Split> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_batch(&path.display().to_string(), &bytes, keep)
}

fn read_files(dir: &Path, files: &[&str]) -> Result<Split> {
    for f in files {
        let p = dir.join(f);
        if !p.is_file() {
            bail!("{}: no such file (ImageNet16-120 needs {} and {VAL_FILE} in {})", p.display(), TRAIN_FILES.join(", "), dir.display());
        }
    }
    let parts: Vec<Result<Split>> = files.par_iter().map(|f| read_batch(&dir.join(f), CLASSES)).collect();
    let mut split = Split::default();
    for p in parts {
        let p = p?;
        split.images.extend_from_slice(&p.images);
        split.labels.extend_from_slice(&p.labels);
    }
    Ok(split)
}

/// Reads ImageNet16-120 from `dir`.
pub fn load_imagenet16(dir: &Path) -> Result<Dataset> {
    let train = read_files(dir, &TRAIN_FILES)?;
    let test = read_files(dir, &[VAL_FILE])?;
    Ok(Dataset { name: "imagenet16-120".into(), classes: CLASSES, image_size: SIZE, train, test, norm: Normalization::IMAGENET16, pad: 2 })
}
