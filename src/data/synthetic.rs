//! Synthetic CIFAR-10 (the FEAR paper's appendix A.4): Gaussian images labelled by random networks.
//!
//! - Ten networks, each `linear 3072 -> 3072, ReLU, linear 3072 -> 1` with PyTorch's default
//!   init (weights and biases `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`), drawn from ChaCha8 streams
//!   derived from the seed (one per network).
//! - Images: 3072 values N(0,1) each (Box-Muller on a ChaCha8 stream per chunk of
//!   [`CHUNK`] images), read as the planes R, G, B of 32x32 (the paper's `[32, 32, 3]` differs
//!   only by a fixed permutation of the inputs, which random networks do not see).
//! - Label = argmax of the ten outputs (the first on a tie). Samples are taken in order until
//!   every class has `size + size / 5` images; extras of a full class are rejected. Of each
//!   class the first `size` go to train, the next `size / 5` to test (5000 / 1000 by default:
//!   50,000 / 10,000 images). Generation stops with an error when the rarest class is so rare
//!   that more than [`SAMPLE_CAP_FACTOR`] times the images needed would have to be drawn.
//! - The networks' first layers are evaluated through `matrixmultiply::sgemm` on chunks of
//!   images, chunks in parallel (rayon); results do not depend on the thread count. Classes
//!   are very unequal under the argmax (their networks' mean outputs differ by about as much as
//!   an output varies over images; the rarest class is typically near 1%), so most of the work
//!   is drawing images of the rare classes. Once a class is full, its network runs only on the
//!   images no other full network has already ruled out ([`label_open`]): the labels are
//!   exactly those of evaluating all ten (tested), for a fraction of the work.
//!
//! **Stored as bytes.** Each value z is stored as `b = clamp(round(128 + 32 z), 0, 255)`, i.e.
//! z in steps of 1/32 up to +-4 standard deviations (about 0.2 clipped values per image), and the
//! *labels are computed from the decoded values* `(b - 128) / 32`, so the stored images are
//! exactly what the networks labelled. The dataset's normalisation is mean 128/255, std 32/255
//! on every channel, so the normalised input is `(b - 128) / 32`: the N(0,1) sample itself
//! (quantised). Bytes keep the set at 184 MB instead of 737 MB as f32 and share every code path
//! (batching, GPU upload) with the real datasets; a 1/32-sigma quantisation step is far below
//! anything a network trained on these labels can resolve. The training crop pads with
//! [`ZERO_BYTE`] (value 0.0), the analogue of black padding on real images.
//!
//! **Cache.** `load_or_generate` keeps the set in `<cache_dir>/synthetic-cifar10-seed<S>-n<N>.bin`:
//! a 68-byte header (magic, generator version, seed, sizes, image counts, a checksum of the
//! payload), then train images, train labels (one byte each), test images, test labels. It is
//! written to a temporary file and renamed. A file whose header, length, checksum or class counts
//! do not match is reported and regenerated.
//!
//! Labels can differ between machines in rare near-ties, since sgemm picks FMA kernels by CPU;
//! the cache keeps a machine consistent with itself.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::augment::derive_seed;
use super::dataset::{Dataset, Normalization, Split};

/// The dataset's name.
pub const NAME: &str = "synthetic-cifar10";
/// Classes (networks).
pub const CLASSES: usize = 10;
/// Image side.
pub const SIZE: usize = 32;
/// Values per image.
pub const DIM: usize = 3 * SIZE * SIZE;
/// Default training images per class (test gets a fifth).
pub const DEFAULT_SIZE: usize = 5000;
/// Default seed.
pub const DEFAULT_SEED: u64 = 42;
/// The byte that encodes 0.0.
pub const ZERO_BYTE: u8 = 128;
/// Bytes per standard deviation.
pub const SCALE: f32 = 32.0;
/// Images per generation chunk (one sgemm of `CHUNK x 3072 x 3072` per network).
pub const CHUNK: usize = 128;
/// Generation fails when it would need more than this many times the images kept.
pub const SAMPLE_CAP_FACTOR: usize = 50;
/// Bumped whenever the generator's output changes: older cache files are then rejected.
pub const GEN_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"FEARSYN\0";
const HEADER: usize = 68;
const WEIGHT_TAG: u64 = 0x5745_4947; // "WEIG"
const IMAGE_TAG: u64 = 0x494d_4147; // "IMAG"

