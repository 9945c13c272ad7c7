//! A listener's sockets: its addresses, and what UDP and QUIC listeners
//! need or refuse.

use super::{Finding, Rule, any_type, is_connectionless_udp, is_datagram, is_udp, name_of};
use crate::config::reflect::{field, list};
use crate::config::resource::PathStep;
use crate::config::resource::field_step as step;
use prost_reflect::{DynamicMessage, Value};
use std::net::IpAddr;

const LISTENER: &str = "source/common/listener_manager/listener_impl.cc";

/// A plain UDP listener with filter chains.
pub static UDP_FILTER_CHAINS: Rule = Rule {
    id: "listener-udp-filter-chains",
    summary: "a plain UDP listener (no quic_options) has filter chains",
    explanation: "A raw UDP listener has no connections, so network filter chains never run (\"filter \
chain(s) specified for connection-less UDP listener\"). Its work is done by UDP listener filters such as \
envoy.filters.udp_listener.udp_proxy. Remove filter_chains, or add udp_listener_config.quic_options to \
make it an HTTP/3 listener.",
    envoy: LISTENER,
    ..Rule::ERROR
};

/// bind_to_port: false on UDP.
pub static UDP_BIND_TO_PORT: Rule = Rule {
    id: "listener-udp-bind-to-port",
    summary: "a UDP listener sets bind_to_port false",
    explanation: "Envoy 1.40 refuses non-binding UDP listeners (\"bind_to_port: false is not supported for \
UDP listeners\"): UDP packets cannot be handed over from another listener the way TCP connections can. \
Remove bind_to_port: false.",
    envoy: LISTENER,
    ..Rule::ERROR
};

/// QUIC chains need a QuicDownstreamTransport.
pub static QUIC_TRANSPORT_SOCKET: Rule = Rule {
    id: "listener-quic-transport-socket",
    summary: "a QUIC listener filter chain has no transport_socket, or one that is not QuicDownstreamTransport",
    explanation: "HTTP/3 always runs over TLS 1.3 inside QUIC, so every filter chain of a QUIC listener needs \
a transport socket of type QuicDownstreamTransport (\"no transport socket specified for connection oriented \
UDP listener\", \"wrong transport socket config specified for quic transport socket\"). The \
DownstreamTlsContext goes inside it, as downstream_tls_context.",
    envoy: LISTENER,
    ..Rule::ERROR
};

/// QUIC chains end in the HCM.
pub static QUIC_HCM_LAST: Rule = Rule {
    id: "listener-quic-hcm-last",
    summary: "a QUIC listener filter chain does not end in http_connection_manager",
    explanation: "A QUIC listener can only serve HTTP/3, so its filter chain must end with the HTTP \
connection manager (codec_type HTTP3): \"requires http_connection_manager filter to be last in the \
chain\". TCP proxying and other terminal network filters cannot run over QUIC streams.",
    envoy: "source/common/listener_manager/filter_chain_manager_impl.cc",
    ..Rule::ERROR
};

/// connection_balance_config on QUIC.
pub static QUIC_CONNECTION_BALANCE: Rule = Rule {
    id: "listener-quic-connection-balance",
    summary: "a QUIC listener sets connection_balance_config",
    explanation: "QUIC packets are routed to workers by connection ID, not balanced like accepted TCP \
connections, so Envoy refuses connection_balance_config on QUIC listeners (\"doesn't work with connection \
balancer\"). Remove it.",
    envoy: LISTENER,
    ..Rule::ERROR
};

/// TCP and UDP addresses in one listener.
pub static ADDITIONAL_SOCKET_TYPE: Rule = Rule {
    id: "listener-additional-address-socket-type",
    summary: "additional_addresses mixes TCP and UDP",
    explanation: "All addresses of one listener share its filter chains and so must use the same protocol \
(\"has different socket type\"). Put UDP addresses in their own listener.",
    envoy: LISTENER,
    ..Rule::ERROR
};

/// ipv4_compat where it cannot apply.
pub static IPV4_COMPAT: Rule = Rule {
    id: "listener-ipv4-compat",
    summary: "ipv4_compat on an address other than `::` or an IPv4-mapped IPv6 address",
    explanation: "ipv4_compat lets an IPv6 socket also accept IPv4 connections, which only makes sense for \
the IPv6 any-address or an IPv4-mapped address. On an IPv4 or other IPv6 address Envoy refuses it (\"Only \
IPv6 address '::' or valid IPv4-mapped IPv6 address can set ipv4_compat\"). Remove ipv4_compat, or listen \
on \"::\".",
    envoy: LISTENER,
    ..Rule::ERROR
};

