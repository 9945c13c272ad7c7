//! Proxyless gRPC across implementations: real gRPC clients resolve
//! `xds:///greeter` through xdsd's ADS and call real gRPC servers, with the
//! config of `config-examples/grpc-proxyless` (ports substituted), and real
//! xDS-enabled gRPC servers (gRFC A36) take their Listener from xdsd.
//!
//! Every behaviour runs once per implementation ([`peers::Grpc`]): C-core
//! through Python `grpcio`, and Node's grpc-js-xds. The peers come from
//! `.ci/run` (`PYTHON_BIN`, `NODE_BIN`, `NODE_PATH`).

mod clients;
mod peers;
mod servers;

use crate::common::{self, ChildGuard, Xdsd, free_port, root, tail, wait_for};
use peers::Grpc;
use serde_json::Value;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Runs each named test body (`fn NAME(grpc: Grpc)`) once per
/// implementation, as `grpc_proxyless::…::c_core::NAME` and `…::node::NAME`.
macro_rules! for_each_grpc {
    ($($test:ident),* $(,)?) => {
        mod c_core {
            $( #[test] fn $test() { super::$test(super::Grpc::CCore) } )*
        }
        mod node {
            $( #[test] fn $test() { super::$test(super::Grpc::Node) } )*
        }
    };
}
use for_each_grpc;

/// The node cluster the clients announce; the example serves its API
/// listener only to node clusters matching `grpc*`.
const NODE_CLUSTER: &str = "grpc-clients";

/// Writes the GRPC_XDS_BOOTSTRAP document `xdsd bootstrap --format grpc`
/// prints for xdsd on `127.0.0.1:xds_port` to `WORK/bootstrap-NODE_ID.json`.
fn write_bootstrap(work: &Path, xds_port: u16, node_id: &str, extra: &[&str]) -> PathBuf {
    let server = format!("127.0.0.1:{xds_port}");
    let mut args = vec![
        "bootstrap",
        "--format",
        "grpc",
        "--server",
        &server,
        "--node-id",
        node_id,
        "--node-cluster",
        NODE_CLUSTER,
    ];
    args.extend_from_slice(extra);
    let out = common::xdsd(&args);
    assert!(
        out.status.success(),
        "xdsd bootstrap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = work.join(format!("bootstrap-{node_id}.json"));
    std::fs::write(&path, out.stdout).expect("write bootstrap");
    path
}

/// `config-examples/grpc-proxyless/endpoints.yaml` with its port replaced.
fn endpoints_yaml(port: u16) -> String {
    let text =
        std::fs::read_to_string(root().join("config-examples/grpc-proxyless/endpoints.yaml"))
            .expect("read example endpoints");
    assert!(
        text.contains("port_value: 50051"),
        "example endpoint port moved"
    );
    text.replace("port_value: 50051", &format!("port_value: {port}"))
}

/// Copies the example's client side into `dir` with the endpoint on `port`.
fn write_config(dir: &Path, port: u16) {
    let example = root().join("config-examples/grpc-proxyless");
    for name in ["listeners.yaml", "routes.yaml", "clusters.yaml"] {
        std::fs::copy(example.join(name), dir.join(name)).expect("copy example file");
    }
    std::fs::write(dir.join("endpoints.yaml"), endpoints_yaml(port)).expect("write endpoints");
}

/// Writes `name` in `dir` atomically (a hidden file, then rename), as an
/// editor or a deployment tool would.
fn replace_file(dir: &Path, name: &str, text: &str) -> f64 {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write tmp file");
    std::fs::rename(&tmp, dir.join(name)).expect("rename into place");
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// A plain (not xDS-enabled) gRPC server named `name`, listening.
fn start_server(grpc: Grpc, work: &Path, name: &str) -> (ChildGuard, u16) {
    let port = free_port();
    let mut guard = grpc.server(work, name, port, None);
    let up = wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        if let Some(status) = guard.try_wait() {
            panic!("{name} exited ({status}):\n{}", guard.log());
        }
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    assert!(up.is_some(), "{name} not listening on {port} within 15 s");
    (guard, port)
}

/// A scratch directory, a server `server-a` and xdsd serving the example
/// pointed at it.
struct Setup {
    work: common::ScratchDir,
    config: PathBuf,
    xdsd: Xdsd,
    _server_a: ChildGuard,
}

impl Setup {
    fn new(grpc: Grpc, label: &str) -> Setup {
        let work = common::ScratchDir::new(&format!("grpc-{}-{label}", grpc.name()));
        let (server_a, port) = start_server(grpc, work.path(), "server-a");
        let config = work.path().join("config");
        std::fs::create_dir_all(&config).expect("mkdir config");
        write_config(&config, port);
        let xdsd = Xdsd::start(&config, &work.path().join("xdsd.log"));
        Setup {
            work,
            config,
            xdsd,
            _server_a: server_a,
        }
    }

    /// A client of `grpc` with the bootstrap xdsd prints for `node_id`.
    fn client(&self, grpc: Grpc, node_id: &str, args: &[&str]) -> peers::Client {
        let bootstrap = write_bootstrap(self.work.path(), self.xdsd.listen, node_id, &[]);
        grpc.client(self.work.path(), node_id, &bootstrap, args)
    }
}

/// One parsed client line.
#[derive(Debug)]
enum Rpc {
    Ok { at: f64, server: String },
    Err { line: String },
}

fn rpcs(out: &str) -> Vec<Rpc> {
    out.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            match parts.next()? {
                "ok" => Some(Rpc::Ok {
                    at: parts.next()?.parse().ok()?,
                    server: parts.next()?.to_string(),
                }),
                "error" => Some(Rpc::Err {
                    line: l.to_string(),
                }),
                _ => None,
            }
        })
        .collect()
}

fn failures(calls: &[Rpc]) -> Vec<&String> {
    calls
        .iter()
        .filter_map(|r| match r {
            Rpc::Err { line } => Some(line),
            Rpc::Ok { .. } => None,
        })
        .collect()
}

/// Waits (`timeout`) until the client has made `count` RPCs on `server`.
fn wait_rpcs_on(client: &mut peers::Client, server: &str, count: usize, timeout: Duration) {
    let done = wait_for(timeout, Duration::from_millis(20), || {
        let text = std::fs::read_to_string(&client.out).unwrap_or_default();
        let on = rpcs(&text)
            .iter()
            .filter(|r| matches!(r, Rpc::Ok { server: s, .. } if s == server))
            .count();
        (on >= count).then_some(())
    });
    assert!(
        done.is_some(),
        "client made no {count} RPCs on {server} within {timeout:?}:\n{}\n{}",
        tail(
            &std::fs::read_to_string(&client.out).unwrap_or_default(),
            20
        ),
        tail(&client.guard.log(), 40)
    );
}

/// Waits up to `timeout` for the client to exit; panics with its output if
/// it does not, or if it failed. Returns its stdout.
fn wait_client_ok(client: &mut peers::Client, timeout: Duration, xdsd: &Xdsd) -> String {
    let status = client.guard.wait_exit(timeout);
    let text = std::fs::read_to_string(&client.out).unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "client still running after {timeout:?}; stdout:\n{}\nxdsd log:\n{}",
            tail(&text, 40),
            tail(&xdsd.log(), 60)
        );
    };
    assert!(
        status.success(),
        "client failed ({status}); stdout:\n{}\nstderr:\n{}\nxdsd log:\n{}",
        tail(&text, 60),
        tail(&client.guard.log(), 40),
        tail(&xdsd.log(), 80)
    );
    text
}

