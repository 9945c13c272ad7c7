//! The admin API as an operator uses it, end to end against the built binary
//! and real Envoys: `/clients` (who is connected, what each stream was sent
//! and answered), NACKs in `/clients`, `/metrics`, `xdsd status` and CSDS, `/config` (the same
//! bytes as `xdsd render`), the Prometheus text after a change, and what a
//! reload logs and `/status` reports.
//!
//! Same ground rules as `serve.rs`: 127.0.0.1 only, free ports, every
//! process killed by a guard on drop, scratch directories, bounded waits.

use crate::common;

use crate::common::admin::{clients_of, served_version, status, wait_all_acked};
use crate::common::config::{
    CLUSTER, ENDPOINTS, LISTENER, ROUTE, XDS_TYPES, bare, cluster_spec, documents, endpoints_spec,
    envelope, listener_spec, route_spec, service, simple_set, simple_set_via, tls_cluster_spec_via,
};
use crate::common::stack::{Stack, assert_served_by, wait_body, write_atomic};
use crate::common::{
    Backend, Envoy, NodeSpec, ScratchDir, XdsSource, Xdsd, free_port, root, wait_for,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Seconds since the Unix epoch, now.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Is there an established TCP connection from `127.0.0.1:from` to
/// `127.0.0.1:to`, according to the kernel (`/proc/net/tcp`)?
fn loopback_connection(from: u16, to: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let (local, remote) = (format!("0100007F:{from:04X}"), format!("0100007F:{to:04X}"));
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl, local_address, rem_address, st (01: ESTABLISHED), ...
        fields.len() > 3 && fields[1] == local && fields[2] == remote && fields[3] == "01"
    })
}

/// `text` percent-encoded for a query string (everything but unreserved characters).
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One Prometheus sample.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed `/metrics` page.
#[derive(Debug)]
struct Metrics {
    samples: Vec<Sample>,
}

impl Metrics {
    /// Parses Prometheus text format 0.0.4 strictly: every sample line is
    /// `name{label="value",...} number`, belongs to a family with a
    /// `# HELP` and a `# TYPE` given before it (a histogram's `_bucket`,
    /// `_sum` and `_count` belong to its family), and appears once.
    fn parse(text: &str) -> Result<Metrics, String> {
        let mut help = std::collections::BTreeSet::new();
        let mut kinds: BTreeMap<String, String> = BTreeMap::new();
        let mut samples: Vec<Sample> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let at = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest
                    .split_once(' ')
                    .ok_or_else(|| at("HELP without text"))?;
                if text.trim().is_empty() || !help.insert(name.to_string()) {
                    return Err(at("empty or repeated HELP"));
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest
                    .split_once(' ')
                    .ok_or_else(|| at("TYPE without kind"))?;
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(at("unknown TYPE"));
                }
                if kinds.insert(name.to_string(), kind.to_string()).is_some() {
                    return Err(at("repeated TYPE"));
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let sample = parse_sample(line).map_err(|e| at(&e))?;
            let family = match kinds.get(&sample.name) {
                Some(_) => sample.name.clone(),
                None => ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| {
                        let base = sample.name.strip_suffix(suffix)?;
                        (kinds.get(base).map(String::as_str) == Some("histogram"))
                            .then(|| base.to_string())
                    })
                    .ok_or_else(|| at("sample before (or without) its family's # TYPE"))?,
            };
            if !help.contains(&family) {
                return Err(at("sample before (or without) its family's # HELP"));
            }
            if samples
                .iter()
                .any(|s| s.name == sample.name && s.labels == sample.labels)
            {
                return Err(at("repeated sample"));
            }
            samples.push(sample);
        }
        Ok(Metrics { samples })
    }

    /// The value of the sample `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == labels)
            .map(|s| s.value)
    }
}

