//! Header values as format strings: the header lists Envoy builds with its
//! HeaderParser while it loads the config (routes, local replies, health
//! checks, rate limits, ...), the `initial_metadata` of the gRPC clients and
//! the headers of the HttpServices it creates at load. Only those: a list
//! Envoy parses per request is accepted whatever it holds, so it is not
//! checked here.

use super::commands::extensions;
use super::{Format, check};
use crate::check::Finding;
use crate::check::http::{field, items, join, text};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, FieldDescriptor, Value};

/// The HeaderValueOption lists, by message and field, that Envoy builds
/// with its HeaderParser while it loads the config, so that their values are
/// format strings (header-value mode) and a bad one rejects the config. A
/// list not here is either never parsed or parsed only per request.
const HEADER_PARSER_LISTS: &[(&str, &[&str])] = &[
    // source/common/router/config_impl.cc
    ("envoy.config.route.v3.RouteConfiguration", REQUEST_RESPONSE),
    ("envoy.config.route.v3.VirtualHost", REQUEST_RESPONSE),
    ("envoy.config.route.v3.Route", REQUEST_RESPONSE),
    // source/common/router/weighted_cluster_specifier.cc
    (
        "envoy.config.route.v3.WeightedCluster.ClusterWeight",
        REQUEST_RESPONSE,
    ),
    // source/common/local_reply/local_reply.cc
    (
        "envoy.extensions.filters.network.http_connection_manager.v3.ResponseMapper",
        &["headers_to_add"],
    ),
    // source/common/http/header_mutation.cc
    (
        "envoy.config.common.mutation_rules.v3.HeaderMutation",
        &["append"],
    ),
    // source/common/tcp_proxy/tcp_proxy.cc
    (
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.TunnelingConfig",
        &["headers_to_add"],
    ),
    // source/extensions/filters/udp/udp_proxy/config.cc
    (
        "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig.UdpTunnelingConfig",
        &["headers_to_add"],
    ),
    // source/extensions/health_checkers/http/health_checker_impl.cc
    (
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck",
        &["request_headers_to_add"],
    ),
    // source/extensions/health_checkers/grpc/health_checker_impl.cc
    (
        "envoy.config.core.v3.HealthCheck.GrpcHealthCheck",
        &["initial_metadata"],
    ),
    // source/extensions/filters/http/local_ratelimit/local_ratelimit.cc (the
    // filter's own config and a per-route one alike)
    (
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        &[
            "response_headers_to_add",
            "request_headers_to_add_when_not_enforced",
        ],
    ),
    // source/extensions/filters/http/ratelimit/ratelimit.h
    (
        "envoy.extensions.filters.http.ratelimit.v3.RateLimit",
        &["response_headers_to_add"],
    ),
    // source/extensions/http/custom_response/local_response_policy/local_response_policy.cc
    (
        "envoy.extensions.http.custom_response.local_response_policy.v3.LocalResponsePolicy",
        &["response_headers_to_add"],
    ),
    // source/extensions/http/custom_response/redirect_policy/redirect_policy.cc
    (
        "envoy.extensions.http.custom_response.redirect_policy.v3.RedirectPolicy",
        REQUEST_RESPONSE,
    ),
];

const REQUEST_RESPONSE: &[&str] = &["request_headers_to_add", "response_headers_to_add"];

/// The gRPC services, by the message and field holding them, whose client
/// Envoy creates while it loads the config: creating one builds its
/// `initial_metadata` with the HeaderParser (source/common/grpc/async_client_impl.cc,
/// google_async_client_impl.cc). Elsewhere the client is made later (per
/// stream or per worker), and Envoy 1.40 loads a bad value: checked for
/// ext_authz, ext_proc, ratelimit and the OpenTelemetry tracer.
pub(super) const GRPC_CLIENTS_BUILT_AT_LOAD: &[(&str, &[&str])] = &[
    // source/extensions/access_loggers/grpc/grpc_access_log_impl.cc (http_grpc,
    // tcp_grpc, and the OpenTelemetry logger's common_config)
    (
        "envoy.extensions.access_loggers.grpc.v3.CommonGrpcAccessLogConfig",
        &["grpc_service"],
    ),
    // source/extensions/access_loggers/open_telemetry/grpc_access_log_impl.cc
    (
        "envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig",
        &["grpc_service"],
    ),
    // source/extensions/tracers/skywalking/trace_segment_reporter.cc
    ("envoy.config.trace.v3.SkyWalkingConfig", &["grpc_service"]),
    // source/extensions/filters/http/rate_limit_quota/global_client_impl.cc
    (
        "envoy.extensions.filters.http.rate_limit_quota.v3.RateLimitQuotaFilterConfig",
        &["rlqs_server"],
    ),
];

