//! What proxyless gRPC clients reject or ignore, for the resources they use:
//! listeners with an `api_listener`, the route configurations those name,
//! and the clusters and endpoints those routes reach. Envoy accepts all of
//! it, so every finding is a warning that cites the gRFC rule.

use crate::check::Rule;
use crate::config::diag::Diagnostics;
use crate::config::reflect::{field, list, string_field, unpack_any};
use crate::config::resource::field_step as step;
use crate::config::resource::{PathStep, Resource};
use crate::config::schema::ResourceType;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};
use std::collections::BTreeSet;

/// The rules this module reports (all warnings: Envoy accepts these).
pub static RULES: &[&Rule] = &[
    &API_LISTENER_FOR_EVERYONE,
    &API_LISTENER_NOT_HCM,
    &ROUTER_NOT_LAST,
    &ROUTE_ACTION,
    &IGNORED_FIELD,
    &CLUSTER_TYPE,
    &LB_POLICY,
    &LOCALITY_WEIGHT,
];

/// An api_listener served to Envoys too.
pub static API_LISTENER_FOR_EVERYONE: Rule = Rule {
    id: "grpc-api-listener-for-envoy",
    summary: "a listener with an api_listener is served to every node, Envoys included",
    explanation: "Only proxyless gRPC clients use a listener with an `api_listener`; Envoy NACKs it. Serve it \
to the gRPC nodes only, with a `nodes:` selector in an envelope.",
    ..Rule::WARNING
};

/// An api_listener that is not an HttpConnectionManager.
pub static API_LISTENER_NOT_HCM: Rule = Rule {
    id: "grpc-api-listener-not-hcm",
    summary: "a gRPC api_listener does not hold an HttpConnectionManager",
    explanation: "gRPC clients accept only an HttpConnectionManager in an `api_listener` (gRFC A27) and NACK \
anything else.",
    ..Rule::WARNING
};

/// A gRPC HCM whose filters do not end with the router.
pub static ROUTER_NOT_LAST: Rule = Rule {
    id: "grpc-router-not-last",
    summary: "a gRPC listener's http_filters do not end with the router",
    explanation: "gRPC clients NACK an HttpConnectionManager whose `http_filters` do not end with the router \
filter (gRFC A39).",
    ..Rule::WARNING
};

/// A route action gRPC does not implement.
pub static ROUTE_ACTION: Rule = Rule {
    id: "grpc-route-action",
    summary: "a route used by gRPC clients has an action other than `route`",
    explanation: "gRPC clients implement only the `route` action; RPCs matching a route with `redirect`, \
`direct_response` or `filter_action` fail (gRFC A28).",
    ..Rule::WARNING
};

/// A route field gRPC ignores.
pub static IGNORED_FIELD: Rule = Rule {
    id: "grpc-ignored-field",
    summary: "a route used by gRPC clients sets a field they ignore",
    explanation: "gRPC clients ignore path and host rewrites and request mirroring (gRFC A28): the setting has \
no effect for them.",
    ..Rule::WARNING
};

/// A cluster type gRPC does not support.
pub static CLUSTER_TYPE: Rule = Rule {
    id: "grpc-cluster-type",
    summary: "a cluster used by gRPC clients is not EDS, LOGICAL_DNS or aggregate",
    explanation: "gRPC clients accept only EDS, LOGICAL_DNS and aggregate clusters (gRFC A27, A37) and NACK \
other types, such as STATIC or STRICT_DNS.",
    ..Rule::WARNING
};

/// An LB policy gRPC does not support.
pub static LB_POLICY: Rule = Rule {
    id: "grpc-lb-policy",
    summary: "a cluster used by gRPC clients has an LB policy they do not support",
    explanation: "gRPC clients support ROUND_ROBIN, LEAST_REQUEST and RING_HASH (gRFC A27, A42, A48).",
    ..Rule::WARNING
};

/// A locality gRPC drops.
pub static LOCALITY_WEIGHT: Rule = Rule {
    id: "grpc-locality-weight",
    summary: "a locality used by gRPC clients has no load_balancing_weight",
    explanation: "gRPC clients drop localities without a `load_balancing_weight` (gRFC A27): give every \
locality a weight.",
    ..Rule::WARNING
};

