//! Live rotation of xdsd's xDS certificate, with real Envoys on mTLS ADS
//! (bootstraps from `xdsd bootstrap`): a new pair, installed by rename as
//! certificate agents do (a Kubernetes-style `..data` symlink swap, or one
//! rename per file), is used by new connections while a connected Envoy
//! keeps its stream and is sent nothing; a pair that does not load is
//! refused (logged once, in `/status` and `/metrics`) and the old one stays.
//! Certificates are made per test run (rcgen).

use crate::common;

use crate::common::config::simple_set;
use crate::common::pki::{
    Pki, envoy_bootstrapped_by_xdsd, mtls_serve_flags, path_str, server_sans, spiffe,
};
use crate::common::stack::wait_body;
use crate::common::{Backend, Envoy, ScratchDir, Xdsd, free_port, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const AUTHORIZE: &str = "spiffe://xdsd.test/envoy/{node_id}";

/// How the certificate and key files are laid out and replaced.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `tls/server.pem` and `tls/server.key`, each replaced by a rename (an
    /// ACME client, a SPIFFE helper).
    Files,
    /// `tls/server.pem -> ..data/server.pem`, `..data -> ..vN`: a new
    /// `..vN` directory, then one rename of a new `..data` link over the old
    /// (a Kubernetes secret volume). Both files change at once.
    Swapped,
}

/// The directory xdsd's certificate and key are in.
struct TlsDir {
    path: PathBuf,
    layout: Layout,
    generation: std::cell::Cell<u32>,
}

impl TlsDir {
    fn new(path: PathBuf, layout: Layout) -> TlsDir {
        std::fs::create_dir_all(&path).expect("mkdir");
        if layout == Layout::Swapped {
            for name in ["server.pem", "server.key"] {
                std::os::unix::fs::symlink(format!("..data/{name}"), path.join(name))
                    .expect("symlink");
            }
        }
        TlsDir {
            path,
            layout,
            generation: std::cell::Cell::new(0),
        }
    }

    fn cert(&self) -> PathBuf {
        self.path.join("server.pem")
    }

    fn key(&self) -> PathBuf {
        self.path.join("server.key")
    }

    /// Installs a certificate and key, as the layout has it.
    fn install(&self, cert: &Path, key: &Path) {
        if self.layout == Layout::Files {
            install(cert, &self.cert());
            install(key, &self.key());
            return;
        }
        let n = self.generation.get() + 1;
        self.generation.set(n);
        let version = self.path.join(format!("..v{n}"));
        std::fs::create_dir_all(&version).expect("mkdir");
        std::fs::copy(cert, version.join("server.pem")).expect("copy");
        std::fs::copy(key, version.join("server.key")).expect("copy");
        let staged = self.path.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..v{n}"), &staged).expect("symlink");
        std::fs::rename(&staged, self.path.join("..data")).expect("rename");
    }
}

/// xdsd serving `simple_set` on `port` over mTLS, its certificate and key
/// in `tls/` (copies of `cert` and `key`), clients checked against `client_ca`.
struct Served {
    xds: Xdsd,
    tls: TlsDir,
    _backend: Backend,
}

impl Served {
    fn start(
        work: &Path,
        port: u16,
        (cert, key): (&Path, &Path),
        client_ca: &Path,
        layout: Layout,
    ) -> Served {
        let backend = Backend::start("backend-a");
        let config = work.join("config");
        std::fs::create_dir_all(&config).expect("mkdir");
        for (name, text) in simple_set(port, &backend) {
            std::fs::write(config.join(name), text).expect("write config");
        }
        let tls = TlsDir::new(work.join("tls"), layout);
        tls.install(cert, key);
        let xds = Xdsd::start_with(
            &config,
            &work.join("xdsd.log"),
            &mtls_serve_flags(&tls.cert(), &tls.key(), client_ca, AUTHORIZE),
        );
        Served {
            xds,
            tls,
            _backend: backend,
        }
    }

    /// Replaces the certificate and key.
    fn rotate(&self, cert: &Path, key: &Path) {
        self.tls.install(cert, key);
    }

    /// `/status`'s `tls` object once `probe` accepts it (10 s at most).
    fn wait_tls(&self, what: &str, probe: impl Fn(&Value) -> bool) -> Value {
        wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
            let tls = self.xds.admin_json("/status")["tls"].clone();
            probe(&tls).then_some(tls)
        })
        .unwrap_or_else(|| {
            panic!(
                "/status tls never showed {what}: {:#}\n{}",
                self.xds.admin_json("/status")["tls"],
                self.xds.log()
            )
        })
    }

    /// A sample of xdsd's `/metrics` (name with labels, as printed).
    fn metric(&self, sample: &str) -> Option<f64> {
        let body = self.xds.admin_get("/metrics").body;
        body.lines()
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(name, _)| *name == sample)
            .and_then(|(_, v)| v.parse().ok())
    }
}

/// Copies `from` to `to` as agents write: a temporary file in `to`'s
/// directory, then a rename over `to`.
fn install(from: &Path, to: &Path) {
    let staged = to.with_extension("new");
    std::fs::copy(from, &staged).expect("copy");
    std::fs::rename(&staged, to).expect("rename");
}

