//! Image folders: `root/train/<class>/*.{jpg,jpeg,png}` and `root/test/<class>/...`.
//!
//! Classes are the sorted subfolder names of `train` (label = position); `test` must hold the
//! same set. Files are sorted by name within a class and decoded in parallel (rayon) with the
//! `image` crate; grey or RGBA images become RGB; every image must be square and all the same
//! size (the error names the first file, in sorted order, that is not).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::dataset::{Dataset, Normalization, Split};

/// Whether a file name has one of the image extensions read here (case-insensitive).
pub fn is_image_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with('.') {
        return false;
    }
    matches!(path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(), Some("jpg" | "jpeg" | "png"))
}

/// Sorted names of the subfolders of `dir` (hidden ones skipped).
fn subfolders(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading the folder {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading the folder {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The image files of one split, in label order then name order, with their labels.
fn list_split(dir: &Path, classes: &[String]) -> Result<Vec<(PathBuf, u32)>> {
    let mut files = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let cdir = dir.join(class);
        let mut these: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(&cdir).with_context(|| format!("reading the folder {}", cdir.display()))? {
            let p = entry.with_context(|| format!("reading the folder {}", cdir.display()))?.path();
            if is_image_file(&p) && p.is_file() {
                these.push(p);
            }
        }
        these.sort();
        files.extend(these.into_iter().map(|p| (p, label as u32)));
    }
    Ok(files)
}

/// Decodes one file to RGB, returning (width, height, interleaved RGB bytes).
fn decode(path: &Path) -> Result<image::RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let img = image::load_from_memory(&bytes).with_context(|| format!("decoding {}", path.display()))?;
    Ok(img.into_rgb8())
}

/// Writes an interleaved RGB image as planes R, G, B into `out` (`3 * w * h` bytes).
fn to_planes(img: &image::RgbImage, out: &mut [u8]) {
    let plane = (img.width() * img.height()) as usize;
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        out[i] = px[0];
        out[plane + i] = px[1];
        out[2 * plane + i] = px[2];
    }
}

/// Decodes `files` into one [`Split`] of `size x size` images, in parallel.
pub fn decode_split(files: &[(PathBuf, u32)], size: usize) -> Result<Split> {
    let n = 3 * size * size;
    let mut images = vec![0u8; files.len() * n];
    let results: Vec<Result<()>> = images
        .par_chunks_mut(n.max(1))
        .zip(files.par_iter())
        .with_min_len(64)
        .map(|(out, (path, _))| {
            let img = decode(path)?;
            if img.width() as usize != size || img.height() as usize != size {
                bail!(
                    "{}: image is {}x{}, expected {size}x{size} like the first image (all images must be the same square size)",
                    path.display(),
                    img.width(),
                    img.height()
                );
            }
            to_planes(&img, out);
            Ok(())
        })
        .collect();
    if let Some(err) = results.into_iter().find_map(|r| r.err()) {
        return Err(err);
    }
    Ok(Split { images, labels: files.iter().map(|(_, l)| *l).collect() })
}

/// Reads an image folder dataset from `root`. Its normalisation is measured on the training
/// split ([`Normalization::measure`]); its name is the folder's name.
pub fn load_folder(root: &Path) -> Result<Dataset> {
    let train_dir = root.join("train");
    let test_dir = root.join("test");
    for d in [&train_dir, &test_dir] {
        if !d.is_dir() {
            bail!(
                "{} is not a folder: an image folder dataset needs {}/train/<class>/*.jpg|png and {}/test/<class>/...",
                d.display(),
                root.display(),
                root.display()
            );
        }
    }
    let classes = subfolders(&train_dir)?;
    if classes.is_empty() {
        bail!("{} has no class subfolders", train_dir.display());
    }
    let test_classes = subfolders(&test_dir)?;
    if test_classes != classes {
        let missing: Vec<&String> = classes.iter().filter(|c| !test_classes.contains(c)).collect();
        let extra: Vec<&String> = test_classes.iter().filter(|c| !classes.contains(c)).collect();
        bail!(
            "{}: the test classes differ from the train classes ({}): missing from test {missing:?}, not in train {extra:?}",
            test_dir.display(),
            train_dir.display()
        );
    }
    let train_files = list_split(&train_dir, &classes)?;
    let test_files = list_split(&test_dir, &classes)?;
    for (label, class) in classes.iter().enumerate() {
        if !train_files.iter().any(|(_, l)| *l as usize == label) {
            bail!("{}: no .jpg/.jpeg/.png images", train_dir.join(class).display());
        }
    }
    let first = decode(&train_files[0].0)?;
    if first.width() != first.height() {
        bail!("{}: image is {}x{}, expected a square image", train_files[0].0.display(), first.width(), first.height());
    }
    let size = first.width() as usize;
    let train = decode_split(&train_files, size)?;
    let test = decode_split(&test_files, size)?;
    let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| root.display().to_string());
    Ok(Dataset {
        name,
        classes: classes.len(),
        image_size: size,
        norm: Normalization::measure(&train.images, size),
        train,
        test,
        pad: Dataset::default_pad(size),
    })
}

/// The class names of an image folder dataset (sorted subfolders of `root/train`): label order.
pub fn folder_classes(root: &Path) -> Result<Vec<String>> {
    subfolders(&root.join("train"))
}
