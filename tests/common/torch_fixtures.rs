//! The PyTorch fixtures the proxies are held to (`tests/fixtures/proxies/**/*.safetensors`,
//! written by `scripts/make_proxy_fixtures.py` and `scripts/make_modern_proxy_fixtures.py`):
//! the network in the metadata (`arch`, `C`, `N`, `classes`, `image_size`), PyTorch's scores
//! (`scores`, a JSON object), and the tensors (weights under `param/`, inputs, expected values).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fear::net::weights::tensor_f64;
use fear::net::NetConfig;
use fear::space::Arch;
use safetensors::SafeTensors;

/// One fixture file, read.
pub struct TorchFixture {
    pub path: PathBuf,
    pub arch: Arch,
    pub net: NetConfig,
    /// Every tensor as float64, by name, in the order safetensors lists them.
    pub tensors: Vec<(String, Vec<f64>)>,
    /// PyTorch's scores by name; its -inf as f64::MIN, the lowest finite score fear reports.
    pub scores: HashMap<String, f64>,
}

impl TorchFixture {
    /// The tensor `name`.
    pub fn tensor(&self, name: &str) -> Vec<f64> {
        self.tensors.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{}: no tensor {name}", self.path.display())).1.clone()
    }

    /// The tensor `name` as class labels.
    pub fn labels(&self, name: &str) -> Vec<u32> {
        self.tensor(name).iter().map(|l| *l as u32).collect()
    }

    /// The tensors whose names start with `prefix`, by the rest of their names (`param/` gives
    /// the weights by their state_dict names).
    pub fn under(&self, prefix: &str) -> Vec<(String, Vec<f64>)> {
        self.tensors.iter().filter_map(|(n, t)| n.strip_prefix(prefix).map(|rest| (rest.to_string(), t.clone()))).collect()
    }
}

/// Every fixture in `tests/fixtures/<folder>` (at least two), sorted by file name.
pub fn torch_fixtures(folder: &str) -> Vec<TorchFixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(folder);
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect();
    paths.sort();
    assert!(paths.len() >= 2, "expected the fixtures in {}", dir.display());
    paths.into_iter().map(read).collect()
}

fn read(path: PathBuf) -> TorchFixture {
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let get = |k: &str| meta[k].parse::<usize>().unwrap();
    let net = NetConfig { c: get("C"), n: get("N"), classes: get("classes"), image_size: get("image_size") };
    let tensors = st.names().into_iter().map(|n| (n.to_string(), tensor_f64(&st, n).unwrap().1)).collect();
    // JSON has no -Infinity: PyTorch's json.dumps writes it, serde reads it as null.
    let raw: HashMap<String, Option<f64>> = serde_json::from_str(&meta["scores"].replace("-Infinity", "null")).unwrap();
    TorchFixture { arch: meta["arch"].parse().unwrap(), net, tensors, scores: raw.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::MIN))).collect(), path }
}