/// An Envoy on mTLS ADS to xdsd, from `xdsd bootstrap --format envoy`:
/// trusting only `ca`, presenting `cert` and `key`.
fn envoy(work: &Path, node_id: &str, xds: &Xdsd, ca: &Path, cert: &Path, key: &Path) -> Envoy {
    let tls = [
        "--tls-ca",
        path_str(ca),
        "--tls-cert",
        path_str(cert),
        "--tls-key",
        path_str(key),
    ];
    envoy_bootstrapped_by_xdsd(work, node_id, node_id, xds, &tls)
}

/// The stats that move when xdsd sends something or the ADS connection
/// breaks: connection state, xDS updates, connections to xdsd.
fn xds_counters(envoy: &Envoy) -> Vec<(String, String)> {
    let stats = envoy.stats();
    let keep = |name: &str| {
        name == "control_plane.connected_state"
            || name.starts_with("cluster_manager.cds.update_")
            || name.starts_with("listener_manager.lds.update_")
            || name.starts_with("cluster.xds_cluster.upstream_cx_") && !name.contains("_bytes")
    };
    // Counters and gauges only (histogram summaries change as intervals pass).
    stats
        .into_iter()
        .filter(|(name, value)| keep(name) && value.parse::<u64>().is_ok())
        .collect()
}

/// Waits (15 s at most) until `envoy` is connected and has its clusters.
fn wait_configured(envoy: &Envoy, what: &str) {
    wait_admin(envoy);
    let configured = wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        let stats = envoy.stats();
        let connected = stats
            .get("control_plane.connected_state")
            .map(String::as_str)
            == Some("1");
        let clusters = stats
            .get("cluster_manager.cds.update_success")
            .is_some_and(|n| n != "0");
        (connected && clusters).then_some(())
    });
    assert!(configured.is_some(), "{what} never got its config");
}

/// Waits (10 s at most) until `envoy`'s admin endpoint answers.
fn wait_admin(envoy: &Envoy) {
    let up = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        common::http_get(envoy.admin, "/ready", Duration::from_secs(1)).ok()
    });
    assert!(up.is_some(), "Envoy's admin never answered");
}

/// The `stream` id of node `id`'s one ADS stream.
fn stream_of(xds: &Xdsd, id: &str) -> u64 {
    let clients = common::admin::clients_of(xds, id);
    assert_eq!(clients.len(), 1, "one stream for {id}: {clients:#?}");
    clients[0]["stream"].as_u64().expect("stream id")
}

/// When a certificate file's leaf expires (Unix seconds), for the metric.
fn not_after(cert: &Path) -> f64 {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_file(cert).expect("certificate");
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).expect("X.509");
    parsed.validity().not_after.timestamp() as f64
}

