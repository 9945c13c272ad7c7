//! Upstream protocol options: typed_extension_protocol_options, the legacy
//! HTTP fields, ALPN, HTTP/3 and upstream HTTP filters.

use super::{Cluster, HPO_KEY, any_type, enum_number, field, messages, sub, type_name, with};
use crate::check::{Finding, Rule};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, MapKey, Value};

/// A protocol options key that names no extension taking options.
pub static UNKNOWN_KEY: Rule = Rule {
    id: "cluster-protocol-options-unknown-key",
    summary: "a typed_extension_protocol_options key names no extension that takes protocol options",
    explanation: "Each typed_extension_protocol_options key must be the name of the extension that consumes \
the options. For HTTP that is `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`, for TCP \
`envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions`. Envoy refuses keys it cannot match to such an \
extension, and filters that take no protocol options.",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// A protocol options value of another type than its key expects.
pub static TYPE_MISMATCH: Rule = Rule {
    id: "cluster-protocol-options-type-mismatch",
    summary: "a typed_extension_protocol_options value's @type does not match the message its key expects",
    explanation: "Each typed_extension_protocol_options entry is decoded as the options message of the \
extension named by its key, so Envoy refuses another `@type` (\"Unable to unpack as ...\"). Fix the key or \
the `@type` so that they agree.",
    envoy: "source/common/protobuf/utility.cc",
    ..Rule::ERROR
};

/// Legacy HTTP/1 and HTTP/2 options with one configured protocol.
pub static LEGACY_HTTP1_HTTP2_BOTH: Rule = Rule {
    id: "cluster-legacy-http1-http2-both",
    summary: "the deprecated cluster http_protocol_options and http2_protocol_options are both set with the default protocol_selection",
    explanation: "With the default protocol_selection the cluster speaks exactly one protocol, so Envoy \
refuses options for both HTTP/1 and HTTP/2 as contradictory. Keep the one you use, or set \
USE_DOWNSTREAM_PROTOCOL. Better: move to typed `HttpProtocolOptions` (explicit_http_config or \
use_downstream_protocol_config).",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// max_requests_per_connection in two places.
pub static MAX_REQUESTS_BOTH: Rule = Rule {
    id: "cluster-max-requests-per-connection-both",
    summary: "max_requests_per_connection is set on the cluster and in common_http_protocol_options",
    explanation: "The cluster-level max_requests_per_connection is the deprecated spelling of \
common_http_protocol_options.max_requests_per_connection, and Envoy refuses both at once. Keep only the one \
in HttpProtocolOptions.",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// ALPN protocol selection over plaintext.
pub static ALPN_NEEDS_TLS: Rule = Rule {
    id: "cluster-alpn-needs-tls",
    summary: "HttpProtocolOptions.auto_config (ALPN protocol selection) is used on a cluster whose transport socket is not TLS",
    explanation: "auto_config chooses HTTP/1.1 or HTTP/2 per connection by TLS ALPN negotiation, which \
plaintext connections cannot do, so Envoy refuses it without a TLS transport socket. Add a TLS \
transport_socket, or pick the protocol explicitly with explicit_http_config.",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// HTTP/3 in auto_config without the cache of advertised protocols.
pub static HTTP3_AUTO_CONFIG_CACHE: Rule = Rule {
    id: "cluster-http3-auto-config-cache",
    summary: "auto_config enables HTTP/3 without alternate_protocols_cache_options",
    explanation: "With auto_config, Envoy only tries HTTP/3 for origins that advertised it (Alt-Svc or HTTPS \
records), which it remembers in the alternate protocols cache, so it refuses HTTP/3 there without one. \
Configure `alternate_protocols_cache_options` (a name suffices) or drop http3_protocol_options.",
    envoy: "source/extensions/upstreams/http/config.cc",
    ..Rule::ERROR
};

/// HTTP/3 without the QUIC transport socket.
pub static HTTP3_NEEDS_QUIC: Rule = Rule {
    id: "cluster-http3-needs-quic-transport",
    summary: "HTTP/3 is enabled on a cluster whose transport socket is not the QUIC upstream transport",
    explanation: "HTTP/3 runs over QUIC, so Envoy requires the `envoy.transport_sockets.quic` transport \
socket (QuicUpstreamTransport wrapping an UpstreamTlsContext). Use it, or select HTTP/1.1 or HTTP/2.",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// Upstream HTTP filters that do not end with the codec.
pub static CODEC_LAST: Rule = Rule {
    id: "cluster-upstream-http-filters-codec-last",
    summary: "HttpProtocolOptions.http_filters (upstream HTTP filters) does not end with the upstream_codec filter",
    explanation: "Upstream HTTP filters run between the router and the connection, and Envoy requires the \
chain to end with the upstream codec filter, which actually encodes the request. Append \
`envoy.filters.http.upstream_codec` with @type UpstreamCodec as the last filter.",
    envoy: "source/common/http/filter_chain_helper.cc",
    ..Rule::ERROR
};

/// Envoy parses HTTP options under this alias (and checks them), but the
/// cluster never reads them from there.
const LEGACY_HPO_KEY: &str = "envoy.upstreams.http.http_protocol_options";

const TCP_KEY: &str = "envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions";

/// Keys Envoy resolves to an extension with protocol options, and the
/// options message each expects (None: not checked here).
const KEYS: [(&str, Option<&str>); 8] = [
    (HPO_KEY, Some(HPO_KEY)),
    // Legacy aliases: accepted, but the cluster never reads them.
    (LEGACY_HPO_KEY, Some(HPO_KEY)),
    (TCP_KEY, Some(TCP_KEY)),
    ("envoy.upstreams.tcp.tcp_protocol_options", Some(TCP_KEY)),
    (
        "envoy.filters.network.thrift_proxy",
        Some("envoy.extensions.filters.network.thrift_proxy.v3.ThriftProtocolOptions"),
    ),
    (
        "envoy.filters.network.redis_proxy",
        Some("envoy.extensions.filters.network.redis_proxy.v3.RedisProtocolOptions"),
    ),
    (
        "envoy.redis_proxy",
        Some("envoy.extensions.filters.network.redis_proxy.v3.RedisProtocolOptions"),
    ),
    (
        "envoy.extensions.upstreams.http.reverse_tunnel.v3.ReverseTunnelUpstreamCodecOptions",
        None,
    ),
];

/// Any types every options factory accepts besides its own message.
const GENERIC: [&str; 3] = [
    "google.protobuf.Struct",
    "xds.type.v3.TypedStruct",
    "udpa.type.v1.TypedStruct",
];

pub(super) fn check(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    option_keys(c.m, out);
    for key in [HPO_KEY, LEGACY_HPO_KEY] {
        if let Some((path, hpo)) = super::typed_options(c.m, key) {
            auto_config_cache(&path, &hpo, out);
        }
    }
    legacy_fields(c, out);
    if let Some((path, hpo)) = &c.hpo {
        http_options(c, path, hpo, out);
    }
}

fn option_keys(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((f, Value::Map(entries))) = field(m, "typed_extension_protocol_options") else {
        return;
    };
    let mut keys: Vec<(&String, &Value)> = entries
        .iter()
        .filter_map(|(k, v)| match k {
            MapKey::String(s) => Some((s, v)),
            _ => None,
        })
        .collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in keys {
        let at = vec![PathStep::Field(f.clone()), PathStep::Key(key.clone())];
        match KEYS.iter().find(|(k, _)| k == key) {
            None => out.push(Finding::at(&UNKNOWN_KEY, at, unknown_key_text(key))),
            Some((_, Some(expected))) => {
                if let Some(any) = value.as_message()
                    && let Some(found) = mismatched(any, expected)
                {
                    let short = found.rsplit('.').next().unwrap_or(&found);
                    out.push(Finding::missing_in(
                        &TYPE_MISMATCH,
                        at,
                        format!("typed_extension_protocol_options['{key}'] holds a {short}; the key expects {expected}"),
                    ));
                }
            }
            Some((_, None)) => {}
        }
    }
}

fn unknown_key_text(key: &str) -> String {
    let hint = if key.ends_with("HttpProtocolOptions") || key.contains(".http.") {
        format!(" (did you mean {HPO_KEY}?)")
    } else if key.ends_with("TcpProtocolOptions") || key.contains(".tcp.") {
        format!(" (did you mean {TCP_KEY}?)")
    } else {
        String::new()
    };
    if key.starts_with("envoy.filters.http.") {
        return format!(
            "typed_extension_protocol_options key '{key}': HTTP filters take no protocol options{hint}"
        );
    }
    format!(
        "typed_extension_protocol_options key '{key}' is not a known protocol options extension{hint}"
    )
}

/// The type of an options value that cannot be unpacked as `expected`.
/// Envoy does not unpack an empty value, so that one never mismatches.
fn mismatched(any: &DynamicMessage, expected: &str) -> Option<String> {
    let url = any.get_field_by_name("type_url")?;
    let found = type_name(url.as_str()?).to_string();
    let empty = any
        .get_field_by_name("value")
        .is_none_or(|v| v.as_bytes().is_none_or(|b| b.is_empty()));
    (found != expected && !GENERIC.contains(&found.as_str()) && !empty).then_some(found)
}

fn legacy_fields(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    const USE_CONFIGURED_PROTOCOL: i32 = 0;
    if c.hpo.is_none()
        && enum_number(c.m, "protocol_selection").unwrap_or(0) == USE_CONFIGURED_PROTOCOL
        && c.m.has_field_by_name("http_protocol_options")
        && let Some((f, _)) = field(c.m, "http2_protocol_options")
    {
        out.push(Finding::at(
            &LEGACY_HTTP1_HTTP2_BOTH,
            vec![PathStep::Field(f)],
            "http_protocol_options and http2_protocol_options are both set; this needs protocol_selection: USE_DOWNSTREAM_PROTOCOL (or use typed HttpProtocolOptions)",
        ));
    }
    let Some((f, _)) = field(c.m, "max_requests_per_connection") else {
        return;
    };
    let common = match &c.hpo {
        Some((_, hpo)) => sub(hpo, "common_http_protocol_options").map(|(_, m)| m),
        None => sub(c.m, "common_http_protocol_options").map(|(_, m)| m),
    };
    let place = if c.hpo.is_some() {
        "HttpProtocolOptions.common_http_protocol_options"
    } else {
        "common_http_protocol_options"
    };
    if common.is_some_and(|m| m.has_field_by_name("max_requests_per_connection")) {
        out.push(Finding::at(
            &MAX_REQUESTS_BOTH,
            vec![PathStep::Field(f)],
            format!("max_requests_per_connection is set both on the cluster and in {place}"),
        ));
    }
}

/// The cluster's transport socket: its name and its config type.
fn transport_socket(m: &DynamicMessage) -> Option<(String, Option<String>)> {
    let (_, socket) = sub(m, "transport_socket")?;
    let name = super::string(socket, "name").unwrap_or_default();
    let config = sub(socket, "typed_config").and_then(|(_, any)| any_type(any));
    Some((name, config))
}

fn http_options(c: &Cluster<'_>, path: &[PathStep], hpo: &DynamicMessage, out: &mut Vec<Finding>) {
    let socket = transport_socket(c.m);
    let auto = sub(hpo, "auto_config");
    if let Some((af, _)) = auto {
        let raw = match &socket {
            None => true,
            Some((name, config)) => {
                config.as_deref()
                    == Some("envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer")
                    || (config.is_none() && name == "envoy.transport_sockets.raw_buffer")
            }
        };
        if raw {
            out.push(Finding::at(
                &ALPN_NEEDS_TLS,
                with(path, [PathStep::Field(af.clone())]),
                format!("auto_config picks the protocol by ALPN, but cluster '{}' has no TLS transport socket", c.name),
            ));
        }
    }
    http3_transport(path, hpo, socket.as_ref(), out);
    codec_last(path, hpo, out);
    terminal_order(path, hpo, out);
}

/// A terminal filter (the codec) anywhere but last among the upstream HTTP
/// filters: Envoy builds the chain with the same terminal-filter check as
/// other filter chains (filter-terminal-not-last).
fn terminal_order(path: &[PathStep], hpo: &DynamicMessage, out: &mut Vec<Finding>) {
    let mut found = Vec::new();
    crate::check::envoy_rules::filter_order(
        hpo,
        &crate::check::envoy_rules::CLUSTER_UPSTREAM_CHAIN,
        &mut found,
    );
    out.extend(found.into_iter().map(|mut f| {
        f.path = with(path, f.path);
        f
    }));
}

/// Checked while the options are parsed: under either key.
fn auto_config_cache(path: &[PathStep], hpo: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((af, auto)) = sub(hpo, "auto_config") else {
        return;
    };
    if let Some((hf, _)) = field(auto, "http3_protocol_options")
        && !auto.has_field_by_name("alternate_protocols_cache_options")
    {
        out.push(Finding::at(
            &HTTP3_AUTO_CONFIG_CACHE,
            with(path, [PathStep::Field(af), PathStep::Field(hf)]),
            "auto_config with http3_protocol_options needs alternate_protocols_cache_options",
        ));
    }
}

fn http3_transport(
    path: &[PathStep],
    hpo: &DynamicMessage,
    socket: Option<&(String, Option<String>)>,
    out: &mut Vec<Finding>,
) {
    let quic = socket.is_some_and(|(name, config)| {
        name == "envoy.transport_sockets.quic"
            // Envoy looks into an HTTP/1.1 proxy socket for a QUIC one.
            || name == "envoy.transport_sockets.http_11_proxy"
            || config.as_deref() == Some("envoy.extensions.transport_sockets.quic.v3.QuicUpstreamTransport")
    });
    if quic {
        return;
    }
    for config in [
        "explicit_http_config",
        "use_downstream_protocol_config",
        "auto_config",
    ] {
        let Some((cf, m)) = sub(hpo, config) else {
            continue;
        };
        let Some((hf, _)) = field(m, "http3_protocol_options") else {
            continue;
        };
        if config == "auto_config" && !m.has_field_by_name("alternate_protocols_cache_options") {
            // cluster-http3-auto-config-cache comes first.
            continue;
        }
        out.push(Finding::at(
            &HTTP3_NEEDS_QUIC,
            with(path, [PathStep::Field(cf), PathStep::Field(hf)]),
            "HTTP/3 needs transport_socket envoy.transport_sockets.quic (QuicUpstreamTransport)",
        ));
    }
}

fn codec_last(path: &[PathStep], hpo: &DynamicMessage, out: &mut Vec<Finding>) {
    const CODEC: &str = "envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec";
    let Some((ff, filters)) = messages(hpo, "http_filters") else {
        return;
    };
    let Some((_, last)) = filters.last() else {
        return;
    };
    let Some(last_type) = sub(last, "typed_config").and_then(|(_, any)| any_type(any)) else {
        return;
    };
    if last_type != CODEC {
        out.push(Finding::at(
            &CODEC_LAST,
            with(path, [PathStep::Field(ff)]),
            format!("the last upstream HTTP filter must be envoy.filters.http.upstream_codec (UpstreamCodec), not {last_type}"),
        ));
    }
}
