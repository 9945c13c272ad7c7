//! Listeners, filter chain matching and the HTTP connection manager: what
//! Envoy refuses when it adds a listener.
//!
//! * [`filter_chains`]: filter_chain_match (server names, prefix ranges,
//!   duplicates and overlaps) and filter_chain_matcher names;
//! * [`sockets`]: addresses, UDP and QUIC listeners;
//! * [`hcm`]: the HTTP connection manager's own checks;
//! * [`http2`]: HTTP/2 protocol options, wherever they appear (HCM and clusters).

pub mod filter_chains;
pub mod hcm;
pub mod http2;
pub mod sockets;

use super::{Finding, Place, Rule};
use crate::config::diag::Diagnostics;
use crate::config::reflect::field;
use crate::config::resource::{PathStep, Resource};
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

/// The rules this module reports.
pub static RULES: &[&Rule] = &[
    &filter_chains::PARTIAL_WILDCARD,
    &filter_chains::DUPLICATE_MATCH,
    &filter_chains::PREFIX_RANGE,
    &filter_chains::UNIMPLEMENTED,
    &filter_chains::MATCHER_NAME,
    &sockets::UDP_FILTER_CHAINS,
    &sockets::UDP_BIND_TO_PORT,
    &sockets::QUIC_TRANSPORT_SOCKET,
    &sockets::QUIC_HCM_LAST,
    &sockets::QUIC_CONNECTION_BALANCE,
    &sockets::ADDITIONAL_SOCKET_TYPE,
    &sockets::IPV4_COMPAT,
    &sockets::INTERNAL_ADDRESS,
    &hcm::CODEC_QUIC,
    &hcm::STRIP_HOST_PORT,
    &hcm::MAX_RESPONSE_HEADERS,
    &hcm::ORIGINAL_IP_DETECTION,
    &hcm::ACCESS_LOG_FLUSH,
    &hcm::UPGRADE_DUPLICATE,
    &http2::MAX_HEADER_FIELD_SIZE,
    &http2::SETTINGS_PARAMETER,
];

/// Checks one message at `place`.
pub fn message(m: &DynamicMessage, place: &Place<'_>, out: &mut Vec<Finding>) {
    match m.descriptor().full_name() {
        "envoy.config.listener.v3.Listener" => {
            filter_chains::listener(m, out);
            sockets::listener(m, out);
        }
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" => {
            hcm::check(m, place, out)
        }
        "envoy.config.core.v3.Http2ProtocolOptions" => http2::check(m, place, out),
        _ => {}
    }
}

/// Checks across resources.
pub fn set(_resources: &[Resource], _diags: &mut Diagnostics) {}

const UDP: i32 = 1;

/// Does this Address make a datagram socket? Envoy derives a listener's
/// socket type from `socket_address.protocol` alone (pipes and internal
/// addresses are streams).
pub fn is_datagram(address: &DynamicMessage) -> bool {
    field(address, "socket_address")
        .and_then(|(_, sa)| sa.as_message())
        .and_then(|sa| field(sa, "protocol"))
        .and_then(|(_, p)| p.as_enum_number())
        == Some(UDP)
}

/// Is the listener's main address UDP (without an address, it is TCP or internal)?
pub fn is_udp(listener: &DynamicMessage) -> bool {
    field(listener, "address")
        .and_then(|(_, a)| a.as_message())
        .is_some_and(is_datagram)
}

/// Does the listener set `udp_listener_config.quic_options`?
pub fn has_quic_options(listener: &DynamicMessage) -> bool {
    field(listener, "udp_listener_config")
        .and_then(|(_, u)| u.as_message())
        .is_some_and(|u| u.has_field_by_name("quic_options"))
}

/// A QUIC listener: a UDP address and QUIC options (connection oriented UDP).
pub fn is_quic(listener: &DynamicMessage) -> bool {
    is_udp(listener) && has_quic_options(listener)
}

/// A plain UDP listener (udp_proxy and the like): no connections, so no filter chains.
pub fn is_connectionless_udp(listener: &DynamicMessage) -> bool {
    is_udp(listener) && !has_quic_options(listener)
}

/// The listener's name, for messages.
fn name_of(listener: &DynamicMessage) -> String {
    crate::config::reflect::string_field(listener, "name")
        .map(|(_, n)| n)
        .unwrap_or_default()
}

/// The message type named by an `Any`'s type URL (the part after the last `/`).
fn any_type(any: &DynamicMessage) -> Option<String> {
    let url = any.get_field_by_name("type_url")?;
    let url = url.as_str()?;
    Some(url.rsplit('/').next().unwrap_or(url).to_string())
}

/// The messages that contain the one at the end of `path`, innermost
/// first, at most `want` of them (`Any`s unpacked: their fields continue
/// the same path). Only those are copied.
fn containers(root: &DynamicMessage, path: &[PathStep], want: usize) -> Vec<DynamicMessage> {
    let mut out = Vec::new();
    descend(root, path, want, &mut out);
    out
}

