//! The `xdsd` binary: parses the command line and hands over to [`xdsd::cli`].
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    xdsd::cli::run(xdsd::cli::Cli::parse())
}