/// `name{k="v",...} value` (no timestamp).
fn parse_sample(line: &str) -> Result<Sample, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let end = line.find(|c: char| !is_name(c)).unwrap_or(line.len());
    let (name, mut rest) = line.split_at(end);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("bad metric name".into());
    }
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let end = rest.find('=').ok_or("label without `=`".to_string())?;
            let key = &rest[..end];
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad label name {key:?}"));
            }
            rest = rest[end + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let close = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        _ => return Err("bad escape in label value".into()),
                    },
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            };
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("repeated label {key}"));
            }
            rest = &rest[close + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => {
            v.parse().map_err(|_| format!("bad value {v:?}"))?
        }
        v => return Err(format!("bad value {v:?}")),
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The checker itself: what `/metrics` is held to is not vacuous.
#[test]
fn metrics_parser_is_strict() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{type=\"x\",k=\"q\\\"\"} 3\n\
                # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n";
    let m = Metrics::parse(good).expect("valid text parses");
    assert_eq!(m.get("a_total", &[("type", "x"), ("k", "q\"")]), Some(3.0));
    assert_eq!(m.get("h_bucket", &[("le", "+Inf")]), Some(1.0));
    for bad in [
        "a 1\n",                                               // no HELP, no TYPE
        "# TYPE a gauge\na 1\n",                               // no HELP
        "# HELP a A.\na 1\n",                                  // no TYPE
        "a 1\n# HELP a A.\n# TYPE a gauge\n",                  // sample before its family
        "# HELP a A.\n# TYPE a gauge\na{k=v} 1\n",             // unquoted label value
        "# HELP a A.\n# TYPE a gauge\na{k=\"v\"}1\n",          // no space
        "# HELP a A.\n# TYPE a gauge\na one\n",                // not a number
        "# HELP a A.\n# TYPE a gauge\na 1 2 3\n",              // trailing junk
        "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",             // repeated sample
        "# HELP a A.\n# TYPE a gauge\na_bucket 1\n",           // _bucket of a gauge
        "# HELP a A.\n# TYPE a gauge\na{k=\"v\",k=\"w\"} 1\n", // repeated label
    ] {
        assert!(Metrics::parse(bad).is_err(), "accepted {bad:?}");
    }
}

/// `/metrics`, parsed (panics, showing the page, if it is not valid).
fn metrics(xdsd: &Xdsd) -> (Metrics, String) {
    let r = xdsd.admin_get("/metrics");
    assert_eq!(r.status, 200, "/metrics: {}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "/metrics content-type: {:?}",
        r.header("content-type")
    );
    let parsed = Metrics::parse(&r.body)
        .unwrap_or_else(|e| panic!("/metrics is not valid Prometheus text: {e}\n{}", r.body));
    (parsed, r.body)
}

/// A metric sample's value, or a panic showing the page.
fn metric(m: &(Metrics, String), name: &str, labels: &[(&str, &str)]) -> f64 {
    m.0.get(name, labels)
        .unwrap_or_else(|| panic!("/metrics has no {name}{labels:?}:\n{}", m.1))
}

// ---------------------------------------------------------------------------
// /clients
// ---------------------------------------------------------------------------

/// One Envoy with a locality, over SotW ADS: `/clients` shows its stream in
/// full, every type SYNCED.
#[test]
fn clients_show_connected_envoy() {
    clients_flow("clients", XdsSource::SOTW);
}

/// The same over delta ADS: `incremental` is true.
#[test]
fn clients_show_connected_envoy_delta() {
    clients_flow("clients-delta", XdsSource::DELTA);
}

fn clients_flow(tag: &str, source: XdsSource) {
    let a = Backend::start("backend-a");
    let port = free_port();
    let work = ScratchDir::new(tag);
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir config");
    for (name, text) in simple_set_via(port, &a, source) {
        std::fs::write(config.join(name), text).expect("write config file");
    }
    let xdsd = Xdsd::start(&config, &work.path().join("xdsd.log"));
    let started = unix_now();
    let node = NodeSpec {
        id: tag,
        cluster: "edge-eu",
        locality: Some(("eu-west-1", "eu-west-1b")),
    };
    let envoy = Envoy::start_node(work.path(), node, xdsd.listen, source);
    wait_body(port, "/", "backend-a", Duration::from_secs(10));

    let types = wait_all_acked(&xdsd, tag, &XDS_TYPES);
    let clients = clients_of(&xdsd, tag);
    let [c] = clients.as_slice() else {
        panic!("one /clients entry for {tag} (one ADS stream): {clients:#?}");
    };
    eprintln!("{tag}: /clients entry: {c:#}");
    assert!(c["stream"].is_u64(), "stream id: {c:#}");
    assert_eq!(c["node_cluster"], "edge-eu", "{c:#}");
    assert_eq!(
        c["locality"],
        json!({"region": "eu-west-1", "zone": "eu-west-1b", "sub_zone": ""}),
        "the locality from Envoy's bootstrap"
    );
    let agent = c["user_agent"].as_str().unwrap_or_default();
    // Envoy sends its version as a structured build version: 1.40.x here.
    let version = agent.strip_prefix("envoy ").unwrap_or_default();
    assert!(
        version.split('.').count() == 3 && version.split('.').all(|n| n.parse::<u32>().is_ok()),
        "user_agent is `envoy MAJOR.MINOR.PATCH`: {c:#}"
    );
    assert_eq!(c["service"], "ADS", "{c:#}");
    assert_eq!(
        c["incremental"],
        source == XdsSource::DELTA,
        "incremental for {source:?}: {c:#}"
    );
    let since = c["connected_since"].as_f64().unwrap_or_default();
    assert!(
        since >= started - 1.0 && since <= unix_now() + 1.0,
        "connected_since {since} is when Envoy connected (started {started}): {c:#}"
    );

    // The peer is Envoy's end of a live connection to xdsd's xDS port.
    let peer = c["peer"].as_str().unwrap_or_default();
    let peer_port: u16 = peer
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("peer is 127.0.0.1:PORT: {c:#}"));
    assert!(
        loopback_connection(peer_port, xdsd.listen),
        "no established connection {peer} -> 127.0.0.1:{} (xdsd's xDS port) in /proc/net/tcp",
        xdsd.listen
    );

    assert_eq!(
        types.keys().collect::<Vec<_>>().len(),
        XDS_TYPES.len(),
        "exactly the four types Envoy asked for: {types:#?}"
    );
    for t in XDS_TYPES {
        let s = &types[t];
        assert_eq!(s["status"], "SYNCED", "{t}: {s:#}");
        let sent = s["sent_version"].as_str().unwrap_or_default();
        assert!(!sent.is_empty(), "{t}: a version was sent: {s:#}");
        assert_eq!(s["acked_version"], sent, "{t}: {s:#}");
        assert_eq!(s["pending"], false, "{t}: {s:#}");
        assert_eq!(s["resources"], 1, "{t}: one resource of each type: {s:#}");
        assert!(s["last_nack"].is_null(), "{t}: {s:#}");
    }

    let m = metrics(&xdsd);
    let protocol = if source == XdsSource::DELTA {
        "delta"
    } else {
        "sotw"
    };
    let streams = |p: &str| {
        metric(
            &m,
            "xdsd_connected_streams",
            &[("service", "ads"), ("protocol", p)],
        )
    };
    assert_eq!(streams(protocol), 1.0, "{}", m.1);
    let other = if protocol == "delta" { "sotw" } else { "delta" };
    assert_eq!(streams(other), 0.0, "{}", m.1);
    assert_eq!(
        metric(&m, "xdsd_client_types", &[("status", "SYNCED")]),
        4.0
    );
    drop((envoy, xdsd));
}

