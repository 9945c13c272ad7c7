//! HTTP filter config types: `http_filters[].typed_config` and the
//! per-route `typed_per_filter_config` maps. Envoy finds the filter from the
//! message type (never from the name or map key).

use super::{field, flag, is_empty, join, msg, step, text};
use crate::check::{Finding, Rule};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, Value};

pub static UNSUPPORTED: Rule = Rule {
    id: "route-per-filter-config-unsupported",
    summary: "typed_per_filter_config holds the config of an HTTP filter that has no per-route configuration",
    explanation: "Only some HTTP filters accept per-route overrides in typed_per_filter_config. Envoy finds \
the filter from the message type, and rejects the route table if that filter has no per-route configuration \
(e.g. router, health_check, grpc_web). Remove the entry, or use `envoy.config.route.v3.FilterConfig` with \
`disabled: true` to turn the filter off for the route.",
    envoy: "source/common/router/per_filter_config.cc",
    ..Rule::ERROR
};

pub static WRONG_TYPE: Rule = Rule {
    id: "route-per-filter-config-type",
    summary: "typed_per_filter_config holds a message that is not an HTTP filter config, or a filter's main config where it has a distinct per-route message",
    explanation: "Per-route filter configs use each filter's per-route message, which is often different \
from its listener-level message (RBAC → RBACPerRoute, ext_authz → ExtAuthzPerRoute, Lua → LuaPerRoute…). \
Envoy picks the filter by the message type and refuses types that are not HTTP filter configs, and \
non-empty main-config messages where a per-route message is expected.",
    envoy: "source/common/router/per_filter_config.cc",
    ..Rule::ERROR
};

pub static EMPTY: Rule = Rule {
    id: "route-per-filter-config-empty",
    summary: "an envoy.config.route.v3.FilterConfig wrapper has neither `config` nor `disabled: true`",
    explanation: "The FilterConfig wrapper must either carry the filter's per-route `config` or set \
`disabled: true`. An empty wrapper is rejected (\"Empty route/virtual host per filter configuration\").",
    envoy: "source/common/router/per_filter_config.cc",
    ..Rule::ERROR
};

const FILTER_CONFIG: &str = "envoy.config.route.v3.FilterConfig";

/// HTTP filters without per-route configuration (verified against 1.40), by package.
const NO_PER_ROUTE: &[&str] = &[
    "a2a",
    "alternate_protocols_cache",
    "body_size_limit",
    "cache",
    "cache_v2",
    "connect_grpc_bridge",
    "gcp_authn",
    "grpc_http1_bridge",
    "grpc_stats",
    "grpc_web",
    "ip_tagging",
    "mcp_router",
    "original_src",
    "proto_api_scrubber",
    "proto_message_extraction",
    "rate_limit_quota",
    "router",
    "thrift_to_metadata",
    "wasm",
    "health_check",
];

/// Filters whose per-route message differs from the main one: main → per-route
/// (under `envoy.extensions.filters.http.`).
const PER_ROUTE_TYPES: &[(&str, &str)] = &[
    (
        "api_key_auth.v3.ApiKeyAuth",
        "api_key_auth.v3.ApiKeyAuthPerRoute",
    ),
    ("aws_lambda.v3.Config", "aws_lambda.v3.PerRouteConfig"),
    (
        "aws_request_signing.v3.AwsRequestSigning",
        "aws_request_signing.v3.AwsRequestSigningPerRoute",
    ),
    ("basic_auth.v3.BasicAuth", "basic_auth.v3.BasicAuthPerRoute"),
    ("buffer.v3.Buffer", "buffer.v3.BufferPerRoute"),
    ("composite.v3.Composite", "composite.v3.CompositePerRoute"),
    (
        "compressor.v3.Compressor",
        "compressor.v3.CompressorPerRoute",
    ),
    ("cors.v3.Cors", "cors.v3.CorsPolicy"),
    (
        "dynamic_forward_proxy.v3.FilterConfig",
        "dynamic_forward_proxy.v3.PerRouteConfig",
    ),
    (
        "dynamic_modules.v3.DynamicModuleFilter",
        "dynamic_modules.v3.DynamicModuleFilterPerRoute",
    ),
    ("ext_authz.v3.ExtAuthz", "ext_authz.v3.ExtAuthzPerRoute"),
    (
        "ext_proc.v3.ExternalProcessor",
        "ext_proc.v3.ExtProcPerRoute",
    ),
    (
        "filter_chain.v3.FilterChainConfig",
        "filter_chain.v3.FilterChainConfigPerRoute",
    ),
    (
        "grpc_http1_reverse_bridge.v3.FilterConfig",
        "grpc_http1_reverse_bridge.v3.FilterConfigPerRoute",
    ),
    (
        "header_mutation.v3.HeaderMutation",
        "header_mutation.v3.HeaderMutationPerRoute",
    ),
    (
        "jwt_authn.v3.JwtAuthentication",
        "jwt_authn.v3.PerRouteConfig",
    ),
    ("lua.v3.Lua", "lua.v3.LuaPerRoute"),
    ("mcp.v3.Mcp", "mcp.v3.McpOverride"),
    (
        "mcp_json_rest_bridge.v3.McpJsonRestBridge",
        "mcp_json_rest_bridge.v3.McpJsonRestBridgePerRoute",
    ),
    ("oauth2.v3.OAuth2", "oauth2.v3.OAuth2PerRoute"),
    ("on_demand.v3.OnDemand", "on_demand.v3.PerRouteConfig"),
    ("ratelimit.v3.RateLimit", "ratelimit.v3.RateLimitPerRoute"),
    ("rbac.v3.RBAC", "rbac.v3.RBACPerRoute"),
    (
        "stateful_session.v3.StatefulSession",
        "stateful_session.v3.StatefulSessionPerRoute",
    ),
];

