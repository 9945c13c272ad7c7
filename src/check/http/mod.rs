//! HTTP filters, routes, access logs and format strings: what Envoy refuses
//! when it builds a filter chain, a route table, an access logger or a tracer.
//!
//! * [`formats`]: substitution format strings (access logs, header values);
//! * [`routes`]: route tables, virtual hosts, routes and route actions;
//! * [`per_filter`]: `typed_per_filter_config` (the HTTP filter types are
//!   [`super::extensions`]' rule);
//! * [`lua`], [`jwt`], [`rbac`], [`ratelimit`]: those filters;
//! * [`filters`]: the smaller HTTP filters (ext_authz, ext_proc, ...);
//! * [`tracers`], [`access_logs`] and [`tcp_proxy`].

mod access_logs;
mod filters;
mod formats;
mod jwt;
mod lua;
mod per_filter;
mod ratelimit;
mod rbac;
mod routes;
mod tcp_proxy;
mod tracers;

use super::{Finding, Place, Rule};
use crate::config::diag::Diagnostics;
use crate::config::reflect::field;
use crate::config::resource::field_step as step;
use crate::config::resource::{PathStep, Resource};
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

/// The rules this module reports.
pub static RULES: &[&Rule] = &[
    &formats::UNKNOWN_COMMAND,
    &formats::MALFORMED_COMMAND,
    &formats::COMMAND_ARGUMENTS,
    &formats::COMMAND_OPTION,
    &routes::HEADER_APPEND_CONFLICT,
    &routes::RETRY_BACKOFF,
    &routes::MIRROR_POLICY_CLUSTER,
    &routes::WEIGHTED_CLUSTER_NAME,
    &routes::WEIGHTED_CLUSTER_WEIGHT,
    &routes::WEIGHTED_CLUSTERS_ZERO,
    &routes::DIRECT_RESPONSE_TOO_LARGE,
    &routes::INTERNAL_REDIRECT_COPY_HEADER,
    &routes::UPGRADE_CONFIG,
    &routes::VIRTUAL_CLUSTER_HEADERS,
    &per_filter::UNSUPPORTED,
    &per_filter::WRONG_TYPE,
    &per_filter::EMPTY,
    &lua::LOAD_ERROR,
    &lua::INLINE_AND_DEFAULT,
    &jwt::UNKNOWN_PROVIDER,
    &jwt::UNKNOWN_REQUIREMENT,
    &jwt::LOCAL_JWKS,
    &jwt::REMOTE_JWKS_URI,
    &jwt::CLAIM_TO_HEADER_SOURCE,
    &rbac::INVALID_CIDR,
    &rbac::PORT_RANGE,
    &rbac::NETWORK_HEADER,
    &ratelimit::FILL_INTERVAL,
    &ratelimit::DUPLICATE_DESCRIPTOR,
    &filters::HEADER_TO_METADATA,
    &filters::HEALTH_CHECK_CACHE,
    &filters::EXT_AUTHZ_PATH,
    &filters::EXT_AUTHZ_ALLOWED_HEADERS,
    &filters::EXT_PROC_SERVICE,
    &filters::EXT_PROC_MODE,
    &tracers::ZIPKIN_COLLECTOR,
    &tracers::OPENTELEMETRY_EXPORTER,
    &access_logs::OPENTELEMETRY_TRANSPORT,
    &tcp_proxy::BACKOFF,
    &tcp_proxy::POST_PATH,
];

/// Checks one message at `place`.
pub fn message(m: &DynamicMessage, place: &Place<'_>, out: &mut Vec<Finding>) {
    let name = m.descriptor().full_name().to_string();
    formats::message(&name, m, place, out);
    routes::message(&name, m, place, out);
    per_filter::message(&name, m, out);
    lua::message(&name, m, out);
    jwt::message(&name, m, out);
    rbac::message(&name, m, out);
    ratelimit::message(&name, m, place, out);
    filters::message(&name, m, place, out);
    tracers::message(&name, m, out);
    access_logs::message(&name, m, out);
    tcp_proxy::message(&name, m, out);
}

/// Checks across resources (cluster references are `missing-reference`, in
/// `validate`).
pub fn set(_resources: &[Resource], _diags: &mut Diagnostics) {}

/// `base` followed by `more`.
fn join(base: &[PathStep], more: impl IntoIterator<Item = PathStep>) -> Vec<PathStep> {
    base.iter().cloned().chain(more).collect()
}

/// A set message field.
fn msg<'m>(m: &'m DynamicMessage, name: &str) -> Option<&'m DynamicMessage> {
    field(m, name).and_then(|(_, v)| v.as_message())
}

/// A string field, empty when unset.
fn text<'m>(m: &'m DynamicMessage, name: &str) -> &'m str {
    field(m, name).and_then(|(_, v)| v.as_str()).unwrap_or("")
}

/// A bool field, false when unset.
fn flag(m: &DynamicMessage, name: &str) -> bool {
    field(m, name).and_then(|(_, v)| v.as_bool()) == Some(true)
}

/// An enum field's number, 0 when unset.
fn enum_number(m: &DynamicMessage, name: &str) -> i32 {
    field(m, name)
        .and_then(|(_, v)| v.as_enum_number())
        .unwrap_or(0)
}

/// A repeated field's items (empty when unset).
fn items<'m>(m: &'m DynamicMessage, name: &str) -> &'m [Value] {
    crate::config::reflect::list(m, name).map_or(&[], |(_, l)| l)
}

/// The value inside a wrapper message field (`google.protobuf.UInt32Value`, ...).
fn wrapped<'m>(m: &'m DynamicMessage, name: &str) -> Option<&'m Value> {
    msg(m, name).and_then(|w| field(w, "value").map(|(_, v)| v).or(Some(&ZERO)))
}

static ZERO: Value = Value::U64(0);

/// A `google.protobuf.Duration` field in whole milliseconds (truncated), when set.
fn millis(m: &DynamicMessage, name: &str) -> Option<i64> {
    let d = msg(m, name)?;
    let seconds = field(d, "seconds")
        .and_then(|(_, v)| v.as_i64())
        .unwrap_or(0);
    let nanos = field(d, "nanos").and_then(|(_, v)| v.as_i32()).unwrap_or(0);
    Some(
        seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(nanos) / 1_000_000),
    )
}

/// A duration for messages: `0.25s`.
fn show_ms(ms: i64) -> String {
    format!("{}ms", ms)
}

/// The bytes of an inline `DataSource` (`inline_string` / `inline_bytes`), with
/// the path to the field holding them; `None` for files and environment variables.
fn inline_source(source: &DynamicMessage) -> Option<(Vec<PathStep>, Vec<u8>)> {
    for name in ["inline_string", "inline_bytes"] {
        if let Some((f, v)) = field(source, name) {
            let bytes = match v {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Bytes(b) => b.to_vec(),
                _ => continue,
            };
            return Some((vec![PathStep::Field(f)], bytes));
        }
    }
    None
}

/// True when no field of `m` is set.
fn is_empty(m: &DynamicMessage) -> bool {
    m.fields().next().is_none()
}
