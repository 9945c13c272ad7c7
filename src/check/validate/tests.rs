use super::*;
use crate::config::loader::load_str;

/// Every finding of `severity` in `text` as `c.yaml`, loaded and validated.
fn findings(text: &str, severity: crate::config::diag::Severity) -> Vec<String> {
    let loaded = load_str("c.yaml", text);
    let mut diags = loaded.diagnostics;
    validate(&loaded.resources, &Settings::default(), &mut diags);
    diags
        .sorted()
        .iter()
        .filter(|d| d.severity == severity)
        .map(|d| d.to_string())
        .collect()
}

fn lint(text: &str) -> Vec<String> {
    findings(text, crate::config::diag::Severity::Error)
}

fn warnings(text: &str) -> Vec<String> {
    findings(text, crate::config::diag::Severity::Warning)
}

#[test]
fn responses_over_the_grpc_limit_are_warned_about_once_per_type() {
    let padded = |name: &str, nodes: &str| {
        format!(
            "kind: Cluster\n{nodes}spec: {{name: {name}, alt_stat_name: {}}}\n",
            "x".repeat(1024 * 1024)
        )
    };
    // Three shared clusters (3 MiB) plus two for edge nodes (2 MiB): 5 MiB for an edge node.
    let mut docs: Vec<String> = (0..3).map(|i| padded(&format!("s{i}"), "")).collect();
    docs.extend((0..2).map(|i| padded(&format!("e{i}"), "nodes: {cluster: [edge]}\n")));
    let found = warnings(&docs.join("---\n"));
    let big: Vec<&String> = found.iter().filter(|w| w.contains("4 MiB")).collect();
    assert_eq!(big.len(), 1, "{found:?}");
    assert!(
        big[0].contains("cluster [edge]") && big[0].contains("5.0 MiB"),
        "{}",
        big[0]
    );
    // The shared ones alone stay under the limit.
    let small = warnings(&docs[..3].join("---\n"));
    assert!(!small.iter().any(|w| w.contains("4 MiB")), "{small:?}");
}

const ROUTE: &str = "\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\nname: r\nvirtual_hosts:\n- name: a\n  domains: [\"*\"]\n  routes:\n  - match: {prefix: /}\n    route: {cluster: missing}\n";

#[test]
fn missing_cluster_is_located_at_the_reference() {
    let errors = lint(ROUTE);
    assert_eq!(
        errors,
        [
            "c.yaml:8:22: error: cluster `missing` does not exist (a cluster from the proxies' bootstrap is declared with --known-cluster) [missing-reference]"
        ]
    );
}

#[test]
fn rds_without_a_route_config_name_is_a_missing_reference() {
    let listener = |rds: &str| {
        format!(
            "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\nname: l\naddress: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}\nfilter_chains:\n- filters:\n  - name: hcm\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n      stat_prefix: s\n      rds: {rds}\n      http_filters:\n      - name: router\n        typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}\n"
        )
    };
    let errors = lint(&listener(
        "{config_source: {ads: {}}, route_config_name: \"\"}",
    ));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("c.yaml:10:7: error: rds has no route_config_name")
            && errors[0].ends_with("[missing-reference]"),
        "{errors:?}"
    );
    // Routes from a file on the proxy are not xdsd's to resolve.
    let local = lint(&listener(
        "{config_source: {path_config_source: {path: /r.yaml}}}",
    ));
    assert!(local.is_empty(), "{local:?}");
}

#[test]
fn duplicate_names_name_both_places() {
    let c = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: a\n";
    let errors = lint(&format!("{c}---\n{c}"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .starts_with("c.yaml:5:7: error: duplicate Cluster `a`: also defined at c.yaml:2:7"),
        "{errors:?}"
    );
}

#[test]
fn references_must_be_visible_to_the_referrer_nodes() {
    let text = format!(
        "{}---\nkind: Cluster\nnodes: {{cluster: [edge]}}\nspec: {{name: missing}}\n",
        ROUTE
    );
    let errors = lint(&text);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("some nodes would lack it")),
        "{errors:?}"
    );
}

#[test]
fn targets_split_by_node_id_cover_a_referrer_of_both_ids() {
    let route = ROUTE.replacen(
        "\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n",
        "kind: RouteConfiguration\nnodes: {id: [a-*, b-*]}\nspec:\n",
        1,
    );
    let route: String = route
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i < 3 {
                format!("{l}\n")
            } else {
                format!("  {l}\n")
            }
        })
        .collect();
    let target = |id: &str| {
        format!(
            "---\nkind: Cluster\nnodes: {{id: [{id}]}}\nspec: {{name: missing, connect_timeout: 1s}}\n"
        )
    };
    let covered = format!("{route}{}{}", target("a-*"), target("b-*"));
    let errors = lint(&covered);
    assert!(errors.is_empty(), "{errors:?}");
    let uncovered = format!("{route}{}", target("a-*"));
    let errors = lint(&uncovered);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("some nodes would lack it")),
        "{errors:?}"
    );
}

#[test]
fn duplicate_domains() {
    let text = "\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\nname: r\nvirtual_hosts:\n- {name: a, domains: [x.com]}\n- {name: b, domains: [y.com, X.com]}\n";
    let errors = lint(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("c.yaml:5:30: error: domain `X.com`"),
        "{errors:?}"
    );
}
