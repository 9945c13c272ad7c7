//! The `xdsd` binary: parses the command line and hands over to [`xdsd::cli`].
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    // `serve` runs its loads in a child process: this same executable.
    if let Some(exit) = xdsd::daemon::loader_process::run_if_child() {
        return exit;
    }
    xdsd::cli::run(xdsd::cli::Cli::parse())
}
