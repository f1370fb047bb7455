//! The data module: every reader on small files written here (or the committed pickle
//! fixtures), their errors on truncated / malformed / missing input, augmentation and batching
//! semantics, the synthetic generator and its cache, and (when the archive is present) the real
//! CIFAR-10 JPEG folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use fear::data::augment::{Augment, ImageAug};
use fear::data::{cifar, folder, imagenet16, pickle, synthetic};
use fear::data::{epoch_order, fill_batch, num_batches, Batcher, Dataset, DatasetSpec, LoadOptions, Normalization, Split};

mod common;

/// A fresh, empty scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    common::test_dir(&format!("data-tests/{name}"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data").join(name)
}

fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

// ---------------------------------------------------------------------------------------------
// CIFAR binary

/// Image bytes of record `i` of a test file: a pattern that differs per record and per byte.
fn cifar_image(seed: usize) -> Vec<u8> {
    (0..3072).map(|j| ((j * 7 + seed * 31) % 256) as u8).collect()
}

fn write_cifar10(dir: &Path, per_file: usize) {
    for (f, name) in cifar::CIFAR10_TRAIN.iter().chain([&cifar::CIFAR10_TEST]).enumerate() {
        let mut bytes = Vec::new();
        for r in 0..per_file {
            bytes.push(((f * per_file + r) % 10) as u8);
            bytes.extend(cifar_image(f * per_file + r));
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn cifar10_reads_records() {
    let dir = scratch("cifar10_ok");
    write_cifar10(&dir, 3);
    let ds: Dataset = DatasetSpec::Cifar10(dir.clone()).load(&LoadOptions::default()).unwrap();
    assert_eq!((ds.name.as_str(), ds.classes, ds.image_size, ds.pad), ("cifar10", 10, 32, 4));
    assert_eq!(ds.norm, Normalization::CIFAR10);
    assert_eq!(ds.train.len(), 15);
    assert_eq!(ds.test.len(), 3);
    for i in 0..15 {
        assert_eq!(ds.train.labels[i], (i % 10) as u32);
        assert_eq!(ds.train.image(i, 32), &cifar_image(i)[..]);
    }
    for i in 0..3 {
        assert_eq!(ds.test.labels[i], ((15 + i) % 10) as u32);
        assert_eq!(ds.test.image(i, 32), &cifar_image(15 + i)[..]);
    }
    ds.validate().unwrap();
}

#[test]
fn cifar10_errors_name_the_file() {
    let dir = scratch("cifar10_bad");
    write_cifar10(&dir, 2);
    // Truncated: one byte short of a whole record, and one byte over.
    let p = dir.join("data_batch_3.bin");
    let good = std::fs::read(&p).unwrap();
    std::fs::write(&p, &good[..good.len() - 1]).unwrap();
    let e = err_text(cifar::load_cifar10(&dir));
    assert!(e.contains("data_batch_3.bin") && e.contains("6145 bytes is not a multiple of the 3073-byte record"), "{e}");
    let mut long = good.clone();
    long.push(0);
    std::fs::write(&p, &long).unwrap();
    let e = err_text(cifar::load_cifar10(&dir));
    assert!(e.contains("data_batch_3.bin") && e.contains("6147 bytes"), "{e}");
    // Label out of range in the second record.
    let mut bad = good.clone();
    bad[3073] = 10;
    std::fs::write(&p, &bad).unwrap();
    let e = err_text(cifar::load_cifar10(&dir));
    assert!(e.contains("data_batch_3.bin") && e.contains("record 1") && e.contains("label 10"), "{e}");
    // Empty.
    std::fs::write(&p, b"").unwrap();
    let e = err_text(cifar::load_cifar10(&dir));
    assert!(e.contains("data_batch_3.bin") && e.contains("empty"), "{e}");
    // Missing.
    std::fs::write(&p, &good).unwrap();
    std::fs::remove_file(dir.join("test_batch.bin")).unwrap();
    let e = err_text(cifar::load_cifar10(&dir));
    assert!(e.contains("test_batch.bin"), "{e}");
    let e = err_text(cifar::load_cifar10(&dir.join("nowhere")));
    assert!(e.contains("nowhere") && e.contains("data_batch_1.bin"), "{e}");
}

#[test]
fn cifar100_uses_fine_labels() {
    let dir = scratch("cifar100");
    let write = |name: &str, recs: &[(u8, u8)]| {
        let mut b = Vec::new();
        for (i, &(coarse, fine)) in recs.iter().enumerate() {
            b.push(coarse);
            b.push(fine);
            b.extend(cifar_image(i + fine as usize));
        }
        std::fs::write(dir.join(name), b).unwrap();
    };
    write("train.bin", &[(3, 99), (19, 0), (0, 57)]);
    write("test.bin", &[(7, 42)]);
    let ds = DatasetSpec::Cifar100(dir.clone()).load(&LoadOptions::default()).unwrap();
    assert_eq!((ds.name.as_str(), ds.classes, ds.image_size), ("cifar100", 100, 32));
    assert_eq!(ds.norm, Normalization::CIFAR100);
    assert_eq!(ds.train.labels, vec![99, 0, 57]);
    assert_eq!(ds.test.labels, vec![42]);
    assert_eq!(ds.train.image(2, 32), &cifar_image(2 + 57)[..]);
    assert_eq!(ds.test.image(0, 32), &cifar_image(42)[..]);

    write("train.bin", &[(3, 99), (1, 100)]);
    let e = err_text(cifar::load_cifar100(&dir));
    assert!(e.contains("train.bin") && e.contains("label 100") && e.contains("0..99"), "{e}");
    write("train.bin", &[(20, 1)]);
    let e = err_text(cifar::load_cifar100(&dir));
    assert!(e.contains("train.bin") && e.contains("coarse label 20"), "{e}");
    std::fs::write(dir.join("train.bin"), vec![0u8; 3074 * 2 + 100]).unwrap();
    let e = err_text(cifar::load_cifar100(&dir));
    assert!(e.contains("train.bin") && e.contains("not a multiple of the 3074-byte record"), "{e}");
    std::fs::remove_file(dir.join("train.bin")).unwrap();
    let e = err_text(cifar::load_cifar100(&dir));
    assert!(e.contains("train.bin"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Image folders

/// An 8x8 RGB image whose pixel (y, x) is (10y + x, 100 + seed, 200 - x).
fn rgb_image(seed: u8) -> image::RgbImage {
    image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([(10 * y + x) as u8, 100 + seed, 200 - x as u8]))
}

fn write_folder(root: &Path) {
    for split in ["train", "test"] {
        for class in ["cat", "dog", "eel"] {
            std::fs::create_dir_all(root.join(split).join(class)).unwrap();
        }
    }
    // Labels by sorted class name: cat 0, dog 1, eel 2.
    rgb_image(1).save(root.join("train/dog/b.png")).unwrap();
    rgb_image(2).save(root.join("train/dog/a.png")).unwrap();
    rgb_image(3).save(root.join("train/cat/z.PNG")).unwrap();
    image::GrayImage::from_fn(8, 8, |x, y| image::Luma([(x * 8 + y) as u8])).save(root.join("train/eel/grey.png")).unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 100, 50])).save(root.join("train/eel/flat.jpg")).unwrap();
    std::fs::write(root.join("train/eel/notes.txt"), "not an image").unwrap();
    rgb_image(4).save(root.join("test/cat/t.png")).unwrap();
    rgb_image(5).save(root.join("test/eel/u.png")).unwrap();
}

fn planes(img: &image::RgbImage) -> Vec<u8> {
    let mut v = Vec::new();
    for c in 0..3 {
        v.extend(img.pixels().map(|p| p.0[c]));
    }
    v
}

#[test]
fn folder_reads_pngs_jpegs_and_grey() {
    let root = scratch("folder_ok").join("tiny");
    write_folder(&root);
    let ds = DatasetSpec::Folder(root.clone()).load(&LoadOptions::default()).unwrap();
    assert_eq!((ds.name.as_str(), ds.classes, ds.image_size, ds.pad), ("tiny", 3, 8, 1));
    assert_eq!(folder::folder_classes(&root).unwrap(), vec!["cat", "dog", "eel"]);
    // Order: class by class, files sorted by name.
    assert_eq!(ds.train.labels, vec![0, 1, 1, 2, 2]);
    assert_eq!(ds.train.image(0, 8), &planes(&rgb_image(3))[..]);
    assert_eq!(ds.train.image(1, 8), &planes(&rgb_image(2))[..]); // a.png before b.png
    assert_eq!(ds.train.image(2, 8), &planes(&rgb_image(1))[..]);
    // flat.jpg (JPEG, approximately its colour) before grey.png.
    let jpg = ds.train.image(3, 8);
    for (c, want) in [200i32, 100, 50].into_iter().enumerate() {
        assert!(jpg[c * 64..(c + 1) * 64].iter().all(|&b| (b as i32 - want).abs() <= 3), "jpeg channel {c}: {:?}", &jpg[c * 64..c * 64 + 8]);
    }
    // Grey becomes three equal planes.
    let grey = ds.train.image(4, 8);
    let want: Vec<u8> = (0..64).map(|i| ((i % 8) * 8 + i / 8) as u8).collect();
    for c in 0..3 {
        assert_eq!(&grey[c * 64..(c + 1) * 64], &want[..]);
    }
    assert_eq!(ds.test.labels, vec![0, 2]);
    assert_eq!(ds.test.image(1, 8), &planes(&rgb_image(5))[..]);
    // The normalisation is measured on the training split.
    let m = Normalization::measure(&ds.train.images, 8);
    assert_eq!(ds.norm, m);
    let red_mean: f64 = (0..5).flat_map(|i| ds.train.image(i, 8)[..64].to_vec()).map(|b| b as f64).sum::<f64>() / 320.0 / 255.0;
    assert!((m.mean[0] as f64 - red_mean).abs() < 1e-6);
    // An override replaces it.
    let opts = LoadOptions { norm: Some(Normalization::CIFAR10), ..LoadOptions::default() };
    assert_eq!(DatasetSpec::Folder(root).load(&opts).unwrap().norm, Normalization::CIFAR10);
}

#[test]
fn folder_errors_name_the_file() {
    let root = scratch("folder_bad").join("tiny");
    write_folder(&root);
    // A different size: the error names the first such file in order.
    image::RgbImage::new(9, 9).save(root.join("train/dog/c.png")).unwrap();
    image::RgbImage::new(9, 9).save(root.join("train/eel/zz.png")).unwrap();
    let e = err_text(folder::load_folder(&root));
    assert!(e.contains("train/dog/c.png") && e.contains("9x9") && e.contains("8x8"), "{e}");
    std::fs::remove_file(root.join("train/dog/c.png")).unwrap();
    std::fs::remove_file(root.join("train/eel/zz.png")).unwrap();
    // Not square (first file).
    image::RgbImage::new(8, 6).save(root.join("train/cat/a.png")).unwrap();
    let e = err_text(folder::load_folder(&root));
    assert!(e.contains("train/cat/a.png") && e.contains("8x6"), "{e}");
    std::fs::remove_file(root.join("train/cat/a.png")).unwrap();
    // Corrupt file.
    std::fs::write(root.join("test/eel/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let e = err_text(folder::load_folder(&root));
    assert!(e.contains("test/eel/broken.png"), "{e}");
    std::fs::remove_file(root.join("test/eel/broken.png")).unwrap();
    // Class sets differ.
    std::fs::create_dir_all(root.join("test/fox")).unwrap();
    let e = err_text(folder::load_folder(&root));
    assert!(e.contains("fox") && e.contains("test classes differ"), "{e}");
    std::fs::remove_dir(root.join("test/fox")).unwrap();
    // A train class without images.
    std::fs::create_dir_all(root.join("train/fox")).unwrap();
    std::fs::create_dir_all(root.join("test/fox")).unwrap();
    let e = err_text(folder::load_folder(&root));
    assert!(e.contains("train/fox") && e.contains("no .jpg"), "{e}");
    // Missing test folder.
    std::fs::remove_dir_all(root.join("test")).unwrap();
    let e = err_text(folder::load_folder(&root));
    assert!(e.contains("tiny/test") && e.contains("not a folder"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Pickles and ImageNet16-120

const FIXTURES: [&str; 6] = ["py2_proto2.pkl", "py2_proto0.pkl", "py3_proto0.pkl", "py3_proto2.pkl", "py3_proto4.pkl", "py3_proto5.pkl"];
const FIXTURE_LABELS: [i64; 7] = [1, 120, 121, 5, 1000, 60, 2];

/// Row `i` of the fixtures' `data` (see scripts/make_data_fixtures.py).
fn fixture_row(i: usize) -> Vec<u8> {
    (0..768).map(|j| ((i * 37 + j * 11 + j / 256 * 5) % 256) as u8).collect()
}

#[test]
fn pickle_fixtures_decode_exactly() {
    for name in FIXTURES {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let top = pickle::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let data = pickle::NdArray::from_value(&top.dict_get("data").unwrap()).unwrap();
        assert_eq!(data.dtype, "|u1", "{name}");
        assert_eq!(data.shape, vec![7, 768], "{name}");
        for i in 0..7 {
            assert_eq!(&data.data[i * 768..(i + 1) * 768], &fixture_row(i)[..], "{name} row {i}");
        }
        assert_eq!(pickle::int_list(&top.dict_get("labels").unwrap()).unwrap(), FIXTURE_LABELS, "{name}");
        let mean = pickle::NdArray::from_value(&top.dict_get("mean").unwrap()).unwrap();
        assert_eq!((mean.dtype.as_str(), mean.shape.as_slice()), ("<f8", &[768usize][..]), "{name}");
        let m: Vec<f64> = mean.data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
        assert!(m.iter().enumerate().all(|(j, &v)| v == j as f64 / 768.0), "{name}");
        assert_eq!(top.dict_keys(), vec!["data", "labels", "mean"], "{name}");
    }
}

#[test]
fn pickle_small_values() {
    // {'a': (LONG1 -2, BINFLOAT 1.5, True, None, BININT -7), u'b': [SHORT_BINBYTES b'xy']}
    let mut p = vec![0x80, 2, b'}', b'(', b'U', 1, b'a', b'('];
    p.extend([0x8a, 1, 0xfe]);
    p.push(b'G');
    p.extend(1.5f64.to_be_bytes());
    p.extend([0x88, b'N', b'J']);
    p.extend((-7i32).to_le_bytes());
    p.extend([b't', 0x8c, 1, b'b', b']', b'C', 2, b'x', b'y', b'a', b'u', b'.']);
    let v = pickle::parse(&p).unwrap();
    let a = v.dict_get("a").unwrap().items().unwrap();
    assert_eq!(a[0].as_int(), Some(-2));
    assert!(matches!(a[1], pickle::Value::Float(f) if f == 1.5));
    assert!(matches!(a[2], pickle::Value::Bool(true)));
    assert!(matches!(a[3], pickle::Value::None));
    assert_eq!(a[4].as_int(), Some(-7));
    let b = v.dict_get("b").unwrap().items().unwrap();
    assert_eq!(&*b[0].as_bytes().unwrap(), b"xy");
    assert_eq!(pickle::unquote_py_repr(br#"'a\'b\\\n\x00\x9c"q'"#).unwrap(), b"a'b\\\n\x00\x9c\"q");
    assert_eq!(pickle::raw_unicode_escape(b"x\\u005c\xe9").unwrap(), "x\\\u{e9}");
}

#[test]
fn pickle_errors_give_offset_and_opcode() {
    let bytes = std::fs::read(fixture("py2_proto2.pkl")).unwrap();
    // Truncated inside the BINSTRING payload.
    let e = format!("{:#}", pickle::parse(&bytes[..2000]).unwrap_err());
    assert!(e.contains("offset") && e.contains("opcode 0x54 ('T')") && e.contains("truncated"), "{e}");
    // Cut right after an opcode boundary: no STOP.
    let e = format!("{:#}", pickle::parse(&bytes[..3]).unwrap_err());
    assert!(e.contains("offset 3") && e.contains("STOP"), "{e}");
    // An unknown opcode.
    let e = format!("{:#}", pickle::parse(&[0x80, 2, 0xff, b'.']).unwrap_err());
    assert!(e.contains("offset 2") && e.contains("opcode 0xff") && e.contains("unknown"), "{e}");
    // A memo key never stored.
    let e = format!("{:#}", pickle::parse(&[0x80, 2, b'h', 9, b'.']).unwrap_err());
    assert!(e.contains("memo key 9"), "{e}");
    // Through the ImageNet16 reader, with the file name.
    let e = err_text(imagenet16::parse_batch("train_data_batch_4", &bytes[..5000], 120));
    assert!(e.contains("train_data_batch_4") && e.contains("offset"), "{e}");
    let e = err_text(imagenet16::parse_batch("val_data", &[0x80, 2, b'}', b'.'], 120));
    assert!(e.contains("val_data") && e.contains("'data'"), "{e}");
}

/// Found by fuzzing (tests/fixtures/fuzz/imagenet16/): a container put inside itself made an
/// Rc cycle that leaked. Cycles are refused; a container shared twice (no cycle) still reads.
#[test]
fn pickle_refuses_cycles_but_reads_shared_values() {
    // Protocol 0: a list memoised as 0, fetched and appended to itself.
    let e = format!("{:#}", pickle::parse(b"(lp0\ng0\na.").unwrap_err());
    assert!(e.contains("inside itself") && e.contains("opcode 0x61 ('a')"), "{e}");
    // The same through a dict value, a nested list, and an object's BUILD state.
    assert!(pickle::parse(b"(dp0\nS'k'\ng0\ns.").is_err());
    assert!(pickle::parse(b"(lp0\n(lp1\ng0\naa.").is_err());
    assert!(pickle::parse(b"cm\nf\n)Rp0\n(g0\ntb.").is_err());
    // One list put twice into another is no cycle.
    let v = pickle::parse(b"(lp0\n(lp1\nI7\naag1\na.").unwrap();
    let items = v.items().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(pickle::int_list(&items[1]).unwrap(), vec![7]);
}

/// Found by fuzzing (tests/fixtures/fuzz/imagenet16/crash-*): a dtype whose text is not
/// ASCII made the dtype check slice inside a character and panic.
#[test]
fn numpy_dtypes_from_the_file_are_checked_not_trusted() {
    let arr = |dtype: &str| pickle::NdArray { shape: vec![1], dtype: dtype.into(), fortran_order: false, data: std::rc::Rc::from(vec![7u8]) };
    assert_eq!(arr("|u1").itemsize().unwrap(), 1);
    assert_eq!(arr("|u1").to_i64().unwrap(), vec![7]);
    for bad in ["\u{ca}|u1", "|\u{ca}1", "", "|", "|u", "|u0", "|x1", "u1", "<f\u{ca}"] {
        let e = format!("{:#}", arr(bad).itemsize().unwrap_err());
        assert!(e.contains("unsupported numpy dtype"), "{bad:?}: {e}");
        assert!(arr(bad).to_i64().is_err(), "{bad:?}");
    }
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fuzz/imagenet16/crash-9cd5c340304ab241874f0cf10ec5cf4e3723d081")).unwrap();
    assert!(imagenet16::parse_batch("crash", &bytes, 120).is_err());
}

#[test]
fn imagenet16_keeps_labels_up_to_120() {
    for name in FIXTURES {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let s = imagenet16::parse_batch(name, &bytes, 120).unwrap();
        assert_eq!(s.labels, vec![0, 119, 4, 59, 1], "{name}");
        for (k, i) in [0usize, 1, 3, 5, 6].into_iter().enumerate() {
            assert_eq!(s.image(k, 16), &fixture_row(i)[..], "{name}");
        }
        let all = imagenet16::parse_batch(name, &bytes, 1000).unwrap();
        assert_eq!(all.labels, FIXTURE_LABELS.map(|l| l as u32 - 1).to_vec());
    }
    // A whole directory: ten training files and the validation file.
    let dir = scratch("imagenet16");
    for (k, f) in imagenet16::TRAIN_FILES.iter().enumerate() {
        std::fs::copy(fixture(FIXTURES[k % FIXTURES.len()]), dir.join(f)).unwrap();
    }
    std::fs::copy(fixture("py2_proto2.pkl"), dir.join("val_data")).unwrap();
    let ds = DatasetSpec::ImageNet16(dir.clone()).load(&LoadOptions::default()).unwrap();
    assert_eq!((ds.name.as_str(), ds.classes, ds.image_size, ds.pad), ("imagenet16-120", 120, 16, 2));
    assert_eq!(ds.norm, Normalization::IMAGENET16);
    assert_eq!((ds.train.len(), ds.test.len()), (50, 5));
    assert_eq!(&ds.train.labels[5..10], &[0, 119, 4, 59, 1]);
    ds.validate().unwrap();
    // A label outside 1..1000 and a missing file.
    let mut bad = std::fs::read(fixture("py3_proto2.pkl")).unwrap();
    let pos = bad.windows(3).position(|w| w == [b'M', 0xe8, 0x03]).expect("BININT2 1000 in the fixture");
    bad[pos + 2] = 0x04; // 1000 -> 1256
    std::fs::write(dir.join("train_data_batch_7"), &bad).unwrap();
    let e = err_text(imagenet16::load_imagenet16(&dir));
    assert!(e.contains("train_data_batch_7") && e.contains("label 1256"), "{e}");
    std::fs::copy(fixture("py3_proto2.pkl"), dir.join("train_data_batch_7")).unwrap();
    imagenet16::load_imagenet16(&dir).unwrap();
    std::fs::remove_file(dir.join("val_data")).unwrap();
    let e = err_text(imagenet16::load_imagenet16(&dir));
    assert!(e.contains("val_data") && e.contains("no such file"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Dataset names

#[test]
fn dataset_spec_parses_every_form() {
    let cases = [
        ("synthetic-cifar10", DatasetSpec::SyntheticCifar10),
        ("cifar10:/d/c10", DatasetSpec::Cifar10("/d/c10".into())),
        ("cifar100:rel/c100", DatasetSpec::Cifar100("rel/c100".into())),
        ("folder:/x/cifar10-jpeg", DatasetSpec::Folder("/x/cifar10-jpeg".into())),
        ("imagenet16:/i16", DatasetSpec::ImageNet16("/i16".into())),
    ];
    for (s, want) in cases {
        let got: DatasetSpec = s.parse().unwrap();
        assert_eq!(got, want);
        assert_eq!(got.to_string(), s);
    }
    for bad in ["cifar10", "cifar10:", "mnist:/x", "synthetic", ""] {
        let e = format!("{:#}", bad.parse::<DatasetSpec>().unwrap_err());
        for form in ["synthetic-cifar10", "cifar10:DIR", "cifar100:DIR", "folder:DIR", "imagenet16:DIR"] {
            assert!(e.contains(form), "'{bad}': {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Augmentation and batching

/// A split of `n` images of side `s` whose bytes encode (channel, row, column):
/// `1 + 64c + 8y + x` for s = 8 (never 0, so padding is recognisable); label = index.
fn coord_split(n: usize, s: usize) -> Split {
    assert!(s <= 8);
    let mut images = Vec::new();
    for _ in 0..n {
        for c in 0..3 {
            for y in 0..s {
                for x in 0..s {
                    images.push((1 + 64 * c + 8 * y + x) as u8);
                }
            }
        }
    }
    Split { images, labels: (0..n as u32).collect() }
}

/// Identity normalisation on the byte scale: out = b / 255, so bytes come back with round(255 out).
const UNIT: Normalization = Normalization { mean: [0.0; 3], std: [1.0; 3] };

fn bytes_of(out: &[f32]) -> Vec<i32> {
    out.iter().map(|&v| (v * 255.0).round() as i32).collect()
}

#[test]
fn crop_is_a_shifted_window_or_padding() {
    let s = 8;
    let pad = 2;
    let split = coord_split(1, s);
    let aug = Augment { size: s, pad, flip: true, cutout: 0, fill: 0, norm: UNIT };
    let lut = aug.norm.lut();
    let mut offsets = std::collections::HashSet::new();
    let mut flips = 0;
    let trials = 400;
    for p in 0..trials {
        let a = aug.params(7, 3, p);
        assert!(a.dy <= 2 * pad && a.dx <= 2 * pad && a.cutout.is_none());
        offsets.insert((a.dy, a.dx));
        flips += a.flip as usize;
        let mut out = vec![0f32; 3 * s * s];
        aug.apply(split.image(0, s), &a, &lut, &mut out);
        let b = bytes_of(&out);
        // Recover the window from any non-padding pixel, then check every pixel against it.
        let (i, &v) = b.iter().enumerate().find(|(_, &v)| v != 0).expect("some image pixel");
        let (c, y, x) = (i / 64, (i / 8) % 8, i % 8);
        let v = v - 1 - 64 * c as i32;
        let (sy, sx) = (v / 8, v % 8);
        let oy = sy - y as i32; // source row = y + oy
                                // Either not flipped (sx = x + ox) or flipped (sx = 7 - x + ox): the pixel right of it
                                // tells which, unless it is at the border; use the params' flip and check everything.
        let ox = if a.flip { sx - (7 - x as i32) } else { sx - x as i32 };
        assert!(oy.abs() <= pad as i32 && ox.abs() <= pad as i32);
        assert_eq!((oy, ox), (a.dy as i32 - pad as i32, a.dx as i32 - pad as i32));
        for c in 0..3 {
            for y in 0..s {
                for x in 0..s {
                    let ry = y as i32 + oy;
                    let xc = if a.flip { 7 - x as i32 } else { x as i32 };
                    let rx = xc + ox;
                    let want = if (0..8).contains(&ry) && (0..8).contains(&rx) { 1 + 64 * c as i32 + 8 * ry + rx } else { 0 };
                    assert_eq!(b[c * 64 + y * 8 + x], want, "trial {p} ({a:?}) c{c} y{y} x{x}");
                }
            }
        }
    }
    assert_eq!(offsets.len(), 25, "every offset 0..=4 x 0..=4 occurs");
    assert!((150..250).contains(&flips), "flips {flips} of {trials}");
}

#[test]
fn flip_mirrors_columns() {
    let s = 8;
    let split = coord_split(1, s);
    let aug = Augment { size: s, pad: 0, flip: true, cutout: 0, fill: 0, norm: UNIT };
    let lut = aug.norm.lut();
    let mut out = vec![0f32; 192];
    aug.apply(split.image(0, s), &ImageAug { flip: true, ..Default::default() }, &lut, &mut out);
    let b = bytes_of(&out);
    for c in 0..3 {
        for y in 0..8 {
            for x in 0..8 {
                assert_eq!(b[c * 64 + y * 8 + x], 1 + 64 * c as i32 + 8 * y as i32 + (7 - x as i32));
            }
        }
    }
    aug.apply(split.image(0, s), &ImageAug::default(), &lut, &mut out);
    assert_eq!(bytes_of(&out), split.image(0, s).iter().map(|&v| v as i32).collect::<Vec<_>>());
}

#[test]
fn normalisation_matches_torchvision() {
    let n = Normalization::CIFAR10;
    for c in 0..3 {
        for b in [0u8, 1, 77, 128, 254, 255] {
            let want = (b as f32 / 255.0 - n.mean[c]) / n.std[c];
            assert_eq!(n.apply(c, b), want);
            assert_eq!(n.lut()[c][b as usize], want);
        }
    }
    assert!((n.apply(0, 255) - (1.0 - 0.4914) / 0.2470).abs() < 1e-6);
    assert!((n.apply(2, 0) - (-0.4465 / 0.2616)).abs() < 1e-6);
    // Eval batches are the normalised images, in order.
    let s = 4;
    let split = Split { images: (0..2 * 48).map(|i| (i * 5 % 256) as u8).collect(), labels: vec![3, 1] };
    let ds = Dataset { name: "t".into(), classes: 4, image_size: s, train: split.clone(), test: split.clone(), norm: n, pad: 0 };
    let aug = Augment::eval(&ds);
    assert!(aug.is_deterministic());
    let b = Batcher::eval(&ds.test, aug, 8).batch(0);
    assert_eq!((b.len, b.labels.clone()), (2, vec![3, 1]));
    for (i, v) in b.images.iter().enumerate() {
        let c = (i / 16) % 3;
        assert_eq!(*v, n.apply(c, split.images[i]));
    }
}

#[test]
fn cutout_zeroes_a_clipped_square_after_normalising() {
    let s = 32;
    let mut images = Vec::new();
    for i in 0..3 * s * s {
        images.push((i % 251) as u8);
    }
    let split = Split { images, labels: vec![0] };
    let aug = Augment { size: s, pad: 0, flip: false, cutout: 16, fill: 0, norm: Normalization::CIFAR10 };
    let lut = aug.norm.lut();
    // No byte normalises to exactly 0 under these constants, so zeros are the cutout.
    assert!(lut.iter().all(|row| row.iter().all(|&v| v != 0.0)));
    let mut full = 0;
    for p in 0..300 {
        let a = aug.params(1, 0, p);
        let (cy, cx) = a.cutout.expect("cutout centre");
        assert!(cy < s && cx < s);
        let mut out = vec![0f32; 3 * s * s];
        aug.apply(split.image(0, s), &a, &lut, &mut out);
        let (y0, y1) = (cy.saturating_sub(8), (cy + 8).min(s));
        let (x0, x1) = (cx.saturating_sub(8), (cx + 8).min(s));
        for c in 0..3 {
            let zeros: Vec<(usize, usize)> = (0..s * s).filter(|&i| out[c * s * s + i] == 0.0).map(|i| (i / s, i % s)).collect();
            assert_eq!(zeros.len(), (y1 - y0) * (x1 - x0));
            assert!(zeros.len() <= 256);
            assert!(zeros.iter().all(|&(y, x)| (y0..y1).contains(&y) && (x0..x1).contains(&x)));
        }
        full += ((y1 - y0) * (x1 - x0) == 256) as usize;
        // Outside the square: the normalised image.
        assert_eq!(out[0], if (y0..y1).contains(&0) && (x0..x1).contains(&0) { 0.0 } else { lut[0][0] });
    }
    assert!(full > 50, "a full 16x16 square when the centre is inside [8, 24]: {full}");
}

#[test]
fn batches_cover_each_image_once_and_are_deterministic() {
    let n = 50;
    let split = coord_split(n, 8);
    let aug = Augment { size: 8, pad: 2, flip: true, cutout: 4, fill: 0, norm: UNIT };
    let bs = 7;
    assert_eq!(num_batches(n, bs), 8);
    let b = Batcher::train(&split, aug, bs, 11, 2);
    assert_eq!(b.num_batches(), 8);
    assert_eq!(b.batch_len(7), 1); // 50 = 7 * 7 + 1: the last batch is partial
    assert_eq!(b.batch_len(8), 0);
    let batches: Vec<_> = b.iter().collect();
    assert_eq!(batches.iter().map(|x| x.len).collect::<Vec<_>>(), vec![7, 7, 7, 7, 7, 7, 7, 1]);
    let mut seen: Vec<u32> = batches.iter().flat_map(|x| x.labels.clone()).collect();
    assert_eq!(seen, b.order());
    assert_ne!(seen, (0..n as u32).collect::<Vec<_>>(), "shuffled");
    seen.sort();
    assert_eq!(seen, (0..n as u32).collect::<Vec<_>>(), "every image exactly once");
    for x in &batches {
        assert_eq!(x.images.len(), x.len * 192);
    }
    // Deterministic from (seed, epoch, k); other seeds or epochs differ.
    let again = Batcher::train(&split, aug, bs, 11, 2);
    assert_eq!(again.iter().collect::<Vec<_>>(), batches);
    assert_eq!(epoch_order(n, 11, 2), b.order());
    assert_ne!(epoch_order(n, 11, 3), b.order());
    assert_ne!(epoch_order(n, 12, 2), b.order());
    let other = Batcher::train(&split, aug, bs, 12, 2).batch(0);
    assert_ne!(other, batches[0]);
    // The free function into a larger caller buffer: the same batch; the rest untouched.
    let mut imgs = vec![-9f32; 16 * 192];
    let mut labels = vec![u32::MAX; 16];
    let len = fill_batch(&split, &aug, b.order(), 11, 2, bs, 7, &mut imgs, &mut labels);
    assert_eq!(len, 1);
    assert_eq!(&imgs[..192], &batches[7].images[..]);
    assert!(imgs[192..].iter().all(|&v| v == -9.0));
    assert_eq!((labels[0], labels[1]), (batches[7].labels[0], u32::MAX));
    // An image's augmentation depends on its position in the epoch, not on the batch size.
    let big = Batcher::train(&split, aug, 16, 11, 2);
    let b16 = big.batch(1); // positions 16..32
    let pos = 20;
    assert_eq!(b16.labels[pos - 16], batches[pos / 7].labels[pos % 7]);
    assert_eq!(&b16.images[(pos - 16) * 192..(pos - 15) * 192], &batches[pos / 7].images[(pos % 7) * 192..(pos % 7 + 1) * 192]);
    assert_eq!(big.params(1)[pos - 16], aug.params(11, 2, pos as u64));
    assert_eq!(big.indices(1), &b.order()[16..32]);
}

#[test]
fn train_augment_follows_the_dataset() {
    let split = coord_split(1, 8);
    let mk = |name: &str, size: usize| Dataset {
        name: name.into(),
        classes: 1,
        image_size: size,
        train: split.clone(),
        test: split.clone(),
        norm: synthetic::normalization(),
        pad: Dataset::default_pad(size),
    };
    let a = Augment::train(&mk("cifar10", 32));
    assert_eq!((a.size, a.pad, a.flip, a.cutout, a.fill), (32, 4, true, 0, 0));
    assert_eq!(Augment::train(&mk("imagenet16-120", 16)).pad, 2);
    assert_eq!(a.with_cutout(16).cutout, 16);
    // The synthetic set pads with the byte of 0.0, which normalises to 0.
    let ds = mk(synthetic::NAME, 8);
    let a = Augment::train(&ds);
    assert_eq!(a.fill, synthetic::ZERO_BYTE);
    let mut out = vec![1f32; 192];
    a.apply(split.image(0, 8), &ImageAug { dy: 0, dx: 0, flip: false, cutout: None }, &a.norm.lut(), &mut out);
    assert!(out[0].abs() < 1e-6, "padding of the synthetic set is 0.0 after normalising: {}", out[0]);
}

// ---------------------------------------------------------------------------------------------
// Synthetic CIFAR-10

/// The generator as SPEC 7 states it, naively: chunks of Gaussian images in order, all ten
/// networks on every image, accept while the class has room.
fn naive_synthetic(seed: u64, size: usize) -> (Split, Split) {
    let nets = synthetic::label_nets(seed);
    let quota = size + size / 5;
    let (mut train, mut test) = (Split::default(), Split::default());
    let mut count = [0usize; 10];
    for c in 0.. {
        let imgs = synthetic::chunk_images(seed, c);
        for (i, l) in synthetic::label_images(&nets, &imgs).into_iter().enumerate() {
            let l = l as usize;
            if count[l] < quota {
                let dst = if count[l] < size { &mut train } else { &mut test };
                dst.images.extend_from_slice(&imgs[i * 3072..(i + 1) * 3072]);
                dst.labels.push(l as u32);
                count[l] += 1;
                if count.iter().all(|&n| n == quota) {
                    return (train, test);
                }
            }
        }
    }
    unreachable!()
}

#[test]
fn synthetic_is_deterministic_balanced_and_consistent() {
    let (seed, size) = (42, 5);
    let t0 = Instant::now();
    let (ds, stats) = synthetic::generate_with_stats(seed, size).unwrap();
    println!("synthetic size {size}: {:.2?}, drew {} images, argmax frequencies {:?}", t0.elapsed(), stats.drawn, stats.frequencies());
    assert_eq!((ds.name.as_str(), ds.classes, ds.image_size, ds.pad), ("synthetic-cifar10", 10, 32, 4));
    assert_eq!(ds.train.class_counts(10), vec![size; 10]);
    assert_eq!(ds.test.class_counts(10), vec![size / 5; 10]);
    assert!(stats.drawn >= 60);
    ds.validate().unwrap();
    // Exactly the naive process (all ten networks on every image): deterministic, and the early
    // rejection of closed classes changes nothing.
    let (train, test) = naive_synthetic(seed, size);
    assert_eq!(ds.train, train);
    assert_eq!(ds.test, test);
    // Another seed draws other images.
    assert_ne!(synthetic::chunk_images(seed + 1, 0), synthetic::chunk_images(seed, 0));
    assert_eq!(synthetic::chunk_images(seed, 3), synthetic::chunk_images(seed, 3));
    // Normalised values are the N(0,1) samples: mean ~0, std ~1.
    let lut = ds.norm.lut();
    let vals: Vec<f64> = ds.train.images.iter().enumerate().map(|(i, &b)| lut[(i / 1024) % 3][b as usize] as f64).collect();
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    let std = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64).sqrt();
    assert!(mean.abs() < 0.01 && (std - 1.0).abs() < 0.01, "mean {mean} std {std}");
    for b in [0u8, 100, 128, 200, 255] {
        assert!((ds.norm.apply(1, b) - synthetic::decode(b)).abs() < 1e-5);
    }
    assert_eq!(synthetic::encode(0.0), 128);
    assert_eq!(synthetic::encode(1.0), 160);
    assert_eq!(synthetic::encode(-9.0), 0);
    assert_eq!(synthetic::encode(9.0), 255);
    // PyTorch-default networks: weights and biases within 1/sqrt(3072).
    let nets = synthetic::label_nets(seed);
    let bound = 1.0 / 3072f32.sqrt();
    assert!(nets.iter().all(|n| n.w1.iter().chain(&n.b1).chain(&n.w2).all(|w| w.abs() <= bound) && n.b2.abs() <= bound));
    // label_open agrees with label_images for any open / closed split.
    let imgs = synthetic::chunk_images(seed, 0);
    let full = synthetic::label_images(&nets, &imgs);
    let open = [5, 8, 2];
    let closed = [1, 0, 3, 4, 6, 7, 9];
    let part = synthetic::label_open(&nets, &open, &closed, &imgs);
    for (f, p) in full.iter().zip(&part) {
        assert_eq!(*p, if open.contains(&(*f as usize)) { Some(*f) } else { None });
    }
    // A cap stops generation with a clear error instead of looping.
    let e = err_text(synthetic::generate_capped(seed, size, 1));
    assert!(e.contains("cap") && e.contains("argmax frequencies"), "{e}");
}

#[test]
fn synthetic_cache_is_reused_and_rejected_when_corrupt() {
    let dir = scratch("synthetic_cache");
    let (seed, size) = (9, 5);
    let opts = LoadOptions { cache_dir: dir.clone(), synthetic_size: size, synthetic_seed: seed, norm: None };
    let ds = DatasetSpec::SyntheticCifar10.load(&opts).unwrap();
    let path = synthetic::cache_path(&dir, seed, size);
    assert!(path.is_file());
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, 68 + (50 + 10) * 3073);
    assert_eq!(synthetic::read_cache(&path, seed, size).unwrap(), ds);
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    // Reused: a valid file with other contents is what comes back.
    let mut other = ds.clone();
    other.train.images.iter_mut().for_each(|b| *b = b.wrapping_add(1));
    std::fs::write(&path, synthetic::to_bytes(&other, seed, size)).unwrap();
    assert_eq!(DatasetSpec::SyntheticCifar10.load(&opts).unwrap(), other);
    // Corrupt: one payload byte changed -> rejected, regenerated, rewritten.
    let mut bytes = synthetic::to_bytes(&ds, seed, size);
    bytes[68 + 12345] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let e = err_text(synthetic::read_cache(&path, seed, size));
    assert!(e.contains("checksum") && e.contains(&path.display().to_string()), "{e}");
    assert_eq!(DatasetSpec::SyntheticCifar10.load(&opts).unwrap(), ds);
    assert_eq!(synthetic::read_cache(&path, seed, size).unwrap(), ds);
    // Truncated, wrong seed, wrong size: rejected with a reason.
    let good = synthetic::to_bytes(&ds, seed, size);
    std::fs::write(&path, &good[..good.len() - 1]).unwrap();
    assert!(err_text(synthetic::read_cache(&path, seed, size)).contains("truncated"));
    std::fs::write(&path, &good).unwrap();
    assert!(err_text(synthetic::read_cache(&path, seed + 1, size)).contains("seed"));
    assert!(err_text(synthetic::read_cache(&path, seed, size + 1)).contains("size"));
    std::fs::write(&path, b"FEARSYN").unwrap();
    assert!(err_text(synthetic::read_cache(&path, seed, size)).contains("header"));
}

/// Generation time and class balance at a chosen size: `FEAR_SYNTH_SIZE=5000 cargo test
/// --release --test data synthetic_timing -- --ignored --nocapture` (with `FEAR_SYNTH_CACHE=DIR`
/// the set is also written where `load_or_generate(DIR, 42, size)` finds it).
#[test]
#[ignore]
fn synthetic_timing() {
    let size: usize = std::env::var("FEAR_SYNTH_SIZE").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let t0 = Instant::now();
    let (ds, stats) = synthetic::generate_with_stats(synthetic::DEFAULT_SEED, size).unwrap();
    let dt = t0.elapsed();
    let freq = stats.frequencies().map(|f| (f * 1000.0).round() / 1000.0);
    println!(
        "synthetic size {size} (seed {}): {dt:.2?}, {} train + {} test, drew {} images ({:.1} ms/image), argmax frequencies {freq:?}",
        synthetic::DEFAULT_SEED,
        ds.train.len(),
        ds.test.len(),
        stats.drawn,
        dt.as_secs_f64() * 1e3 / stats.drawn as f64
    );
    if let Some(dir) = std::env::var_os("FEAR_SYNTH_CACHE") {
        let path = synthetic::cache_path(Path::new(&dir), synthetic::DEFAULT_SEED, size);
        synthetic::write_atomically(&path, &synthetic::to_bytes(&ds, synthetic::DEFAULT_SEED, size)).unwrap();
        println!("cached in {}", path.display());
    }
}

// ---------------------------------------------------------------------------------------------
// The real CIFAR-10 as JPEGs

#[test]
fn real_cifar10_jpeg_folder() {
    let Some(archive) = common::cifar10_jpeg_archive("real_cifar10_jpeg_folder") else { return };
    let dest = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("test-data");
    let root = dest.join("cifar10-jpeg");
    let done = dest.join(".cifar10-jpeg.unpacked");
    if !done.is_file() {
        // Unpack beside, then move into place: a concurrent or killed run never sees half a tree.
        let tmp = dest.join(format!(".unpack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        let t0 = Instant::now();
        let st = std::process::Command::new("tar").arg("xzf").arg(&archive).arg("-C").arg(&tmp).status().expect("running tar");
        assert!(st.success(), "tar xzf {} failed", archive.display());
        if !done.is_file() {
            let _ = std::fs::remove_dir_all(&root);
            std::fs::rename(tmp.join("cifar10-jpeg"), &root).unwrap();
            std::fs::write(&done, "").unwrap();
        }
        let _ = std::fs::remove_dir_all(&tmp);
        println!("unpacked {} in {:.2?}", archive.display(), t0.elapsed());
    }
    let t0 = Instant::now();
    let ds = DatasetSpec::Folder(root.clone()).load(&LoadOptions::default()).unwrap();
    let dt = t0.elapsed();
    println!("loaded {} ({} train + {} test JPEGs) in {dt:.2?}; measured normalisation {:?}", root.display(), ds.train.len(), ds.test.len(), ds.norm);
    assert_eq!((ds.train.len(), ds.test.len(), ds.classes, ds.image_size, ds.pad), (50_000, 10_000, 10, 32, 4));
    assert_eq!(folder::folder_classes(&root).unwrap(), ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]);
    assert_eq!(ds.train.class_counts(10), vec![5000; 10]);
    assert_eq!(ds.test.class_counts(10), vec![1000; 10]);
    for c in 0..3 {
        assert!((ds.norm.mean[c] - Normalization::CIFAR10.mean[c]).abs() < 0.01, "{:?}", ds.norm);
        assert!((ds.norm.std[c] - Normalization::CIFAR10.std[c]).abs() < 0.01, "{:?}", ds.norm);
    }
    // A training batch of the real data, end to end.
    let b = Batcher::train(&ds.train, Augment::train(&ds), 256, 0, 0);
    assert_eq!(b.num_batches(), 196);
    assert_eq!(b.batch_len(195), 50_000 - 195 * 256);
    let x = b.batch(0);
    assert!(x.images.iter().all(|v| v.is_finite()));
}
