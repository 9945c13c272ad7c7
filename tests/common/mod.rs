//! Shared helpers for integration tests: the real Envoy, scratch dirs, the built binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Envoy binary: `ENVOY_BIN` (set by `.ci/run`), or the venv `.ci/run` makes.
pub fn envoy_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(p);
    }
    let local = root().join("target/envoy-venv/bin/envoy");
    assert!(
        local.exists(),
        "no Envoy: set ENVOY_BIN or run `bash .ci/run` once to install it"
    );
    local
}

/// Runs `envoy --mode validate` on a bootstrap; returns (accepted, output).
pub fn envoy_validate(bootstrap: &serde_json::Value) -> (bool, String) {
    let dir = ScratchDir::new("envoy-validate");
    let path = dir.path().join("bootstrap.json");
    std::fs::write(&path, bootstrap.to_string()).expect("write bootstrap");
    let out = Command::new(envoy_bin())
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "--log-level",
            "error",
            "-c",
        ])
        .arg(&path)
        .output()
        .expect("envoy runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs the built `xdsd` with `args`.
pub fn xdsd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xdsd"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("xdsd runs")
}

/// A temporary directory removed on drop (also when a test fails).
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xdsd-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        ScratchDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `rel` inside the directory, creating folders.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every directory directly below `dir`, sorted.
pub fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}
