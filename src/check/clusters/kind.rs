//! Cluster types and their endpoints, extension clusters, circuit breakers
//! and outlier detection.

use super::{
    Cluster, EDS, LOGICAL_DNS, ORIGINAL_DST, STRICT_DNS, enum_number, flag, messages, string, sub,
    with,
};
use crate::check::{Finding, Rule};
use crate::config::reflect::{field, list};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

/// A DNS cluster endpoint names a custom address resolver.
pub static DNS_RESOLVER_NAME: Rule = Rule {
    id: "cluster-dns-resolver-name",
    summary: "a STRICT_DNS or LOGICAL_DNS endpoint sets socket_address.resolver_name",
    explanation: "DNS clusters resolve endpoint hostnames with the cluster's DNS resolver \
(`typed_dns_resolver_config`), so a per-address custom resolver has no place there and Envoy refuses it. \
Remove `resolver_name`, or use a STATIC cluster if a custom address resolver must turn the name into an address.",
    envoy: "source/extensions/clusters/dns/dns_cluster.cc",
    ..Rule::ERROR
};

/// A cluster_type Envoy has no factory for.
pub static UNKNOWN_CLUSTER_TYPE: Rule = Rule {
    id: "cluster-unknown-cluster-type",
    summary: "cluster_type names a cluster extension Envoy does not have",
    explanation: "`cluster_type` selects a cluster extension by its typed_config type or, without one, by \
name, and Envoy refuses a cluster whose extension is not compiled in. Check the spelling: the built-in types \
are `envoy.cluster.*` (singular) and extensions are `envoy.clusters.*`. Or use the `type` enum for STATIC, \
STRICT_DNS, LOGICAL_DNS, EDS and ORIGINAL_DST.",
    envoy: "source/common/upstream/cluster_factory_impl.cc",
    ..Rule::ERROR
};

