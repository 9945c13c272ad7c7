//! The HTTP connection manager's own config-time checks (its constructor in
//! Envoy's http_connection_manager/config.cc).

use super::{Finding, Place, Rule, enclosing_listener, has_quic_options};
use crate::config::reflect::{field, list};
use crate::config::resource::PathStep;
use crate::config::resource::field_step as step;
use prost_reflect::{DynamicMessage, Kind, ReflectMessage, Value};
use std::collections::HashSet;

const CONFIG: &str = "source/extensions/filters/network/http_connection_manager/config.cc";

/// HTTP/3 codec vs the listener kind.
pub static CODEC_QUIC: Rule = Rule {
    id: "hcm-codec-quic-mismatch",
    summary: "codec_type HTTP3 on a TCP listener, or a non-HTTP3 codec on a QUIC listener",
    explanation: "HTTP/3 only exists over QUIC (\"HTTP/3 codec configured on non-QUIC listener\"): codec_type \
HTTP3 needs a UDP listener with udp_listener_config.quic_options and a QuicDownstreamTransport. Conversely, \
an HCM on a QUIC listener must say codec_type: HTTP3; AUTO is not enough (\"Non-HTTP/3 codec configured on \
QUIC listener\"). To offer HTTP/3 next to TCP, run two listeners and advertise h3 with alt-svc.",
    envoy: CONFIG,
    ..Rule::ERROR
};

/// strip_matching_host_port with strip_any_host_port.
pub static STRIP_HOST_PORT: Rule = Rule {
    id: "hcm-strip-host-port-conflict",
    summary: "strip_matching_host_port and strip_any_host_port are both set",
    explanation: "strip_any_host_port already removes every port from Host, which includes the matching one. \
Setting both is contradictory and Envoy refuses it (\"Only one of `strip_matching_host_port` or \
`strip_any_host_port` can be set\"). Keep one.",
    envoy: CONFIG,
    ..Rule::ERROR
};

/// max_response_headers_kb on the HCM.
pub static MAX_RESPONSE_HEADERS: Rule = Rule {
    id: "hcm-max-response-headers-kb",
    summary: "common_http_protocol_options.max_response_headers_kb is set on an HCM",
    explanation: "max_response_headers_kb limits headers Envoy receives from upstreams, so it belongs in a \
cluster's protocol options; the HCM refuses it (\"max_response_headers_kb cannot be set on \
http_connection_manager\"). On the HCM, limit the request side with max_request_headers_kb.",
    envoy: CONFIG,
    ..Rule::ERROR
};

/// original_ip_detection_extensions with the older settings.
pub static ORIGINAL_IP_DETECTION: Rule = Rule {
    id: "hcm-original-ip-detection-conflict",
    summary: "original_ip_detection_extensions together with use_remote_address or xff_num_trusted_hops",
    explanation: "When original IP detection extensions are configured they alone decide the client \
address. The older use_remote_address and xff_num_trusted_hops settings would conflict, so Envoy refuses \
the mix (\"Original IP detection extensions and ... may not be mixed\"). Configure trusted hops inside the \
xff extension instead.",
    envoy: CONFIG,
    ..Rule::ERROR
};

/// access_log_options with the deprecated flush settings.
pub static ACCESS_LOG_FLUSH: Rule = Rule {
    id: "hcm-access-log-flush-conflict",
    summary: "access_log_options together with the deprecated flush_access_log_on_new_request or access_log_flush_interval",
    explanation: "The top-level flush_access_log_on_new_request and access_log_flush_interval are \
deprecated in favour of access_log_options. Envoy refuses configs that use both styles (\"Only one of ... \
or access_log_options can be specified\"). Move the settings into access_log_options.",
    envoy: CONFIG,
    ..Rule::ERROR
};

/// Two upgrade configs of one type.
pub static UPGRADE_DUPLICATE: Rule = Rule {
    id: "hcm-upgrade-config-duplicate",
    summary: "two upgrade_configs share an upgrade_type (compared case-insensitively)",
    explanation: "Each upgrade type (websocket, CONNECT, ...) may be configured once per HCM, and the names \
compare case-insensitively (\"multiple upgrade configs with the same name\"). Merge the entries; per-route \
upgrade_configs can override enabled.",
    envoy: CONFIG,
    ..Rule::ERROR
};

/// The HCM checks.
pub fn check(m: &DynamicMessage, place: &Place<'_>, out: &mut Vec<Finding>) {
    max_response_headers(m, out);
    strip_host_port(m, out);
    original_ip_detection(m, out);
    access_log_flush(m, out);
    if let Some(listener) = enclosing_listener(place) {
        codec(m, has_quic_options(listener), out);
    }
    upgrades(m, out);
}

fn is_true(m: &DynamicMessage, name: &str) -> bool {
    field(m, name).and_then(|(_, v)| v.as_bool()) == Some(true)
}

