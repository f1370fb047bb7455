//! One worker per device (`--device cuda:0,1,2,3`): every architecture is run exactly once, by
//! whichever worker frees up first, and every record lands in the results file. Checked here with
//! several CPU devices standing in for GPUs.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use fear::data::dataset::{Normalization, Split};
use fear::data::Dataset;
use fear::engine::{AnyDevice, Cpu};
use fear::net::NetConfig;
use fear::rank::results::ResultsFile;
use fear::run::Prepared;
use fear::space::Arch;

mod common;

#[test]
fn workers_share_the_architectures_and_each_runs_once() {
    let out = common::test_dir("workers").join("results.jsonl");
    let empty = || Split { images: Vec::new(), labels: Vec::new() };
    let data = Dataset { name: "none".into(), classes: 10, image_size: 8, train: empty(), test: empty(), norm: Normalization::CIFAR10, pad: 0 };
    let todo: Vec<Arch> = (0..24).map(|i| Arch::from_index(i * 600).unwrap()).collect();
    let prepared = Prepared {
        todo: todo.clone(),
        results: ResultsFile::open(&out).unwrap(),
        data,
        net: NetConfig { c: 4, n: 1, classes: 10, image_size: 8 },
        force: false,
        devices: vec![AnyDevice::Cpu(Cpu); 3],
    };
    let threads = Mutex::new(HashSet::new());
    prepared
        .run_all(&serde_json::json!({}), &[], |arch, _, _, _, _| {
            threads.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(Duration::from_millis(5 + (arch.index() % 7) as u64));
            Ok(serde_json::json!({"index": arch.index(), "arch": arch.to_string(), "status": "ok", "score": arch.index() as f64, "time_s": 0.0}))
        })
        .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let mut seen: Vec<u64> = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["index"].as_u64().unwrap()).collect();
    seen.sort_unstable();
    let want: Vec<u64> = todo.iter().map(|a| a.index() as u64).collect();
    assert_eq!(seen, want, "each architecture exactly once");
    assert!(threads.lock().unwrap().len() > 1, "only one worker ran");
}
