//! HTTP/2 protocol options, checked wherever Envoy validates them: the
//! HCM's (downstream) and a cluster's (upstream, typed or legacy). Both go
//! through Envoy's Http2::Utility::initializeAndValidateOptions, then each
//! compares max_header_field_size_kb with its own header limit.

use super::{Finding, Place, Rule, containers};
use crate::config::reflect::{field, list};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};
use std::collections::HashMap;

/// A header field larger than the header block limit.
pub static MAX_HEADER_FIELD_SIZE: Rule = Rule {
    id: "http2-max-header-field-size",
    summary: "http2_protocol_options.max_header_field_size_kb is above the header block limit",
    explanation: "A single header field cannot be larger than the whole header block allowed \
(\"max_header_field_size_kb must not exceed max_request_headers_kb\"; on a cluster, \
max_response_headers_kb). On an HCM the limit is max_request_headers_kb, 60 when unset: raise it to at \
least max_header_field_size_kb.",
    envoy: "source/extensions/filters/network/http_connection_manager/config.cc",
    ..Rule::ERROR
};

/// custom_settings_parameters that Envoy refuses.
pub static SETTINGS_PARAMETER: Rule = Rule {
    id: "http2-settings-parameter",
    summary: "http2_protocol_options.custom_settings_parameters enables push, sets ENABLE_CONNECT_PROTOCOL, duplicates a named option, or is inconsistent",
    explanation: "custom_settings_parameters is for HTTP/2 SETTINGS that Envoy has no named field for. \
Settings it does name (header table size, concurrent streams, window size, extended CONNECT) must be set \
through those fields (\"can not be configured through both named and custom parameters\"). Server push is \
not supported at all, and giving one identifier two values is contradictory (\"inconsistent HTTP/2 custom \
SETTINGS parameter(s)\").",
    envoy: "source/common/http/utility.cc",
    ..Rule::ERROR
};

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
const TYPED_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Where an Http2ProtocolOptions sits decides whether Envoy validates it and
/// against which header limit: (limit in KiB, its name) or no limit.
enum Owner {
    Hcm(u32),
    Upstream(Option<u32>),
    Ignored,
}

/// Checks one Http2ProtocolOptions at `place`.
pub fn check(m: &DynamicMessage, place: &Place<'_>, out: &mut Vec<Finding>) {
    let owner = owner(place);
    if matches!(owner, Owner::Ignored) {
        return;
    }
    custom_settings(m, &SETTINGS_PARAMETER, out);
    let (limit, name) = match owner {
        Owner::Hcm(kb) => (Some(kb), "max_request_headers_kb"),
        Owner::Upstream(kb) => (kb, "max_response_headers_kb"),
        Owner::Ignored => (None, ""),
    };
    if let Some(limit) = limit {
        header_field_size(m, limit, name, &MAX_HEADER_FIELD_SIZE, out);
    }
}

/// A wrapper (UInt32Value, ...) field's inner value.
fn wrapped_u32(m: &DynamicMessage, name: &str) -> Option<(prost_reflect::FieldDescriptor, u32)> {
    let (f, v) = field(m, name)?;
    let value = v.as_message()?.get_field_by_name("value")?.as_u32()?;
    Some((f, value))
}

/// `common_http_protocol_options.max_response_headers_kb` of `m`, when set.
fn response_limit(m: &DynamicMessage) -> Option<u32> {
    let (_, common) = field(m, "common_http_protocol_options")?;
    wrapped_u32(common.as_message()?, "max_response_headers_kb").map(|(_, v)| v)
}

fn owner(place: &Place<'_>) -> Owner {
    let up = containers(&place.resource.message, place.path, 2);
    let parent = up.first();
    match parent
        .map(|p| p.descriptor().full_name().to_string())
        .as_deref()
    {
        Some(HCM) => {
            // Envoy's default request header limit.
            let kb = parent
                .and_then(|p| wrapped_u32(p, "max_request_headers_kb"))
                .map_or(60, |(_, v)| v);
            Owner::Hcm(kb)
        }
        Some(CLUSTER) => match parent {
            // Typed HttpProtocolOptions replace the legacy cluster fields entirely.
            Some(cluster) if !has_typed_options(cluster) => {
                Owner::Upstream(response_limit(cluster))
            }
            _ => Owner::Ignored,
        },
        Some(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig"
            | "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig"
            | "envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig",
        ) => Owner::Upstream(up.get(1).and_then(response_limit)),
        _ => Owner::Ignored,
    }
}

