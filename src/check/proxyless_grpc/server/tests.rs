use crate::check::proxyless_grpc::check;
use crate::config::diag::Diagnostics;
use crate::config::loader::load_str;

/// A correct server listener, served to gRPC nodes only. Variants below
/// replace one of its lines, so the line numbers stay.
const GOOD: &str = r#"kind: Listener
nodes:
  cluster: ["grpc*"]
spec:
  name: "grpc/server?xds.resource.listening_address=127.0.0.1:50051"
  address: {socket_address: {address: 127.0.0.1, port_value: 50051}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: grpc_server
        route_config:
          name: inbound
          virtual_hosts:
          - name: inbound
            domains: ["*"]
            routes:
            - match: {prefix: "/"}
              non_forwarding_action: {}
              decorator: {operation: inbound}
        http_filters:
        - name: envoy.filters.http.router
          typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
"#;

/// TLS gRPC servers accept, for the chain of [`GOOD`] (appended to it).
const TLS: &str = r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
        common_tls_context:
          tls_certificate_provider_instance: {instance_name: spiffe}
          validation_context:
            ca_certificate_provider_instance: {instance_name: spiffe}
        require_client_certificate: true
"#;

/// The findings of the gRPC checks, after asserting that the YAML loads
/// without errors and that every finding is a warning.
fn findings(yaml: &str) -> Vec<String> {
    let loaded = load_str("s.yaml", yaml);
    let load: Vec<String> = loaded
        .diagnostics
        .sorted()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(loaded.diagnostics.error_count(), 0, "{load:#?}");
    let mut diags = Diagnostics::default();
    check(&loaded.resources, &mut diags);
    assert_eq!(diags.error_count(), 0);
    diags.sorted().iter().map(ToString::to_string).collect()
}

/// Asserts a warning of `rule` at `at` (`line:col` in s.yaml) saying `text`.
fn assert_finding(found: &[String], at: &str, rule: &str, text: &str) {
    let start = format!("s.yaml:{at}: warning: ");
    let end = format!("[{rule}]");
    assert!(
        found
            .iter()
            .any(|d| d.starts_with(&start) && d.ends_with(&end) && d.contains(text)),
        "no {rule} at {at} saying {text:?} in {found:#?}"
    );
}

/// `GOOD` with `old` (which must be in it) replaced by `new`.
fn good_with(old: &str, new: &str) -> String {
    assert!(GOOD.contains(old), "{old:?} is not in GOOD");
    GOOD.replacen(old, new, 1)
}

/// `GOOD` with its inline `route_config` replaced by `line` (a whole
/// line, such as an `rds` field); the lines after it move up by 8.
fn good_without_inline_routes(line: &str) -> String {
    let mut out = String::new();
    let mut inline = false;
    for l in GOOD.lines() {
        if l == "        route_config:" {
            inline = true;
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if inline && l.starts_with("          ") {
            continue;
        }
        inline = false;
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[test]
fn a_correct_server_listener_has_no_findings() {
    assert_eq!(findings(GOOD), Vec::<String>::new());
    let with_tls = format!("{GOOD}{TLS}");
    assert_eq!(findings(&with_tls), Vec::<String>::new());
    // IPv6: the name has the address in brackets, the socket address not.
    let v6 = good_with("127.0.0.1:50051\"", "[::]:50051\"").replacen(
        "address: 127.0.0.1,",
        "address: \"::\",",
        1,
    );
    assert_eq!(findings(&v6), Vec::<String>::new());
    // Routes over RDS (ADS), and a match gRPC servers do use.
    let rds = good_without_inline_routes(
        "        rds: {route_config_name: inbound, config_source: {ads: {}}}",
    )
    .replacen(
        "  - filters:\n",
        "  - filter_chain_match: {transport_protocol: raw_buffer, prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]}\n    filters:\n",
        1,
    );
    let set = format!(
        "{rds}{}",
        r#"---
kind: RouteConfiguration
nodes:
  cluster: ["grpc*"]
spec:
  name: inbound
  virtual_hosts:
  - name: inbound
    domains: ["*"]
    routes:
    - match: {prefix: /}
      non_forwarding_action: {}
"#
    );
    assert_eq!(findings(&set), Vec::<String>::new());
}

#[test]
fn a_server_listener_for_every_node_is_for_envoys_too() {
    let plain = GOOD
        .replacen(
            "kind: Listener\nnodes:\n  cluster: [\"grpc*\"]\nspec:\n",
            "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n",
            1,
        )
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect::<String>();
    let found = findings(&plain);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_finding(
        &found,
        "2:7",
        "grpc-server-listener-for-envoy",
        "an Envoy would bind 127.0.0.1:50051 too",
    );
}

#[test]
fn the_address_must_be_the_tcp_socket_address_of_the_name() {
    let port = good_with("port_value: 50051}", "port_value: 50052}");
    assert_finding(
        &findings(&port),
        "6:62",
        "grpc-server-address",
        "the listener's address is 127.0.0.1:50052, but its name is asked for by the gRPC server listening on 127.0.0.1:50051",
    );
    let host = good_with("address: 127.0.0.1,", "address: 0.0.0.0,");
    assert_finding(
        &findings(&host),
        "6:39",
        "grpc-server-address",
        "the listener's address is 0.0.0.0:50051",
    );
    let udp = good_with("port_value: 50051}", "port_value: 50051, protocol: UDP}");
    let found = findings(&udp);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_finding(&found, "6:79", "grpc-server-address", "not TCP");
    let pipe = good_with(
        "{socket_address: {address: 127.0.0.1, port_value: 50051}}",
        "{pipe: {path: /run/grpc.sock}}",
    );
    assert_finding(
        &findings(&pipe),
        "6:3",
        "grpc-server-address",
        "not a `socket_address`",
    );
}

#[test]
fn original_destination_listener_filters_and_api_listeners_are_rejected() {
    let fields = good_with(
        "  filter_chains:\n",
        "  use_original_dst: true\n  listener_filters: [{name: envoy.filters.listener.tls_inspector, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}]\n  filter_chains:\n",
    );
    let found = findings(&fields);
    assert_finding(
        &found,
        "7:21",
        "grpc-server-unsupported-field",
        "`use_original_dst: true`",
    );
    assert_finding(
        &found,
        "8:3",
        "grpc-server-unsupported-field",
        "grpc-js servers NACK a listener with `listener_filters`",
    );
    let api = r#"kind: Listener
nodes:
  cluster: ["grpc*"]
spec:
  name: "grpc/server?xds.resource.listening_address=127.0.0.1:50051"
  api_listener:
    api_listener:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: s
      rds: {route_config_name: r, config_source: {ads: {}}}
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
"#;
    assert_finding(
        &findings(api),
        "6:3",
        "grpc-server-unsupported-field",
        "as a client's",
    );
}

#[test]
fn every_filter_chain_holds_exactly_one_http_connection_manager() {
    let two = good_with(
        "    - name: envoy.filters.network.http_connection_manager\n",
        "    - {name: rbac, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC, stat_prefix: r}}\n    - name: envoy.filters.network.http_connection_manager\n",
    );
    let found = findings(&two);
    assert_finding(
        &found,
        "8:5",
        "grpc-server-filter-chain",
        "with 2 network filters",
    );
    assert_finding(
        &found,
        "9:20",
        "grpc-server-filter-chain",
        "(this one is `envoy.extensions.filters.network.rbac.v3.RBAC`)",
    );
    let tcp = format!(
        "{GOOD}{}",
        r#"  default_filter_chain:
    filters:
    - name: envoy.filters.network.tcp_proxy
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}
"#
    );
    let found = findings(&tcp);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_finding(
        &found,
        "28:7",
        "grpc-server-filter-chain",
        "`envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`",
    );
    let none = r#"kind: Listener
nodes:
  cluster: ["grpc*"]
spec:
  name: "grpc/server?xds.resource.listening_address=127.0.0.1:50051"
  address: {socket_address: {address: 127.0.0.1, port_value: 50051}}
"#;
    assert_finding(
        &findings(none),
        "5:3",
        "grpc-server-filter-chain",
        "neither `filter_chains` nor a `default_filter_chain`",
    );
}

#[test]
fn the_http_connection_manager_ends_with_the_router_and_gets_routes_over_ads() {
    let no_router = GOOD.replacen(
        "        http_filters:\n        - name: envoy.filters.http.router\n          typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n",
        "        http_filters:\n        - name: envoy.filters.http.grpc_stats\n          typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig}\n",
        1,
    );
    assert_ne!(no_router, GOOD);
    assert_finding(
        &findings(&no_router),
        "23:11",
        "grpc-router-not-last",
        "gRPC servers NACK an HttpConnectionManager whose http_filters do not end with the router",
    );
    let path_source = good_without_inline_routes(
        "        rds: {route_config_name: inbound, config_source: {path_config_source: {path: /etc/routes.yaml}}}",
    );
    assert_finding(
        &findings(&path_source),
        "13:43",
        "grpc-rds-config-source",
        "gRPC servers NACK an RDS config_source other than `ads` or `self`",
    );
    let scoped = good_without_inline_routes(
        "        scoped_routes: {name: s, scope_key_builder: {fragments: [{header_value_extractor: {name: x-scope, index: 0}}]}, rds_config_source: {ads: {}}, scoped_rds: {scoped_rds_config_source: {ads: {}}}}",
    );
    assert_finding(
        &findings(&scoped),
        "13:9",
        "grpc-rds-config-source",
        "scoped routes are not supported",
    );
}

#[test]
fn routes_used_by_servers_must_not_forward() {
    let inline = good_with(
        "              non_forwarding_action: {}\n",
        "              route: {cluster: backend}\n",
    );
    assert_finding(
        &findings(&inline),
        "20:15",
        "grpc-server-route-action",
        "gRPC servers fail RPCs matching a route with `route`",
    );
    let rds = good_without_inline_routes(
        "        rds: {route_config_name: inbound, config_source: {ads: {}}}",
    );
    let set = format!(
        "{rds}{}",
        r#"---
"@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
name: inbound
virtual_hosts:
- name: inbound
  domains: ["*"]
  routes:
  - match: {prefix: /}
    direct_response: {status: 404}
"#
    );
    assert_finding(
        &findings(&set),
        "25:5",
        "grpc-server-route-action",
        "with `direct_response`",
    );
}

#[test]
fn server_tls_takes_certificates_from_bootstrap_providers_only() {
    let bad = TLS
        .replacen(
            "name: envoy.transport_sockets.tls",
            "name: tls",
            1,
        )
        .replacen(
            "          tls_certificate_provider_instance: {instance_name: spiffe}\n",
            "          tls_certificates: [{certificate_chain: {filename: /c.pem}, private_key: {filename: /k.pem}}]\n",
            1,
        )
        .replacen(
            "            ca_certificate_provider_instance: {instance_name: spiffe}\n",
            "            ca_certificate_provider_instance: {instance_name: spiffe}\n            match_subject_alt_names: [{exact: client}]\n",
            1,
        )
        .replacen(
            "        require_client_certificate: true\n",
            "        require_sni: true\n        ocsp_staple_policy: STRICT_STAPLING\n",
            1,
        );
    let found = findings(&format!("{GOOD}{bad}"));
    for (at, text) in [
        (
            "26:13",
            "grpc-js servers NACK a transport socket named `tls`",
        ),
        ("29:9", "without `tls_certificate_provider_instance`"),
        ("33:13", "`match_subject_alt_names`"),
        ("34:22", "`require_sni: true`"),
        ("35:29", "other than LENIENT_STAPLING"),
    ] {
        assert_finding(&found, at, "grpc-server-tls", text);
    }
    assert_eq!(found.len(), 5, "{found:#?}");
    let raw = "    transport_socket:\n      name: envoy.transport_sockets.raw_buffer\n      typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}\n";
    assert_finding(
        &findings(&format!("{GOOD}{raw}")),
        "27:7",
        "grpc-server-tls",
        "other than a DownstreamTlsContext (this one is `envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer`)",
    );
}

#[test]
fn chains_matching_what_servers_never_match_are_never_used() {
    let matched = good_with(
        "  - filters:\n",
        "  - filter_chain_match:\n      destination_port: 443\n      server_names: [api.example.com]\n      transport_protocol: tls\n      application_protocols: [h2]\n    filters:\n",
    );
    let found = findings(&format!("{matched}{TLS}"));
    for (at, text) in [
        ("9:25", "that matches on `destination_port`"),
        ("10:7", "that matches on `server_names`"),
        ("11:27", "whose transport_protocol is `tls`"),
        ("12:7", "that matches on `application_protocols`"),
    ] {
        assert_finding(&found, at, "grpc-server-chain-never-matched", text);
    }
    assert_eq!(found.len(), 4, "{found:#?}");
}
