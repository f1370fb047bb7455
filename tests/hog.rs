//! HoG features against scikit-image (fixtures from scripts/make_hog_fixtures.py).
use fear::features::{feature_len, hog_dataset, hog_features, HogParams};
use std::path::PathBuf;

struct Case {
    name: String,
    size: usize,
    params: HogParams,
    img: Vec<u8>,
    feats: Vec<f64>,
}

fn load_cases() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hog");
    let header: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("hog.json")).unwrap()).unwrap();
    let blob = std::fs::read(dir.join("hog.bin")).unwrap();
    let u = |c: &serde_json::Value, k: &str| c[k].as_u64().unwrap() as usize;
    header["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let size = u(c, "size");
            let (io, fo, fl) = (u(c, "img_offset"), u(c, "feat_offset"), u(c, "feat_len"));
            Case {
                name: c["name"].as_str().unwrap().to_string(),
                size,
                params: HogParams { orientations: u(c, "orientations"), cell: u(c, "cell"), block: u(c, "block") },
                img: blob[io..io + 3 * size * size].to_vec(),
                feats: blob[fo..fo + 8 * fl].chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect(),
            }
        })
        .collect()
}

#[test]
fn matches_skimage() {
    let cases = load_cases();
    assert!(cases.len() >= 6);
    for c in &cases {
        assert_eq!(feature_len(c.size, &c.params), c.feats.len(), "{}", c.name);
        assert_eq!(HogParams::for_image_size(c.size), c.params, "{}", c.name);
        let mut out = vec![0f32; c.feats.len()];
        hog_features(&c.img, c.size, &c.params, &mut out);
        let max_err = out.iter().zip(&c.feats).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        let nonzero = c.feats.iter().filter(|v| **v != 0.0).count();
        eprintln!("{}: {} features ({nonzero} nonzero), max |ours - skimage| = {max_err:.3e}", c.name, out.len());
        assert!(max_err <= 1e-5, "{}: max abs error {max_err}", c.name);
    }
}

#[test]
fn feature_lengths() {
    assert_eq!(feature_len(32, &HogParams::for_image_size(32)), 324);
    assert_eq!(feature_len(16, &HogParams::for_image_size(16)), 324);
    assert_eq!(HogParams::for_image_size(32), HogParams { orientations: 9, cell: 8, block: 3 });
    assert_eq!(HogParams::for_image_size(16), HogParams { orientations: 9, cell: 4, block: 3 });
}

#[test]
fn constant_image_is_zero() {
    for s in [16usize, 32] {
        let p = HogParams::for_image_size(s);
        let img = vec![137u8; 3 * s * s];
        let mut out = vec![1f32; feature_len(s, &p)];
        hog_features(&img, s, &p, &mut out);
        assert!(out.iter().all(|v| *v == 0.0));
    }
}

#[test]
fn dataset_matches_per_image() {
    let cases = load_cases();
    for s in [16usize, 32] {
        let p = HogParams::for_image_size(s);
        let f = feature_len(s, &p);
        // The fixture images of this size, repeated past one rayon task (64 images).
        let imgs: Vec<&Case> = cases.iter().filter(|c| c.size == s).collect();
        let n = 150;
        let bytes: Vec<u8> = (0..n).flat_map(|i| imgs[i % imgs.len()].img.iter().copied()).collect();
        let all = hog_dataset(&bytes, s, &p);
        assert_eq!(all.len(), n * f);
        for i in 0..n {
            let mut one = vec![0f32; f];
            hog_features(&imgs[i % imgs.len()].img, s, &p, &mut one);
            assert_eq!(&all[i * f..(i + 1) * f], &one[..]);
        }
    }
}

/// `cargo test --release --test hog -- --ignored --nocapture`: 50,000 random 32x32 images.
#[test]
#[ignore]
fn timing_50k() {
    let s = 32;
    let n = 50_000;
    let mut x = 0x9E3779B97F4A7C15u64;
    let bytes: Vec<u8> = (0..n * 3 * s * s)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let p = HogParams::for_image_size(s);
    let t = std::time::Instant::now();
    let out = hog_dataset(&bytes, s, &p);
    let dt = t.elapsed().as_secs_f64();
    eprintln!("hog_dataset: {n} images {s}x{s} in {dt:.3} s on {} threads", rayon::current_num_threads());
    assert_eq!(out.len(), n * 324);
}
