//! What Envoy rejects inside one resource that neither the schema nor
//! `validate.rules` express: listener and endpoint addresses, filter order,
//! TLS cipher suites, route rewrites, header removal, LOGICAL_DNS shape, regexes.
//!
//! Each check looks at one message (wherever it appears, also inside `Any`)
//! and reports a field path relative to it.
//!
//! One file per area: `listener.rs`, `endpoints.rs` (static endpoints and
//! the cluster shapes they come with), `typed_config.rs` (extensions found
//! by their config's type), `filter_order.rs` (terminal filters),
//! `routes.rs` (rewrites, header rules) and `ciphers.rs`. This file
//! dispatches by message type and holds what several areas share.

mod ciphers;
mod endpoints;
mod filter_order;
mod listener;
mod routes;
mod typed_config;

use crate::check::{Finding, Rule};
use crate::config::reflect::field as get;
use crate::config::resource::PathStep;
use ciphers::cipher_suites;
use endpoints::{cluster, endpoint_ips};
use filter_order::{HTTP_CHAIN, NETWORK_CHAIN, ROUTER_UPSTREAM_CHAIN};
use listener::listener;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};
use routes::{modified_header, removed_headers, rewrites};

pub use ciphers::UNKNOWN_CIPHER;
pub use endpoints::{EDS_WITHOUT_CONFIG, ENDPOINT_ADDRESS, LOGICAL_DNS_ENDPOINTS};
pub use filter_order::{
    CLUSTER_UPSTREAM_CHAIN, Chain, LAST_NOT_TERMINAL, TERMINAL_NOT_LAST, filter_order,
};
pub use listener::{LISTENER_ADDRESS, LISTENER_FILTER_CHAINS};
pub use routes::{IMMUTABLE_HEADER, REWRITE_CONFLICT};
pub use typed_config::{MISSING_TYPED_CONFIG, typed_config_present};

/// The rules this module reports.
pub static RULES: &[&Rule] = &[
    &EDS_WITHOUT_CONFIG,
    &MISSING_TYPED_CONFIG,
    &NOT_AN_IP,
    &LISTENER_ADDRESS,
    &LISTENER_FILTER_CHAINS,
    &ENDPOINT_ADDRESS,
    &LOGICAL_DNS_ENDPOINTS,
    &TERMINAL_NOT_LAST,
    &LAST_NOT_TERMINAL,
    &REWRITE_CONFLICT,
    &IMMUTABLE_HEADER,
    &UNKNOWN_CIPHER,
    &INVALID_REGEX,
];

/// An address that must be an IP is a hostname.
pub static NOT_AN_IP: Rule = Rule {
    id: "address-not-ip",
    summary: "a listener or static endpoint address is not an IP address",
    explanation: "Listener addresses and the endpoints of STATIC clusters and ClusterLoadAssignments are \
parsed as IP addresses; Envoy resolves no names there (\"malformed IP address\"). Use an IP, name a custom \
`resolver_name`, or make the cluster STRICT_DNS or LOGICAL_DNS so that Envoy resolves the hostname.",
    envoy: "source/common/network/utility.cc",
    ..Rule::ERROR
};

/// A regex RE2 does not accept.
pub static INVALID_REGEX: Rule = Rule {
    id: "invalid-regex",
    summary: "a regular expression is not valid RE2",
    explanation: "Envoy compiles `safe_regex` patterns with Google RE2, which has no look-around and no \
backreferences. A pattern that does not compile makes Envoy refuse the resource.",
    envoy: "source/common/common/regex.cc",
    ..Rule::ERROR
};

/// A finding about the value at `path`.
fn wrong(rule: &'static Rule, path: Vec<PathStep>, message: String) -> Finding {
    Finding::at(rule, path, message)
}

/// A finding about something missing from the message at `path`.
fn missing(rule: &'static Rule, path: Vec<PathStep>, message: &str) -> Finding {
    Finding::missing_in(rule, path, message)
}

/// Runs the checks that apply to `m`'s type; `top_level` is true for a
/// resource itself (as opposed to a message nested in one).
pub fn check(m: &DynamicMessage, top_level: bool, out: &mut Vec<Finding>) {
    match m.descriptor().full_name() {
        "envoy.config.listener.v3.Listener" => listener(m, out),
        "envoy.config.listener.v3.FilterChain" => filter_order(m, &NETWORK_CHAIN, out),
        "envoy.config.cluster.v3.Cluster" => cluster(m, out),
        "envoy.config.endpoint.v3.ClusterLoadAssignment" if top_level => {
            // EDS endpoints are never resolved by DNS.
            endpoint_ips(m, &[], out);
        }
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" => {
            filter_order(m, &HTTP_CHAIN, out)
        }
        "envoy.extensions.filters.http.router.v3.Router" => {
            filter_order(m, &ROUTER_UPSTREAM_CHAIN, out)
        }
        "envoy.config.route.v3.RouteAction" => rewrites(m, out),
        "envoy.config.route.v3.RouteConfiguration"
        | "envoy.config.route.v3.VirtualHost"
        | "envoy.config.route.v3.Route"
        | "envoy.config.route.v3.WeightedCluster.ClusterWeight" => removed_headers(m, out),
        "envoy.extensions.transport_sockets.tls.v3.TlsParameters" => cipher_suites(m, out),
        "envoy.config.core.v3.HeaderValueOption" => modified_header(m, out),
        "envoy.type.matcher.v3.RegexMatcher" => {
            if let Some((f, Value::String(re))) = get(m, "regex")
                && let Err(e) = crate::config::constraints::check_re2(re)
            {
                out.push(wrong(
                    &INVALID_REGEX,
                    vec![PathStep::Field(f)],
                    format!("invalid regex `{re}`: {e}"),
                ));
            }
        }
        _ => {}
    }
}

/// A field's descriptor and value, when it is set.
fn step(m: &DynamicMessage, name: &str) -> Option<PathStep> {
    m.descriptor().get_field_by_name(name).map(PathStep::Field)
}

/// Reports a socket address whose `address` is not an IP, unless a custom resolver is named.
fn socket_ip(
    address: &DynamicMessage,
    mut path: Vec<PathStep>,
    what: &str,
    out: &mut Vec<Finding>,
) {
    let Some((sf, Value::Message(sa))) = get(address, "socket_address") else {
        return;
    };
    if sa.has_field_by_name("resolver_name") {
        return;
    }
    let Some((af, Value::String(host))) = get(sa, "address") else {
        return;
    };
    if host.parse::<std::net::IpAddr>().is_err() {
        path.extend([PathStep::Field(sf), PathStep::Field(af)]);
        out.push(wrong(&NOT_AN_IP, path, format!("{what} address `{host}` is not an IP address (set resolver_name, or use a STRICT_DNS or LOGICAL_DNS cluster)")));
    }
}
