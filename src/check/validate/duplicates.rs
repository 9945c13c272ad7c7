//! What one node may not be served twice: two resources of one type and
//! name, one domain in two virtual hosts of a route configuration, one
//! address bound by two listeners. Selectors decide what "one node" may
//! see: definitions for disjoint sets of nodes never clash.

use super::walk::Walk;
use super::{Path, name_path, with};
use crate::check::Rule;
use crate::config::diag::Diagnostics;
use crate::config::reflect::{field, string_field};
use crate::config::resource::{PathStep, Resource};
use crate::config::schema::ResourceType;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};
use std::collections::HashMap;

/// Two resources of one type and name that one node could both see.
pub static DUPLICATE_NAME: Rule = Rule {
    id: "duplicate-name",
    summary: "two resources of one type and name can be served to the same node",
    explanation: "A node is served at most one resource of each type and name. Two definitions that one node \
could both see (no `nodes` selectors, or overlapping ones) are ambiguous, and Envoy refuses duplicates \
(\"duplicate cluster\", \"duplicate listener\"). Rename one, or give them disjoint `nodes` selectors.",
    envoy: "source/common/upstream/cluster_manager_impl.cc",
    ..Rule::ERROR
};

/// A domain in two virtual hosts.
pub static DUPLICATE_DOMAIN: Rule = Rule {
    id: "route-duplicate-domain",
    summary: "a domain appears twice in one route configuration",
    explanation: "Each domain (and the wildcard `*`) may appear in only one virtual host of a route \
configuration, once (\"Only unique values for domains are permitted\").",
    envoy: "source/common/router/config_impl.cc",
    ..Rule::ERROR
};

/// Two listeners on one address.
pub static DUPLICATE_ADDRESS: Rule = Rule {
    id: "listener-duplicate-address",
    summary: "two listeners one node could get bind the same address",
    explanation: "Two listeners served to one node use the same address and port, through their main or \
additional addresses (\"has duplicate address ... as existing listener\"); listeners with \
`bind_to_port: false` count too, and IPs compare after parsing. Only port 0 (a fresh port per bind) and \
TCP against UDP are exempt. Change one port, merge the listeners, or serve them to different nodes.",
    envoy: "source/common/listener_manager/listener_manager_impl.cc",
    ..Rule::ERROR
};

pub(super) fn check_duplicate_names(resources: &[Resource], diags: &mut Diagnostics) {
    let mut by_name: HashMap<(ResourceType, &str), Vec<&Resource>> = HashMap::new();
    for r in resources {
        if r.name.is_empty() {
            continue;
        }
        let earlier = by_name.entry((r.rtype, r.name.as_str())).or_default();
        if let Some(first) = earlier.iter().find(|e| e.selector.overlaps(&r.selector)) {
            diags.report(
                &DUPLICATE_NAME,
                r.locate(&name_path(r)),
                format!(
                    "duplicate {} `{}`: also defined at {} for {}",
                    r.rtype.kind_name(),
                    r.name,
                    first.locate(&name_path(first)),
                    if first.selector == r.selector {
                        "the same nodes".to_string()
                    } else {
                        "overlapping nodes".to_string()
                    }
                ),
            );
        }
        earlier.push(r);
    }
}

/// One listen address of a listener, for the duplicate-address check.
#[derive(Debug)]
pub(super) struct BoundAddress {
    /// `ip:port` (the IP in canonical form) or a pipe path, with `/udp`
    /// for datagram listeners: equal texts are equal addresses to Envoy.
    text: String,
    /// Where to report it (its port).
    path: Path,
    /// Does its listener bind (`bind_to_port` not false)?
    binds: bool,
    /// Port 0 (any free port).
    port_zero: bool,
}

/// Envoy's ListenerImpl::hasDuplicatedAddress: a later listener may not
/// use an address of an earlier one of the same socket type, except that
/// port 0 (a fresh port each time) only clashes with a non-binding listener.
pub(super) fn check_duplicate_addresses(
    resources: &[Resource],
    addresses: &[(usize, &BoundAddress)],
    diags: &mut Diagnostics,
) {
    for (i, (index, address)) in addresses.iter().enumerate() {
        let resource = &resources[*index];
        let clash = addresses[..i].iter().find(|(other, a)| {
            a.text == address.text
                && other != index
                && !(address.port_zero && a.binds)
                && resources[*other].name != resource.name
                && resources[*other].selector.overlaps(&resource.selector)
        });
        if let Some((other, earlier)) = clash {
            diags.report(
                &DUPLICATE_ADDRESS,
                resource.locate(&address.path),
                format!(
                    "listener `{}` binds {}, already used by listener `{}` ({})",
                    resource.name,
                    address.text,
                    resources[*other].name,
                    resources[*other].locate(&earlier.path)
                ),
            );
        }
    }
}

