use std::process::ExitCode;

use clap::Parser;
use fear::cli::{self, Cli, UsageError};

fn main() -> ExitCode {
    end_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `fear ... | head` closes the pipe before fear has printed everything. Rust ignores SIGPIPE, so
/// the next print would panic on the write error; with the default disposition restored, the
/// process ends silently there, as other command-line tools do. Files already written (results
/// lines are appended and synced one at a time) are kept.
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: sets a signal disposition before any thread starts; no handler code runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
