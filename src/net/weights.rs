//! Weights on disk as safetensors, named as PyTorch's `state_dict` names them.

use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;

use crate::engine::{Device, Float, Session};

/// The values of one tensor of a safetensors file, converted to f64 (f32, f64, i64 or i32 on disk).
pub fn tensor_f64(st: &SafeTensors, name: &str) -> Result<(Vec<usize>, Vec<f64>)> {
    let t = st.tensor(name).with_context(|| format!("no tensor named {name}"))?;
    let data = t.data();
    let values: Vec<f64> = match t.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect(),
        Dtype::F64 => data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect(),
        Dtype::I64 => data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect(),
        Dtype::I32 => data.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f64).collect(),
        other => bail!("{name}: unsupported dtype {other:?}"),
    };
    Ok((t.shape().to_vec(), values))
}

/// Loads every parameter and BN buffer of the session's network from a safetensors file (names
/// as in PyTorch's state_dict, optionally under `prefix`, e.g. `param/`). Tensors the network does
/// not have (such as `num_batches_tracked`) are ignored; a missing or mis-shaped one is an error.
pub fn load_weights<T: Float, D: Device<T>>(session: &mut Session<T, D>, path: &Path, prefix: &str) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let names: Vec<String> = session.params().iter().map(|p| p.name.clone()).chain(session.graph().states.iter().map(|s| s.name.clone())).collect();
    for name in names {
        let key = format!("{prefix}{name}");
        let is_buffer = name.ends_with(".running_mean") || name.ends_with(".running_var");
        if is_buffer && st.tensor(&key).is_err() {
            continue; // weights saved without buffers keep the fresh statistics
        }
        let (_, values) = tensor_f64(&st, &key).with_context(|| format!("loading {}", path.display()))?;
        let values: Vec<T> = values.into_iter().map(T::from_f64).collect();
        session.write_named(&name, &values).with_context(|| format!("loading {}", path.display()))?;
    }
    Ok(())
}
