//! `--recipe paper|natsbench` (issue 15, differences 1-3 and 6): the augmentation each dataset and
//! method trains with, the recipe written into every results line, resume refusing to mix
//! recipes, and `fear rank`'s warning when stage 2 would train no cell.

use std::path::Path;
use std::process::Output;

use fear::data::recipe::{DatasetKind, Method, Recipe};
use fear::data::{synthetic, Augment, Dataset, Normalization, Split};
use serde_json::Value;

mod common;
use common::{fear_env, test_dir, tiny_run_args};

/// An empty dataset with `name`'s constants: the recipe reads only the name, size, pad and norm.
fn dataset(name: &str, size: usize, pad: usize, norm: Normalization) -> Dataset {
    Dataset { name: name.into(), classes: 10, image_size: size, train: Split::default(), test: Split::default(), norm, pad }
}

fn cifar10() -> Dataset {
    dataset("cifar10", 32, 4, Normalization::CIFAR10)
}

fn imagenet16() -> Dataset {
    dataset("imagenet16-120", 16, 2, Normalization::IMAGENET16)
}

fn synthetic_set() -> Dataset {
    dataset(synthetic::NAME, 32, 4, synthetic::normalization())
}

const METHODS: [Method; 4] = [Method::Fear, Method::SearchFear, Method::Shortreg, Method::ZeroCost];

#[test]
fn paper_recipe_trains_synthetic_cifar10_without_any_transform() {
    let ds = synthetic_set();
    for m in METHODS {
        let a = Recipe::Paper.train_augment(&ds, m);
        assert!(a.is_deterministic(), "{m:?}: {a:?}");
        assert_eq!(a.norm, synthetic::normalization(), "the samples are the N(0,1) values themselves");
        // Image 0 comes out as its decoded bytes at every epoch and position.
        let img: Vec<u8> = (0..3 * 32 * 32).map(|i| (i * 7 % 256) as u8).collect();
        let mut out = vec![0f32; img.len()];
        a.apply(&img, &a.params(3, 5, 9), &a.norm.lut(), &mut out);
        assert!(img.iter().zip(&out).all(|(&b, &o)| (o - synthetic::decode(b)).abs() < 1e-5), "{m:?} moved pixels");
    }
    let nb = Recipe::Natsbench.train_augment(&ds, Method::Fear);
    assert_eq!((nb.pad, nb.flip, nb.cutout), (4, true, 0));
}

#[test]
fn paper_recipe_cuts_out_16_for_fear_on_cifar_only() {
    for ds in [cifar10(), dataset("cifar100", 32, 4, Normalization::CIFAR100), dataset("cifar10-jpeg", 32, 4, Normalization::CIFAR10)] {
        let cutout = |r: Recipe, m: Method| {
            let a = r.train_augment(&ds, m);
            assert_eq!((a.pad, a.flip, a.norm), (4, true, ds.norm), "{}: crop, flip and normalise", ds.name);
            a.cutout
        };
        assert_eq!(cutout(Recipe::Paper, Method::Fear), 16, "{}", ds.name);
        for m in [Method::SearchFear, Method::Shortreg, Method::ZeroCost] {
            assert_eq!(cutout(Recipe::Paper, m), 0, "{}: {m:?}", ds.name);
        }
        for m in METHODS {
            assert_eq!(cutout(Recipe::Natsbench, m), 0, "{}: {m:?}", ds.name);
        }
    }
}

#[test]
fn paper_recipe_trains_imagenet16_unaugmented_and_unnormalised() {
    let ds = imagenet16();
    for m in METHODS {
        let a = Recipe::Paper.train_augment(&ds, m);
        assert!(a.is_deterministic(), "{m:?}: {a:?}");
        // ToTensor only: byte / 255.
        for c in 0..3 {
            assert_eq!(a.norm.apply(c, 255), 1.0);
            assert_eq!(a.norm.apply(c, 51), 51.0 / 255.0);
        }
    }
    let nb = Recipe::Natsbench.train_augment(&ds, Method::Shortreg);
    assert_eq!(nb, Augment::train(&ds), "NATS-Bench: crop pad 2, flip, normalise");
    assert_eq!((nb.pad, nb.flip, nb.norm), (2, true, Normalization::IMAGENET16));
}

