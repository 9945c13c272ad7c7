//! Proxyless gRPC: real Python gRPC clients (grpcio) resolve `xds:///greeter`
//! through xdsd's ADS and call real Python gRPC servers, with the config of
//! `config-examples/grpc-proxyless` (ports substituted).
//!
//! Needs a Python with `grpcio` and `grpcio-health-checking`: `PYTHON_BIN`
//! (set by `.ci/run`), or the venv `.ci/run` makes (`target/envoy-venv`).

use crate::common;

use crate::common::{ChildGuard, ScratchDir, Xdsd, free_port, root, tail, wait_for};
use serde_json::Value;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The node cluster the clients announce; the example serves its API
/// listener only to node clusters matching `grpc*`.
const NODE_CLUSTER: &str = "grpc-clients";

fn script(name: &str) -> PathBuf {
    root().join("tests/grpc").join(name)
}

/// The GRPC_XDS_BOOTSTRAP document `xdsd bootstrap --format grpc` prints
/// for xdsd on `127.0.0.1:xds_port`.
fn grpc_bootstrap(xds_port: u16, node_id: &str, node_cluster: &str, extra: &[&str]) -> String {
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
        node_cluster,
    ];
    args.extend_from_slice(extra);
    let out = common::xdsd(&args);
    assert!(
        out.status.success(),
        "xdsd bootstrap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("bootstrap is UTF-8")
}

/// `config-examples/grpc-proxyless` with its endpoint port replaced by `port`.
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

/// Copies the example into `dir` with the endpoint on `port`.
fn write_config(dir: &Path, port: u16) {
    let example = root().join("config-examples/grpc-proxyless");
    for name in ["listeners.yaml", "routes.yaml", "clusters.yaml"] {
        std::fs::copy(example.join(name), dir.join(name)).expect("copy example file");
    }
    std::fs::write(dir.join("endpoints.yaml"), endpoints_yaml(port)).expect("write endpoints");
}

/// Replaces `endpoints.yaml` atomically (write a hidden file, rename).
fn switch_endpoints(dir: &Path, port: u16) -> SystemTime {
    let tmp = dir.join(".endpoints.yaml.tmp");
    std::fs::write(&tmp, endpoints_yaml(port)).expect("write tmp endpoints");
    std::fs::rename(&tmp, dir.join("endpoints.yaml")).expect("rename endpoints");
    SystemTime::now()
}

/// A Python gRPC health server named `name` on a free loopback port, ready.
fn start_server(work: &Path, name: &str) -> (ChildGuard, u16) {
    let port = free_port();
    let mut command = Command::new(common::python_bin());
    command
        .arg(script("health_server.py"))
        .args(["--port", &port.to_string(), "--name", name]);
    let log = work.join(format!("{name}.log"));
    let mut guard = ChildGuard::spawn(name, command, &log);
    let up = wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        if let Some(status) = guard.try_wait() {
            panic!("{name} exited ({status}):\n{}", guard.log());
        }
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    assert!(up.is_some(), "{name} not listening on {port} within 15 s");
    (guard, port)
}

/// Starts `client.py` (`xds:///greeter`) with its stdout in `out`.
fn start_client(work: &Path, xds_port: u16, node_id: &str, args: &[&str]) -> (ChildGuard, PathBuf) {
    start_client_with(work, xds_port, node_id, &[], args)
}