/// eds_cluster_config outside an EDS cluster.
pub static EDS_CONFIG_NON_EDS: Rule = Rule {
    id: "cluster-eds-config-non-eds",
    summary: "eds_cluster_config is set on a cluster whose type is not EDS",
    explanation: "`eds_cluster_config` tells an EDS cluster where to fetch its endpoints, and Envoy refuses \
it on any other cluster type. Remove it, or set `type: EDS` if the endpoints should come from EDS.",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// LEDS localities in a STATIC cluster.
pub static LEDS_STATIC: Rule = Rule {
    id: "cluster-leds-static",
    summary: "a STATIC cluster's load_assignment uses leds_cluster_locality_config",
    explanation: "Localities whose endpoints come from LEDS only work in EDS clusters; Envoy refuses them in \
a STATIC cluster. List the endpoints inline under `lb_endpoints` instead.",
    envoy: "source/extensions/clusters/static/static_cluster.cc",
    ..Rule::ERROR
};

/// drop_overloads beyond what Envoy supports.
pub static DROP_OVERLOADS: Rule = Rule {
    id: "cluster-drop-overloads",
    summary: "load_assignment.policy.drop_overloads has more than one category, or a drop ratio above 100%",
    explanation: "Envoy applies one drop-overload category per cluster and treats its percentage as a \
probability, so it refuses a second category and a ratio above 1. Keep a single category with a percentage \
of at most 100%. For EDS this is a NACK of the ClusterLoadAssignment.",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// per_host_thresholds with a threshold other than max_connections.
pub static PER_HOST_THRESHOLDS: Rule = Rule {
    id: "cluster-per-host-thresholds-field",
    summary: "circuit_breakers.per_host_thresholds sets a field other than max_connections",
    explanation: "Per-host circuit breaking only limits connections to each host; the other thresholds exist \
only cluster-wide, and Envoy refuses them here (\"Unsupported field in per_host_thresholds\"). Remove the \
field from `per_host_thresholds` and set it under `thresholds` instead.",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// ORIGINAL_DST without lb_policy CLUSTER_PROVIDED.
pub static ORIGINAL_DST_LB_POLICY: Rule = Rule {
    id: "cluster-original-dst-lb-policy",
    summary: "an ORIGINAL_DST cluster's lb_policy is not CLUSTER_PROVIDED",
    explanation: "An ORIGINAL_DST cluster forwards each connection to its original destination address, so \
there is nothing to balance, and Envoy requires `lb_policy: CLUSTER_PROVIDED`. Unlike other cluster types, the \
typed `load_balancing_policy` does not satisfy this: the `lb_policy` enum itself must say CLUSTER_PROVIDED.",
    envoy: "source/extensions/clusters/original_dst/original_dst_cluster.cc",
    ..Rule::ERROR
};

/// ORIGINAL_DST with endpoints.
pub static ORIGINAL_DST_LOAD_ASSIGNMENT: Rule = Rule {
    id: "cluster-original-dst-load-assignment",
    summary: "an ORIGINAL_DST cluster has a load_assignment",
    explanation: "ORIGINAL_DST hosts are created on the fly from each connection's original destination, so \
Envoy refuses static endpoints there, even an empty load_assignment. Remove `load_assignment` entirely.",
    envoy: "source/extensions/clusters/original_dst/original_dst_cluster.cc",
    ..Rule::ERROR
};

/// http_header_name without use_http_header.
pub static ORIGINAL_DST_HEADER_NAME: Rule = Rule {
    id: "cluster-original-dst-header-name",
    summary: "original_dst_lb_config.http_header_name is set but use_http_header is false",
    explanation: "`http_header_name` changes which header carries the destination, but Envoy reads a header \
only when `use_http_header` is true, so it refuses the setting alone as a mistake. Set `use_http_header: true` \
or drop `http_header_name`.",
    envoy: "source/extensions/clusters/original_dst/original_dst_cluster.cc",
    ..Rule::ERROR
};

/// A dynamic forward proxy without SNI and SAN checks from the request host.
pub static DFP_AUTO_SNI: Rule = Rule {
    id: "cluster-dfp-auto-sni",
    summary: "a dynamic_forward_proxy cluster lacks auto_sni and auto_san_validation, or its sub_clusters_config uses CLUSTER_PROVIDED",
    explanation: "A dynamic forward proxy connects to whatever host the request names, so Envoy insists that \
TLS uses that host as SNI and verifies the certificate against it. Set `upstream_http_protocol_options: \
{auto_sni: true, auto_san_validation: true}` in the HttpProtocolOptions, or explicitly opt out with \
allow_insecure_cluster_options. Its sub-clusters need a real load balancer, not CLUSTER_PROVIDED.",
    envoy: "source/extensions/clusters/dynamic_forward_proxy/cluster.cc",
    ..Rule::ERROR
};

/// max_ejection_time below base_ejection_time.
pub static OUTLIER_MAX_EJECTION: Rule = Rule {
    id: "outlier-max-ejection-below-base",
    summary: "outlier_detection.max_ejection_time is shorter than base_ejection_time",
    explanation: "Ejection time grows from base_ejection_time with each ejection and is capped at \
max_ejection_time, so Envoy refuses a cap below the starting value. base_ejection_time defaults to 30s: \
raise max_ejection_time or lower base_ejection_time.",
    envoy: "source/common/upstream/outlier_detection_impl.cc",
    ..Rule::ERROR
};

/// The cluster factories this Envoy has, by name.
const CLUSTER_NAMES: [&str; 13] = [
    "envoy.cluster.static",
    "envoy.cluster.strict_dns",
    "envoy.cluster.logical_dns",
    "envoy.cluster.eds",
    "envoy.cluster.original_dst",
    "envoy.cluster.dns",
    "envoy.clusters.aggregate",
    "envoy.clusters.dynamic_forward_proxy",
    "envoy.clusters.redis",
    "envoy.clusters.dynamic_modules",
    "envoy.clusters.reverse_connection",
    "envoy.clusters.mcp_multicluster",
    "envoy.clusters.composite",
];

/// The Cluster.LbPolicy value CLUSTER_PROVIDED.
const CLUSTER_PROVIDED: i32 = 6;

pub(super) fn check(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    dns_resolver_name(c, out);
    unknown_cluster_type(c, out);
    eds_config(c, out);
    leds(c, out);
    per_host_thresholds(c.m, out);
    original_dst(c, out);
    dynamic_forward_proxy(c, out);
    outlier(c.m, out);
}

/// The name of a `type` value (`STATIC`, ...).
fn discovery_name(c: &Cluster<'_>) -> String {
    enum_name(c.m, "type", c.discovery)
}

/// The name of value `n` of enum field `field` of `m`.
pub(super) fn enum_name(m: &DynamicMessage, field: &str, n: i32) -> String {
    m.descriptor()
        .get_field_by_name(field)
        .and_then(|f| f.kind().as_enum().and_then(|e| e.get_value(n)))
        .map_or_else(|| n.to_string(), |v| v.name().to_string())
}

/// Every `load_assignment.endpoints[].lb_endpoints[]` of a cluster, with its path.
fn lb_endpoints<'m>(c: &Cluster<'m>) -> Vec<(Vec<PathStep>, &'m DynamicMessage)> {
    let mut found = Vec::new();
    let Some((af, assignment)) = sub(c.m, "load_assignment") else {
        return found;
    };
    let Some((ef, localities)) = messages(assignment, "endpoints") else {
        return found;
    };
    for (i, locality) in localities {
        let Some((lf, items)) = messages(locality, "lb_endpoints") else {
            continue;
        };
        for (j, item) in items {
            let path = vec![
                PathStep::Field(af.clone()),
                PathStep::Field(ef.clone()),
                PathStep::Index(i),
                PathStep::Field(lf.clone()),
                PathStep::Index(j),
            ];
            found.push((path, item));
        }
    }
    found
}

fn dns_resolver_name(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    if c.extension.is_some() || !matches!(c.discovery, STRICT_DNS | LOGICAL_DNS) {
        return;
    }
    let endpoints = lb_endpoints(c);
    let localities = sub(c.m, "load_assignment")
        .and_then(|(_, a)| list(a, "endpoints"))
        .map_or(0, |(_, l)| l.len());
    if c.discovery == LOGICAL_DNS && (endpoints.len() != 1 || localities != 1) {
        // cluster-logical-dns-endpoints comes first.
        return;
    }
    let kind = discovery_name(c);
    for (path, lb) in endpoints {
        let Some((ef, endpoint)) = sub(lb, "endpoint") else {
            continue;
        };
        let Some((af, address)) = sub(endpoint, "address") else {
            continue;
        };
        let Some((sf, socket)) = sub(address, "socket_address") else {
            continue;
        };
        let Some((rf, Value::String(resolver))) = field(socket, "resolver_name") else {
            continue;
        };
        if resolver.is_empty() {
            continue;
        }
        let at = with(
            &path,
            [ef, af, sf, rf.clone()].into_iter().map(PathStep::Field),
        );
        out.push(Finding::at(
            &DNS_RESOLVER_NAME,
            at,
            format!(
                "{kind} cluster '{}' endpoint sets resolver_name '{resolver}'; DNS clusters use their DNS resolver",
                c.name
            ),
        ));
    }
}

fn unknown_cluster_type(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    let Some(ext) = &c.extension else {
        return;
    };
    let Some((cf, ct)) = sub(c.m, "cluster_type") else {
        return;
    };
    match ext.config_type.as_deref() {
        Some("google.protobuf.Struct") | None => {
            let Some((nf, _)) = field(ct, "name") else {
                return;
            };
            if !ext.name.is_empty() && !CLUSTER_NAMES.contains(&ext.name.as_str()) {
                out.push(Finding::at(
                    &UNKNOWN_CLUSTER_TYPE,
                    vec![PathStep::Field(cf), PathStep::Field(nf)],
                    format!(
                        "cluster_type '{}' is not a known cluster extension (built-in types are envoy.cluster.*, extensions envoy.clusters.*)",
                        ext.name
                    ),
                ));
            }
        }
        // Cluster extensions' configs live in this package; a type outside
        // it (Empty, a filter's config, ...) names no cluster factory.
        Some(t) if !t.starts_with("envoy.extensions.clusters.") => {
            if let Some((tf, _)) = field(ct, "typed_config") {
                out.push(Finding::missing_in(
                    &UNKNOWN_CLUSTER_TYPE,
                    vec![PathStep::Field(cf), PathStep::Field(tf)],
                    format!("cluster_type typed_config {t} is not the config of a known cluster extension"),
                ));
            }
        }
        Some(_) => {}
    }
}

fn eds_config(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    let Some((f, _)) = field(c.m, "eds_cluster_config") else {
        return;
    };
    if c.discovery != EDS {
        out.push(Finding::at(
            &EDS_CONFIG_NON_EDS,
            vec![PathStep::Field(f)],
            format!(
                "eds_cluster_config is set but cluster '{}' is of type {}",
                c.name,
                discovery_name(c)
            ),
        ));
    }
}

fn leds(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    if c.factory() != Some("envoy.cluster.static") {
        return;
    }
    let Some((af, assignment)) = sub(c.m, "load_assignment") else {
        return;
    };
    let Some((ef, localities)) = messages(assignment, "endpoints") else {
        return;
    };
    for (i, locality) in localities {
        if let Some((lf, _)) = field(locality, "leds_cluster_locality_config") {
            out.push(Finding::at(
                &LEDS_STATIC,
                vec![
                    PathStep::Field(af.clone()),
                    PathStep::Field(ef.clone()),
                    PathStep::Index(i),
                    PathStep::Field(lf),
                ],
                format!(
                    "cluster '{}' is STATIC; leds_cluster_locality_config needs an EDS cluster",
                    c.name
                ),
            ));
        }
    }
}

/// Checks a ClusterLoadAssignment.Policy (of a cluster or an EDS resource).
pub(super) fn drop_overloads(policy: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((df, drops)) = messages(policy, "drop_overloads") else {
        return;
    };
    if drops.len() > 1 {
        out.push(Finding::at(
            &DROP_OVERLOADS,
            vec![PathStep::Field(df)],
            format!(
                "drop_overloads has {} categories; Envoy supports one",
                drops.len()
            ),
        ));
        return;
    }
    let Some((_, drop)) = drops.first() else {
        return;
    };
    let Some((pf, percent)) = sub(drop, "drop_percentage") else {
        return;
    };
    let Some((nf, Value::U32(numerator))) = field(percent, "numerator") else {
        return;
    };
    let denominator: u32 = match enum_number(percent, "denominator").unwrap_or(0) {
        0 => 100,
        1 => 10_000,
        2 => 1_000_000,
        _ => return,
    };
    if *numerator > denominator {
        out.push(Finding::at(
            &DROP_OVERLOADS,
            vec![
                PathStep::Field(df),
                PathStep::Index(0),
                PathStep::Field(pf),
                PathStep::Field(nf),
            ],
            format!("drop_overloads ratio {numerator}/{denominator} is above 1"),
        ));
    }
}

fn per_host_thresholds(m: &DynamicMessage, out: &mut Vec<Finding>) {
    const UNSUPPORTED: [&str; 5] = [
        "max_pending_requests",
        "max_requests",
        "max_retries",
        "max_connection_pools",
        "retry_budget",
    ];
    let Some((cf, breakers)) = sub(m, "circuit_breakers") else {
        return;
    };
    let Some((tf, thresholds)) = messages(breakers, "per_host_thresholds") else {
        return;
    };
    let mut seen = Vec::new();
    for (i, threshold) in thresholds {
        // Envoy reads only the first entry of each priority.
        let priority = enum_number(threshold, "priority").unwrap_or(0);
        if seen.contains(&priority) {
            continue;
        }
        seen.push(priority);
        if let Some((f, _)) = UNSUPPORTED.iter().find_map(|n| field(threshold, n)) {
            let name = f.name().to_string();
            out.push(Finding::at(
                &PER_HOST_THRESHOLDS,
                vec![
                    PathStep::Field(cf.clone()),
                    PathStep::Field(tf.clone()),
                    PathStep::Index(i),
                    PathStep::Field(f),
                ],
                format!("per_host_thresholds supports only max_connections (found {name})"),
            ));
        }
    }
}

fn original_dst(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    if !c.is_original_dst() {
        return;
    }
    let lb_policy = enum_number(c.m, "lb_policy").unwrap_or(0);
    if lb_policy != CLUSTER_PROVIDED {
        let text = format!(
            "ORIGINAL_DST cluster '{}' needs lb_policy: CLUSTER_PROVIDED (is {}); load_balancing_policy does not count here",
            c.name,
            enum_name(c.m, "lb_policy", lb_policy)
        );
        // ROUND_ROBIN written out is not "set" in proto3: the path then
        // locates at the cluster's first line when the key is absent.
        let at = c.m.descriptor().get_field_by_name("lb_policy");
        out.push(Finding::at(
            &ORIGINAL_DST_LB_POLICY,
            at.map(PathStep::Field).into_iter().collect(),
            text,
        ));
    }
    if let Some((f, _)) = field(c.m, "load_assignment") {
        out.push(Finding::at(
            &ORIGINAL_DST_LOAD_ASSIGNMENT,
            vec![PathStep::Field(f)],
            format!(
                "ORIGINAL_DST cluster '{}' must not have a load_assignment",
                c.name
            ),
        ));
    }
    let config = match &c.extension {
        None if c.discovery == ORIGINAL_DST => {
            sub(c.m, "original_dst_lb_config").map(|(f, m)| (vec![PathStep::Field(f)], m.clone()))
        }
        _ => c.extension_config("envoy.extensions.clusters.original_dst.v3.OriginalDstCluster"),
    };
    let Some((path, config)) = config else {
        return;
    };
    let header = string(&config, "http_header_name").unwrap_or_default();
    if !header.is_empty()
        && !flag(&config, "use_http_header")
        && let Some((hf, _)) = field(&config, "http_header_name")
    {
        out.push(Finding::at(
            &ORIGINAL_DST_HEADER_NAME,
            with(&path, [PathStep::Field(hf)]),
            format!("http_header_name '{header}' has no effect unless use_http_header is true"),
        ));
    }
}

fn dynamic_forward_proxy(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    let Some((path, config)) =
        c.extension_config("envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig")
    else {
        return;
    };
    if !flag(&config, "allow_insecure_cluster_options") {
        let text = "dynamic_forward_proxy cluster needs upstream_http_protocol_options auto_sni: true and auto_san_validation: true (or allow_insecure_cluster_options)";
        let secure = |o: &DynamicMessage| flag(o, "auto_sni") && flag(o, "auto_san_validation");
        match &c.hpo {
            Some((hpo_path, hpo)) => match sub(hpo, "upstream_http_protocol_options") {
                Some((f, o)) if !secure(o) => out.push(Finding::at(
                    &DFP_AUTO_SNI,
                    with(hpo_path, [PathStep::Field(f)]),
                    text,
                )),
                Some(_) => {}
                None => out.push(Finding::at(&DFP_AUTO_SNI, hpo_path.clone(), text)),
            },
            // Without any, Envoy defaults both to true.
            None => {
                if let Some((f, o)) = sub(c.m, "upstream_http_protocol_options")
                    && !secure(o)
                {
                    out.push(Finding::at(&DFP_AUTO_SNI, vec![PathStep::Field(f)], text));
                }
            }
        }
    }
    if let Some((sf, sub_clusters)) = sub(&config, "sub_clusters_config")
        && enum_number(sub_clusters, "lb_policy") == Some(CLUSTER_PROVIDED)
        && let Some((lf, _)) = field(sub_clusters, "lb_policy")
    {
        out.push(Finding::at(
            &DFP_AUTO_SNI,
            with(&path, [PathStep::Field(sf), PathStep::Field(lf)]),
            "dynamic_forward_proxy sub_clusters_config cannot use lb_policy CLUSTER_PROVIDED",
        ));
    }
}

/// A Duration message in milliseconds.
pub(super) fn millis(d: &DynamicMessage) -> i64 {
    let seconds = d
        .get_field_by_name("seconds")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let nanos = d
        .get_field_by_name("nanos")
        .and_then(|v| v.as_i32())
        .unwrap_or(0);
    seconds.saturating_mul(1000) + i64::from(nanos) / 1_000_000
}

/// Milliseconds as a duration is written (`30s`, `1.5s`).
fn seconds_text(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, (ms % 1000).abs())
    }
}

fn outlier(m: &DynamicMessage, out: &mut Vec<Finding>) {
    const DEFAULT_BASE_MS: i64 = 30_000;
    let Some((of, detection)) = sub(m, "outlier_detection") else {
        return;
    };
    let Some((mf, max)) = sub(detection, "max_ejection_time") else {
        return;
    };
    let base = sub(detection, "base_ejection_time").map(|(_, d)| millis(d));
    let (base_ms, default) = match base {
        Some(ms) => (ms, ""),
        None => (DEFAULT_BASE_MS, ", the default"),
    };
    let max_ms = millis(max);
    if max_ms < base_ms {
        out.push(Finding::at(
            &OUTLIER_MAX_EJECTION,
            vec![PathStep::Field(of), PathStep::Field(mf)],
            format!(
                "outlier_detection max_ejection_time ({}) is below base_ejection_time ({}{default})",
                seconds_text(max_ms),
                seconds_text(base_ms)
            ),
        ));
    }
}