/// `node_id`'s `/clients` entry once `ready` holds for it (5 s).
fn wait_client_entry(
    xdsd: &Xdsd,
    node_id: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let got = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        let clients = xdsd.admin_json("/clients");
        let entry = clients
            .as_array()?
            .iter()
            .find(|c| c["node_id"] == node_id)?
            .clone();
        last = entry.clone();
        ready(&entry).then_some(entry)
    });
    got.unwrap_or_else(|| {
        panic!(
            "{node_id}: {what} not seen in /clients; last: {last:#}\nxdsd log:\n{}",
            tail(&xdsd.log(), 40)
        )
    })
}

/// Waits until `/clients` shows `node_id` with all four types sent and
/// ACKed at the same version, and no NACK; returns its entry.
fn wait_all_acked(xdsd: &Xdsd, node_id: &str) -> Value {
    wait_client_entry(xdsd, node_id, "all four types ACKed", |entry| {
        entry["types"].as_object().is_some_and(|types| {
            types.len() >= 4
                && types.values().all(|s| {
                    s["sent_version"].as_str().is_some_and(|v| !v.is_empty())
                        && s["sent_version"] == s["acked_version"]
                })
        })
    })
}

/// Responses xdsd logged as sent (debug level), per type URL suffix.
fn sent_count(log: &str, type_suffix: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("sent") && l.contains(type_suffix))
        .count()
}