/// [`start_client`] with `bootstrap_flags` for `xdsd bootstrap` (TLS settings).
fn start_client_with(
    work: &Path,
    xds_port: u16,
    node_id: &str,
    bootstrap_flags: &[&str],
    args: &[&str],
) -> (ChildGuard, PathBuf) {
    let bootstrap = work.join(format!("bootstrap-{node_id}.json"));
    let text = grpc_bootstrap(xds_port, node_id, NODE_CLUSTER, bootstrap_flags);
    std::fs::write(&bootstrap, text).expect("write bootstrap");
    let mut command = Command::new(common::python_bin());
    command
        .arg(script("client.py"))
        .args(["--target", "xds:///greeter"])
        .args(args)
        .env("GRPC_XDS_BOOTSTRAP", &bootstrap)
        .env("PYTHONUNBUFFERED", "1");
    let out = work.join(format!("client-{node_id}.out"));
    let err = work.join(format!("client-{node_id}.log"));
    let guard = ChildGuard::spawn_split(&format!("client {node_id}"), command, &out, &err);
    (guard, out)
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

/// Waits up to `timeout` for the client to exit; panics with its output if
/// it does not, or if it failed.
fn wait_client_ok(client: &mut ChildGuard, out: &Path, timeout: Duration, xdsd: &Xdsd) -> String {
    let status = client.wait_exit(timeout);
    let text = std::fs::read_to_string(out).unwrap_or_default();
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
        tail(&client.log(), 40),
        tail(&xdsd.log(), 80)
    );
    text
}

/// Waits (5 s) until `/clients` shows `node_id` with all four types sent and
/// ACKed at the same version, and no NACK; returns its entry.
fn wait_all_acked(xdsd: &Xdsd, node_id: &str) -> Value {
    let mut last = Value::Null;
    let got = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        let clients = xdsd.admin_json("/clients");
        let entry = clients
            .as_array()?
            .iter()
            .find(|c| c["node_id"] == node_id)?
            .clone();
        last = entry.clone();
        let types = entry["types"].as_object()?;
        let all = types.len() >= 4
            && types.values().all(|s| {
                s["sent_version"].as_str().is_some_and(|v| !v.is_empty())
                    && s["sent_version"] == s["acked_version"]
            });
        all.then_some(entry)
    });
    got.unwrap_or_else(|| panic!("{node_id} never ACKed all four types; last: {last:#}"))
}

#[test]
fn grpc_client_resolves_and_calls_through_xdsd() {
    let work = ScratchDir::new("grpc-one");
    let (_server, port) = start_server(work.path(), "server-a");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir config");
    write_config(&config, port);
    let xdsd = Xdsd::start(&config, &work.path().join("xdsd.log"));

    let (mut client, out) = start_client(work.path(), xdsd.listen, "grpc-one", &[]);
    let text = wait_client_ok(&mut client, &out, Duration::from_secs(30), &xdsd);
    let calls = rpcs(&text);
    assert!(
        matches!(calls.as_slice(), [Rpc::Ok { server, .. }] if server == "server-a"),
        "expected one OK RPC on server-a:\n{text}"
    );
    // The client disconnected; its entry may be gone. Re-run a short loop
    // and check the ACK state while it is connected.
    let (mut client, out) =
        start_client(work.path(), xdsd.listen, "grpc-one-b", &["--duration", "2"]);
    let entry = wait_all_acked(&xdsd, "grpc-one-b");
    eprintln!("/clients entry: {entry:#}");
    wait_client_ok(&mut client, &out, Duration::from_secs(30), &xdsd);
}

