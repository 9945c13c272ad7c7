//! Route tables: header options, retries, mirrors, weighted clusters,
//! direct responses, internal redirects, upgrades and virtual clusters.

use super::{enum_number, field, items, join, millis, msg, show_ms, step, text, wrapped};
use crate::check::{Finding, Place, Rule};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, Value};

pub static HEADER_APPEND_CONFLICT: Rule = Rule {
    id: "route-header-append-conflict",
    summary: "a header option sets the deprecated `append` together with a non-default `append_action`",
    explanation: "`append` is the deprecated predecessor of `append_action`. Envoy refuses a header option \
that sets both (\"Both append and append_action are set\"), because they can disagree. Drop `append` and keep \
`append_action` (APPEND_IF_EXISTS_OR_ADD, ADD_IF_ABSENT, OVERWRITE_IF_EXISTS_OR_ADD or OVERWRITE_IF_EXISTS).",
    envoy: "source/common/router/header_parser.cc",
    ..Rule::ERROR
};

pub static RETRY_BACKOFF: Rule = Rule {
    id: "route-retry-backoff-max-below-base",
    summary: "retry_back_off.max_interval is shorter than base_interval",
    explanation: "Envoy's retry back-off starts at base_interval and grows up to max_interval, so the \
maximum cannot be below the base. Envoy compares whole milliseconds, and anything under 1 ms counts as \
1 ms. Raise max_interval or lower base_interval.",
    envoy: "source/common/router/retry_policy_impl.cc",
    ..Rule::ERROR
};

pub static MIRROR_POLICY_CLUSTER: Rule = Rule {
    id: "route-mirror-policy-cluster",
    summary: "a request mirror policy sets neither or both of `cluster` and `cluster_header`",
    explanation: "A request mirror policy has to say where the shadow traffic goes: either a fixed \
`cluster` or a `cluster_header` to read it from, but not both. Envoy rejects a mirror policy with neither, \
or with both.",
    envoy: "source/common/router/config_impl.cc",
    ..Rule::ERROR
};

pub static WEIGHTED_CLUSTER_NAME: Rule = Rule {
    id: "route-weighted-cluster-name",
    summary: "a weighted_clusters entry sets neither or both of `name` and `cluster_header`",
    explanation: "Each weighted cluster entry must name its target cluster, either directly with `name` \
or indirectly with `cluster_header`. Envoy refuses entries with neither, or with both.",
    envoy: "source/common/router/weighted_cluster_specifier.cc",
    ..Rule::ERROR
};

pub static WEIGHTED_CLUSTER_WEIGHT: Rule = Rule {
    id: "route-weighted-cluster-missing-weight",
    summary: "a weighted_clusters entry has no `weight`",
    explanation: "Every entry in weighted_clusters needs an explicit weight, and Envoy fails config \
loading when one is missing (\"Field 'weight' is missing\"). Give each entry a weight. Traffic is split in \
proportion to the weights.",
    envoy: "source/common/router/weighted_cluster_specifier.cc",
    ..Rule::ERROR
};

pub static WEIGHTED_CLUSTERS_ZERO: Rule = Rule {
    id: "route-weighted-clusters-zero-total",
    summary: "the weights of all weighted_clusters entries add up to 0 (or overflow 32 bits)",
    explanation: "Envoy picks a weighted cluster in proportion to its weight, so at least one weight must \
be positive. An all-zero split is rejected, as is a sum above 4294967295. The deprecated `total_weight` \
field is ignored: the total is always the sum.",
    envoy: "source/common/router/weighted_cluster_specifier.cc",
    ..Rule::ERROR
};

pub static DIRECT_RESPONSE_TOO_LARGE: Rule = Rule {
    id: "route-direct-response-body-too-large",
    summary: "a direct_response body is larger than the route table's max_direct_response_body_size_bytes",
    explanation: "Envoy caps direct response bodies at max_direct_response_body_size_bytes on the \
RouteConfiguration (4096 bytes by default). Raise that limit, shorten the body, or serve large content \
from a real upstream.",
    envoy: "source/common/config/datasource.h",
    ..Rule::ERROR
};

pub static INTERNAL_REDIRECT_COPY_HEADER: Rule = Rule {
    id: "route-internal-redirect-copy-header",
    summary: "internal_redirect_policy.response_headers_to_copy names a pseudo-header or Host",
    explanation: "An internal redirect can copy ordinary response headers onto the redirected request, \
but not pseudo-headers or Host, which the redirect itself sets. Remove those entries.",
    envoy: "source/common/router/config_impl.cc",
    ..Rule::ERROR
};