/// The HttpServices, by the message and field holding them, whose headers
/// Envoy builds at load (`HttpServiceHeadersApplicator`). The Dynatrace
/// sampler sends its headers as written, so it is not here.
pub(super) const HTTP_SERVICES_BUILT_AT_LOAD: &[(&str, &[&str])] = &[
    // source/extensions/access_loggers/open_telemetry/http_access_log_impl.cc
    (
        "envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig",
        &["http_service"],
    ),
    // source/extensions/tracers/opentelemetry/opentelemetry_tracer_impl.cc
    (
        "envoy.config.trace.v3.OpenTelemetryConfig",
        &["http_service"],
    ),
    // source/extensions/tracers/zipkin/zipkin_tracer_impl.cc
    ("envoy.config.trace.v3.ZipkinConfig", &["collector_service"]),
    // source/extensions/filters/http/ext_proc/config.cc
    (
        "envoy.extensions.filters.http.ext_proc.v3.ExtProcHttpService",
        &["http_service"],
    ),
];

/// Whether `field` is one of `fields` (message, field names).
fn is_one_of(field: &FieldDescriptor, fields: &[(&str, &[&str])]) -> bool {
    let parent = field.parent_message();
    fields
        .iter()
        .any(|(message, names)| parent.full_name() == *message && names.contains(&field.name()))
}

/// Whether the message at `path` is the value of one of `fields`.
pub(super) fn held_by(path: &[PathStep], fields: &[(&str, &[&str])]) -> bool {
    matches!(path.last(), Some(PathStep::Field(f)) if is_one_of(f, fields))
}

/// Whether the HeaderValueOption at `path` is in a list Envoy builds with
/// its HeaderParser at load (`HEADER_PARSER_LISTS`).
pub fn header_option_is_parsed(path: &[PathStep]) -> bool {
    matches!(path.iter().rev().nth(1), Some(PathStep::Field(list)) if is_one_of(list, HEADER_PARSER_LISTS))
}

/// A HeaderValueOption's header, as the HeaderParser reads it.
pub(super) fn header_option(m: &DynamicMessage, out: &mut Vec<Finding>) {
    if let Some((hf, Value::Message(header))) = field(m, "header") {
        parsed_header(header, &[PathStep::Field(hf)], out);
    }
}

/// The HeaderValues of list `name` of `m`, which the HeaderParser builds;
/// `at` is the path from the message being checked to `m`.
pub(super) fn parsed_headers(
    m: &DynamicMessage,
    name: &str,
    at: &[PathStep],
    out: &mut Vec<Finding>,
) {
    let Some((f, headers)) = crate::config::reflect::list(m, name) else {
        return;
    };
    for (i, header) in headers.iter().enumerate() {
        if let Value::Message(header) = header {
            let path = join(at, [PathStep::Field(f.clone()), PathStep::Index(i)]);
            parsed_header(header, &path, out);
        }
    }
}

/// One HeaderValue the HeaderParser builds: its value is a format string in
/// header-value mode, with no formatter extensions.
fn parsed_header(header: &DynamicMessage, at: &[PathStep], out: &mut Vec<Finding>) {
    let key = text(header, "key");
    // A pseudo-header or Host is refused before its value is parsed.
    if key.starts_with(':') || key.eq_ignore_ascii_case("host") {
        return;
    }
    header_format(header, at, true, Some(Vec::new()), out);
}

/// Checks `header`'s value as a format string.
fn header_format(
    header: &DynamicMessage,
    at: &[PathStep],
    header_value: bool,
    extensions: Option<Vec<&'static str>>,
    out: &mut Vec<Finding>,
) {
    let Some((vf, Value::String(value))) = field(header, "value") else {
        return;
    };
    let what = format!("the value of header '{}'", text(header, "key"));
    let format = Format {
        what: &what,
        header_value,
        extensions,
    };
    check(value, &format, join(at, [PathStep::Field(vf)]), out);
}

/// ext_authz's `http_service.authorization_request.headers_to_add`, built
/// with the filter (source/extensions/filters/common/ext_authz/ext_authz_http_impl.cc).
/// A per-route `check_settings.http_service` is built per request, so Envoy
/// accepts a bad value there: only the filter's own is checked.
pub(super) fn ext_authz(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((sf, Value::Message(service))) = field(m, "http_service") else {
        return;
    };
    if let Some((rf, Value::Message(request))) = field(service, "authorization_request") {
        let at = [PathStep::Field(sf), PathStep::Field(rf)];
        parsed_headers(request, "headers_to_add", &at, out);
    }
}

/// HttpService `request_headers_to_add` (source/common/http/http_service_headers.cc):
/// not the HeaderParser but a plain format string each (so no header-value
/// rewriting, and pseudo-headers are not refused), with the service's own
/// `formatters`. An empty value is sent as it is; it has no command anyway.
pub(super) fn http_service(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((f, options)) = crate::config::reflect::list(m, "request_headers_to_add") else {
        return;
    };
    let extensions = extensions(items(m, "formatters"));
    for (i, option) in options.iter().enumerate() {
        if let Value::Message(option) = option
            && let Some((hf, Value::Message(header))) = field(option, "header")
        {
            let at = [
                PathStep::Field(f.clone()),
                PathStep::Index(i),
                PathStep::Field(hf),
            ];
            header_format(header, &at, false, extensions.clone(), out);
        }
    }
}
