//! Progress of a run over architectures, on stderr. On a terminal: indicatif's bar, with each
//! finished architecture printed above it. Off a terminal (a log file, a Slurm job), where the
//! bar would show nothing until the end: plain lines, one per finished architecture with the
//! count and an ETA, and the latest in-flight message (epoch, step, accuracy) at most every
//! `FEAR_PROGRESS_SECS` seconds (default 60).
//!
//! [`Progress`] keeps indicatif's method names, so the run loops call it as they called the bar.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between two in-flight lines off a terminal, unless `FEAR_PROGRESS_SECS` says otherwise.
pub const DEFAULT_PROGRESS_SECS: u64 = 60;

/// A run's progress over `len` architectures.
pub struct Progress {
    bar: ProgressBar,
    plain: Option<Plain>,
}

/// The plain-line state (off a terminal).
struct Plain {
    started: Instant,
    len: u64,
    done: AtomicU64,
    every: Duration,
    /// When the last in-flight line was printed (None: none yet).
    last_message: Mutex<Option<Instant>>,
}

/// The bar on a terminal, plain lines otherwise.
pub fn progress_bar(len: usize) -> Progress {
    Progress::new(len, !std::io::stderr().is_terminal())
}

impl Progress {
    /// `plain`: print lines instead of drawing a bar.
    pub fn new(len: usize, plain: bool) -> Progress {
        let bar = if plain { ProgressBar::hidden() } else { ProgressBar::new(len as u64) };
        bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} archs  {msg}").unwrap().progress_chars("=> "));
        let every = std::env::var("FEAR_PROGRESS_SECS").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(DEFAULT_PROGRESS_SECS);
        let plain = plain.then(|| Plain {
            started: Instant::now(),
            len: len as u64,
            done: AtomicU64::new(0),
            every: Duration::from_secs(every),
            last_message: Mutex::new(None),
        });
        Progress { bar, plain }
    }

    /// The architecture in flight (epoch, step, accuracy): the bar's message, or a plain line
    /// when the last one is at least the interval old.
    pub fn set_message(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.plain {
            None => self.bar.set_message(msg),
            Some(p) => {
                let mut last = p.last_message.lock().unwrap_or_else(|e| e.into_inner());
                if last.is_none_or(|t| t.elapsed() >= p.every) {
                    *last = Some(Instant::now());
                    eprintln!("  {msg}");
                }
            }
        }
    }

    /// A finished architecture's line (index, status, score, time): above the bar, or plain with
    /// the count and the ETA.
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.plain {
            None => self.bar.println(line.as_ref()),
            Some(p) => eprintln!("{}  [{}]", line.as_ref(), p.count_and_eta(p.done.load(Ordering::Relaxed) + 1)),
        }
    }

    /// Runs `f` with the bar out of the way (plain lines need no such care).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// `n` more architectures done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        if let Some(p) = &self.plain {
            p.done.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }
}

impl Plain {
    /// "k/N, 12.3 s elapsed, ETA 0:41:05" once `k` architectures are done.
    fn count_and_eta(&self, k: u64) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let k = k.min(self.len);
        let eta = if k == 0 { "?".to_string() } else { clock(elapsed / k as f64 * (self.len - k) as f64) };
        format!("{k}/{}, {} elapsed, ETA {eta}", self.len, clock(elapsed))
    }
}

/// Seconds as h:mm:ss.
fn clock(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_eta() {
        assert_eq!(clock(0.0), "0:00:00");
        assert_eq!(clock(3725.4), "1:02:05");
        let p = Progress::new(4, true);
        let plain = p.plain.as_ref().unwrap();
        assert!(plain.count_and_eta(2).starts_with("2/4, 0:00:00 elapsed, ETA 0:00:00"), "{}", plain.count_and_eta(2));
        assert!(Progress::new(4, false).plain.is_none());
    }
}
