//! The fuzz targets' bodies, one function per parser of outside input. Each must return for
//! every input (an `Err` is a fine answer to bad bytes) and never panic, hang or blow up memory;
//! on success it checks what the parser promises. `fuzz_targets/*.rs` call these under
//! libFuzzer, and `tests/fuzz_regressions.rs` (in the main crate, which includes this file)
//! replays the kept corpus and every crash ever found through the same functions.

use std::path::PathBuf;

use fear::data::{cifar, folder, imagenet16, Split};
use fear::eval::{disambiguate, evaluate as evaluate_method, methods_from_lines, vote, GroundTruth, GROUND_TRUTH_COLUMNS};
use fear::rank::results::parse_results;
use fear::space::{parse_arch, parse_arch_lines, parse_arch_list, Arch, NUM_ARCHS};

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// Every fuzz target, by name (the file under `fuzz_targets/` and the corpus folder).
pub const TARGETS: [(&str, Body); 8] = [
    ("arch", arch),
    ("arch_list", arch_list),
    ("cifar", cifar),
    ("evaluate", evaluate),
    ("ground_truth", ground_truth),
    ("image_folder", image_folder),
    ("imagenet16", imagenet16),
    ("results", results),
];

/// One arch string or index (`fear arch`, `--archs` entries).
pub fn arch(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(a) = parse_arch(s) {
        assert!(a.index() < NUM_ARCHS);
        assert_eq!(parse_arch(&a.to_string()).ok(), Some(a), "the string form must parse back");
        assert_eq!(Arch::from_index(a.index()).ok(), Some(a), "the index must map back");
    }
}

/// `--archs` specs (first byte even) and the text of `file:PATH` lists (first byte odd).
pub fn arch_list(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let parsed = if mode % 2 == 0 {
        if text.trim_start().starts_with("file:") {
            return; // would read a file named by the fuzzer; the odd mode covers file contents
        }
        parse_arch_list(text, u64::from(mode))
    } else {
        parse_arch_lines(text, "fuzz.txt")
    };
    if let Ok(archs) = parsed {
        assert!(!archs.is_empty());
        let mut seen = std::collections::HashSet::new();
        assert!(archs.iter().all(|a| seen.insert(a.index())), "a list never holds a cell twice");
    }
}

/// CIFAR binary records; the first byte picks CIFAR-10 (even) or CIFAR-100 (odd).
pub fn cifar(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (label_bytes, classes) = if mode % 2 == 0 { (1, 10) } else { (2, 100) };
    let mut split = Split::default();
    if cifar::parse_records("fuzz.bin", rest, label_bytes, classes, &mut split).is_ok() {
        assert_eq!(split.images.len(), split.labels.len() * cifar::IMAGE_BYTES);
        assert!(split.labels.iter().all(|&l| (l as usize) < classes));
    }
}

/// An ImageNet16 pickle (and so the pickle reader).
pub fn imagenet16(data: &[u8]) {
    if let Ok(split) = imagenet16::parse_batch("fuzz", data, imagenet16::CLASSES) {
        assert_eq!(split.images.len(), split.labels.len() * imagenet16::IMAGE_BYTES);
        assert!(split.labels.iter().all(|&l| (l as usize) < imagenet16::CLASSES));
    }
}

/// Separates the files of an image-folder input.
pub const FILE_SEPARATOR: &[u8] = b"FEAR-NEXT-FILE";

/// An image folder: the input is up to four files separated by [`FILE_SEPARATOR`], written as
/// `train/a/0.png`, `train/b/0.png`, `test/a/0.png`, `test/b/0.png` (an empty part: no file),
/// in a fresh folder per input, then loaded.
pub fn image_folder(data: &[u8]) {
    let root = scratch_dir();
    let _ = std::fs::remove_dir_all(&root);
    let slots = ["train/a", "train/b", "test/a", "test/b"];
    for (part, slot) in split_on(data, FILE_SEPARATOR).into_iter().zip(slots) {
        let dir = root.join(slot);
        std::fs::create_dir_all(&dir).unwrap();
        if !part.is_empty() {
            std::fs::write(dir.join("0.png"), part).unwrap();
        }
    }
    if let Ok(ds) = folder::load_folder(&root) {
        let bytes = 3 * ds.image_size * ds.image_size;
        assert!(ds.image_size > 0);
        assert_eq!(ds.train.images.len(), ds.train.labels.len() * bytes);
        assert_eq!(ds.test.images.len(), ds.test.labels.len() * bytes);
        assert!(ds.train.labels.iter().chain(&ds.test.labels).all(|&l| (l as usize) < ds.classes));
    }
}

fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("fear-fuzz-folder-{}", std::process::id()))
}

fn split_on<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(sep.len()).position(|w| w == sep) {
        parts.push(&rest[..at]);
        rest = &rest[at + sep.len()..];
    }
    parts.push(rest);
    parts
}

/// A results file as `fear merge` and a resumed run read it.
pub fn results(data: &[u8]) {
    if let Ok(parsed) = parse_results("fuzz.jsonl", data) {
        assert!(parsed.torn_bytes <= data.len());
        assert!(!data[data.len() - parsed.torn_bytes..].contains(&b'\n'), "a torn line has no newline");
        for line in &parsed.lines {
            let again: serde_json::Value = serde_json::from_str(&line.text).unwrap();
            assert_eq!(again, line.value);
            assert_eq!(line.value["index"].as_u64(), Some(line.index));
        }
    }
}

/// The NATS-Bench ground-truth CSV (`fear evaluate --ground-truth`); the first byte picks the
/// accuracy column.
pub fn ground_truth(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let column = GROUND_TRUTH_COLUMNS[pick as usize % GROUND_TRUTH_COLUMNS.len()];
    if let Ok(truth) = GroundTruth::parse(text, column) {
        assert!(truth.len() <= NUM_ARCHS);
        assert!((0..NUM_ARCHS).filter_map(|i| truth.get(i)).all(f64::is_finite));
    }
}

/// A results file as `fear evaluate` reads it: parsed, turned into methods, each evaluated
/// (and voted) against a small fixed ground truth.
pub fn evaluate(data: &[u8]) {
    let Ok(parsed) = parse_results("fuzz.jsonl", data) else { return };
    let values: Vec<serde_json::Value> = parsed.lines.into_iter().map(|l| l.value).collect();
    let Ok(mut methods) = methods_from_lines("fuzz.jsonl", &values) else { return };
    disambiguate(&mut methods);
    let truth = GroundTruth::parse(EVAL_TRUTH, GROUND_TRUTH_COLUMNS[0]).expect("the fixed ground truth parses");
    for m in &methods {
        let _ = evaluate_method(m, &truth);
    }
    let _ = vote(&methods, &truth);
}

/// Ground truth for the `evaluate` target: a few indices, every column.
const EVAL_TRUTH: &str =
    "index,cifar10,cifar100,imagenet16_120\n0,90.1,70.2,40.3\n1,93.5,71.0,45.1\n2,10.0,1.0,0.8\n3,85.5,60.0,30.5\n6111,94.0,73.1,46.7\n15624,80.0,50.0,20.0\n";
