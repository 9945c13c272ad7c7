//! RBAC policies (HTTP and network filters): IP ranges, port ranges, and
//! header matchers where no HTTP request exists.

use super::{field, items, join, msg, step};
use crate::check::{Finding, Rule};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, Value};

pub static INVALID_CIDR: Rule = Rule {
    id: "rbac-invalid-cidr",
    summary: "an RBAC CIDR range's address_prefix is not an IP address",
    explanation: "RBAC IP matchers take CIDR ranges, and address_prefix must be a literal IP address (no \
host names). Envoy rejects the filter if it is not (\"malformed IP address\").",
    envoy: "source/extensions/filters/common/rbac/matchers.cc",
    ..Rule::ERROR
};

pub static PORT_RANGE: Rule = Rule {
    id: "rbac-port-range",
    summary: "an RBAC destination_port_range is empty or out of bounds",
    explanation: "destination_port_range is a half-open range [start, end), so end must be greater than \
start, and both must lie within 0–65536. To match one port use start: P, end: P+1, or use destination_port.",
    envoy: "source/extensions/filters/common/rbac/matchers.cc",
    ..Rule::ERROR
};

pub static NETWORK_HEADER: Rule = Rule {
    id: "rbac-network-header-rule",
    summary: "the network RBAC filter has a policy that matches on HTTP headers",
    explanation: "The network-level RBAC filter sees connections, not HTTP requests, so header matchers \
cannot work there. Envoy rejects such policies (\"not supported by RBAC network filter\"). Use the HTTP RBAC \
filter for header-based rules.",
    envoy: "source/extensions/filters/network/rbac/config.cc",
    ..Rule::ERROR
};

pub fn message(name: &str, m: &DynamicMessage, out: &mut Vec<Finding>) {
    match name {
        "envoy.config.rbac.v3.Permission" => {
            cidr(m, "destination_ip", out);
            port_range(m, out);
        }
        "envoy.config.rbac.v3.Principal" => {
            for f in ["direct_remote_ip", "remote_ip", "source_ip"] {
                cidr(m, f, out);
            }
        }
        "envoy.extensions.filters.network.rbac.v3.RBAC" => {
            for rules in ["rules", "shadow_rules"] {
                if let Some((f, Value::Message(rbac))) = field(m, rules) {
                    network_policies(rbac, vec![PathStep::Field(f)], out);
                }
            }
        }
        _ => {}
    }
}

fn cidr(m: &DynamicMessage, name: &str, out: &mut Vec<Finding>) {
    let Some((f, Value::Message(range))) = field(m, name) else {
        return;
    };
    let Some((af, Value::String(addr))) = field(range, "address_prefix") else {
        return;
    };
    // Scoped IPv6 addresses (`%eth0`) are numeric hosts to Envoy but not to Rust.
    if addr.parse::<std::net::IpAddr>().is_err() && !addr.contains('%') {
        out.push(Finding::at(
            &INVALID_CIDR,
            vec![PathStep::Field(f), PathStep::Field(af)],
            format!("rbac: '{addr}' is not an IP address"),
        ));
    }
}

fn port_range(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((f, Value::Message(range))) = field(m, "destination_port_range") else {
        return;
    };
    let bound = |n| field(range, n).and_then(|(_, v)| v.as_i32()).unwrap_or(0);
    let (start, end) = (bound("start"), bound("end"));
    let out_of_bounds = |p: i32| !(0..=65536).contains(&p);
    if out_of_bounds(start) || out_of_bounds(end) || start >= end {
        out.push(Finding::at(
            &PORT_RANGE,
            vec![PathStep::Field(f)],
            format!("rbac destination_port_range [{start},{end}) is invalid"),
        ));
    }
}

/// Header permissions and principals anywhere in a network RBAC's policies.
fn network_policies(rbac: &DynamicMessage, path: Vec<PathStep>, out: &mut Vec<Finding>) {
    let Some((f, Value::Map(policies))) = field(rbac, "policies") else {
        return;
    };
    for (key, policy) in policies {
        let Value::Message(policy) = policy else {
            continue;
        };
        let at = join(&path, [PathStep::Field(f.clone()), PathStep::key(key)]);
        for list in ["permissions", "principals"] {
            for (i, item) in items(policy, list).iter().enumerate() {
                if let Some(item) = item.as_message() {
                    headers(
                        item,
                        join(
                            &at,
                            step(policy, list).into_iter().chain([PathStep::Index(i)]),
                        ),
                        out,
                    );
                }
            }
        }
    }
}

/// A Permission or Principal, through its and/or/not sets.
fn headers(m: &DynamicMessage, path: Vec<PathStep>, out: &mut Vec<Finding>) {
    if m.has_field_by_name("header") {
        out.push(Finding::at(
            &NETWORK_HEADER,
            join(&path, step(m, "header")),
            "network RBAC cannot match on HTTP headers",
        ));
    }
    for (set, list) in [
        ("and_rules", "rules"),
        ("or_rules", "rules"),
        ("and_ids", "ids"),
        ("or_ids", "ids"),
    ] {
        let Some((sf, Value::Message(s))) = field(m, set) else {
            continue;
        };
        for (i, item) in items(s, list).iter().enumerate() {
            if let Some(item) = item.as_message() {
                let at = join(
                    &path,
                    [PathStep::Field(sf.clone())]
                        .into_iter()
                        .chain(step(s, list))
                        .chain([PathStep::Index(i)]),
                );
                headers(item, at, out);
            }
        }
    }
    for not in ["not_rule", "not_id"] {
        if let Some(inner) = msg(m, not) {
            headers(inner, join(&path, step(m, not)), out);
        }
    }
}