/// The byte for a value: `clamp(round(128 + 32 z), 0, 255)`.
#[inline]
pub fn encode(z: f32) -> u8 {
    (ZERO_BYTE as f32 + SCALE * z).round().clamp(0.0, 255.0) as u8
}

/// The value of a byte: `(b - 128) / 32`.
#[inline]
pub fn decode(b: u8) -> f32 {
    (b as f32 - ZERO_BYTE as f32) / SCALE
}

/// The normalisation that maps a byte to its value: mean 128/255, std 32/255.
pub fn normalization() -> Normalization {
    let m = ZERO_BYTE as f32 / 255.0;
    let s = SCALE / 255.0;
    Normalization { mean: [m; 3], std: [s; 3] }
}

/// Test images per class for `size` training images per class.
pub fn test_size(size: usize) -> usize {
    size / 5
}

/// One labelling network: `out = b2 + w2 . relu(W1 x + b1)`, `W1` row-major `[3072 out, 3072 in]`.
pub struct LabelNet {
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    pub w2: Vec<f32>,
    pub b2: f32,
}

/// The ten networks of `seed` (PyTorch default init: every weight and bias of a layer with
/// fan-in `f` uniform in `[-1/sqrt(f), 1/sqrt(f))`; drawn W1, b1, W2, b2 in that order).
pub fn label_nets(seed: u64) -> Vec<LabelNet> {
    (0..CLASSES)
        .into_par_iter()
        .map(|k| {
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, k as u64, 0, WEIGHT_TAG));
            let bound = 1.0 / (DIM as f32).sqrt();
            let mut u = |n: usize| -> Vec<f32> { (0..n).map(|_| bound * (2.0 * rng.random::<f32>() - 1.0)).collect() };
            let w1 = u(DIM * DIM);
            let b1 = u(DIM);
            let w2 = u(DIM);
            let b2 = u(1)[0];
            LabelNet { w1, b1, w2, b2 }
        })
        .collect()
}

/// The `CHUNK` images of chunk `c` as bytes (`CHUNK * 3072`): N(0,1) by Box-Muller, encoded.
pub fn chunk_images(seed: u64, c: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, c, 0, IMAGE_TAG));
    let mut out = Vec::with_capacity(CHUNK * DIM);
    while out.len() < CHUNK * DIM {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        out.push(encode((r * t.cos()) as f32));
        out.push(encode((r * t.sin()) as f32));
    }
    out
}

/// One network's output for each of the `x.len() / 3072` decoded images in `x`; `h` is scratch
/// of at least the same length.
fn net_output(net: &LabelNet, x: &[f32], h: &mut [f32]) -> Vec<f32> {
    let m = x.len() / DIM;
    // h[m, out] = x[m, in] * W1^T: W1 is [out, in] row-major, read as [in, out] with row stride 1
    // and column stride DIM.
    unsafe {
        matrixmultiply::sgemm(m, DIM, DIM, 1.0, x.as_ptr(), DIM as isize, 1, net.w1.as_ptr(), 1, DIM as isize, 0.0, h.as_mut_ptr(), DIM as isize, 1);
    }
    h[..m * DIM]
        .chunks_exact(DIM)
        .map(|row| {
            let mut s = 0f32;
            for ((&hj, &w2), &b1) in row.iter().zip(&net.w2).zip(&net.b1) {
                s += w2 * (hj + b1).max(0.0);
            }
            s + net.b2
        })
        .collect()
}

/// The ten outputs for each of `images.len() / 3072` byte images (row `i`: `outputs[i*10..]`).
pub fn net_outputs(nets: &[LabelNet], images: &[u8]) -> Vec<f32> {
    let m = images.len() / DIM;
    let x: Vec<f32> = images.iter().map(|&b| decode(b)).collect();
    let mut h = vec![0f32; m * DIM];
    let mut out = vec![0f32; m * nets.len()];
    for (k, net) in nets.iter().enumerate() {
        for (i, v) in net_output(net, &x, &mut h).into_iter().enumerate() {
            out[i * nets.len() + k] = v;
        }
    }
    out
}

/// Labels (argmax, first on a tie) of byte images, every network evaluated on every image.
pub fn label_images(nets: &[LabelNet], images: &[u8]) -> Vec<u8> {
    let out = net_outputs(nets, images);
    out.chunks_exact(nets.len())
        .map(|o| {
            let mut best = 0;
            for (k, &v) in o.iter().enumerate() {
                if v > o[best] {
                    best = k;
                }
            }
            best as u8
        })
        .collect()
}

