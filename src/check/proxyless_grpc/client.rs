//! What proxyless gRPC clients reject or ignore, for the resources they use:
//! listeners with an `api_listener`, the route configurations those name
//! (or hold inline), and the clusters and endpoints those routes reach.

use super::{HCM, Routes, Side, each_route, find, hcm_routes, is_type, route_action, with};
use crate::check::Rule;
use crate::config::diag::Diagnostics;
use crate::config::reflect::{field, list, string_field, unpack_any};
use crate::config::resource::field_step as step;
use crate::config::resource::{PathStep, Resource};
use crate::config::schema::ResourceType;
use prost_reflect::{DynamicMessage, Value};
use std::collections::BTreeSet;

/// An api_listener served to Envoys too.
pub static API_LISTENER_FOR_EVERYONE: Rule = Rule {
    id: "grpc-api-listener-for-envoy",
    summary: "a listener with an api_listener is served to every node, Envoys included",
    explanation: "Only proxyless gRPC clients use a listener with an `api_listener` (gRPC reads such a \
listener as a client's: `LdsResourceParse` in gRPC C-core's `src/core/xds/grpc/xds_listener_parser.cc`); \
Envoy NACKs it. Serve it to the gRPC nodes only, with a `nodes:` selector in an envelope.",
    ..Rule::WARNING
};

/// An api_listener that is not an HttpConnectionManager.
pub static API_LISTENER_NOT_HCM: Rule = Rule {
    id: "grpc-api-listener-not-hcm",
    summary: "a gRPC api_listener does not hold an HttpConnectionManager",
    explanation: "gRPC clients accept only an HttpConnectionManager in an `api_listener` (gRFC A27) and NACK \
anything else. Mirrors `LdsResourceParseClient` in gRPC C-core's `src/core/xds/grpc/xds_listener_parser.cc` \
and grpc-js-xds's `src/xds-resource-type/listener-resource-type.ts`.",
    ..Rule::WARNING
};

/// A route action gRPC clients do not implement.
pub static ROUTE_ACTION: Rule = Rule {
    id: "grpc-route-action",
    summary: "a route used by gRPC clients has an action other than `route`",
    explanation: "gRPC clients implement only the `route` action (gRFC A28). RPCs matching a route with \
`redirect`, `direct_response` or `filter_action` fail (grpc-js NACKs the whole RouteConfiguration), and so \
do those matching a `non_forwarding_action` route, the action only gRPC servers take (gRFC A36). Mirrors \
gRPC C-core's `src/core/xds/grpc/xds_route_config_parser.cc` and grpc-js-xds's \
`src/xds-resource-type/route-config-resource-type.ts`.",
    ..Rule::WARNING
};

/// A route field gRPC ignores.
pub static IGNORED_FIELD: Rule = Rule {
    id: "grpc-ignored-field",
    summary: "a route used by gRPC clients sets a field they ignore",
    explanation: "gRPC clients ignore path and host rewrites and request mirroring (gRFC A28): the setting has \
no effect for them. `RouteActionParse` in gRPC C-core's `src/core/xds/grpc/xds_route_config_parser.cc` \
does not read them.",
    ..Rule::WARNING
};

/// A cluster type gRPC does not support.
pub static CLUSTER_TYPE: Rule = Rule {
    id: "grpc-cluster-type",
    summary: "a cluster used by gRPC clients is not EDS, LOGICAL_DNS or aggregate",
    explanation: "gRPC clients accept only EDS, LOGICAL_DNS and aggregate clusters (gRFC A27, A37) and NACK \
other types, such as STATIC or STRICT_DNS. Mirrors gRPC C-core's `src/core/xds/grpc/xds_cluster_parser.cc` \
and grpc-js-xds's `src/xds-resource-type/cluster-resource-type.ts`.",
    ..Rule::WARNING
};

/// An LB policy gRPC does not support.
pub static LB_POLICY: Rule = Rule {
    id: "grpc-lb-policy",
    summary: "a cluster used by gRPC clients has an LB policy they do not support",
    explanation: "gRPC clients support ROUND_ROBIN, LEAST_REQUEST and RING_HASH (gRFC A27, A42, A48) and NACK \
a cluster with another `lb_policy`. Mirrors gRPC C-core's `src/core/xds/grpc/xds_cluster_parser.cc` and \
grpc-js-xds's `src/xds-resource-type/cluster-resource-type.ts`.",
    ..Rule::WARNING
};

/// A locality gRPC drops.
pub static LOCALITY_WEIGHT: Rule = Rule {
    id: "grpc-locality-weight",
    summary: "a locality used by gRPC clients has no load_balancing_weight",
    explanation: "gRPC clients drop localities without a `load_balancing_weight` (gRFC A27): give every \
locality a weight. Mirrors `LocalityParse` in gRPC C-core's `src/core/xds/grpc/xds_endpoint_parser.cc`.",
    ..Rule::WARNING
};

