//! TLS and mTLS on the xDS listener, with real Envoys whose bootstraps come
//! from `xdsd bootstrap`: an Envoy holding a certificate for its node gets
//! its config; one claiming another node's id, one without a client
//! certificate, and a plaintext one get nothing, and the refusal is logged.
//! Certificates are made per test run (rcgen), CA plus leaves.

use crate::common::config::simple_set;
use crate::common::pki::{
    Pki, envoy_bootstrapped_by_xdsd, mtls_serve_flags, path_str, server_sans, spiffe,
};
use crate::common::stack::wait_body;
use crate::common::{Backend, Envoy, ScratchDir, Xdsd, free_port, wait_for, xdsd};
use std::path::Path;
use std::time::Duration;

const AUTHORIZE: &str = "spiffe://xdsd.test/envoy/{node_id}";

/// An Envoy started from `xdsd bootstrap --format envoy` with `tls_flags`.
fn envoy(work: &Path, name: &str, node_id: &str, xds: &Xdsd, tls_flags: &[&str]) -> Envoy {
    envoy_bootstrapped_by_xdsd(work, name, node_id, xds, tls_flags)
}

fn flags(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The node ids `/clients` lists.
fn listed_nodes(xds: &Xdsd) -> Vec<String> {
    let clients = xds.admin_json("/clients");
    let mut ids: Vec<String> = clients
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["node_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

#[test]
fn mtls_admits_the_certified_node_and_refuses_the_rest() {
    let work = ScratchDir::new("tls");
    let pki = Pki::new(work.path());
    let (server_cert, server_key) = pki.leaf("server", server_sans());
    let (good_cert, good_key) = pki.leaf("edge-1", vec![spiffe("edge-1")]);
    let (other_cert, other_key) = pki.leaf("edge-2", vec![spiffe("edge-2")]);

    let backend = Backend::start("backend-a");
    let port = free_port();
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    for (name, text) in simple_set(port, &backend) {
        std::fs::write(config.join(name), text).expect("write config");
    }
    let ca = pki.ca_path();
    let xds = Xdsd::start_with(
        &config,
        &work.path().join("xdsd.log"),
        &mtls_serve_flags(&server_cert, &server_key, &ca, AUTHORIZE),
    );

    let mtls = |cert: &Path, key: &Path| {
        vec![
            "--tls-ca".to_string(),
            path_str(&ca).to_string(),
            "--tls-cert".into(),
            path_str(cert).into(),
            "--tls-key".into(),
            path_str(key).into(),
        ]
    };

    // The certified Envoy gets its config and routes.
    let good = mtls(&good_cert, &good_key);
    let _admitted = envoy(work.path(), "admitted", "edge-1", &xds, &flags(&good));
    wait_body(port, "/", "backend-a", Duration::from_secs(15));

    // Another certified proxy claiming edge-1's node id: refused with a logged reason.
    let other = mtls(&other_cert, &other_key);
    let impostor = envoy(work.path(), "impostor", "edge-1", &xds, &flags(&other));
    // Without a client certificate: the handshake fails.
    let ca_only = vec!["--tls-ca".to_string(), path_str(&ca).to_string()];
    let anonymous = envoy(work.path(), "anonymous", "edge-3", &xds, &flags(&ca_only));
    // Plaintext to a TLS port: nothing.
    let plaintext = envoy(work.path(), "plaintext", "edge-4", &xds, &[]);

    let refused = wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        xds.log()
            .lines()
            .find(|l| l.contains("refused"))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no refusal logged:\n{}", xds.log()));
    assert!(
        refused.contains("spiffe://xdsd.test/envoy/edge-1") && refused.contains("edge-2"),
        "the refusal names what was required and what was shown: {refused}"
    );
    // Give the others time to try (Envoy retries every few hundred ms at first).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        listed_nodes(&xds),
        ["edge-1"],
        "only the certified node is a client"
    );
    for refused in [&impostor, &anonymous, &plaintext] {
        let stats = refused.stats();
        assert_eq!(
            stats
                .get("control_plane.connected_state")
                .map(String::as_str),
            Some("0"),
            "a refused Envoy is not connected"
        );
        assert_eq!(
            stats
                .get("cluster_manager.cds.update_success")
                .map(String::as_str),
            Some("0"),
            "a refused Envoy got no clusters"
        );
    }
}

#[test]
fn tls_files_are_checked_at_start() {
    let work = ScratchDir::new("tls-start");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    let junk = work.write("junk.pem", "not a certificate");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xdsd"))
        .arg("serve")
        .arg("--dir")
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin", &format!("127.0.0.1:{}", free_port())])
        .args(["--tls-cert", path_str(&junk), "--tls-key", path_str(&junk)])
        .output()
        .expect("run xdsd");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("junk.pem: not a PEM file"), "{stderr}");

    // Flags that make no sense together are usage errors (exit 2).
    let usage = xdsd(&[
        "serve",
        "--dir",
        path_str(&config),
        "--authorize-node",
        "spiffe://x/{node_id}",
    ]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "--authorize-node needs --tls-client-ca"
    );
    let usage = xdsd(&[
        "serve",
        "--dir",
        path_str(&config),
        "--tls-cert",
        path_str(&junk),
        "--tls-key",
        path_str(&junk),
        "--tls-client-ca",
        path_str(&junk),
        "--authorize-node",
        "spiffe://x/static",
    ]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "a template must name the node"
    );
}