#[test]
fn grpc_client_switches_endpoints_without_failures() {
    let work = ScratchDir::new("grpc-switch");
    let (_a, port_a) = start_server(work.path(), "server-a");
    let (_b, port_b) = start_server(work.path(), "server-b");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir config");
    write_config(&config, port_a);
    let xdsd = Xdsd::start(&config, &work.path().join("xdsd.log"));

    let (mut client, out) = start_client(
        work.path(),
        xdsd.listen,
        "grpc-switch",
        &["--duration", "5", "--interval", "0.01"],
    );
    // Wait for the loop to be running on A, with a run of RPCs there before
    // the switch (so "zero failures" covers steady traffic, not a cold start).
    let first = wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let on_a = rpcs(&text)
            .iter()
            .filter(|r| matches!(r, Rpc::Ok { server, .. } if server == "server-a"))
            .count();
        (on_a >= 50).then_some(())
    });
    assert!(
        first.is_some(),
        "client made no 50 RPCs on server-a within 20 s:\n{}\n{}",
        std::fs::read_to_string(&out).unwrap_or_default(),
        tail(&client.log(), 40)
    );

    let changed = switch_endpoints(&config, port_b);
    let changed_at = changed
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let switched = Instant::now();

    let text = wait_client_ok(&mut client, &out, Duration::from_secs(30), &xdsd);
    let calls = rpcs(&text);
    let failed: Vec<&String> = calls
        .iter()
        .filter_map(|r| match r {
            Rpc::Err { line } => Some(line),
            Rpc::Ok { .. } => None,
        })
        .collect();
    assert!(failed.is_empty(), "failed RPCs: {failed:?}");
    let first_b = calls.iter().find_map(|r| match r {
        Rpc::Ok { at, server } if server == "server-b" => Some(*at),
        _ => None,
    });
    let Some(first_b) = first_b else {
        panic!(
            "no RPC reached server-b after the switch ({:?} ago); client:\n{}\nxdsd log:\n{}",
            switched.elapsed(),
            tail(&text, 20),
            tail(&xdsd.log(), 60)
        );
    };
    let last: Vec<&str> = calls
        .iter()
        .rev()
        .take(10)
        .filter_map(|r| match r {
            Rpc::Ok { server, .. } => Some(server.as_str()),
            Rpc::Err { .. } => None,
        })
        .collect();
    assert!(
        last.len() == 10 && last.iter().all(|s| *s == "server-b"),
        "the last RPCs did not all hit server-b: {last:?}"
    );
    let on_a_after = calls
        .iter()
        .filter(|r| matches!(r, Rpc::Ok { at, server } if *at > first_b && server == "server-a"))
        .count();
    eprintln!(
        "{} RPCs, 0 failed; file change -> first RPC on server-b: {:.0} ms; \
         RPCs on server-a after the first on server-b: {on_a_after}",
        calls.len(),
        (first_b - changed_at) * 1000.0
    );
}

/// A config Envoy accepts but gRPC clients reject (a STATIC cluster for a
/// gRPC route): lint only warns, xdsd serves it, the client NACKs it and
/// keeps calling on its last good config, and the NACK text shows in
/// `/clients`; it is not re-sent.
#[test]
fn grpc_only_rejection_is_nacked_and_client_keeps_working() {
    let work = ScratchDir::new("grpc-nack");
    let (_server, port) = start_server(work.path(), "server-a");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir config");
    write_config(&config, port);
    let xdsd = Xdsd::start(&config, &work.path().join("xdsd.log"));
    let (mut client, out) = start_client(
        work.path(),
        xdsd.listen,
        "grpc-nack",
        &["--duration", "6", "--interval", "0.02"],
    );
    wait_all_acked(&xdsd, "grpc-nack");

    let static_cluster = format!(
        "kind: Cluster\nnodes:\n  cluster: [\"grpc*\"]\nspec:\n  name: greeter\n  type: STATIC\n  lb_policy: ROUND_ROBIN\n  load_assignment:\n    cluster_name: greeter\n    endpoints:\n    - load_balancing_weight: 1\n      lb_endpoints:\n      - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}\n"
    );
    let lint = common::xdsd(&["lint", "--dir", config.to_str().expect("utf-8 path")]);
    let tmp = config.join(".clusters.yaml.tmp");
    std::fs::write(&tmp, &static_cluster).expect("write cluster");
    let check = ScratchDir::new("grpc-nack-lint");
    std::fs::copy(&tmp, check.path().join("clusters.yaml")).expect("copy");
    for name in ["listeners.yaml", "routes.yaml", "endpoints.yaml"] {
        std::fs::copy(config.join(name), check.path().join(name)).expect("copy");
    }
    let lint_new = common::xdsd(&["lint", "--dir", check.path().to_str().expect("utf-8 path")]);
    assert!(
        lint.status.success() && lint_new.status.success(),
        "lint must accept it (Envoy does)"
    );
    let lint_text = String::from_utf8_lossy(&lint_new.stdout);
    assert!(
        lint_text.contains("gRPC clients accept only EDS"),
        "lint warns: {lint_text}"
    );
    std::fs::rename(&tmp, config.join("clusters.yaml")).expect("rename");

    let mut last = Value::Null;
    let nack = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        let clients = xdsd.admin_json("/clients");
        let entry = clients
            .as_array()?
            .iter()
            .find(|c| c["node_id"] == "grpc-nack")?
            .clone();
        last = entry.clone();
        let error =
                entry["types"]["type.googleapis.com/envoy.config.cluster.v3.Cluster"]["last_nack"]
                    ["error"]
                    .as_str()?;
        Some(error.to_string())
    })
    .unwrap_or_else(|| {
        panic!(
            "no NACK in /clients; last: {last:#}\nxdsd log:\n{}",
            tail(&xdsd.log(), 40)
        )
    });
    eprintln!("gRPC NACK text: {nack}");
    let text = wait_client_ok(&mut client, &out, Duration::from_secs(30), &xdsd);
    let calls = rpcs(&text);
    let failed: Vec<&Rpc> = calls
        .iter()
        .filter(|r| matches!(r, Rpc::Err { .. }))
        .collect();
    assert!(
        failed.is_empty() && calls.len() > 50,
        "{} RPCs, failures: {failed:?}",
        calls.len()
    );
    let sent = xdsd
        .log()
        .lines()
        .filter(|l| l.contains("sent") && l.contains("envoy.config.cluster.v3.Cluster"))
        .count();
    assert!(
        sent <= 3,
        "the rejected clusters were re-sent ({sent} cluster responses):\n{}",
        tail(&xdsd.log(), 40)
    );
}

