//! Small helpers shared across the crate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

/// An error in what the user asked for (exit status 2), as opposed to a failure while working.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a killed
/// process never leaves a half-written file (the folder is created; the temporary file is
/// removed on failure; concurrent writers in one process use distinct temporary names).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.tmp{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let write = || -> Result<()> {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// A path as the user typed it, with a leading `~` (the home folder, `$HOME`) or `~user` (that
/// user's home, from `/etc/passwd`) expanded. The shell expands `~` only at the start of a word,
/// so `--dataset cifar10:~/data` reaches `fear` unexpanded; every path-valued option goes through
/// here. Anything else, or a `~user` not found, is returned unchanged.
pub fn expand_tilde(path: &str) -> PathBuf {
    let Some(rest) = path.strip_prefix('~') else { return PathBuf::from(path) };
    let (user, tail) = rest.split_once('/').map_or((rest, ""), |(u, t)| (u, t));
    let home = if user.is_empty() { std::env::var_os("HOME").map(PathBuf::from) } else { home_of(user) };
    match home {
        Some(home) if tail.is_empty() => home,
        Some(home) => home.join(tail),
        None => PathBuf::from(path),
    }
}

/// `user`'s home folder, as `/etc/passwd` lists it.
fn home_of(user: &str) -> Option<PathBuf> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() >= 6 && f[0] == user).map(|f| PathBuf::from(f[5]))
}

/// A clap value parser for path-valued options: the path with `~` expanded ([`expand_tilde`]).
pub fn path_arg(s: &str) -> std::result::Result<PathBuf, std::convert::Infallible> {
    Ok(expand_tilde(s))
}

/// Where generated data (Synthetic CIFAR-10) is cached when `--cache-dir` is not given:
/// `$FEAR_CACHE_DIR`, else `$XDG_CACHE_HOME/fear`, else `~/.cache/fear`, else `data-cache` in
/// the current folder (no home folder known).
pub fn default_cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("FEAR_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("fear")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("fear")))
        .unwrap_or_else(|| PathBuf::from("data-cache"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_tilde_is_the_home_folder() {
        let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"));
        assert_eq!(expand_tilde("~"), home);
        assert_eq!(expand_tilde("~/data/cifar"), home.join("data/cifar"));
        assert_eq!(expand_tilde("/abs/~/x"), PathBuf::from("/abs/~/x"));
        assert_eq!(expand_tilde("rel/path"), PathBuf::from("rel/path"));
        assert_eq!(expand_tilde("~no-such-user-here/x"), PathBuf::from("~no-such-user-here/x"));
        assert_eq!(expand_tilde("~root/x"), home_of("root").map_or(PathBuf::from("~root/x"), |h| h.join("x")));
    }
}