const HTTP: &str = "envoy.extensions.filters.http.";

pub fn message(name: &str, m: &DynamicMessage, out: &mut Vec<Finding>) {
    match name {
        "envoy.config.route.v3.RouteConfiguration"
        | "envoy.config.route.v3.VirtualHost"
        | "envoy.config.route.v3.Route"
        | "envoy.config.route.v3.WeightedCluster.ClusterWeight" => per_filter_configs(m, out),
        _ => {}
    }
}

/// The config type of an Any (for a TypedStruct, the type it describes).
fn any_type(any: &DynamicMessage) -> String {
    crate::check::extensions::config_type(any)
}

/// Envoy finds a per-route config's filter among the HTTP filters by type.
fn not_http_filter(type_name: &str) -> bool {
    crate::check::extensions::registered("envoy.filters.http", type_name) == Some(false)
}

fn per_filter_configs(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((f, Value::Map(configs))) = field(m, "typed_per_filter_config") else {
        return;
    };
    for (key, any) in configs {
        let Value::Message(any) = any else {
            continue;
        };
        let path = vec![PathStep::Field(f.clone()), PathStep::key(key)];
        let key = match key {
            prost_reflect::MapKey::String(s) => s.as_str(),
            _ => "",
        };
        per_filter_config(key, any, path, out);
    }
}

fn per_filter_config(key: &str, any: &DynamicMessage, path: Vec<PathStep>, out: &mut Vec<Finding>) {
    if any_type(any) == FILTER_CONFIG {
        let Some(wrapper) = crate::config::reflect::unpack_any(any) else {
            return;
        };
        if flag(&wrapper, "disabled") {
            return;
        }
        let Some(config) = msg(&wrapper, "config") else {
            out.push(Finding::missing_in(
                &EMPTY,
                path,
                format!("FilterConfig for '{key}' needs config or disabled: true"),
            ));
            return;
        };
        if flag(&wrapper, "is_optional") || text(config, "type_url").is_empty() {
            return;
        }
        let inner = join(&path, step(&wrapper, "config"));
        return filter_type(key, config, inner, out);
    }
    filter_type(key, any, path, out);
}

/// The per-route checks of one config by its type.
fn filter_type(key: &str, any: &DynamicMessage, path: Vec<PathStep>, out: &mut Vec<Finding>) {
    let type_name = any_type(any);
    let type_name = type_name.as_str();
    if not_http_filter(type_name) {
        out.push(Finding::missing_in(
            &WRONG_TYPE,
            path,
            format!("'{key}': {type_name} is not an HTTP filter config type"),
        ));
        return;
    }
    let Some(short) = type_name.strip_prefix(HTTP) else {
        return;
    };
    let package = short.split('.').next().unwrap_or("");
    if NO_PER_ROUTE.contains(&package) {
        out.push(Finding::missing_in(
            &UNSUPPORTED,
            path,
            format!("'{key}': {type_name} belongs to a filter with no per-route configuration"),
        ));
        return;
    }
    // An empty main message is replaced by the default per-route one.
    if let Some((_, route_type)) = PER_ROUTE_TYPES.iter().find(|(main, _)| *main == short)
        && crate::config::reflect::unpack_any(any).is_some_and(|m| !is_empty(&m))
    {
        out.push(Finding::missing_in(
            &WRONG_TYPE,
            path,
            format!("'{key}': per-route config for this filter must be {HTTP}{route_type}, not {type_name}"),
        ));
    }
}
