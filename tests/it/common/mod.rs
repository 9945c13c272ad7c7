//! What the integration tests share, one file per concept: the built binary
//! (`daemon`), the real Envoy (`envoy`), processes stopped on drop
//! (`process`), an HTTP client (`http`) and backend (`backend`), scratch
//! directories (`scratch`), certificates (`pki`), configs (`config`), the
//! admin API (`admin`) and an xdsd + Envoy + backend stack (`stack`).

pub mod admin;
pub mod backend;
pub mod config;
pub mod daemon;
pub mod envoy;
pub mod http;
pub mod pki;
pub mod process;
pub mod scratch;
pub mod stack;

pub use backend::*;
pub use daemon::*;
pub use envoy::*;
pub use http::*;
pub use process::*;
pub use scratch::*;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the built `xdsd` with `args`.
pub fn xdsd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xdsd"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("xdsd runs")
}

/// A loopback port that was free a moment ago (bind `127.0.0.1:0`, then
/// release it). Never hands out the same port twice in one test process.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        drop(listener);
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if given.insert(port) {
            return port;
        }
    }
}

/// Calls `probe` every `every` until it returns `Some`, at most `timeout` long.
pub fn wait_for<T>(
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