#[test]
fn dataset_kinds_carry_the_paper_constants() {
    let k = DatasetKind::of;
    assert_eq!(
        [k("cifar10"), k("cifar100"), k("imagenet16-120"), k(synthetic::NAME), k("my-folder")],
        [DatasetKind::Cifar10, DatasetKind::Cifar100, DatasetKind::ImageNet16, DatasetKind::SyntheticCifar10, DatasetKind::Folder]
    );
    assert_eq!(k("cifar100").threshold(), 0.3);
    assert_eq!(k("imagenet16-120").stage2(), (512, 10));
    assert_eq!((k(synthetic::NAME).pad_fill(), k("cifar10").pad_fill()), (synthetic::ZERO_BYTE, 0));
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `cmd` on the tiny set (N=1 unless `n` says otherwise), then `extra`.
fn run_n(dir: &Path, cmd: &[&str], n: &str, extra: &[&str]) -> Output {
    let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    let mut tiny = tiny_run_args();
    let at = tiny.iter().position(|a| a == "--cells-per-stage").unwrap() + 1;
    tiny[at] = n.into();
    args.extend(tiny);
    args.extend(extra.iter().map(|s| s.to_string()));
    fear_env(dir, &args, &[])
}

fn run(dir: &Path, cmd: &[&str], extra: &[&str]) -> Output {
    run_n(dir, cmd, "1", extra)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Each command writes its recipe (`paper` by default) into every line, refuses to resume a file
/// under the other recipe, and trains differently under the two.
#[test]
fn every_results_line_names_its_recipe_and_resume_refuses_to_mix_them() {
    let dir = test_dir("recipe-lines");
    let commands: [(&str, Vec<&str>); 3] = [
        ("rank", vec!["rank", "--archs", "1", "--threshold", "0.001", "--stage2-epochs", "1", "--max-stage1-epochs", "2"]),
        ("shortreg", vec!["shortreg", "--archs", "1", "--epochs", "1", "--batch", "8"]),
        ("zero-cost", vec!["zero-cost", "--archs", "1", "--proxy", "naswot", "--batch", "8"]),
    ];
    for (name, cmd) in commands {
        let mut cmd = cmd.clone();
        let (paper, natsbench) = (format!("{name}-paper.jsonl"), format!("{name}-natsbench.jsonl"));
        for (recipe, out) in [("paper", &paper), ("natsbench", &natsbench)] {
            let mut c = cmd.clone();
            c.extend(["--out", out.as_str()]);
            // The default is the paper's.
            let extra: &[&str] = if recipe == "paper" { &[] } else { &["--recipe", "natsbench"] };
            let done = run(&dir, &c, extra);
            assert!(done.status.success(), "{name} --recipe {recipe}: {}", stderr(&done));
            let l = lines(&dir.join(out));
            assert!(!l.is_empty() && l.iter().all(|l| l["recipe"] == recipe), "{name}: {l:?}");
        }
        cmd.extend(["--out", paper.as_str()]);
        let refused = run(&dir, &cmd, &["--recipe", "natsbench"]);
        assert!(!refused.status.success(), "{name}: a natsbench run appended to a paper file");
        assert!(stderr(&refused).contains("recipe"), "{name}: {}", stderr(&refused));
    }
    // shortreg on Synthetic CIFAR-10: the paper's recipe (no crop, no flip) trains on other
    // batches than NATS-Bench's.
    let acc = |file: &str| lines(&dir.join(file))[0]["train_acc"].clone();
    assert_ne!(acc("shortreg-paper.jsonl"), acc("shortreg-natsbench.jsonl"));
}

#[test]
fn rank_warns_when_stage2_trains_no_cell() {
    let dir = test_dir("recipe-n1-warning");
    // tiny_run_args is N=1: stage 2 trains only lastact and the classifier.
    let out = run(&dir, &["rank", "--archs", "1", "--threshold", "0.001", "--stage2-epochs", "1", "--max-stage1-epochs", "2", "--out", "n1.jsonl"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: --cells-per-stage 1: stage 2 trains no cell"), "{}", stderr(&out));
    let out = run_n(&dir, &["rank", "--archs", "1", "--threshold", "0.001", "--stage2-epochs", "1", "--max-stage1-epochs", "2", "--out", "n2.jsonl"], "2", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("stage 2 trains no cell"), "{}", stderr(&out));
}

/// The GPU's resident data path takes the recipe's `Augment` as it is: under the paper's
/// ImageNet16-120 recipe (no crop, no flip, byte / 255) it trains bit for bit like the host path.
#[test]
fn the_resident_gpu_path_follows_the_recipe() {
    use fear::engine::cuda::Gpu;
    use fear::engine::{PlanOptions, Session};
    use fear::net::{tiny_network, NetConfig};
    use fear::train::{train_epoch, TrainSplit};
    let gpu = Gpu::emulated();
    let aug = Recipe::Paper.train_augment(&imagenet16(), Method::Fear);
    let data = Split { images: (0..24 * 3 * 16 * 16).map(|i| (i * 31 % 251) as u8).collect(), labels: (0..24).map(|i| i % 10).collect() };
    let net = NetConfig { c: 4, n: 1, classes: 10, image_size: 16 };
    let arch = fear::space::Arch::from_index(1).unwrap();
    let loss = |split: &mut TrainSplit<fear::engine::cuda::ResidentSplit>| {
        let mut s = Session::new(gpu.clone(), Box::new(move |b| tiny_network(&arch, &net, b)), 8, PlanOptions::default()).unwrap();
        s.init_params(3).unwrap();
        train_epoch(&mut s, split, 8, 7, 0, 0.1, &mut |_| {}).unwrap().train_loss.to_bits()
    };
    let mut resident = TrainSplit::for_device(&gpu, &data, aug).unwrap();
    assert!(resident.is_resident());
    assert_eq!(loss(&mut resident), loss(&mut TrainSplit::on_host(&data, aug)));
}