impl Walk<'_> {
    pub(super) fn duplicate_domains(&mut self, m: &DynamicMessage, path: &Path) {
        let Some((vf, Value::List(vhosts))) = field(m, "virtual_hosts") else {
            return;
        };
        let mut seen: HashMap<String, String> = HashMap::new();
        for (i, vhost) in vhosts.iter().enumerate() {
            let Some(vhost) = vhost.as_message() else {
                continue;
            };
            let vhost_name = string_field(vhost, "name")
                .map(|(_, n)| n)
                .unwrap_or_default();
            let Some((df, Value::List(domains))) = field(vhost, "domains") else {
                continue;
            };
            for (j, domain) in domains.iter().enumerate() {
                let Some(domain) = domain.as_str() else {
                    continue;
                };
                let key = domain.to_ascii_lowercase();
                if let Some(first) = seen.insert(key, vhost_name.clone()) {
                    let p = with(
                        path,
                        [
                            PathStep::Field(vf.clone()),
                            PathStep::Index(i),
                            PathStep::Field(df.clone()),
                            PathStep::Index(j),
                        ],
                    );
                    self.diags.report(
                        &DUPLICATE_DOMAIN,
                        self.resource.locate(&p),
                        format!("domain `{domain}` appears in virtual hosts `{first}` and `{vhost_name}`; Envoy requires domains to be unique in a route configuration"),
                    );
                }
            }
        }
    }

    pub(super) fn listener(&mut self, m: &DynamicMessage, path: &Path) {
        let binds = field(m, "bind_to_port").is_none_or(|(_, v)| {
            v.as_message()
                .and_then(|w| w.get_field_by_name("value"))
                .and_then(|v| v.as_bool())
                != Some(false)
        });
        // The listener's socket type comes from its main address.
        let udp = crate::check::listeners::is_udp(m);
        let mut addresses = Vec::new();
        if let Some((af, Value::Message(address))) = field(m, "address") {
            addresses.push((with(path, [PathStep::Field(af)]), address));
        }
        if let Some((lf, Value::List(items))) = field(m, "additional_addresses") {
            for (i, item) in items.iter().enumerate() {
                if let Some((af, Value::Message(address))) =
                    item.as_message().and_then(|a| field(a, "address"))
                {
                    let p = with(
                        path,
                        [
                            PathStep::Field(lf.clone()),
                            PathStep::Index(i),
                            PathStep::Field(af),
                        ],
                    );
                    addresses.push((p, address));
                }
            }
        }
        for (mut p, address) in addresses {
            if let Some((text, port_zero, steps)) = socket_address_text(address) {
                p.extend(steps);
                self.addresses.push(BoundAddress {
                    text: format!("{text}{}", if udp { "/udp" } else { "" }),
                    path: p,
                    binds,
                    port_zero,
                });
            }
        }
    }
}

/// `ip:port` (or a pipe's path) of an Address, whether the port is 0, and
/// the path to the port. IPs are compared as Envoy does, after parsing.
fn socket_address_text(address: &DynamicMessage) -> Option<(String, bool, Path)> {
    if let Some((pf, Value::Message(pipe))) = field(address, "pipe") {
        let path = string_field(pipe, "path")
            .map(|(_, p)| p)
            .unwrap_or_default();
        return Some((format!("pipe:{path}"), false, vec![PathStep::Field(pf)]));
    }
    let (sf, Value::Message(sa)) = field(address, "socket_address")? else {
        return None;
    };
    let host = string_field(sa, "address")
        .map(|(_, h)| h)
        .unwrap_or_default();
    // Scoped IPv6 addresses keep their text: the scope tells them apart.
    let port = field(sa, "port_value")
        .and_then(|(_, v)| v.as_u32())
        .unwrap_or(0);
    let text = match crate::check::listeners::filter_chains::parse_ip(&host) {
        Some(ip) if !host.contains('%') => {
            std::net::SocketAddr::new(ip, u16::try_from(port).unwrap_or(0)).to_string()
        }
        _ => format!("{host}:{port}"),
    };
    let port_field = sa.descriptor().get_field_by_name("port_value")?;
    Some((
        text,
        port == 0,
        vec![PathStep::Field(sf), PathStep::Field(port_field)],
    ))
}
