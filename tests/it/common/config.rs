//! Builders for config-directory documents: clusters, endpoints, listeners
//! and routes as YAML text, in the three document forms xdsd reads.

use super::{Backend, XdsSource};
use std::path::Path;

pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// The four types a listener-route-cluster-endpoints set has.
pub const XDS_TYPES: [&str; 4] = [CLUSTER, ENDPOINTS, LISTENER, ROUTE];

/// An EDS cluster fed over ADS (fields only, no `"@type"`).
pub fn cluster_spec(name: &str) -> String {
    cluster_spec_via(name, XdsSource::SOTW)
}

/// An EDS cluster whose `eds_config` is `source`'s config source.
pub fn cluster_spec_via(name: &str, source: XdsSource) -> String {
    format!(
        "name: {name}
connect_timeout: 1s
type: EDS
eds_cluster_config:
  eds_config: {}
",
        source.config_source()
    )
}

/// An EDS cluster (EDS from `source`) with TLS to upstream, verified against
/// the CA file `trusted_ca`. xdsd accepts it; Envoy rejects it (NACKs) when
/// that file does not exist on its host.
pub fn tls_cluster_spec_via(name: &str, trusted_ca: &Path, source: XdsSource) -> String {
    format!(
        r#"{}transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    common_tls_context:
      validation_context:
        trusted_ca: {{filename: {}}}
"#,
        cluster_spec_via(name, source),
        trusted_ca.display()
    )
}

/// One endpoint `127.0.0.1:port` for cluster `name`.
pub fn endpoints_spec(name: &str, port: u16) -> String {
    format!(
        "cluster_name: {name}
endpoints:
- lb_endpoints:
  - endpoint:
      address:
        socket_address:
          address: 127.0.0.1
          port_value: {port}
"
    )
}

/// An HTTP listener on `127.0.0.1:port` taking its routes over RDS (ADS).
pub fn listener_spec(name: &str, port: u16, route: &str) -> String {
    listener_spec_via(name, port, route, XdsSource::SOTW)
}

/// An HTTP listener on `127.0.0.1:port` whose RDS `config_source` is `source`'s.
pub fn listener_spec_via(name: &str, port: u16, route: &str, source: XdsSource) -> String {
    let config_source = source.config_source();
    format!(
        r#"name: {name}
address:
  socket_address:
    address: 127.0.0.1
    port_value: {port}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: ingress_http
      rds:
        route_config_name: {route}
        config_source: {config_source}
      http_filters:
      - name: envoy.filters.http.router
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

/// A route configuration with one virtual host `*`: `(prefix, cluster)` in order.
pub fn route_spec(name: &str, routes: &[(&str, &str)]) -> String {
    let mut text = format!(
        "name: {name}
virtual_hosts:
- name: all
  domains: [\"*\"]
  routes:
"
    );
    for (prefix, cluster) in routes {
        text.push_str(&format!(
            "  - match:
      prefix: {prefix}
    route:
      cluster: {cluster}
"
        ));
    }
    text
}

/// A bare resource document: `"@type"` plus the fields.
pub fn bare(type_url: &str, spec: &str) -> String {
    format!("\"@type\": {type_url}\n{spec}")
}

pub fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| format!("{pad}{l}\n"))
        .collect::<String>()
}

/// An envelope document; `nodes` is a YAML flow mapping such as `{cluster: ["edge*"]}`.
pub fn envelope(kind: &str, nodes: Option<&str>, spec: &str) -> String {
    let nodes = nodes.map(|n| format!("nodes: {n}\n")).unwrap_or_default();
    format!("kind: {kind}\n{nodes}spec:\n{}", indent(spec, 2))
}

/// A DiscoveryResponse document holding typed resources.
pub fn discovery_response(items: &[(&str, String)]) -> String {
    let mut text = String::from("version_info: \"1\"\nresources:\n");
    for (type_url, spec) in items {
        let item = indent(&bare(type_url, spec), 2);
        text.push_str("- ");
        text.push_str(&item[2..]);
    }
    text
}

/// Documents joined into one multi-document file.
pub fn documents(docs: &[String]) -> String {
    docs.join("---\n")
}

/// Cluster `name` and its endpoints (on `port`), as bare documents in one file.
pub fn service(name: &str, port: u16) -> String {
    service_via(name, port, XdsSource::SOTW)
}

/// [`service`] with the cluster's EDS from `source`.
pub fn service_via(name: &str, port: u16, source: XdsSource) -> String {
    documents(&[
        bare(CLUSTER, &cluster_spec_via(name, source)),
        bare(ENDPOINTS, &endpoints_spec(name, port)),
    ])
}

/// A quickstart-like set: listener on `port`, `/` -> cluster a -> backend `a`.
pub fn simple_set(port: u16, a: &Backend) -> Vec<(&'static str, String)> {
    simple_set_via(port, a, XdsSource::SOTW)
}

/// [`simple_set`] with EDS and RDS from `source`.
pub fn simple_set_via(port: u16, a: &Backend, source: XdsSource) -> Vec<(&'static str, String)> {
    vec![
        (
            "listener.yaml",
            bare(
                LISTENER,
                &listener_spec_via("listener_http", port, "local_route", source),
            ),
        ),
        ("a.yaml", service_via("a", a.port, source)),
        (
            "routes.yaml",
            bare(ROUTE, &route_spec("local_route", &[("/", "a")])),
        ),
    ]
}

/// The files of a set with listener on `port`, clusters a and b, and `/`
/// routed to `to`.
pub fn two_service_set(
    port: u16,
    a: &super::Backend,
    b: &super::Backend,
    to: &str,
) -> Vec<(&'static str, String)> {
    vec![
        (
            "listener.yaml",
            bare(
                LISTENER,
                &listener_spec("listener_http", port, "local_route"),
            ),
        ),
        ("a.yaml", service("a", a.port)),
        ("b.yaml", service("b", b.port)),
        (
            "routes.yaml",
            bare(ROUTE, &route_spec("local_route", &[("/", to)])),
        ),
    ]
}