/// Warns about what gRPC clients would NACK or ignore in the resources they use.
pub fn check(resources: &[Resource], diags: &mut Diagnostics) {
    let find = |t: ResourceType, name: &str| -> Vec<&Resource> {
        resources
            .iter()
            .filter(|r| r.rtype == t && r.name == name)
            .collect()
    };
    let mut routes = BTreeSet::new();
    for listener in resources
        .iter()
        .filter(|r| r.rtype == ResourceType::Listener)
    {
        if let Some(name) = api_listener_routes(listener, diags) {
            routes.insert(name);
        }
    }
    let mut clusters = BTreeSet::new();
    for name in &routes {
        for route in find(ResourceType::RouteConfiguration, name) {
            route_actions(route, &mut clusters, diags);
        }
    }
    for name in &clusters {
        for cluster in find(ResourceType::Cluster, name) {
            let service = cluster_shape(cluster, diags);
            for assignment in find(ResourceType::ClusterLoadAssignment, &service) {
                locality_weights(assignment, diags);
            }
        }
    }
}

/// The RDS name of a gRPC listener (an `api_listener` with an HttpConnectionManager).
fn api_listener_routes(listener: &Resource, diags: &mut Diagnostics) -> Option<String> {
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
    if !hcm
        .descriptor()
        .full_name()
        .ends_with("HttpConnectionManager")
    {
        diags.report(
            &API_LISTENER_NOT_HCM,
            listener.locate(&path),
            "gRPC clients accept only an HttpConnectionManager in an api_listener (gRFC A27)",
        );
        return None;
    }
    let router_last = list(&hcm, "http_filters")
        .and_then(|(_, filters)| filters.last()?.as_message().cloned())
        .and_then(|last| {
            field(&last, "typed_config")
                .and_then(|(_, a)| a.as_message().and_then(|a| string_field(a, "type_url")))
        })
        .is_some_and(|(_, url)| url.ends_with(".Router"));
    if !router_last {
        diags.report(
            &ROUTER_NOT_LAST,
            listener.locate(&path),
            "gRPC clients NACK an HttpConnectionManager whose http_filters do not end with the router (gRFC A39)",
        );
    }
    if field(&hcm, "route_config").is_some() {
        // Inline routes are checked where the listener is; gRPC supports them.
        return None;
    }
    let (_, rds) = field(&hcm, "rds")?;
    let rds = rds.as_message()?;
    string_field(rds, "route_config_name").map(|(_, n)| n)
}

/// Route actions gRPC does not implement, and the clusters the routes use.
fn route_actions(route: &Resource, clusters: &mut BTreeSet<String>, diags: &mut Diagnostics) {
    let Some((vf, vhosts)) = list(&route.message, "virtual_hosts") else {
        return;
    };
    for (i, vhost) in vhosts.iter().enumerate() {
        let Some(vhost) = vhost.as_message() else {
            continue;
        };
        let Some((rf, routes)) = list(vhost, "routes") else {
            continue;
        };
        for (j, r) in routes.iter().enumerate() {
            let Some(r) = r.as_message() else { continue };
            let base = vec![
                PathStep::Field(vf.clone()),
                PathStep::Index(i),
                PathStep::Field(rf.clone()),
                PathStep::Index(j),
            ];
            for unsupported in ["redirect", "direct_response", "filter_action"] {
                if r.has_field_by_name(unsupported) {
                    let mut path = base.clone();
                    path.extend(step(r, unsupported));
                    diags.report(&ROUTE_ACTION, route.locate(&path), format!("gRPC clients fail RPCs on a route with `{unsupported}`; only `route` actions are implemented (gRFC A28)"));
                }
            }
            let Some((af, action)) = field(r, "route") else {
                continue;
            };
            let Some(action) = action.as_message() else {
                continue;
            };
            let mut path = base.clone();
            path.push(PathStep::Field(af));
            for ignored in [
                "prefix_rewrite",
                "regex_rewrite",
                "host_rewrite_literal",
                "request_mirror_policies",
            ] {
                if action.has_field_by_name(ignored) {
                    let mut p = path.clone();
                    p.extend(step(action, ignored));
                    diags.report(
                        &IGNORED_FIELD,
                        route.locate(&p),
                        format!("gRPC clients ignore `{ignored}` (gRFC A28)"),
                    );
                }
            }
            collect_clusters(action, clusters);
        }
    }
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
}
