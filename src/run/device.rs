//! `--device`: `cpu`, `cuda` (= `cuda:0`), `cuda:N`, `cuda:0,1,2,3` (one worker per GPU),
//! `emulated` (the CUDA kernels run on the CPU through the host emulation; slow, for testing)
//! or `auto` (the default: the first GPU when the CUDA driver and a GPU are there, else the CPU).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use anyhow::Result;

use crate::engine::cuda::{driver, Gpu};
use crate::engine::{AnyDevice, Cpu};
use crate::util::UsageError;

/// A parsed `--device` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Auto,
    Cpu,
    Emulated,
    /// GPU ordinals, in the order given.
    Cuda(Vec<usize>),
}

pub fn parse_device(s: &str) -> Result<DeviceSpec, UsageError> {
    let bad = || UsageError(format!("unknown device {s:?}; expected cpu, cuda, cuda:N, cuda:0,1,..., emulated or auto"));
    match s {
        "auto" => Ok(DeviceSpec::Auto),
        "cpu" => Ok(DeviceSpec::Cpu),
        "emulated" => Ok(DeviceSpec::Emulated),
        "cuda" => Ok(DeviceSpec::Cuda(vec![0])),
        _ => {
            let list = s.strip_prefix("cuda:").ok_or_else(bad)?;
            let ids: Vec<usize> = list.split(',').map(|t| t.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|_| bad())?;
            let mut seen = ids.clone();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() != ids.len() {
                return Err(UsageError(format!("device {s:?} names a GPU twice")));
            }
            Ok(DeviceSpec::Cuda(ids))
        }
    }
}

/// GPUs opened so far, by ordinal: opening one loads its kernels, so it is done once.
fn opened() -> &'static Mutex<HashMap<usize, Gpu>> {
    static OPENED: OnceLock<Mutex<HashMap<usize, Gpu>>> = OnceLock::new();
    OPENED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Opens GPU `ordinal` (once per process).
pub fn open_gpu(ordinal: usize) -> Result<Gpu> {
    let mut map = opened().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(g) = map.get(&ordinal) {
        return Ok(g.clone());
    }
    let g = Gpu::cuda(ordinal)?;
    map.insert(ordinal, g.clone());
    Ok(g)
}

/// Every device `spec` names, opened: one per worker. `auto` falls back to the CPU, saying why
/// once on stderr.
pub fn open_devices(spec: &str) -> Result<Vec<AnyDevice>> {
    Ok(match parse_device(spec)? {
        DeviceSpec::Cpu => vec![AnyDevice::Cpu(Cpu)],
        DeviceSpec::Emulated => vec![AnyDevice::Gpu(Gpu::emulated())],
        DeviceSpec::Cuda(ids) => ids.into_iter().map(|i| open_gpu(i).map(AnyDevice::Gpu)).collect::<Result<_>>()?,
        DeviceSpec::Auto => match driver::device_count().and_then(|n| if n > 0 { open_gpu(0) } else { anyhow::bail!("the CUDA driver sees no GPU") }) {
            Ok(g) => vec![AnyDevice::Gpu(g)],
            Err(why) => {
                static SAID: OnceLock<()> = OnceLock::new();
                // The advice "use --device cpu" is for an explicit --device cuda; here it is taken.
                let why = format!("{why:#}");
                let why = why.trim_end_matches("; use --device cpu");
                SAID.get_or_init(|| eprintln!("device auto: no GPU to use ({why}); running on the CPU"));
                vec![AnyDevice::Cpu(Cpu)]
            }
        },
    })
}

/// The first device `spec` names (for commands that use one).
pub fn open_device(spec: &str) -> Result<AnyDevice> {
    Ok(open_devices(spec)?.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_specs_parse() {
        assert_eq!(parse_device("cpu").unwrap(), DeviceSpec::Cpu);
        assert_eq!(parse_device("cuda").unwrap(), DeviceSpec::Cuda(vec![0]));
        assert_eq!(parse_device("cuda:3").unwrap(), DeviceSpec::Cuda(vec![3]));
        assert_eq!(parse_device("cuda:0,1,2,3").unwrap(), DeviceSpec::Cuda(vec![0, 1, 2, 3]));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:0,0", "cuda:-1", ""] {
            assert!(parse_device(bad).is_err(), "{bad:?} accepted");
        }
    }
}