pub static UPGRADE_CONFIG: Rule = Rule {
    id: "route-upgrade-config",
    summary: "route upgrade_configs repeats an upgrade_type, or puts connect_config on a non-CONNECT upgrade",
    explanation: "Each upgrade type may be listed once per route; Envoy compares the names \
case-insensitively. `connect_config` only makes sense for CONNECT (or CONNECT-UDP) upgrades, and Envoy \
rejects it anywhere else.",
    envoy: "source/common/router/config_impl.cc",
    ..Rule::ERROR
};

pub static VIRTUAL_CLUSTER_HEADERS: Rule = Rule {
    id: "route-virtual-cluster-headers",
    summary: "a virtual_clusters entry has no `headers` matcher",
    explanation: "A virtual cluster groups requests for stats by matching request headers (usually \
`:path` and `:method`). Without any header matcher it would match nothing, so Envoy rejects it \
(\"virtual clusters must define 'headers'\").",
    envoy: "source/common/router/config_impl.cc",
    ..Rule::ERROR
};

pub fn message(name: &str, m: &DynamicMessage, place: &Place<'_>, out: &mut Vec<Finding>) {
    match name {
        "envoy.config.core.v3.HeaderValueOption"
            if super::formats::header_option_is_parsed(place.path) =>
        {
            append_conflict(m, out)
        }
        "envoy.config.route.v3.RetryPolicy" => retry_back_off(m, out),
        "envoy.config.route.v3.RouteAction" => {
            mirror_policies(m, out);
            weighted_clusters(m, out);
            internal_redirect(m, out);
            upgrade_configs(m, out);
        }
        "envoy.config.route.v3.VirtualHost" => {
            mirror_policies(m, out);
            virtual_clusters(m, out);
        }
        "envoy.config.route.v3.RouteConfiguration" => direct_responses(m, out),
        _ => {}
    }
}

fn append_conflict(m: &DynamicMessage, out: &mut Vec<Finding>) {
    const APPEND_IF_EXISTS_OR_ADD: i32 = 0;
    if m.has_field_by_name("append") && enum_number(m, "append_action") != APPEND_IF_EXISTS_OR_ADD {
        let key = msg(m, "header").map_or("", |h| text(h, "key"));
        out.push(Finding::at(
            &HEADER_APPEND_CONFLICT,
            step(m, "append"),
            format!("header '{key}': set either append or append_action, not both"),
        ));
    }
}

fn retry_back_off(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((bf, Value::Message(back_off))) = field(m, "retry_back_off") else {
        return;
    };
    let (Some(base), Some(max)) = (
        millis(back_off, "base_interval"),
        millis(back_off, "max_interval"),
    ) else {
        return;
    };
    // Envoy raises both to at least 1 ms before comparing.
    let (base, max) = (base.max(1), max.max(1));
    if max < base {
        out.push(Finding::at(
            &RETRY_BACKOFF,
            join(&[PathStep::Field(bf)], step(back_off, "max_interval")),
            format!(
                "retry_back_off max_interval ({}) is shorter than base_interval ({})",
                show_ms(max),
                show_ms(base)
            ),
        ));
    }
}

fn mirror_policies(m: &DynamicMessage, out: &mut Vec<Finding>) {
    for (i, policy) in items(m, "request_mirror_policies").iter().enumerate() {
        let Some(policy) = policy.as_message() else {
            continue;
        };
        let cluster = !text(policy, "cluster").is_empty();
        let header = !text(policy, "cluster_header").is_empty();
        if cluster == header {
            out.push(Finding::at(
                &MIRROR_POLICY_CLUSTER,
                join(&step(m, "request_mirror_policies"), [PathStep::Index(i)]),
                "request mirror policy must set exactly one of cluster or cluster_header",
            ));
        }
    }
}

fn weighted_clusters(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((wf, Value::Message(weighted))) = field(m, "weighted_clusters") else {
        return;
    };
    let base = join(&[PathStep::Field(wf)], step(weighted, "clusters"));
    let mut sum: u64 = 0;
    for (i, entry) in items(weighted, "clusters").iter().enumerate() {
        let Some(entry) = entry.as_message() else {
            continue;
        };
        let at = join(&base, [PathStep::Index(i)]);
        let name = text(entry, "name");
        if name.is_empty() == text(entry, "cluster_header").is_empty() {
            out.push(Finding::at(
                &WEIGHTED_CLUSTER_NAME,
                at,
                "weighted cluster entry must set exactly one of name or cluster_header",
            ));
            return;
        }
        match wrapped(entry, "weight") {
            Some(w) => sum += w.as_u32().map_or(0, u64::from),
            None => {
                out.push(Finding::at(
                    &WEIGHTED_CLUSTER_WEIGHT,
                    at,
                    format!("weighted cluster entry '{name}' has no weight"),
                ));
                return;
            }
        }
    }
    let path = step(m, "weighted_clusters");
    // An empty list is the schema's error (`min_items`), reported before this.
    if sum == 0 && !items(weighted, "clusters").is_empty() {
        out.push(Finding::at(
            &WEIGHTED_CLUSTERS_ZERO,
            path,
            "weighted_clusters weights sum to 0",
        ));
    } else if sum > u64::from(u32::MAX) {
        out.push(Finding::at(
            &WEIGHTED_CLUSTERS_ZERO,
            path,
            format!("weighted_clusters weights sum to {sum}, above 4294967295"),
        ));
    }
}