#[test]
fn a_rotated_certificate_serves_new_clients_and_leaves_connected_ones_alone() {
    let work = ScratchDir::new("tls-rotation");
    let (old_dir, new_dir) = (work.path().join("old"), work.path().join("new"));
    std::fs::create_dir_all(&old_dir).expect("mkdir");
    std::fs::create_dir_all(&new_dir).expect("mkdir");
    // Two CAs: the server certificate moves from the old to the new one;
    // client certificates stay with the old (it remains the client CA).
    let old = Pki::new(&old_dir);
    let new = Pki::new(&new_dir);
    let (old_cert, old_key) = old.leaf("server", server_sans());
    let (new_cert, new_key) = new.leaf("server", server_sans());
    let client = |node: &str| old.leaf(node, vec![spiffe(node)]);
    let port = free_port();
    // One rename swaps both files: no moment with a mismatched pair.
    let served = Served::start(
        work.path(),
        port,
        (&old_cert, &old_key),
        &old.ca_path(),
        Layout::Swapped,
    );
    let xds = &served.xds;
    assert_eq!(
        served.metric("xdsd_tls_certificate_expiry_timestamp_seconds"),
        Some(not_after(&old_cert))
    );

    let (cert, key) = client("edge-1");
    let steady = envoy(work.path(), "edge-1", xds, &old.ca_path(), &cert, &key);
    wait_body(port, "/", "backend-a", Duration::from_secs(15));
    wait_configured(&steady, "the first Envoy");
    common::admin::wait_all_acked(xds, "edge-1", &common::config::XDS_TYPES);
    let stream = stream_of(xds, "edge-1");
    let before = xds_counters(&steady);
    let sent_before = common::admin::clients_of(xds, "edge-1")[0]["types"].clone();

    served.rotate(&new_cert, &new_key);
    let tls = served.wait_tls("a rotation", |tls| tls["rotations"] == 1);
    assert_eq!(tls["refused"], 0, "{tls:#}");
    assert!(tls["last_error"].is_null(), "{tls:#}");
    assert!(
        xds.log().contains("TLS certificate rotated"),
        "the rotation is logged:\n{}",
        xds.log()
    );
    assert_eq!(
        served.metric("xdsd_tls_certificate_expiry_timestamp_seconds"),
        Some(not_after(&new_cert))
    );
    assert_eq!(
        served.metric("xdsd_tls_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );

    // A new Envoy trusting only the new CA gets its config (and is
    // authorized by the identity in its certificate, read from the session).
    let (cert, key) = client("edge-2");
    let fresh = envoy(work.path(), "edge-2", xds, &new.ca_path(), &cert, &key);
    wait_configured(&fresh, "an Envoy trusting only the new CA");
    // One trusting only the old CA refuses xdsd's new certificate.
    let (cert, key) = client("edge-3");
    let stale = envoy(work.path(), "edge-3", xds, &old.ca_path(), &cert, &key);
    wait_admin(&stale);
    std::thread::sleep(Duration::from_secs(3));
    let stats = stale.stats();
    assert_eq!(
        stats
            .get("control_plane.connected_state")
            .map(String::as_str),
        Some("0"),
        "an Envoy trusting only the old CA does not connect after the rotation"
    );
    assert_eq!(
        stats
            .get("cluster_manager.cds.update_success")
            .map(String::as_str),
        Some("0")
    );

    // The first Envoy: same stream, nothing sent, nothing failed.
    assert_eq!(
        stream_of(xds, "edge-1"),
        stream,
        "the first Envoy's stream is still the one it opened before the rotation"
    );
    let after = xds_counters(&steady);
    assert_eq!(
        after, before,
        "connection state, xDS update counters and connections to xdsd did not move"
    );
    assert!(
        after.contains(&("control_plane.connected_state".into(), "1".into())),
        "{after:?}"
    );
    assert!(
        after
            .iter()
            .any(|(name, value)| name == "cluster.xds_cluster.upstream_cx_total" && value == "1"),
        "one connection to xdsd all along: {after:?}"
    );
    assert_eq!(
        common::admin::clients_of(xds, "edge-1")[0]["types"],
        sent_before,
        "xdsd sent the first Envoy nothing (its versions and pending responses as before)"
    );
    wait_body(port, "/", "backend-a", Duration::from_secs(5));
}

#[test]
fn a_pair_that_does_not_load_is_refused_once_and_the_old_one_stays() {
    let work = ScratchDir::new("tls-refused");
    let pki = Pki::new(work.path());
    let (cert, key) = pki.leaf("server", server_sans());
    let (_, foreign_key) = pki.leaf("other", server_sans());
    let (good_cert, good_key) = pki.leaf("server-2", server_sans());
    let port = free_port();
    let served = Served::start(
        work.path(),
        port,
        (&cert, &key),
        &pki.ca_path(),
        Layout::Files,
    );
    let xds = &served.xds;
    let refusals = || xds.log().matches("TLS files not loaded").count();

    // The key of another certificate.
    served.rotate(&cert, &foreign_key);
    let tls = served.wait_tls("a refusal", |tls| tls["refused"] == 1);
    let error = tls["last_error"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("server.key: the private key does not match the certificate"),
        "/status says why: {tls:#}"
    );
    assert_eq!(tls["rotations"], 0);
    assert_eq!(
        served.metric("xdsd_tls_reloads_total{result=\"refused\"}"),
        Some(1.0)
    );
    assert_eq!(
        served.metric("xdsd_tls_certificate_expiry_timestamp_seconds"),
        Some(not_after(&cert)),
        "the expiry is the served certificate's"
    );
    let logged = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        (refusals() == 1).then_some(())
    });
    assert!(logged.is_some(), "the refusal is logged:\n{}", xds.log());

    // Read again (SIGHUP, and an unrelated file in the directory): the same
    // content is not refused again.
    std::fs::write(served.tls.path.join("README"), "unrelated").expect("write");
    let signal = std::process::Command::new("kill")
        .args(["-HUP", &xds.guard.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(signal.success());
    let reread = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        xds.log().contains("SIGHUP: reloading").then_some(())
    });
    assert!(reread.is_some(), "SIGHUP is logged:\n{}", xds.log());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(refusals(), 1, "logged once per content:\n{}", xds.log());
    assert_eq!(served.xds.admin_json("/status")["tls"]["refused"], 1);

    // New clients still get the old pair.
    let (client_cert, client_key) = pki.leaf("edge-1", vec![spiffe("edge-1")]);
    let envoy = envoy(
        work.path(),
        "edge-1",
        xds,
        &pki.ca_path(),
        &client_cert,
        &client_key,
    );
    wait_configured(&envoy, "an Envoy after the refusal");
    wait_body(port, "/", "backend-a", Duration::from_secs(15));

    // A good pair then rotates and clears the error. (Two renames: were
    // the new certificate read before its key, that mismatch would be
    // refused too, hence no exact count.)
    served.rotate(&good_cert, &good_key);
    let tls = served.wait_tls("the good pair", |tls| tls["rotations"] == 1);
    assert!(tls["last_error"].is_null(), "{tls:#}");
    assert!(tls["refused"].as_u64() >= Some(1), "{tls:#}");
    assert_eq!(
        served.metric("xdsd_tls_certificate_expiry_timestamp_seconds"),
        Some(not_after(&good_cert))
    );
}