/// The bootstrap's `tls` channel credentials work: a gRPC client holding a
/// certificate for its node resolves and calls through an mTLS xdsd that
/// authorizes nodes by certificate; one holding another node's certificate
/// is refused and never gets a channel.
#[test]
fn grpc_client_over_mtls_with_node_authorization() {
    use common::pki::{Pki, mtls_serve_flags, path_str, server_sans, spiffe};
    let work = ScratchDir::new("grpc-mtls");
    let pki = Pki::new(work.path());
    let (server_cert, server_key) = pki.leaf("server", server_sans());
    let (good_cert, good_key) = pki.leaf("grpc-mtls", vec![spiffe("grpc-mtls")]);
    let (other_cert, other_key) = pki.leaf("someone-else", vec![spiffe("someone-else")]);
    let (_server, port) = start_server(work.path(), "server-a");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir config");
    write_config(&config, port);
    let ca = pki.ca_path();
    let xdsd = Xdsd::start_with(
        &config,
        &work.path().join("xdsd.log"),
        &mtls_serve_flags(
            &server_cert,
            &server_key,
            &ca,
            "spiffe://xdsd.test/envoy/{node_id}",
        ),
    );
    let tls = |cert: &Path, key: &Path| {
        vec![
            "--tls-ca".to_string(),
            path_str(&ca).into(),
            "--tls-cert".into(),
            path_str(cert).into(),
            "--tls-key".into(),
            path_str(key).into(),
        ]
    };
    let good = tls(&good_cert, &good_key);
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    let (mut client, out) = start_client_with(work.path(), xdsd.listen, "grpc-mtls", &good, &[]);
    let text = wait_client_ok(&mut client, &out, Duration::from_secs(30), &xdsd);
    assert!(
        matches!(rpcs(&text).as_slice(), [Rpc::Ok { server, .. }] if server == "server-a"),
        "expected one OK RPC on server-a:\n{text}"
    );

    let other = tls(&other_cert, &other_key);
    let other: Vec<&str> = other.iter().map(String::as_str).collect();
    let (mut refused, out) = start_client_with(
        work.path(),
        xdsd.listen,
        "grpc-mtls",
        &other,
        &["--ready-timeout", "3"],
    );
    let status = refused
        .wait_exit(Duration::from_secs(20))
        .expect("client gives up");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        !status.success() && text.contains("NOT_READY"),
        "refused client: {status}\n{text}"
    );
    assert!(
        xdsd.log().contains("refused: node id `grpc-mtls`"),
        "the refusal is logged:\n{}",
        tail(&xdsd.log(), 40)
    );
}