/// Labels of byte images when only the classes in `open` can still be accepted: `Some(k)` when
/// the argmax (first on a tie) is `k` and `k` is open, `None` when the argmax is a closed class.
/// Exactly [`label_images`] restricted that way, for less work: the open networks run on every
/// image, then the closed ones, in the order `closed`, only on the images none of the earlier
/// ones has already beaten (a closed network beats the best open output when it is greater,
/// or equal with a lower class index).
pub fn label_open(nets: &[LabelNet], open: &[usize], closed: &[usize], images: &[u8]) -> Vec<Option<u8>> {
    let m = images.len() / DIM;
    let x: Vec<f32> = images.iter().map(|&b| decode(b)).collect();
    let mut h = vec![0f32; m * DIM];
    let mut best = vec![(f32::NEG_INFINITY, usize::MAX); m];
    let mut open = open.to_vec();
    open.sort_unstable();
    for &k in &open {
        for (b, v) in best.iter_mut().zip(net_output(&nets[k], &x, &mut h)) {
            // Ascending class order with a strict `>`: the first maximum wins.
            if v > b.0 || b.1 == usize::MAX {
                *b = (v, k);
            }
        }
    }
    let mut alive: Vec<usize> = (0..m).collect();
    let mut xs = Vec::new();
    for &k in closed {
        if alive.is_empty() {
            break;
        }
        xs.clear();
        for &i in &alive {
            xs.extend_from_slice(&x[i * DIM..(i + 1) * DIM]);
        }
        let out = net_output(&nets[k], &xs, &mut h);
        let mut keep = Vec::with_capacity(alive.len());
        for (&i, v) in alive.iter().zip(out) {
            let (bv, bk) = best[i];
            if !(v > bv || (v == bv && k < bk)) {
                keep.push(i);
            }
        }
        alive = keep;
    }
    let mut labels = vec![None; m];
    for i in alive {
        if best[i].1 != usize::MAX {
            labels[i] = Some(best[i].1 as u8);
        }
    }
    labels
}

/// What generation saw, for reports.
#[derive(Clone, Debug, Default)]
pub struct GenStats {
    /// Images drawn (accepted or not).
    pub drawn: usize,
    /// Per class: images whose argmax was this class, counted while the class was still open
    /// (once it is full its networks stop being evaluated on every image).
    pub seen: [usize; CLASSES],
    /// Per class: images drawn while the class was open; `seen / drawn_open` is its argmax
    /// frequency.
    pub drawn_open: [usize; CLASSES],
}

impl GenStats {
    /// Estimated argmax frequency of each class.
    pub fn frequencies(&self) -> [f64; CLASSES] {
        let mut f = [0f64; CLASSES];
        for (c, f) in f.iter_mut().enumerate() {
            *f = if self.drawn_open[c] == 0 { 0.0 } else { self.seen[c] as f64 / self.drawn_open[c] as f64 };
        }
        f
    }
}

/// Generates the set: `size` train and `size / 5` test images per class.
pub fn generate(seed: u64, size: usize) -> Result<Dataset> {
    generate_with_stats(seed, size).map(|(d, _)| d)
}

/// [`generate`], also returning how many images were drawn and their class frequencies.
pub fn generate_with_stats(seed: u64, size: usize) -> Result<(Dataset, GenStats)> {
    generate_capped(seed, size, SAMPLE_CAP_FACTOR)
}