/// A BoolValue / UInt32Value wrapper's value.
fn wrapped(m: &DynamicMessage, name: &str) -> Option<Value> {
    let (_, v) = field(m, name)?;
    v.as_message()?
        .get_field_by_name("value")
        .map(|v| v.into_owned())
}

fn max_response_headers(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((cf, Value::Message(common))) = field(m, "common_http_protocol_options") else {
        return;
    };
    if let Some((f, _)) = field(common, "max_response_headers_kb") {
        out.push(Finding::at(
            &MAX_RESPONSE_HEADERS,
            vec![PathStep::Field(cf), PathStep::Field(f)],
            "`max_response_headers_kb` is for clusters; the HCM uses `max_request_headers_kb`",
        ));
    }
}

fn strip_host_port(m: &DynamicMessage, out: &mut Vec<Finding>) {
    if is_true(m, "strip_matching_host_port") && is_true(m, "strip_any_host_port") {
        out.push(Finding::at(
            &STRIP_HOST_PORT,
            step(m, "strip_any_host_port"),
            "set only one of `strip_matching_host_port` and `strip_any_host_port`",
        ));
    }
}

fn original_ip_detection(m: &DynamicMessage, out: &mut Vec<Finding>) {
    if list(m, "original_ip_detection_extensions").is_none_or(|(_, l)| l.is_empty()) {
        return;
    }
    let (name, hit) = if wrapped(m, "use_remote_address").and_then(|v| v.as_bool()) == Some(true) {
        ("use_remote_address", true)
    } else {
        let hops = field(m, "xff_num_trusted_hops").and_then(|(_, v)| v.as_u32());
        ("xff_num_trusted_hops", hops.is_some_and(|h| h > 0))
    };
    if hit {
        out.push(Finding::at(
            &ORIGINAL_IP_DETECTION,
            step(m, name),
            format!("`original_ip_detection_extensions` replaces `{name}`; don't set both"),
        ));
    }
}

fn access_log_flush(m: &DynamicMessage, out: &mut Vec<Finding>) {
    if !m.has_field_by_name("access_log_options") {
        return;
    }
    let deprecated = if is_true(m, "flush_access_log_on_new_request") {
        "flush_access_log_on_new_request"
    } else if m.has_field_by_name("access_log_flush_interval") {
        "access_log_flush_interval"
    } else {
        return;
    };
    out.push(Finding::at(
        &ACCESS_LOG_FLUSH,
        step(m, deprecated),
        format!(
            "move `{deprecated}` into `access_log_options`; Envoy refuses both styles together"
        ),
    ));
}

/// The enum number of `name` in the field `field_name`'s enum.
fn enum_number(m: &DynamicMessage, field_name: &str, name: &str) -> Option<i32> {
    let f = m.descriptor().get_field_by_name(field_name)?;
    match f.kind() {
        Kind::Enum(e) => e.get_value_by_name(name).map(|v| v.number()),
        _ => None,
    }
}

/// Envoy's HCM counts a listener as QUIC when it sets quic_options.
fn codec(m: &DynamicMessage, quic: bool, out: &mut Vec<Finding>) {
    let http3 = enum_number(m, "codec_type", "HTTP3");
    let codec = field(m, "codec_type");
    let is_http3 = http3.is_some() && codec.as_ref().and_then(|(_, v)| v.as_enum_number()) == http3;
    match (is_http3, quic, codec) {
        (true, false, Some((f, _))) => out.push(Finding::at(
            &CODEC_QUIC,
            vec![PathStep::Field(f)],
            "`codec_type: HTTP3` needs a QUIC listener (UDP with udp_listener_config.quic_options)",
        )),
        (false, true, Some((f, _))) => out.push(Finding::at(
            &CODEC_QUIC,
            vec![PathStep::Field(f)],
            "an HCM on a QUIC listener needs `codec_type: HTTP3`",
        )),
        (false, true, None) => out.push(Finding::missing_in(
            &CODEC_QUIC,
            Vec::new(),
            "an HCM on a QUIC listener needs `codec_type: HTTP3` (the default AUTO does not do)",
        )),
        _ => {}
    }
}

fn upgrades(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((uf, items)) = list(m, "upgrade_configs") else {
        return;
    };
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let Some((tf, Value::String(kind))) =
            item.as_message().and_then(|u| field(u, "upgrade_type"))
        else {
            continue;
        };
        if !seen.insert(kind.to_ascii_lowercase()) {
            out.push(Finding::at(
                &UPGRADE_DUPLICATE,
                vec![
                    PathStep::Field(uf.clone()),
                    PathStep::Index(i),
                    PathStep::Field(tf),
                ],
                format!("upgrade type `{kind}` is configured twice"),
            ));
        }
    }
}