/// Warns about what gRPC clients would NACK or ignore in the resources they use.
pub(super) fn check(resources: &[Resource], diags: &mut Diagnostics) {
    let mut rds = BTreeSet::new();
    let mut clusters = BTreeSet::new();
    for listener in resources
        .iter()
        .filter(|r| r.rtype == ResourceType::Listener)
    {
        match api_listener_routes(listener, diags) {
            Some(Routes::Inline(config, path)) => {
                route_actions(listener, &config, &path, &mut clusters, diags);
            }
            Some(Routes::Rds(name)) => {
                rds.insert(name);
            }
            Some(Routes::Unusable) | None => {}
        }
    }
    for name in &rds {
        for route in find(resources, ResourceType::RouteConfiguration, name) {
            route_actions(route, &route.message, &[], &mut clusters, diags);
        }
    }
    for name in &clusters {
        for cluster in find(resources, ResourceType::Cluster, name) {
            let service = cluster_shape(cluster, diags);
            for assignment in find(resources, ResourceType::ClusterLoadAssignment, &service) {
                locality_weights(assignment, diags);
            }
        }
    }
}

/// Where the routes of a gRPC client listener (an `api_listener` with an
/// HttpConnectionManager) come from.
fn api_listener_routes(listener: &Resource, diags: &mut Diagnostics) -> Option<Routes> {
    let (af, api) = field(&listener.message, "api_listener")?;
    if listener.selector.is_everyone() {
        diags.report(
            &API_LISTENER_FOR_EVERYONE,
            listener.locate(&[PathStep::Field(af.clone())]),
            "served to every node, but Envoy NACKs a listener with an api_listener (only gRPC clients use it): select gRPC nodes with `nodes`",
        );
    }
    let (inner_f, any) = field(api.as_message()?, "api_listener")?;
    let path = vec![PathStep::Field(af), PathStep::Field(inner_f)];
    let hcm = any.as_message().and_then(unpack_any)?;
    if !is_type(&hcm, HCM) {
        diags.report(
            &API_LISTENER_NOT_HCM,
            listener.locate(&path),
            "gRPC clients accept only an HttpConnectionManager in an api_listener (gRFC A27)",
        );
        return None;
    }
    Some(hcm_routes(listener, &hcm, &path, Side::Client, diags))
}

/// Route actions gRPC clients do not implement, and the clusters the
/// routes use, in the route configuration `config` (at `base` in `resource`).
fn route_actions(
    resource: &Resource,
    config: &DynamicMessage,
    base: &[PathStep],
    clusters: &mut BTreeSet<String>,
    diags: &mut Diagnostics,
) {
    each_route(config, base, |r, path| {
        let Some((af, action)) = route_action(r) else {
            return;
        };
        if af.name() != "route" {
            diags.report(
                &ROUTE_ACTION,
                resource.locate(&with(&path, [PathStep::Field(af.clone())])),
                if af.name() == "non_forwarding_action" {
                    "gRPC clients fail RPCs on a route with `non_forwarding_action` (only gRPC servers take it, gRFC A36); clients implement only `route` actions (gRFC A28)".to_string()
                } else {
                    format!("gRPC clients fail RPCs on a route with `{}`; only `route` actions are implemented (gRFC A28)", af.name())
                },
            );
            return;
        }
        let Some(action) = action.as_message() else {
            return;
        };
        let path = with(&path, [PathStep::Field(af)]);
        for ignored in [
            "prefix_rewrite",
            "regex_rewrite",
            "host_rewrite_literal",
            "request_mirror_policies",
        ] {
            if action.has_field_by_name(ignored) {
                diags.report(
                    &IGNORED_FIELD,
                    resource.locate(&with(&path, step(action, ignored))),
                    format!("gRPC clients ignore `{ignored}` (gRFC A28)"),
                );
            }
        }
        collect_clusters(action, clusters);
    });
}

fn collect_clusters(action: &DynamicMessage, clusters: &mut BTreeSet<String>) {
    if let Some((_, name)) = string_field(action, "cluster") {
        clusters.insert(name);
    }
    let weighted = field(action, "weighted_clusters").and_then(|(_, w)| w.as_message().cloned());
    if let Some((_, items)) = weighted.as_ref().and_then(|w| list(w, "clusters")) {
        for item in items.iter().filter_map(Value::as_message) {
            if let Some((_, name)) = string_field(item, "name") {
                clusters.insert(name);
            }
        }
    }
}