/// [`generate_with_stats`] giving up once `cap_factor` times the images kept have been drawn
/// (or, after 20,000 draws, when the class frequencies seen so far project past that).
pub fn generate_capped(seed: u64, size: usize, cap_factor: usize) -> Result<(Dataset, GenStats)> {
    ensure!(size >= 1, "synthetic size must be at least 1 image per class");
    let test_per = test_size(size);
    let quota = size + test_per;
    let total = quota * CLASSES;
    let cap = cap_factor * total;
    let nets = label_nets(seed);
    let mut train = Split { images: Vec::with_capacity(size * CLASSES * DIM), labels: Vec::with_capacity(size * CLASSES) };
    let mut test = Split { images: Vec::with_capacity(test_per * CLASSES * DIM), labels: Vec::with_capacity(test_per * CLASSES) };
    let mut count = [0usize; CLASSES];
    let mut stats = GenStats::default();
    let mut accepted = 0usize;
    let wave = rayon::current_num_threads().max(1);
    let mut next_chunk = 0u64;
    while accepted < total {
        // Classes open at the start of this wave get exact labels; the others are only checked
        // for beating them (most frequent first, as those beat most often).
        let open: Vec<usize> = (0..CLASSES).filter(|&c| count[c] < quota).collect();
        let freq = stats.frequencies();
        let mut closed: Vec<usize> = (0..CLASSES).filter(|&c| count[c] >= quota).collect();
        closed.sort_by(|&a, &b| freq[b].total_cmp(&freq[a]).then(a.cmp(&b)));
        let chunks: Vec<(Vec<u8>, Vec<Option<u8>>)> = (next_chunk..next_chunk + wave as u64)
            .into_par_iter()
            .map(|c| {
                let imgs = chunk_images(seed, c);
                let labels = label_open(&nets, &open, &closed, &imgs);
                (imgs, labels)
            })
            .collect();
        next_chunk += wave as u64;
        'chunks: for (imgs, labels) in &chunks {
            for (i, &l) in labels.iter().enumerate() {
                if accepted == total || stats.drawn == cap {
                    break 'chunks;
                }
                stats.drawn += 1;
                for &c in &open {
                    stats.drawn_open[c] += 1;
                }
                let Some(l) = l else { continue };
                let l = l as usize;
                stats.seen[l] += 1;
                if count[l] < quota {
                    let dst = if count[l] < size { &mut train } else { &mut test };
                    dst.images.extend_from_slice(&imgs[i * DIM..(i + 1) * DIM]);
                    dst.labels.push(l as u32);
                    count[l] += 1;
                    accepted += 1;
                }
            }
        }
        if accepted < total {
            // Give up when the draws so far project past the cap (or reached it).
            let freq = stats.frequencies();
            let projected = (0..CLASSES)
                .map(|c| {
                    let left = (quota - count[c]) as f64;
                    if left == 0.0 {
                        0.0
                    } else if freq[c] == 0.0 {
                        f64::INFINITY
                    } else {
                        left / freq[c]
                    }
                })
                .fold(0.0, f64::max)
                + stats.drawn as f64;
            if stats.drawn >= cap || (stats.drawn >= 20_000 && projected > cap as f64) {
                bail!(
                    "synthetic-cifar10 (seed {seed}, {size} per class): after {} images the classes have {:?} of {quota} each \
                     (argmax frequencies {:?}); finishing would need about {projected:.0} draws, over the cap of {cap} \
                     ({cap_factor}x the images kept): try another seed",
                    stats.drawn,
                    count,
                    freq.map(|f| (f * 1000.0).round() / 1000.0),
                );
            }
        }
    }
    let ds = Dataset { name: NAME.into(), classes: CLASSES, image_size: SIZE, train, test, norm: normalization(), pad: 4 };
    Ok((ds, stats))
}

/// The cache file for `(seed, size)` in `cache_dir`.
pub fn cache_path(cache_dir: &Path, seed: u64, size: usize) -> PathBuf {
    cache_dir.join(format!("{NAME}-seed{seed}-n{size}.bin"))
}

/// A 64-bit checksum (FNV-1a over little-endian 8-byte words, then the length): any change of
/// one word changes it.
pub fn checksum(bytes: &[u8]) -> u64 {
    const P: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = (h ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(P);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(P);
    (h ^ bytes.len() as u64).wrapping_mul(P)
}

fn payload_len(n_train: usize, n_test: usize) -> usize {
    (n_train + n_test) * (DIM + 1)
}

/// Serialises the set with its header.
pub fn to_bytes(ds: &Dataset, seed: u64, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload_len(ds.train.len(), ds.test.len()));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&GEN_VERSION.to_le_bytes());
    out.extend_from_slice(&seed.to_le_bytes());
    out.extend_from_slice(&(size as u64).to_le_bytes());
    out.extend_from_slice(&(test_size(size) as u64).to_le_bytes());
    out.extend_from_slice(&(CLASSES as u32).to_le_bytes());
    out.extend_from_slice(&(SIZE as u32).to_le_bytes());
    out.extend_from_slice(&(ds.train.len() as u64).to_le_bytes());
    out.extend_from_slice(&(ds.test.len() as u64).to_le_bytes());
    out.extend_from_slice(&[0u8; 8]); // checksum, filled below
    debug_assert_eq!(out.len(), HEADER);
    out.extend_from_slice(&ds.train.images);
    out.extend(ds.train.labels.iter().map(|&l| l as u8));
    out.extend_from_slice(&ds.test.images);
    out.extend(ds.test.labels.iter().map(|&l| l as u8));
    let sum = checksum(&out[HEADER..]);
    out[HEADER - 8..HEADER].copy_from_slice(&sum.to_le_bytes());
    out
}

