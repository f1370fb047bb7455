//! When one architecture fails (an error from the device, an out-of-memory, a panic in an op),
//! the run records a `failed` line with the reason and goes on to the next architecture.
//!
//! Tests provoke a failure through the environment variable [`INJECT_ENV`]
//! (`FEAR_INJECT_FAILURE=123,6111`): the listed architectures fail as a device error would,
//! before any training. It exists only for tests; nothing else reads it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;

use crate::schema::FailedRecord;

use crate::space::Arch;

/// A comma list of architecture indices that fail on purpose (a test hook).
pub const INJECT_ENV: &str = "FEAR_INJECT_FAILURE";

/// The injected failure for `arch`, if [`INJECT_ENV`] names it.
pub fn injected(arch: &Arch) -> Option<String> {
    let list = std::env::var(INJECT_ENV).ok()?;
    list.split(',').any(|t| t.trim().parse::<usize>() == Ok(arch.index())).then(|| format!("injected failure ({INJECT_ENV})"))
}

/// Runs `work` for `arch`; an error, a panic or an injected failure becomes `Err(reason)`, one
/// line of text.
pub fn attempt<R>(arch: &Arch, work: impl FnOnce() -> anyhow::Result<R>) -> Result<R, String> {
    if let Some(reason) = injected(arch) {
        return Err(reason);
    }
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(one_line(&format!("{e:#}"))),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(one_line(&format!("panic: {msg}")))
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The results line of a failed architecture: its identity, `status: "failed"`, the reason, a
/// null score, the device, and the run's configuration (`config`'s fields, so a resumed run's
/// configuration check reads it like any other line).
pub fn failed_line(arch: &Arch, device: &str, reason: &str, config: &Value) -> FailedRecord {
    FailedRecord::new(arch.index(), arch.to_string(), device, reason, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_and_panics_become_one_line_reasons() {
        let a = Arch::from_index(7).unwrap();
        assert_eq!(attempt(&a, || Ok(3)), Ok(3));
        let e = attempt::<()>(&a, || Err(anyhow::anyhow!("out of memory\nallocating 4 GiB").context("stage 1")));
        assert_eq!(e, Err("stage 1: out of memory allocating 4 GiB".into()));
        let p = attempt::<()>(&a, || panic!("index {} out of range", 9));
        assert_eq!(p, Err("panic: index 9 out of range".into()));
    }

    #[test]
    fn a_failed_line_carries_the_configuration() {
        let a = Arch::from_index(1).unwrap();
        let cfg = json!({"dataset": "d", "seed": 3, "status": "not this"});
        let l = serde_json::to_value(failed_line(&a, "cpu", "boom", &cfg)).unwrap();
        assert_eq!(l["index"], 1);
        assert_eq!(l["status"], "failed", "the configuration must not override the status");
        assert_eq!(l["reason"], "boom");
        assert!(l["score"].is_null());
        assert_eq!((l["dataset"].as_str(), l["seed"].as_u64()), (Some("d"), Some(3)));
        assert_eq!(l["arch"], a.to_string());
    }
}