/// Cluster types and LB policies gRPC supports; returns the EDS service name.
fn cluster_shape(cluster: &Resource, diags: &mut Diagnostics) -> String {
    const EDS: i32 = 3;
    const LOGICAL_DNS: i32 = 2;
    // ROUND_ROBIN, LEAST_REQUEST, RING_HASH.
    const SUPPORTED_LB: [i32; 3] = [0, 1, 2];
    let m = &cluster.message;
    let kind = field(m, "type")
        .and_then(|(_, v)| v.as_enum_number())
        .unwrap_or(0);
    if !m.has_field_by_name("cluster_type") && kind != EDS && kind != LOGICAL_DNS {
        diags.report(
            &CLUSTER_TYPE,
            cluster.locate(&step(m, "type")),
            "gRPC clients accept only EDS, LOGICAL_DNS and aggregate clusters (gRFC A27, A37)",
        );
    }
    if let Some((lf, policy)) = field(m, "lb_policy")
        && policy
            .as_enum_number()
            .is_some_and(|p| !SUPPORTED_LB.contains(&p))
    {
        diags.report(&LB_POLICY, cluster.locate(&[PathStep::Field(lf)]), "gRPC clients support the ROUND_ROBIN, LEAST_REQUEST and RING_HASH policies only (gRFC A27, A42, A48)");
    }
    field(m, "eds_cluster_config")
        .and_then(|(_, e)| e.as_message().and_then(|e| string_field(e, "service_name")))
        .map(|(_, s)| s)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| cluster.name.clone())
}

/// gRPC drops localities without a `load_balancing_weight`.
fn locality_weights(assignment: &Resource, diags: &mut Diagnostics) {
    let Some((ef, localities)) = list(&assignment.message, "endpoints") else {
        return;
    };
    for (i, locality) in localities.iter().enumerate() {
        let Some(locality) = locality.as_message() else {
            continue;
        };
        if !locality.has_field_by_name("load_balancing_weight") {
            diags.report(
                &LOCALITY_WEIGHT,
                assignment.locate_body(&[PathStep::Field(ef.clone()), PathStep::Index(i)]),
                "gRPC clients ignore a locality without `load_balancing_weight` (gRFC A27)",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::loader::load_str;

    const SET: &str = r#""@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: greeter
api_listener:
  api_listener:
    "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
    rds: {route_config_name: r, config_source: {ads: {}}}
    http_filters: []
---
"@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
name: r
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route: {cluster: c, prefix_rewrite: /x}
---
"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: c
type: STATIC
lb_policy: RANDOM
---
"@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
cluster_name: c
endpoints:
- lb_endpoints: []
"#;

    #[test]
    fn grpc_findings_are_warnings_with_rules() {
        let loaded = load_str("g.yaml", SET);
        let mut diags = Diagnostics::default();
        check(&loaded.resources, &mut diags);
        let text: Vec<String> = diags.sorted().iter().map(|d| d.to_string()).collect();
        assert_eq!(diags.error_count(), 0, "{text:?}");
        let all = text.join("\n");
        for want in [
            "ignore `prefix_rewrite`",
            "only EDS, LOGICAL_DNS",
            "ROUND_ROBIN, LEAST_REQUEST",
            "load_balancing_weight",
        ] {
            assert!(all.contains(want), "missing {want}: {all}");
        }
        assert!(
            all.contains("g.yaml:16:41: warning"),
            "prefix_rewrite located at its value: {all}"
        );
    }

    /// A client listener with inline routes and one over RDS from a file,
    /// and the route configurations gRPC servers use, also used by a client.
    const CLIENT: &str = r#"kind: Listener
nodes: {cluster: ["grpc*"]}
spec:
  name: inline
  api_listener:
    api_listener:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: inline
      route_config:
        virtual_hosts:
        - name: v
          domains: ["*"]
          routes:
          - match: {prefix: /}
            redirect: {host_redirect: example.com}
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
---
kind: Listener
nodes: {cluster: ["grpc*"]}
spec:
  name: greeter
  api_listener:
    api_listener:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: greeter
      rds: {route_config_name: inbound, config_source: {path_config_source: {path: /etc/r.yaml}}}
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
---
kind: RouteConfiguration
nodes: {cluster: ["grpc*"]}
spec:
  name: inbound
  virtual_hosts:
  - name: inbound
    domains: ["*"]
    routes:
    - match: {prefix: /}
      non_forwarding_action: {}
"#;

    #[test]
    fn client_routes_and_route_sources() {
        let loaded = load_str("c.yaml", CLIENT);
        assert_eq!(loaded.diagnostics.error_count(), 0);
        let mut diags = Diagnostics::default();
        check(&loaded.resources, &mut diags);
        let text: Vec<String> = diags.sorted().iter().map(|d| d.to_string()).collect();
        assert_eq!(diags.error_count(), 0, "{text:?}");
        for (at, rule, want) in [
            (
                "c.yaml:15:13",
                "grpc-route-action",
                "gRPC clients fail RPCs on a route with `redirect`",
            ),
            (
                "c.yaml:28:41",
                "grpc-rds-config-source",
                "gRPC clients NACK an RDS config_source other than `ads` or `self`",
            ),
            (
                "c.yaml:42:7",
                "grpc-route-action",
                "route with `non_forwarding_action` (only gRPC servers take it",
            ),
        ] {
            assert!(
                text.iter()
                    .any(|d| d.starts_with(&format!("{at}: warning: "))
                        && d.ends_with(&format!("[{rule}]"))
                        && d.contains(want)),
                "no {rule} at {at} saying {want:?}: {text:#?}"
            );
        }
        assert_eq!(text.len(), 3, "{text:#?}");
    }
}
