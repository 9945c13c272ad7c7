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

/// A reload after one node's resource changed walks that resource only: the
/// facts of the others (references, addresses, per-message findings) are
/// kept, so a reload costs O(changed resources) in walks, not O(resources),
/// and finds the same as a fresh check.
#[test]
fn a_reload_walks_only_the_changed_resources() {
    const NODES: usize = 300;
    let dir = std::env::temp_dir().join(format!("xdsd-facts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let own = |i: usize, timeout: &str| {
        format!(
            "kind: Cluster\nnodes: {{id: [node-{i}]}}\nspec: {{name: own-{i}, connect_timeout: {timeout}}}\n"
        )
    };
    let others: Vec<String> = (1..NODES).map(|i| own(i, "1s")).collect();
    std::fs::write(dir.join("own.yaml"), others.join("---\n")).expect("write");
    // A listener whose route names a missing cluster: a finding to keep.
    std::fs::write(
        dir.join("listener.yaml"),
        "\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\nname: r\nvirtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: missing}}]}]\n",
    )
    .expect("write");
    let mut caches = LoadCaches::default();
    let check = |caches: &mut LoadCaches| {
        check_dir_cached(&dir, Default::default(), &Settings::default(), caches).expect("loads")
    };
    std::fs::write(dir.join("own-0.yaml"), own(0, "1s")).expect("write");
    let first = check(&mut caches);
    assert_eq!(
        first.walked.walked,
        NODES + 1,
        "a first load walks everything"
    );
    std::fs::write(dir.join("own-0.yaml"), own(0, "2s")).expect("write");
    let second = check(&mut caches);
    assert_eq!(
        second.walked,
        Walked {
            walked: 1,
            kept: NODES
        },
        "node 0's cluster only"
    );
    let fresh = check_dir(&dir).expect("loads");
    assert_eq!(
        format!("{:?}", second.diagnostics.sorted()),
        format!("{:?}", fresh.diagnostics.sorted()),
        "kept facts find what a fresh check finds"
    );
    assert!(
        format!("{:?}", second.diagnostics.sorted()).contains("missing"),
        "the kept route's finding is still reported"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