/// A cluster xdsd accepts but Envoy rejects (TLS verified against a CA file
/// that does not exist on the proxy's host): `/clients` shows the type
/// NACKED with Envoy's error text, and `/metrics` counts it.
#[test]
fn nack_shows_in_clients_and_metrics() {
    let a = Backend::start("backend-a");
    let port = free_port();
    let stack = Stack::start("ops-nack", &simple_set(port, &a));
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    let good = wait_all_acked(&stack.xdsd, "ops-nack", &XDS_TYPES);
    let m = metrics(&stack.xdsd);
    assert_eq!(metric(&m, "xdsd_nacks_total", &[("type", "Cluster")]), 0.0);
    assert_eq!(
        metric(&m, "xdsd_client_types", &[("status", "NACKED")]),
        0.0
    );

    let missing_ca = stack.work.path().join("no-such-ca.pem");
    stack.write(
        "a.yaml",
        &documents(&[
            bare(
                CLUSTER,
                &tls_cluster_spec_via("a", &missing_ca, XdsSource::SOTW),
            ),
            bare(ENDPOINTS, &endpoints_spec("a", a.port)),
        ]),
    );
    let mut last = Value::Null;
    let cds = wait_for(Duration::from_secs(5), Duration::from_millis(25), || {
        let clients = clients_of(&stack.xdsd, "ops-nack");
        last = Value::Array(clients.clone());
        let cds = clients.first()?["types"][CLUSTER].clone();
        (cds["status"] == "NACKED").then_some(cds)
    })
    .unwrap_or_else(|| panic!("/clients never showed the Cluster type NACKED: {last:#}"));
    eprintln!("/clients Cluster entry after the NACK: {cds:#}");
    let nack = &cds["last_nack"];
    let error = nack["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no-such-ca.pem"),
        "last_nack.error is Envoy's text (naming the missing file): {cds:#}"
    );
    let sent = cds["sent_version"].as_str().unwrap_or_default();
    assert!(!sent.is_empty(), "{cds:#}");
    assert_eq!(nack["version"], sent, "the NACKed version is the one sent");
    assert_ne!(
        cds["acked_version"], sent,
        "the NACKed version is not ACKed"
    );
    assert_eq!(
        cds["acked_version"], good[CLUSTER]["acked_version"],
        "the ACKed version is still the last good one: {cds:#}"
    );
    assert_eq!(cds["pending"], false, "the NACK answered it: {cds:#}");
    let at = nack["time"].as_f64().unwrap_or_default();
    assert!((unix_now() - at).abs() < 30.0, "NACK time {at}: {cds:#}");
    assert_eq!(
        stack
            .envoy
            .stat("cluster_manager.cds.update_rejected")
            .as_deref(),
        Some("1"),
        "Envoy really rejected it"
    );
    assert_served_by(port, "/", "backend-a", 3);

    let m = metrics(&stack.xdsd);
    assert!(
        metric(&m, "xdsd_nacks_total", &[("type", "Cluster")]) >= 1.0,
        "{}",
        m.1
    );
    assert!(
        metric(&m, "xdsd_client_types", &[("status", "NACKED")]) >= 1.0,
        "{}",
        m.1
    );
    for kind in ["ClusterLoadAssignment", "Listener", "RouteConfiguration"] {
        assert_eq!(
            metric(&m, "xdsd_nacks_total", &[("type", kind)]),
            0.0,
            "only the Cluster type was NACKED:\n{}",
            m.1
        );
    }

    // `xdsd status` prints the same, with the NACK's text.
    let table = xdsd_status(&stack.xdsd);
    eprintln!("xdsd status:\n{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("ops-nack "))
        .unwrap_or_else(|| panic!("no row for ops-nack:\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..8],
        [
            "ops-nack",
            "ops-nack-cluster",
            "ADS",
            "sotw",
            "NACKED",
            "SYNCED",
            "SYNCED",
            "SYNCED"
        ],
        "node, cluster, stream, CDS EDS LDS RDS:\n{table}"
    );
    assert!(
        table.contains(&format!("ops-nack CDS (version {sent}): {error}")),
        "the NACK's version and Envoy's text are printed:\n{table}"
    );

    // CSDS on the xDS port says the same per resource.
    let csds = csds_fetch(stack.xdsd.listen);
    let [client] = csds.config.as_slice() else {
        panic!("one client in CSDS: {csds:?}");
    };
    assert_eq!(
        client.node.as_ref().map(|n| n.id.as_str()),
        Some("ops-nack")
    );
    for config in &client.generic_xds_configs {
        let want = if config.type_url == CLUSTER { 4 } else { 1 }; // ERROR : SYNCED
        assert_eq!(config.config_status, want, "{config:?}");
        if config.type_url == CLUSTER {
            let state = config.error_state.as_ref().expect("error state");
            assert_eq!(
                (state.version_info.as_str(), state.details.as_str()),
                (sent, error)
            );
        }
    }
    let types: std::collections::BTreeSet<&str> = client
        .generic_xds_configs
        .iter()
        .map(|c| c.type_url.as_str())
        .collect();
    assert_eq!(
        types,
        XDS_TYPES.into_iter().collect(),
        "every type is listed"
    );
}

/// `xdsd status` against `xdsd`'s admin port: its stdout (asserting exit 0).
fn xdsd_status(xdsd: &Xdsd) -> String {
    let admin = format!("127.0.0.1:{}", xdsd.admin);
    let out = common::xdsd(&["status", "--admin", &admin]);
    assert!(out.status.success(), "xdsd status: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// CSDS `FetchClientStatus` for every client, on the xDS port.
fn csds_fetch(xds_port: u16) -> envoy_types::pb::envoy::service::status::v3::ClientStatusResponse {
    use envoy_types::pb::envoy::service::status::v3::ClientStatusRequest;
    use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut client =
            ClientStatusDiscoveryServiceClient::connect(format!("http://127.0.0.1:{xds_port}"))
                .await
                .expect("connect to CSDS");
        client
            .fetch_client_status(ClientStatusRequest::default())
            .await
            .expect("FetchClientStatus")
            .into_inner()
    })
}

#[test]
fn status_fails_when_the_daemon_is_unreachable() {
    let admin = format!("127.0.0.1:{}", free_port());
    let out = common::xdsd(&["status", "--admin", &admin]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach xdsd's admin API"), "{stderr}");
}

// ---------------------------------------------------------------------------
// /config
// ---------------------------------------------------------------------------

/// `xdsd render --dir dir` with `args`: its stdout (asserting exit 0).
fn render(dir: &std::path::Path, args: &[&str]) -> String {
    let dir = dir.to_string_lossy();
    let mut all = vec!["render", "--dir", &dir];
    all.extend_from_slice(args);
    let out = common::xdsd(&all);
    assert!(
        out.status.success(),
        "xdsd {all:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("render prints UTF-8")
}

/// `/config` answers exactly what `xdsd render` prints for each node, format
/// and type, from the set being served (per-node selectors included, node
/// ids percent-decoded); its `x-xdsd-version` is `/status`'s served version.
#[test]
fn config_matches_render() {
    let work = ScratchDir::new("ops-config");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir config");
    let example = root().join("config-examples/node-targeting");
    for entry in std::fs::read_dir(&example).expect("read example").flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".yaml") {
            std::fs::copy(entry.path(), config.join(&name)).expect("copy example file");
        }
    }
    // A cluster (with its endpoints) only for nodes whose id is a SPIFFE id under a/.
    let spiffe = Some(r#"{id: ["spiffe://a/*"]}"#);
    std::fs::write(
        config.join("spiffe.yaml"),
        documents(&[
            envelope("Cluster", spiffe, &cluster_spec("spiffe-only")),
            envelope(
                "ClusterLoadAssignment",
                spiffe,
                &endpoints_spec("spiffe-only", 9),
            ),
        ]),
    )
    .expect("write");
    let xdsd = Xdsd::start(&config, &work.path().join("xdsd.log"));

    // (node id, node cluster); the empty node sees only selector-free resources.
    let nodes = [
        ("edge-proxy", "edge-1"),
        ("internal-proxy", "internal-1"),
        ("spiffe://a/b", "edge-1"),
        ("", ""),
    ];
    // (query, render flags)
    let variants: [(&str, &[&str]); 5] = [
        ("", &["--format", "json"]),
        ("&format=json", &["--format", "json"]),
        ("&format=yaml", &["--format", "yaml"]),
        ("&type=Cluster", &["--format", "json", "--type", "Cluster"]),
        (
            "&type=RouteConfiguration&format=yaml",
            &["--format", "yaml", "--type", "RouteConfiguration"],
        ),
    ];
    let version = served_version(&status(&xdsd));
    let mut full: BTreeMap<&str, String> = BTreeMap::new();
    let mut renders: BTreeMap<Vec<&str>, String> = BTreeMap::new();
    for (id, cluster) in nodes {
        let node_query = if id.is_empty() {
            String::new()
        } else {
            format!(
                "node_id={}&node_cluster={}",
                query_escape(id),
                query_escape(cluster)
            )
        };
        for (query, flags) in variants {
            let path = format!("/config?{node_query}{query}");
            let r = xdsd.admin_get(&path);
            assert_eq!(r.status, 200, "GET {path}: {}", r.body);
            assert_eq!(
                r.header("x-xdsd-version"),
                Some(version.as_str()),
                "GET {path}: x-xdsd-version is /status's served_version"
            );
            let want_type = if flags.contains(&"yaml") {
                "application/yaml"
            } else {
                "application/json"
            };
            assert_eq!(r.header("content-type"), Some(want_type), "GET {path}");
            let mut args: Vec<&str> = Vec::new();
            if !id.is_empty() {
                args.extend(["--node-id", id, "--node-cluster", cluster]);
            }
            args.extend_from_slice(flags);
            let rendered = renders
                .entry(args.clone())
                .or_insert_with(|| render(&config, &args));
            assert!(
                r.body == *rendered,
                "GET {path} differs from `xdsd render {}`:\n--- /config\n{}\n--- render\n{rendered}",
                args.join(" "),
                r.body
            );
            if query.is_empty() {
                full.insert(id, r.body);
            }
        }
    }
    assert_ne!(
        full["edge-proxy"], full["internal-proxy"],
        "edge and internal nodes are served different route configurations"
    );
    assert!(
        full["spiffe://a/b"].contains("spiffe-only") && !full["edge-proxy"].contains("spiffe-only"),
        "the percent-encoded node id selects the SPIFFE-only cluster"
    );
    assert!(
        !full[""].contains("local_route"),
        "a node with no identity gets no targeted route:\n{}",
        full[""]
    );

    // Bad parameters.
    for query in ["type=Nope", "node_id=x&type=Clusterz", "format=xml"] {
        let r = xdsd.admin_get(&format!("/config?{query}"));
        assert_eq!(r.status, 400, "/config?{query}: {}", r.body);
    }

    // After a change, /config is the new served set.
    let extra = Backend::start("extra");
    write_atomic(&config, "extra.yaml", &service("extra", extra.port));
    let changed = wait_for(Duration::from_secs(5), Duration::from_millis(25), || {
        let s = status(&xdsd);
        (served_version(&s) != version).then(|| served_version(&s))
    })
    .expect("/status serves a new version after the change");
    let r = xdsd.admin_get("/config?node_id=edge-proxy&node_cluster=edge-1");
    assert_eq!(r.header("x-xdsd-version"), Some(changed.as_str()));
    let rendered = render(
        &config,
        &[
            "--node-id",
            "edge-proxy",
            "--node-cluster",
            "edge-1",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.body, rendered, "/config after the change");
    assert!(r.body.contains("\"extra\""), "{}", r.body);
}

// ---------------------------------------------------------------------------
// /metrics after a change
// ---------------------------------------------------------------------------

/// After a change reached Envoy, `/metrics` is valid Prometheus text with
/// the push latency of that change, bytes sent, nodes and build info.
#[test]
fn metrics_after_change() {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let stack = Stack::start("ops-metrics", &simple_set(port, &a));
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    wait_all_acked(&stack.xdsd, "ops-metrics", &XDS_TYPES);
    let m = metrics(&stack.xdsd);
    assert!(
        m.0.get("xdsd_push_latency_seconds_count", &[("type", "Cluster")])
            .unwrap_or(0.0)
            == 0.0,
        "a client's first fetch is not a push of a change:\n{}",
        m.1
    );
    let bytes_before = metric(&m, "xdsd_sent_bytes_total", &[("type", "Cluster")]);
    assert!(bytes_before > 0.0, "{}", m.1);

    stack.write("b.yaml", &service("b", b.port));
    stack.write(
        "routes.yaml",
        &bare(ROUTE, &route_spec("local_route", &[("/", "b")])),
    );
    wait_body(port, "/", "backend-b", Duration::from_secs(10));

    let cluster = [("type", "Cluster")];
    let mut last = None;
    let m = wait_for(Duration::from_secs(5), Duration::from_millis(25), || {
        let m = metrics(&stack.xdsd);
        let counted = m.0.get("xdsd_push_latency_seconds_count", &cluster) >= Some(1.0);
        if counted {
            return Some(m);
        }
        last = Some(m.1);
        None
    })
    .unwrap_or_else(|| {
        panic!(
            "no Cluster push latency observed:\n{}",
            last.unwrap_or_default()
        )
    });
    eprintln!("/metrics after the change:\n{}", m.1);

    let count = metric(&m, "xdsd_push_latency_seconds_count", &cluster);
    let sum = metric(&m, "xdsd_push_latency_seconds_sum", &cluster);
    let inf = metric(
        &m,
        "xdsd_push_latency_seconds_bucket",
        &[("type", "Cluster"), ("le", "+Inf")],
    );
    assert!(count >= 1.0, "{}", m.1);
    assert!(sum > 0.0 && sum < 5.0, "push latency sum {sum} s:\n{}", m.1);
    assert_eq!(inf, count, "the +Inf bucket holds every observation");
    // Every type's buckets are cumulative: non-decreasing in `le`.
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in m.0.samples.iter() {
        if s.name != "xdsd_push_latency_seconds_bucket" {
            continue;
        }
        let le = match s.labels["le"].as_str() {
            "+Inf" => f64::INFINITY,
            le => le
                .parse()
                .unwrap_or_else(|_| panic!("bad le {le:?}:\n{}", m.1)),
        };
        buckets
            .entry(s.labels["type"].clone())
            .or_default()
            .push((le, s.value));
    }
    assert!(buckets.contains_key("Cluster"), "{}", m.1);
    for (kind, mut b) in buckets {
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert!(b.len() > 1, "{kind}: several buckets: {b:?}");
        assert!(
            b.windows(2).all(|w| w[0].1 <= w[1].1),
            "{kind}: buckets are cumulative: {b:?}"
        );
        assert_eq!(b.last().map(|l| l.0), Some(f64::INFINITY), "{kind}: {b:?}");
    }

    assert!(
        metric(&m, "xdsd_sent_bytes_total", &cluster) > bytes_before,
        "the pushed clusters' bytes are counted:\n{}",
        m.1
    );
    assert_eq!(metric(&m, "xdsd_connected_nodes", &[]), 1.0);
    assert_eq!(
        metric(
            &m,
            "xdsd_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "xdsd_snapshot_resources", &[("type", "Cluster")]),
        2.0
    );
    assert!(metric(&m, "xdsd_acks_total", &cluster) >= 2.0, "{}", m.1);
    assert!(
        metric(&m, "xdsd_responses_sent_total", &cluster) >= 2.0,
        "{}",
        m.1
    );
    let reloaded_at = metric(&m, "xdsd_last_successful_reload_timestamp_seconds", &[]);
    assert!(
        (unix_now() - reloaded_at).abs() < 30.0,
        "last reload {reloaded_at}"
    );
}

// ---------------------------------------------------------------------------
// Reloads: the log line and /status
// ---------------------------------------------------------------------------

/// A change that adds one cluster (with its endpoints) and changes one
/// route is logged as such and shows in `/status`; a rejected edit shows
/// its located error and counts as a failure.
#[test]
fn reload_reports_changes_and_failures() {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    // Everything in one file, so one rename is one change.
    let all = |routes: &[(&str, &str)], services: &[String]| {
        let mut docs = vec![
            bare(
                LISTENER,
                &listener_spec("listener_http", port, "local_route"),
            ),
            bare(ROUTE, &route_spec("local_route", routes)),
        ];
        docs.extend_from_slice(services);
        documents(&docs)
    };
    let mut stack = Stack::start(
        "ops-reload",
        &[("all.yaml", all(&[("/", "a")], &[service("a", a.port)]))],
    );
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    let s0 = status(&stack.xdsd);
    let v0 = served_version(&s0);
    let added = |n: u64| json!({"added": n, "removed": 0, "changed": 0});
    assert_eq!(
        s0["last_change"],
        json!({"Cluster": added(1), "ClusterLoadAssignment": added(1),
               "Listener": added(1), "RouteConfiguration": added(1)}),
        "the first load added everything: {s0:#}"
    );
    assert_eq!(
        s0["resources"],
        json!({"Cluster": 1, "ClusterLoadAssignment": 1, "Listener": 1, "RouteConfiguration": 1}),
        "{s0:#}"
    );
    assert_eq!(s0["reload_failures"], 0, "{s0:#}");

    let from = stack.xdsd.log().len();
    stack.write(
        "all.yaml",
        &all(
            &[("/b", "b"), ("/", "a")],
            &[service("a", a.port), service("b", b.port)],
        ),
    );
    wait_body(port, "/b", "backend-b", Duration::from_secs(10));
    let s1 = status(&stack.xdsd);
    let v1 = served_version(&s1);
    assert_ne!(v1, v0, "{s1:#}");
    let log = stack.xdsd.log();
    let reloaded: Vec<&str> = log
        .get(from..)
        .unwrap_or("")
        .lines()
        .filter(|l| l.contains("reloaded") && l.contains("changes="))
        .collect();
    let [line] = reloaded.as_slice() else {
        panic!(
            "one `reloaded` line for one change; log since the edit:\n{}",
            log.get(from..).unwrap_or("")
        );
    };
    eprintln!("xdsd logged: {line}");
    let changes =
        "changes=Cluster +1 -0 ~0, ClusterLoadAssignment +1 -0 ~0, RouteConfiguration +0 -0 ~1 ";
    assert!(
        line.contains(changes),
        "the reload line names the changes `{changes}`: {line}"
    );
    assert!(
        line.contains(&format!("version={v1}")) && line.contains(&format!("previous={v0}")),
        "the reload line names the new and previous versions ({v1}, {v0}): {line}"
    );
    assert_eq!(
        s1["last_change"],
        json!({
            "Cluster": added(1),
            "ClusterLoadAssignment": added(1),
            "RouteConfiguration": {"added": 0, "removed": 0, "changed": 1},
        }),
        "{s1:#}"
    );
    assert_eq!(
        s1["resources"],
        json!({"Cluster": 2, "ClusterLoadAssignment": 2, "Listener": 1, "RouteConfiguration": 1}),
        "{s1:#}"
    );
    assert_eq!(s1["last_load"]["ok"], true, "{s1:#}");
    assert_eq!(s1["reload_failures"], 0, "{s1:#}");
    let reloads = s1["reloads"].as_u64().unwrap_or_default();
    assert!(reloads >= 2, "the first load and the change: {s1:#}");

    // A reload that changes nothing (SIGHUP) keeps the last change and its time.
    let from = stack.xdsd.log().len();
    stack.xdsd.guard.signal("HUP");
    wait_for(Duration::from_secs(5), Duration::from_millis(25), || {
        let log = stack.xdsd.log();
        log.get(from..)?.contains("reload: no change").then_some(())
    })
    .unwrap_or_else(|| panic!("no no-op reload logged:\n{}", stack.xdsd.log()));
    let same = status(&stack.xdsd);
    assert_eq!(same["reloads"].as_u64(), Some(reloads + 1), "{same:#}");
    assert_eq!(same["last_change"], s1["last_change"], "{same:#}");
    assert_eq!(same["loaded_at"], s1["loaded_at"], "{same:#}");

    // A rejected edit: an unknown field on line 3, column 1.
    stack.write(
        "bad.yaml",
        &format!("\"@type\": {CLUSTER}\nname: c\nconnect_timeoutt: 1s\n"),
    );
    let mut last = Value::Null;
    let s2 = wait_for(Duration::from_secs(5), Duration::from_millis(25), || {
        last = status(&stack.xdsd);
        (last["last_load"]["ok"] == false).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("/status never showed the rejected edit: {last:#}"));
    eprintln!("/status after the rejected edit: {s2:#}");
    let errors: Vec<&str> = s2["last_load"]["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        errors.len() == 1
            && errors[0].contains("bad.yaml:3:1:")
            && errors[0].contains("connect_timeoutt"),
        "one error, at bad.yaml:3:1, naming the field: {errors:?}"
    );
    assert_eq!(s2["reload_failures"], 1, "{s2:#}");
    assert!(
        s2["reloads"].as_u64().unwrap_or_default() > reloads,
        "{s2:#}"
    );
    assert_eq!(served_version(&s2), v1, "still serving the last good set");
    assert_eq!(
        s2["last_change"], s1["last_change"],
        "a rejected edit changes nothing"
    );
    assert_eq!(s2["resources"], s1["resources"]);
    let m = metrics(&stack.xdsd);
    assert_eq!(metric(&m, "xdsd_reload_failures_total", &[]), 1.0);
    assert!(
        stack.xdsd.log()[from..].contains("reload rejected"),
        "xdsd logs the rejection"
    );
    assert_served_by(port, "/b", "backend-b", 3);
}
