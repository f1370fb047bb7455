//! The CIFAR-10 and CIFAR-100 binary files (README, `fear rank`: `--dataset cifar10:DIR`,
//! `cifar100:DIR`).
//!
//! CIFAR-10: `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`, records of 1 label
//! byte + 3072 image bytes. CIFAR-100: `train.bin` and `test.bin`, records of a coarse label
//! byte, a fine label byte and 3072 image bytes; the fine label (100 classes) is kept. Image
//! bytes are the R, G, B planes of 32x32, row-major: exactly [`Split`]'s layout.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::dataset::{Dataset, Normalization, Split};

/// Bytes of one 32x32 RGB image.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;

/// The CIFAR-10 training files, in order.
pub const CIFAR10_TRAIN: [&str; 5] = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// The CIFAR-10 test file.
pub const CIFAR10_TEST: &str = "test_batch.bin";

/// Decodes the records of one binary file already in memory. `label_bytes` is 1 (CIFAR-10) or
/// 2 (CIFAR-100: coarse, fine); the last label byte is the label and must be below `classes`
/// (a CIFAR-100 coarse byte must be below 20). `name` goes into every error.
pub fn parse_records(name: &str, bytes: &[u8], label_bytes: usize, classes: usize, out: &mut Split) -> Result<()> {
    let record = label_bytes + IMAGE_BYTES;
    if bytes.is_empty() {
        bail!("{name}: the file is empty (expected {record}-byte records)");
    }
    if !bytes.len().is_multiple_of(record) {
        bail!(
            "{name}: {} bytes is not a multiple of the {record}-byte record ({} whole records and {} bytes left over: truncated or not a CIFAR file)",
            bytes.len(),
            bytes.len() / record,
            bytes.len() % record
        );
    }
    let n = bytes.len() / record;
    out.images.reserve(n * IMAGE_BYTES);
    out.labels.reserve(n);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        if label_bytes == 2 && rec[0] >= 20 {
            bail!("{name}: record {i} (offset {}) has coarse label {}, expected 0..19", i * record, rec[0]);
        }
        let label = rec[label_bytes - 1] as usize;
        if label >= classes {
            bail!("{name}: record {i} (offset {}) has label {label}, expected 0..{}", i * record + label_bytes - 1, classes - 1);
        }
        out.labels.push(label as u32);
        out.images.extend_from_slice(&rec[label_bytes..]);
    }
    Ok(())
}

fn read_files(dir: &Path, files: &[&str], label_bytes: usize, classes: usize) -> Result<Split> {
    let mut split = Split::default();
    for f in files {
        let path = dir.join(f);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        parse_records(&path.display().to_string(), &bytes, label_bytes, classes, &mut split)?;
    }
    Ok(split)
}

/// Reads CIFAR-10 from `dir` (the `cifar-10-batches-bin` folder).
pub fn load_cifar10(dir: &Path) -> Result<Dataset> {
    Ok(Dataset {
        name: "cifar10".into(),
        classes: 10,
        image_size: 32,
        train: read_files(dir, &CIFAR10_TRAIN, 1, 10)?,
        test: read_files(dir, &[CIFAR10_TEST], 1, 10)?,
        norm: Normalization::CIFAR10,
        pad: 4,
    })
}

/// Reads CIFAR-100 from `dir` (the `cifar-100-binary` folder), fine labels.
pub fn load_cifar100(dir: &Path) -> Result<Dataset> {
    Ok(Dataset {
        name: "cifar100".into(),
        classes: 100,
        image_size: 32,
        train: read_files(dir, &["train.bin"], 2, 100)?,
        test: read_files(dir, &["test.bin"], 2, 100)?,
        norm: Normalization::CIFAR100,
        pad: 4,
    })
}