/// internal_listener with an address.
pub static INTERNAL_ADDRESS: Rule = Rule {
    id: "listener-internal-address",
    summary: "internal_listener is set together with an address",
    explanation: "An internal listener is reached by name from an internal upstream address, not through a \
socket, so it must not have an address (\"address should not be used when an internal listener config is \
provided\"). Either drop address for an internal listener, or drop internal_listener for a normal one.",
    envoy: LISTENER,
    ..Rule::ERROR
};

/// The socket checks of one Listener.
pub fn listener(m: &DynamicMessage, out: &mut Vec<Finding>) {
    if let Some((f, _)) = field(m, "internal_listener") {
        if m.has_field_by_name("address")
            || list(m, "additional_addresses").is_some_and(|(_, a)| !a.is_empty())
        {
            out.push(Finding::at(
                &INTERNAL_ADDRESS,
                vec![PathStep::Field(f)],
                "an internal listener has no socket address; remove `address` (or `internal_listener`)",
            ));
        }
        return;
    }
    additional_addresses(m, out);
    ipv4_compat(m, out);
    if is_udp(m) {
        udp(m, out);
    }
}

fn udp(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let name = name_of(m);
    let binds = field(m, "bind_to_port")
        .and_then(|(_, v)| v.as_message().and_then(|w| w.get_field_by_name("value")))
        .and_then(|v| v.as_bool());
    if binds == Some(false) {
        out.push(Finding::at(
            &UDP_BIND_TO_PORT,
            step(m, "bind_to_port"),
            format!("UDP listener `{name}` cannot use `bind_to_port: false`"),
        ));
    }
    let chains = list(m, "filter_chains").map_or(&[][..], |(_, c)| c);
    let default =
        field(m, "default_filter_chain").and_then(|(f, v)| v.as_message().map(|c| (f, c)));
    if is_connectionless_udp(m) {
        if !chains.is_empty() || default.is_some() {
            let at = if chains.is_empty() {
                step(m, "default_filter_chain")
            } else {
                step(m, "filter_chains")
            };
            out.push(Finding::at(
                &UDP_FILTER_CHAINS,
                at,
                format!(
                    "UDP listener `{name}` takes listener_filters (udp_proxy), not filter chains"
                ),
            ));
        }
        return;
    }
    if let Some((f, _)) = field(m, "connection_balance_config") {
        out.push(Finding::at(
            &QUIC_CONNECTION_BALANCE,
            vec![PathStep::Field(f)],
            "`connection_balance_config` does not work on a QUIC listener",
        ));
    }
    quic_chains(m, out);
}

/// Every chain of a QUIC listener: a QuicDownstreamTransport, and the HCM last.
fn quic_chains(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let mut all: Vec<(Vec<PathStep>, &DynamicMessage)> = Vec::new();
    if let Some((f, chains)) = list(m, "filter_chains") {
        for (i, chain) in chains.iter().enumerate() {
            if let Some(chain) = chain.as_message() {
                all.push((vec![PathStep::Field(f.clone()), PathStep::Index(i)], chain));
            }
        }
    }
    if let Some((f, Value::Message(chain))) = field(m, "default_filter_chain") {
        all.push((vec![PathStep::Field(f)], chain));
    }
    // Envoy first requires a transport socket on every chain, then builds them one by one.
    let missing: Vec<&Vec<PathStep>> = all
        .iter()
        .filter(|(_, chain)| !chain.has_field_by_name("transport_socket"))
        .map(|(path, _)| path)
        .collect();
    if !missing.is_empty() {
        for path in missing {
            out.push(Finding::missing_in(
                &QUIC_TRANSPORT_SOCKET,
                path.clone(),
                "QUIC listener filter chains need a `QuicDownstreamTransport` transport_socket",
            ));
        }
        return;
    }
    for (path, chain) in all {
        if quic_transport(chain, &path, out) {
            hcm_last(chain, path, out);
        }
    }
}

const QUIC_TRANSPORT: &str = "envoy.extensions.transport_sockets.quic.v3.QuicDownstreamTransport";
const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// Reports a transport socket of another type; true when it is (or may be) QUIC.
fn quic_transport(chain: &DynamicMessage, path: &[PathStep], out: &mut Vec<Finding>) -> bool {
    let Some((sf, Value::Message(socket))) = field(chain, "transport_socket") else {
        return true;
    };
    let Some((tf, Value::Message(any))) = field(socket, "typed_config") else {
        // Chosen by name alone: nothing to compare.
        return true;
    };
    let Some(kind) = any_type(any) else {
        return true;
    };
    // Only a known message type decides; wrappers such as TypedStruct are left alone.
    if kind == QUIC_TRANSPORT
        || kind.ends_with("TypedStruct")
        || crate::config::schema::pool()
            .get_message_by_name(&kind)
            .is_none()
    {
        return true;
    }
    let mut at = path.to_vec();
    at.extend([PathStep::Field(sf), PathStep::Field(tf)]);
    out.push(Finding::missing_in(
        &QUIC_TRANSPORT_SOCKET,
        at,
        format!("QUIC listener filter chains need a `QuicDownstreamTransport` transport_socket, not `{kind}`"),
    ));
    false
}