/// Follows `path` from `m`; true when it leads to a message. On the way
/// back, keeps copies of the `want` innermost containers.
fn descend(
    m: &DynamicMessage,
    path: &[PathStep],
    want: usize,
    out: &mut Vec<DynamicMessage>,
) -> bool {
    let unpacked = crate::config::reflect::unpack_any(m);
    let m = unpacked.as_deref().unwrap_or(m);
    let Some((PathStep::Field(f), rest)) = path.split_first() else {
        return path.is_empty();
    };
    if f.parent_message().full_name() != m.descriptor().full_name() {
        return false;
    }
    let reached = match (field(m, f.name()), rest.split_first()) {
        (Some((_, Value::Message(child))), _) => descend(child, rest, want, out),
        (Some((_, Value::List(items))), Some((PathStep::Index(i), rest))) => {
            matches!(items.get(*i), Some(Value::Message(child)) if descend(child, rest, want, out))
        }
        (Some((_, Value::Map(entries))), Some((PathStep::Key(key), rest))) => matches!(
            entries.get(&prost_reflect::MapKey::String(key.clone())),
            Some(Value::Message(child)) if descend(child, rest, want, out)
        ),
        // Without the key: the entry is the one the rest of the path fits.
        (Some((_, Value::Map(entries))), _) => entries
            .values()
            .filter_map(Value::as_message)
            .any(|child| descend(child, rest, want, out)),
        _ => false,
    };
    let below = path
        .iter()
        .filter(|s| matches!(s, PathStep::Field(_)))
        .count();
    if reached && below <= want {
        out.push(m.clone());
    }
    reached
}

/// The listener resource whose filter chain holds the message at `place`
/// (None for HCMs elsewhere, such as an ApiListener).
fn enclosing_listener<'a>(place: &'a Place<'_>) -> Option<&'a DynamicMessage> {
    let listener = place.resource.message.as_ref();
    if listener.descriptor().full_name() != "envoy.config.listener.v3.Listener" {
        return None;
    }
    let in_chain = matches!(place.path.first(), Some(PathStep::Field(f))
        if f.name() == "filter_chains" || f.name() == "default_filter_chain");
    in_chain.then_some(listener)
}

#[cfg(test)]
mod tests {
    use crate::check::validate::{Settings, validate};
    use crate::config::loader::load_str;

    /// Every error in `text` as `(rule id, line)`.
    fn errors(text: &str) -> Vec<(String, u32)> {
        let loaded = load_str("c.yaml", text);
        let mut diags = loaded.diagnostics;
        validate(&loaded.resources, &Settings::default(), &mut diags);
        diags
            .sorted()
            .iter()
            .filter(|d| d.severity == crate::config::diag::Severity::Error)
            .map(|d| (d.rule.to_string(), d.location.mark.map_or(0, |m| m.line)))
            .collect()
    }

    const TCP: &str = "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\nname: l\naddress: {socket_address: {address: 127.0.0.1, port_value: 1}}\n";
    const PROXY: &str = "  filters:\n  - name: tcp\n    typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}\n";
    const CLUSTER: &str =
        "---\n\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: c\n";

    /// A TCP listener with one chain per match (`{...}` flow mappings).
    fn chains(matches: &[&str]) -> String {
        let mut text = format!("{TCP}filter_chains:\n");
        for m in matches {
            text.push_str(&format!("- filter_chain_match: {m}\n{PROXY}"));
        }
        text.push_str(CLUSTER);
        text
    }

    fn overlap(a: &str, b: &str) -> bool {
        errors(&chains(&[a, b]))
            .iter()
            .any(|(rule, _)| rule == "listener-duplicate-filter-chain-match")
    }

    #[test]
    fn overlaps_are_found_as_envoy_keys_them() {
        assert!(overlap(
            "{server_names: [\"*.example.com\"]}",
            "{server_names: [\".example.com\"]}"
        ));
        assert!(overlap(
            "{prefix_ranges: [{address_prefix: 10.0.0.1, prefix_len: 33}]}",
            "{prefix_ranges: [{address_prefix: 10.0.0.1, prefix_len: 32}]}"
        ));
        assert!(overlap(
            "{server_names: [\"\"]}",
            "{transport_protocol: \"\"}"
        ));
        assert!(overlap(
            "{application_protocols: [h2, http/1.1]}",
            "{application_protocols: [http/1.1]}"
        ));
        assert!(overlap(
            "{prefix_ranges: [{address_prefix: \"2001:db8::1\", prefix_len: 32}]}",
            "{prefix_ranges: [{address_prefix: \"2001:db8::\", prefix_len: 32}]}"
        ));
        // Twice within one chain.
        assert!(!errors(&chains(&["{source_ports: [80, 80]}"])).is_empty());
    }

