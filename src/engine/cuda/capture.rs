//! Capturing launches to replay them: a whole training step becomes one CUDA graph, launched
//! with one call instead of about a thousand.
//!
//! The rules are CUDA stream capture's, kept by both backends so the emulated one tests them:
//! - between [`Backend::begin_capture`] and [`Backend::end_capture`] launches are recorded, not
//!   run; each launch's argument *values* are copied when it is recorded, so a replay reads and
//!   writes the same addresses but whatever data they then hold;
//! - nothing that waits for the device or moves host data (upload, download, synchronize,
//!   allocation, free) may happen inside a capture: it is refused, and the capture is broken
//!   (its `end_capture` fails), as a real capture is invalidated;
//! - a replay is only sound while every buffer the captured launches address is still allocated
//!   where it was; [`super::Gpu`] checks that with the memory's generation (see [`super::GpuMemory`]).

use std::sync::Mutex;

use anyhow::{anyhow, bail, Result};

use super::launch::Backend;

/// Launches recorded by a capture, replayable any number of times.
pub trait CapturedLaunches: Send + Sync {
    /// Runs the recorded launches again, in order (asynchronously on a GPU).
    ///
    /// # Safety
    /// Every buffer the launches address must still be allocated, as large as when captured.
    unsafe fn replay(&self) -> Result<()>;
    /// How many kernel launches the capture holds (on a GPU, the nodes of its graph).
    fn launches(&self) -> usize;
}

/// Runs `launch` (which only launches kernels) inside a capture of `backend` and returns what it
/// recorded. The capture is ended even when `launch` fails, so the backend is never left
/// capturing.
pub fn capture(backend: &dyn Backend, launch: impl FnOnce() -> Result<()>) -> Result<Box<dyn CapturedLaunches>> {
    backend.begin_capture()?;
    let launched = launch();
    let captured = backend.end_capture();
    launched?;
    captured
}

/// A backend's side of a capture in progress: what it has recorded so far (`T`) and, once
/// something forbidden happened inside it, why it is broken.
pub struct CaptureState<T> {
    current: Mutex<Option<Capturing<T>>>,
}

struct Capturing<T> {
    recorded: T,
    broken: Option<String>,
}

impl<T> Default for CaptureState<T> {
    fn default() -> Self {
        CaptureState { current: Mutex::new(None) }
    }
}

impl<T> CaptureState<T> {
    /// Starts a capture that records into `empty`.
    pub fn begin(&self, empty: T) -> Result<()> {
        let mut current = self.lock();
        if current.is_some() {
            bail!("a capture is already in progress (captures do not nest)");
        }
        *current = Some(Capturing { recorded: empty, broken: None });
        Ok(())
    }

    /// Ends the capture: what it recorded, or why it is unusable.
    pub fn end(&self) -> Result<T> {
        let Capturing { recorded, broken } = self.lock().take().ok_or_else(|| anyhow!("end_capture without begin_capture"))?;
        match broken {
            Some(why) => bail!("the capture is invalid: {why} happened inside it"),
            None => Ok(recorded),
        }
    }

    /// Records into the capture in progress with `f`; false (and `f` unused) when there is none.
    pub fn record(&self, f: impl FnOnce(&mut T)) -> bool {
        match self.lock().as_mut() {
            Some(c) => {
                f(&mut c.recorded);
                true
            }
            None => false,
        }
    }

    /// Refuses `what` (a host-synchronous operation) inside a capture, breaking the capture.
    pub fn forbid(&self, what: &str) -> Result<()> {
        if let Some(c) = self.lock().as_mut() {
            c.broken.get_or_insert_with(|| what.to_string());
            bail!("{what} inside a capture: copies and waits must happen before or after capturing a step");
        }
        Ok(())
    }

    /// Whether a capture is in progress.
    pub fn is_active(&self) -> bool {
        self.lock().is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Capturing<T>>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}
