//! A listener as Envoy's listener manager builds it: an address (an IP,
//! unless a resolver is named) for every listener that binds, and a filter
//! chain for every one that takes connections.

use super::{get, missing, socket_ip, step, wrong};
use crate::check::{Finding, Rule};
use crate::config::reflect::list;
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, Value};

/// A listener without an address.
pub static LISTENER_ADDRESS: Rule = Rule {
    id: "listener-missing-address",
    summary: "a listener has no address",
    explanation: "Every listener that binds needs an `address` (\"address is necessary\"); only internal \
listeners and API listeners (for proxyless gRPC) go without one.",
    envoy: "source/common/listener_manager/listener_manager_impl.cc",
    ..Rule::ERROR
};

/// A TCP listener without filter chains.
pub static LISTENER_FILTER_CHAINS: Rule = Rule {
    id: "listener-no-filter-chains",
    summary: "a TCP or QUIC listener has no filter chain",
    explanation: "A TCP or QUIC listener needs at least one entry in `filter_chains`, or a \
`default_filter_chain` (\"no filter chains specified\"): without one it could not handle any connection. \
Only plain UDP listeners (no quic_options) go without, driven by listener filters such as udp_proxy.",
    envoy: "source/common/listener_manager/listener_impl.cc",
    ..Rule::ERROR
};

pub(super) fn listener(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let api = m.has_field_by_name("api_listener");
    let internal = m.has_field_by_name("internal_listener");
    match get(m, "address") {
        Some((f, Value::Message(address))) => {
            socket_ip(address, vec![PathStep::Field(f)], "listener", out)
        }
        _ if !api && !internal => out.push(missing(
            &LISTENER_ADDRESS,
            Vec::new(),
            "a listener needs an `address` (unless it is an internal or API listener)",
        )),
        _ => {}
    }
    let chains = list(m, "filter_chains").is_some_and(|(_, c)| !c.is_empty());
    // Plain UDP listeners are driven by listener filters (udp_proxy); QUIC
    // listeners are connection oriented and need chains like TCP ones.
    if !api
        && !chains
        && !crate::check::listeners::is_connectionless_udp(m)
        && !m.has_field_by_name("default_filter_chain")
    {
        // At `filter_chains:` when it is written (empty), else at the listener.
        out.push(wrong(
            &LISTENER_FILTER_CHAINS,
            step(m, "filter_chains").into_iter().collect(),
            "a listener needs at least one filter chain (or a default_filter_chain)".into(),
        ));
    }
}