    #[test]
    fn distinct_matches_are_accepted() {
        assert!(!overlap(
            "{prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]}",
            "{prefix_ranges: [{address_prefix: 10.0.0.0, prefix_len: 16}]}"
        ));
        assert!(!overlap(
            "{destination_port: 443}",
            "{transport_protocol: \"\"}"
        ));
        assert!(!overlap(
            "{server_names: [a.example.com], transport_protocol: tls}",
            "{server_names: [a.example.com]}"
        ));
        assert!(!overlap(
            "{server_names: [a.example.com], source_ports: [1]}",
            "{server_names: [a.example.com]}"
        ));
    }

    #[test]
    fn a_filter_chain_matcher_replaces_filter_chain_match() {
        let text = chains(&["{server_names: [\"*\"]}", "{server_names: [\"*\"]}"]).replace(
            "filter_chains:\n",
            "filter_chain_matcher: {on_no_match: {action: {name: a, typed_config: {\"@type\": type.googleapis.com/google.protobuf.StringValue, value: x}}}}\nfilter_chains:\n",
        );
        let found = errors(&text);
        // Only the missing names remain.
        assert!(
            found
                .iter()
                .all(|(rule, _)| rule == "listener-filter-chain-matcher-name"),
            "{found:?}"
        );
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn a_quic_listener_needs_filter_chains_but_plain_udp_does_not() {
        let udp = "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\nname: u\naddress: {socket_address: {address: 127.0.0.1, port_value: 1, protocol: UDP}}\n";
        let quic = format!("{udp}udp_listener_config: {{quic_options: {{}}}}\n");
        assert!(errors(udp).is_empty(), "{:?}", errors(udp));
        assert_eq!(
            errors(&quic),
            [("listener-no-filter-chains".to_string(), 1)]
        );
    }

    #[test]
    fn upstream_http2_options_are_checked_where_envoy_uses_them() {
        let typed = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: c\ntyped_extension_protocol_options:\n  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n    \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n    common_http_protocol_options: {max_response_headers_kb: 64}\n    explicit_http_config:\n      http2_protocol_options:\n        max_header_field_size_kb: 80\n        custom_settings_parameters: [{identifier: 2, value: 1}]\n";
        // Located at the fields, through the map entry's key.
        let found = errors(typed);
        assert_eq!(
            found,
            [
                ("http2-max-header-field-size".to_string(), 9),
                ("http2-settings-parameter".to_string(), 10)
            ],
            "{found:?}"
        );
        // With typed options, Envoy ignores the legacy field.
        let legacy = format!(
            "{typed}http2_protocol_options: {{custom_settings_parameters: [{{identifier: 8, value: 1}}]}}\n"
        );
        assert_eq!(errors(&legacy).len(), found.len(), "{:?}", errors(&legacy));
        // Without a response header limit there is nothing to exceed.
        let unlimited = typed.replace(
            "common_http_protocol_options: {max_response_headers_kb: 64}",
            "common_http_protocol_options: {}",
        );
        assert!(
            !errors(&unlimited)
                .iter()
                .any(|(r, _)| r == "http2-max-header-field-size")
        );
    }

    #[test]
    fn ipv4_compat_is_fine_on_the_any_address_and_mapped_ones() {
        for address in ["\"::\"", "\"::ffff:127.0.0.1\""] {
            let text = format!(
                "{}filter_chains:\n-{}{CLUSTER}",
                TCP.replace(
                    "127.0.0.1, port_value: 1",
                    &format!("{address}, port_value: 1, ipv4_compat: true")
                ),
                &PROXY[1..]
            );
            assert!(errors(&text).is_empty(), "{address}: {:?}", errors(&text));
        }
    }

    #[test]
    fn duplicate_addresses_follow_envoy_exemptions() {
        let listener = |name: &str, address: &str| {
            format!(
                "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\nname: {name}\naddress: {{socket_address: {{{address}}}}}\nfilter_chains:\n-{}---\n",
                &PROXY[1..]
            )
        };
        let clash = |a: &str, b: &str| {
            let text = format!("{}{}{}", listener("a", a), listener("b", b), &CLUSTER[4..]);
            errors(&text)
                .iter()
                .any(|(rule, _)| rule == "listener-duplicate-address")
        };
        assert!(clash(
            "address: 127.0.0.1, port_value: 1",
            "address: 127.0.0.1, port_value: 1"
        ));
        assert!(clash(
            "address: \"::1\", port_value: 1",
            "address: \"0::1\", port_value: 1"
        ));
        // Port 0 is a fresh port per bind; different IPs and socket types never clash.
        assert!(!clash(
            "address: 127.0.0.1, port_value: 0",
            "address: 127.0.0.1, port_value: 0"
        ));
        assert!(!clash(
            "address: 0.0.0.0, port_value: 1",
            "address: 127.0.0.1, port_value: 1"
        ));
        assert!(!clash(
            "address: 127.0.0.1, port_value: 1",
            "address: 127.0.0.1, port_value: 1, protocol: UDP"
        ));
    }
}