fn internal_redirect(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((pf, Value::Message(policy))) = field(m, "internal_redirect_policy") else {
        return;
    };
    for (i, header) in items(policy, "response_headers_to_copy").iter().enumerate() {
        let Some(header) = header.as_str() else {
            continue;
        };
        if header.starts_with(':') || header.eq_ignore_ascii_case("host") {
            out.push(Finding::at(
                &INTERNAL_REDIRECT_COPY_HEADER,
                join(
                    &[PathStep::Field(pf.clone())],
                    join(
                        &step(policy, "response_headers_to_copy"),
                        [PathStep::Index(i)],
                    ),
                ),
                format!("internal redirect cannot copy header '{header}'"),
            ));
        }
    }
}

fn upgrade_configs(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let mut seen: Vec<String> = Vec::new();
    for (i, config) in items(m, "upgrade_configs").iter().enumerate() {
        let Some(config) = config.as_message() else {
            continue;
        };
        let upgrade = text(config, "upgrade_type");
        let lower = upgrade.to_ascii_lowercase();
        let at = join(
            &step(m, "upgrade_configs"),
            [PathStep::Index(i)]
                .into_iter()
                .chain(step(config, "upgrade_type")),
        );
        if seen.contains(&lower) {
            out.push(Finding::at(
                &UPGRADE_CONFIG,
                at,
                format!("upgrade_type '{upgrade}' listed twice"),
            ));
            return;
        }
        if config.has_field_by_name("connect_config")
            && lower != "connect"
            && lower != "connect-udp"
        {
            out.push(Finding::at(
                &UPGRADE_CONFIG,
                at,
                format!("connect_config is only valid for CONNECT / CONNECT-UDP (got '{upgrade}')"),
            ));
            return;
        }
        seen.push(lower);
    }
}

fn virtual_clusters(m: &DynamicMessage, out: &mut Vec<Finding>) {
    for (i, vc) in items(m, "virtual_clusters").iter().enumerate() {
        let Some(vc) = vc.as_message() else {
            continue;
        };
        if items(vc, "headers").is_empty() {
            out.push(Finding::at(
                &VIRTUAL_CLUSTER_HEADERS,
                join(&step(m, "virtual_clusters"), [PathStep::Index(i)]),
                format!(
                    "virtual cluster '{}' has no headers to match",
                    text(vc, "name")
                ),
            ));
        }
    }
}

/// Direct response bodies against the route table's limit.
fn direct_responses(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let max = wrapped(m, "max_direct_response_body_size_bytes")
        .and_then(Value::as_u32)
        .map_or(4096, u64::from);
    for (i, vhost) in items(m, "virtual_hosts").iter().enumerate() {
        let Some(vhost) = vhost.as_message() else {
            continue;
        };
        for (j, route) in items(vhost, "routes").iter().enumerate() {
            let Some(route) = route.as_message() else {
                continue;
            };
            let Some((df, Value::Message(direct))) = field(route, "direct_response") else {
                continue;
            };
            let Some((bf, Value::Message(body))) = field(direct, "body") else {
                continue;
            };
            let Some((inner, bytes)) = super::inline_source(body) else {
                continue;
            };
            let n = bytes.len() as u64;
            if n > max {
                let path = join(
                    &step(m, "virtual_hosts"),
                    [PathStep::Index(i)]
                        .into_iter()
                        .chain(step(vhost, "routes"))
                        .chain([
                            PathStep::Index(j),
                            PathStep::Field(df.clone()),
                            PathStep::Field(bf),
                        ])
                        .chain(inner),
                );
                out.push(Finding::at(
                    &DIRECT_RESPONSE_TOO_LARGE,
                    path,
                    format!(
                        "direct_response body is {n} bytes; max_direct_response_body_size_bytes is {max}"
                    ),
                ));
            }
        }
    }
}