/// Reads a cache file, checking it holds the set for `(seed, size)` intact.
pub fn read_cache(path: &Path, seed: u64, size: usize) -> Result<Dataset> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    from_bytes(&bytes, seed, size).with_context(|| format!("{}: not a valid synthetic-cifar10 cache", path.display()))
}

fn from_bytes(b: &[u8], seed: u64, size: usize) -> Result<Dataset> {
    ensure!(b.len() >= HEADER, "{} bytes, shorter than the {HEADER}-byte header", b.len());
    ensure!(&b[..8] == MAGIC, "wrong magic bytes");
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let version = u32_at(8);
    ensure!(version == GEN_VERSION, "generator version {version}, this build writes {GEN_VERSION}");
    ensure!(u64_at(12) == seed, "seed {} in the header, {seed} asked for", u64_at(12));
    ensure!(u64_at(20) == size as u64, "size {} in the header, {size} asked for", u64_at(20));
    ensure!(u64_at(28) == test_size(size) as u64, "test size {} in the header", u64_at(28));
    ensure!(u32_at(36) == CLASSES as u32 && u32_at(40) == SIZE as u32, "classes / image size {} / {} in the header", u32_at(36), u32_at(40));
    let n_train = u64_at(44) as usize;
    let n_test = u64_at(52) as usize;
    ensure!(n_train == size * CLASSES && n_test == test_size(size) * CLASSES, "{n_train} / {n_test} images in the header");
    let expect = HEADER + payload_len(n_train, n_test);
    ensure!(b.len() == expect, "{} bytes, expected {expect} (truncated or padded)", b.len());
    let sum = u64_at(60);
    ensure!(checksum(&b[HEADER..]) == sum, "checksum mismatch (the file is corrupt)");
    let mut o = HEADER;
    let mut take = |n: usize| {
        let s = &b[o..o + n];
        o += n;
        s
    };
    let train_images = take(n_train * DIM).to_vec();
    let train_labels: Vec<u32> = take(n_train).iter().map(|&l| l as u32).collect();
    let test_images = take(n_test * DIM).to_vec();
    let test_labels: Vec<u32> = take(n_test).iter().map(|&l| l as u32).collect();
    let ds = Dataset {
        name: NAME.into(),
        classes: CLASSES,
        image_size: SIZE,
        train: Split { images: train_images, labels: train_labels },
        test: Split { images: test_images, labels: test_labels },
        norm: normalization(),
        pad: 4,
    };
    ds.validate()?;
    ensure!(ds.train.class_counts(CLASSES).iter().all(|&c| c == size), "train class counts {:?}", ds.train.class_counts(CLASSES));
    ensure!(ds.test.class_counts(CLASSES).iter().all(|&c| c == test_size(size)), "test class counts {:?}", ds.test.class_counts(CLASSES));
    Ok(ds)
}

/// The one atomic write of the crate (kept here under its old path for callers of this module).
pub use crate::util::write_atomically;

/// The set for `(seed, size)`: from its cache file in `cache_dir` when that is valid, else
/// generated and cached (an invalid file is reported on stderr and replaced).
pub fn load_or_generate(cache_dir: &Path, seed: u64, size: usize) -> Result<Dataset> {
    let path = cache_path(cache_dir, seed, size);
    if path.exists() {
        match read_cache(&path, seed, size) {
            Ok(ds) => return Ok(ds),
            Err(e) => eprintln!("warning: {e:#}; regenerating it"),
        }
    }
    eprintln!("generating {NAME} (seed {seed}, {size} + {} images per class) into {}: a one-off that takes a while", test_size(size), path.display());
    let ds = generate(seed, size)?;
    write_atomically(&path, &to_bytes(&ds, seed, size))?;
    Ok(ds)
}