fn has_typed_options(cluster: &DynamicMessage) -> bool {
    match field(cluster, "typed_extension_protocol_options") {
        Some((_, Value::Map(entries))) => entries
            .keys()
            .any(|k| matches!(k, prost_reflect::MapKey::String(s) if s == TYPED_OPTIONS)),
        _ => false,
    }
}

/// `max_header_field_size_kb` must not exceed the header block limit.
pub fn header_field_size(
    m: &DynamicMessage,
    limit: u32,
    limit_name: &str,
    rule: &'static Rule,
    out: &mut Vec<Finding>,
) {
    if let Some((f, size)) = wrapped_u32(m, "max_header_field_size_kb")
        && size > limit
    {
        out.push(Finding::at(
            rule,
            vec![PathStep::Field(f)],
            format!("`max_header_field_size_kb` ({size}) exceeds `{limit_name}` ({limit})"),
        ));
    }
}

/// SETTINGS identifiers (RFC 9113 and RFC 8441).
const HEADER_TABLE_SIZE: u32 = 0x1;
const ENABLE_PUSH: u32 = 0x2;
const MAX_CONCURRENT_STREAMS: u32 = 0x3;
const INITIAL_WINDOW_SIZE: u32 = 0x4;
const ENABLE_CONNECT_PROTOCOL: u32 = 0x8;

/// Envoy's validateCustomSettingsParameters: in order, enabling push or
/// setting ENABLE_CONNECT_PROTOCOL fails at once; otherwise one identifier
/// with two values is reported before a collision with a named field.
pub fn custom_settings(m: &DynamicMessage, rule: &'static Rule, out: &mut Vec<Finding>) {
    let Some((lf, items)) = list(m, "custom_settings_parameters") else {
        return;
    };
    let mut first_value: HashMap<u32, u64> = HashMap::new();
    let mut inconsistent = Vec::new();
    let mut named = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(entry) = item.as_message() else {
            continue;
        };
        let Some((idf, id)) = wrapped_u32(entry, "identifier") else {
            continue;
        };
        let value = wrapped_u32(entry, "value");
        let number = value.as_ref().map_or(0, |(_, v)| *v);
        let at = |f: prost_reflect::FieldDescriptor| {
            vec![
                PathStep::Field(lf.clone()),
                PathStep::Index(i),
                PathStep::Field(f),
            ]
        };
        // The identifier is a 16-bit SETTINGS id (PGV caps it).
        if *first_value.entry(id).or_insert(u64::from(number)) != u64::from(number) {
            inconsistent.push((
                at(idf.clone()),
                format!("HTTP/2 SETTINGS identifier 0x{id:02x} is given two different values"),
            ));
        }
        match id {
            ENABLE_PUSH if number == 1 => {
                let path = value.map_or_else(|| at(idf.clone()), |(vf, _)| at(vf));
                out.push(Finding::at(
                    rule,
                    path,
                    "SETTINGS_ENABLE_PUSH=1 is not supported: Envoy does not do server push",
                ));
                return;
            }
            ENABLE_CONNECT_PROTOCOL => {
                out.push(Finding::at(
                    rule,
                    at(idf),
                    "use `allow_connect` instead of SETTINGS 0x8 (ENABLE_CONNECT_PROTOCOL)",
                ));
                return;
            }
            _ => {}
        }
        let twin = match id {
            HEADER_TABLE_SIZE => "hpack_table_size",
            MAX_CONCURRENT_STREAMS => "max_concurrent_streams",
            INITIAL_WINDOW_SIZE => "initial_stream_window_size",
            _ => continue,
        };
        if m.has_field_by_name(twin) {
            named.push((
                at(idf),
                format!("use `{twin}` or the custom parameter 0x{id:02x}, not both"),
            ));
        }
    }
    let found = if inconsistent.is_empty() {
        named
    } else {
        inconsistent
    };
    for (path, message) in found {
        out.push(Finding::at(rule, path, message));
    }
}