/// Envoy compares the last filter's type URL with the HCM's.
fn hcm_last(chain: &DynamicMessage, mut path: Vec<PathStep>, out: &mut Vec<Finding>) {
    let filters = list(chain, "filters");
    let last = filters.as_ref().and_then(|(f, items)| {
        let i = items.len().checked_sub(1)?;
        Some((f.clone(), i, items.get(i)?.as_message()?))
    });
    let kind = last
        .as_ref()
        .and_then(|(_, _, filter)| field(filter, "typed_config"))
        .and_then(|(_, v)| v.as_message().and_then(any_type));
    if kind.as_deref() == Some(HCM) {
        return;
    }
    match last {
        Some((f, i, _)) => path.extend([PathStep::Field(f), PathStep::Index(i)]),
        None => path.extend(step(chain, "filters")),
    }
    out.push(Finding::at(
        &QUIC_HCM_LAST,
        path,
        "QUIC listener filter chains must end in envoy.filters.network.http_connection_manager",
    ));
}

/// Every additional address must have the main address's socket type.
fn additional_addresses(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((_, Value::Message(main))) = field(m, "address") else {
        return;
    };
    let datagram = is_datagram(main);
    let Some((af, items)) = list(m, "additional_addresses") else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let Some((f, Value::Message(address))) =
            item.as_message().and_then(|a| field(a, "address"))
        else {
            continue;
        };
        if is_datagram(address) == datagram {
            continue;
        }
        let mut path = vec![
            PathStep::Field(af.clone()),
            PathStep::Index(i),
            PathStep::Field(f),
        ];
        if let Some((sf, Value::Message(sa))) = field(address, "socket_address") {
            path.push(PathStep::Field(sf));
            path.extend(field(sa, "protocol").map(|(p, _)| PathStep::Field(p)));
        }
        let (this, main) = if datagram {
            ("TCP", "UDP")
        } else {
            ("UDP", "TCP")
        };
        out.push(Finding::at(
            &ADDITIONAL_SOCKET_TYPE,
            path,
            format!("additional address is {this} but the listener's address is {main}"),
        ));
    }
}

/// A socket address's IP (with `ipv4_compat`), when it is one.
fn socket_ip(address: &DynamicMessage) -> Option<(IpAddr, bool, Vec<PathStep>)> {
    let (sf, Value::Message(sa)) = field(address, "socket_address")? else {
        return None;
    };
    let (_, Value::String(host)) = field(sa, "address")? else {
        return None;
    };
    let ip = super::filter_chains::parse_ip(host)?;
    let compat = field(sa, "ipv4_compat").and_then(|(_, v)| v.as_bool()) == Some(true);
    let mut path = vec![PathStep::Field(sf)];
    path.extend(field(sa, "ipv4_compat").map(|(f, _)| PathStep::Field(f)));
    Some((ip, compat, path))
}

/// ipv4_compat needs `::` or an IPv4-mapped address. As in Envoy, additional
/// addresses that set it are judged by the listener's main address.
fn ipv4_compat(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((af, Value::Message(main))) = field(m, "address") else {
        return;
    };
    let Some((ip, main_compat, main_path)) = socket_ip(main) else {
        return;
    };
    let allowed = match ip {
        IpAddr::V4(_) => false,
        // The main address is parsed v6-only unless it sets ipv4_compat itself.
        IpAddr::V6(v6) => v6.is_unspecified() || (main_compat && v6.to_ipv4_mapped().is_some()),
    };
    if allowed {
        return;
    }
    let message = format!(
        "`ipv4_compat` only works on `::` or an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), not {ip}"
    );
    if main_compat {
        let mut path = vec![PathStep::Field(af)];
        path.extend(main_path);
        out.push(Finding::at(&IPV4_COMPAT, path, message.clone()));
    }
    let Some((lf, items)) = list(m, "additional_addresses") else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let Some((f, Value::Message(address))) =
            item.as_message().and_then(|a| field(a, "address"))
        else {
            continue;
        };
        let Some((sf, Value::Message(sa))) = field(address, "socket_address") else {
            continue;
        };
        if let Some((cf, Value::Bool(true))) = field(sa, "ipv4_compat") {
            let path = vec![
                PathStep::Field(lf.clone()),
                PathStep::Index(i),
                PathStep::Field(f),
                PathStep::Field(sf),
                PathStep::Field(cf),
            ];
            out.push(Finding::at(&IPV4_COMPAT, path, format!("{message} (Envoy checks additional addresses' ipv4_compat against the main address)")));
        }
    }
}
