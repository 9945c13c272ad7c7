//! How Envoy indexes a listener's filter chains: by `filter_chain_match`
//! into a decision tree (server names, prefix ranges, ...), or, with a
//! `filter_chain_matcher`, by chain name.

use super::{Finding, Rule};
use crate::config::reflect::{field, list, string_field};
use crate::config::resource::PathStep;
use prost_reflect::DynamicMessage;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const MANAGER: &str = "source/common/listener_manager/filter_chain_manager_impl.cc";

/// A server name with a `*` other than a leading `*.`.
pub static PARTIAL_WILDCARD: Rule = Rule {
    id: "listener-server-names-partial-wildcard",
    summary: "a filter_chain_match.server_names entry has a `*` that is not a leading `*.`",
    explanation: "Filter chain SNI matching supports exact names and one leading wildcard label \
(`*.example.com`, which matches any subdomain). Any other use of `*` is refused (\"partial wildcards are \
not supported\"). To match everything, leave server_names empty.",
    envoy: MANAGER,
    ..Rule::ERROR
};

/// Two filter chains that match the same connections.
pub static DUPLICATE_MATCH: Rule = Rule {
    id: "listener-duplicate-filter-chain-match",
    summary: "two filter chains of a listener have identical or overlapping filter_chain_match",
    explanation: "Envoy picks a filter chain by walking a decision tree of the filter_chain_match fields. \
Two chains that land on the same leaf would be ambiguous, so Envoy refuses the listener (\"has the same \
matching rules defined as\", \"multiple filter chains with overlapping matching rules\"). Server names \
compare case-insensitively and prefix ranges after masking. Make the matches differ, or turn the \
catch-all chain into default_filter_chain.",
    envoy: MANAGER,
    ..Rule::ERROR
};

/// A prefix range whose address is not an IP.
pub static PREFIX_RANGE: Rule = Rule {
    id: "listener-prefix-range-malformed",
    summary: "a filter_chain_match prefix range address is not an IP address",
    explanation: "Prefix ranges must be IP address literals with a prefix length (\"malformed IP \
address\"). Envoy cannot resolve names here and refuses the listener. Write the network address, for \
example 10.0.0.0 with prefix_len 24.",
    envoy: "source/common/network/cidr_range.cc",
    ..Rule::ERROR
};

/// address_suffix / suffix_len.
pub static UNIMPLEMENTED: Rule = Rule {
    id: "listener-filter-chain-unimplemented-fields",
    summary: "filter_chain_match sets address_suffix or suffix_len",
    explanation: "address_suffix and suffix_len are in the API but were never implemented, so Envoy \
refuses any filter chain that sets them (\"contains unimplemented fields\"). Use prefix_ranges.",
    envoy: MANAGER,
    ..Rule::ERROR
};

/// With filter_chain_matcher, chains need unique names.
pub static MATCHER_NAME: Rule = Rule {
    id: "listener-filter-chain-matcher-name",
    summary: "with filter_chain_matcher, a filter chain has no name or a duplicate name",
    explanation: "The filter_chain_matcher selects filter chains by name, so with a matcher every chain \
must have a unique name (\"\\\"name\\\" field is required when using a listener matcher\", \"is \
duplicated\"). Name each chain and use those names in the matcher actions.",
    envoy: MANAGER,
    ..Rule::ERROR
};

/// Checks a Listener's filter_chains (default_filter_chain is matched by nothing).
pub fn listener(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((cf, chains)) = list(m, "filter_chains") else {
        return;
    };
    let chains: Vec<(usize, &DynamicMessage)> = chains
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.as_message().map(|c| (i, c)))
        .collect();
    let at = |i: usize, rest: &[PathStep]| {
        let mut path = vec![PathStep::Field(cf.clone()), PathStep::Index(i)];
        path.extend_from_slice(rest);
        path
    };
    let mut usable = Vec::new();
    for &(i, chain) in &chains {
        if !unimplemented_fields(chain, &at(i, &[]), out) {
            usable.push((i, chain));
        }
    }
    if m.has_field_by_name("filter_chain_matcher") {
        // Chains are selected by name; their filter_chain_match is ignored.
        matcher_names(&usable, &at, out);
        return;
    }
    let distinct = identical_matches(&usable, &at, out);
    let mut tree = Tree::default();
    for (i, chain) in distinct {
        let Some(keys) = chain_keys(chain, &at(i, &[]), out) else {
            continue;
        };
        if let Some(path) = tree.add(keys, at(i, &[])) {
            out.push(Finding::at(
                &DUPLICATE_MATCH,
                path,
                format!(
                    "filter chain {} overlaps an earlier chain: both match the same connections \
(server names compare case-insensitively, prefix ranges after masking)",
                    chain_label(chain, i)
                ),
            ));
        }
    }
}

/// `'name'` or `#index` for messages.
fn chain_label(chain: &DynamicMessage, i: usize) -> String {
    match string_field(chain, "name") {
        Some((_, name)) if !name.is_empty() => format!("`{name}`"),
        _ => format!("#{i}"),
    }
}

/// The chain's filter_chain_match, when set.
fn match_of(chain: &DynamicMessage) -> Option<(prost_reflect::FieldDescriptor, &DynamicMessage)> {
    field(chain, "filter_chain_match").and_then(|(f, v)| v.as_message().map(|m| (f, m)))
}

/// Reports address_suffix / suffix_len; true when found (Envoy stops there).
fn unimplemented_fields(chain: &DynamicMessage, base: &[PathStep], out: &mut Vec<Finding>) -> bool {
    let Some((mf, fcm)) = match_of(chain) else {
        return false;
    };
    let suffix = string_field(fcm, "address_suffix").filter(|(_, s)| !s.is_empty());
    let set = suffix
        .map(|(f, _)| f)
        .or_else(|| field(fcm, "suffix_len").map(|(f, _)| f));
    let Some(f) = set else { return false };
    let mut path = base.to_vec();
    path.extend([PathStep::Field(mf), PathStep::Field(f.clone())]);
    out.push(Finding::at(
        &UNIMPLEMENTED,
        path,
        format!(
            "`{}` is not implemented by Envoy; use prefix_ranges",
            f.name()
        ),
    ));
    true
}

/// With a matcher: every chain needs a unique, non-empty name.
fn matcher_names(
    chains: &[(usize, &DynamicMessage)],
    at: &dyn Fn(usize, &[PathStep]) -> Vec<PathStep>,
    out: &mut Vec<Finding>,
) {
    let mut seen = HashSet::new();
    for &(i, chain) in chains {
        match string_field(chain, "name") {
            Some((nf, name)) if !name.is_empty() => {
                if !seen.insert(name.clone()) {
                    out.push(Finding::at(&MATCHER_NAME, at(i, &[PathStep::Field(nf)]), format!("with `filter_chain_matcher`, every filter chain needs a unique `name` (`{name}` is used twice)")));
                }
            }
            _ => out.push(Finding::missing_in(
                &MATCHER_NAME,
                at(i, &[]),
                "with `filter_chain_matcher`, every filter chain needs a `name`",
            )),
        }
    }
}

/// Reports chains whose filter_chain_match equals an earlier one's (unset
/// is `{}`); returns the others, which Envoy goes on to index.
fn identical_matches<'a>(
    chains: &[(usize, &'a DynamicMessage)],
    at: &dyn Fn(usize, &[PathStep]) -> Vec<PathStep>,
    out: &mut Vec<Finding>,
) -> Vec<(usize, &'a DynamicMessage)> {
    let mut seen: HashMap<String, (usize, &DynamicMessage)> = HashMap::new();
    let mut distinct = Vec::new();
    for &(i, chain) in chains {
        let key = match_of(chain)
            .map(|(_, m)| crate::check::validate::canonical_json(m))
            .unwrap_or_else(|| "{}".to_string());
        if let Some(&(first, earlier)) = seen.get(&key) {
            let path = match string_field(chain, "name") {
                Some((nf, _)) => at(i, &[PathStep::Field(nf)]),
                None => at(i, &[]),
            };
            out.push(Finding::at(
                &DUPLICATE_MATCH,
                path,
                format!(
                    "filter chain {} has the same filter_chain_match as {}",
                    chain_label(chain, i),
                    chain_label(earlier, first)
                ),
            ));
        } else {
            seen.insert(key, (i, chain));
            distinct.push((i, chain));
        }
    }
    distinct
}

/// One level of the decision tree: the values a chain matches on for one
/// key (an empty list means "any", keyed as Envoy does by "" or 0), each
/// with the path of the entry it came from.
type Level = Vec<(String, Option<Vec<PathStep>>)>;

/// The chain's levels in Envoy's order, or None when Envoy would refuse the
/// chain before indexing it (reported here: malformed prefix ranges and
/// partial wildcards).
fn chain_keys(
    chain: &DynamicMessage,
    base: &[PathStep],
    out: &mut Vec<Finding>,
) -> Option<Vec<Level>> {
    let empty = DynamicMessage::new(
        crate::config::schema::pool()
            .get_message_by_name("envoy.config.listener.v3.FilterChainMatch")?,
    );
    let (mf, fcm) = match match_of(chain) {
        Some((f, m)) => (Some(f), m),
        None => (None, &empty),
    };
    let mut base = base.to_vec();
    base.extend(mf.map(PathStep::Field));
    let mut ok = true;
    let mut cidrs = |name: &str, out: &mut Vec<Finding>| -> Level {
        let level = cidr_level(fcm, name, &base, out);
        ok &= level.is_some();
        level.unwrap_or_default()
    };
    let destination = cidrs("prefix_ranges", out);
    let source = cidrs("source_prefix_ranges", out);
    let direct_source = cidrs("direct_source_prefix_ranges", out);
    let names = server_names(fcm, &base, out);
    if !ok {
        return None;
    }
    let port = field(fcm, "destination_port")
        .and_then(|(_, v)| v.as_message().and_then(|w| w.get_field_by_name("value")))
        .and_then(|v| v.as_u32())
        .unwrap_or(0);
    let transport = string_field(fcm, "transport_protocol")
        .map(|(_, t)| t)
        .unwrap_or_default();
    let source_type = field(fcm, "source_type")
        .and_then(|(_, v)| v.as_enum_number())
        .unwrap_or(0);
    Some(vec![
        vec![(port.to_string(), None)],
        or_any(destination),
        or_any(names?),
        vec![(transport, None)],
        or_any(strings(fcm, "application_protocols", &base)),
        or_any(direct_source),
        vec![(source_type.to_string(), None)],
        or_any(source),
        or_any(source_ports(fcm, &base)),
    ])
}

/// An empty list matches anything: Envoy keys it as "" (or port 0).
fn or_any(level: Level) -> Level {
    if level.is_empty() {
        vec![(String::new(), None)]
    } else {
        level
    }
}

fn entry_path(base: &[PathStep], f: &prost_reflect::FieldDescriptor, i: usize) -> Vec<PathStep> {
    let mut path = base.to_vec();
    path.extend([PathStep::Field(f.clone()), PathStep::Index(i)]);
    path
}

fn strings(fcm: &DynamicMessage, name: &str, base: &[PathStep]) -> Level {
    let Some((f, items)) = list(fcm, name) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((v.as_str()?.to_string(), Some(entry_path(base, &f, i)))))
        .collect()
}

fn source_ports(fcm: &DynamicMessage, base: &[PathStep]) -> Level {
    let Some((f, items)) = list(fcm, "source_ports") else {
        return Vec::new();
    };
    // An explicit port 0 shares the key of "any port", as in Envoy.
    items
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let port = v.as_u32()?;
            let key = if port == 0 {
                String::new()
            } else {
                port.to_string()
            };
            Some((key, Some(entry_path(base, &f, i))))
        })
        .collect()
}

/// Lowercased server names (`*.x` keys as `.x`); reports partial
/// wildcards, and then returns None (Envoy refuses the chain).
fn server_names(fcm: &DynamicMessage, base: &[PathStep], out: &mut Vec<Finding>) -> Option<Level> {
    let mut level = Vec::new();
    let mut ok = true;
    for (name, path) in strings(fcm, "server_names", base) {
        let path = path.unwrap_or_default();
        if name.contains('*') && !name.starts_with("*.") {
            out.push(Finding::at(
                &PARTIAL_WILDCARD,
                path,
                format!(
                    "server name `{name}` is a partial wildcard; only a leading `*.` is supported"
                ),
            ));
            ok = false;
            continue;
        }
        let lower = name.to_ascii_lowercase();
        let key = lower.strip_prefix('*').unwrap_or(&lower).to_string();
        level.push((key, Some(path)));
    }
    ok.then_some(level)
}

/// A prefix-range list normalised as Envoy's CidrRange::asString (address
/// masked to the length, the length clamped to the family's width);
/// reports addresses that are not IPs and then returns None.
fn cidr_level(
    fcm: &DynamicMessage,
    name: &str,
    base: &[PathStep],
    out: &mut Vec<Finding>,
) -> Option<Level> {
    let Some((f, items)) = list(fcm, name) else {
        return Some(Vec::new());
    };
    let mut level = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let Some(range) = item.as_message() else {
            continue;
        };
        let mut path = entry_path(base, &f, i);
        let (af, text) = match string_field(range, "address_prefix") {
            Some((f, a)) => (Some(f), a),
            None => (None, String::new()),
        };
        let len = field(range, "prefix_len")
            .and_then(|(_, v)| v.as_message().and_then(|w| w.get_field_by_name("value")))
            .and_then(|v| v.as_u32())
            .unwrap_or(0);
        match parse_ip(&text) {
            Some(ip) => level.push((masked(ip, len), Some(path))),
            None => {
                path.extend(af.map(PathStep::Field));
                out.push(Finding::at(
                    &PREFIX_RANGE,
                    path,
                    format!("`{text}` is not an IP address"),
                ));
                ok = false;
            }
        }
    }
    ok.then_some(level)
}

/// An IP literal as Envoy parses one: IPv4 dotted quad, or IPv6 with an
/// optional `%scope` (which the masked range drops).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    let bare = text
        .split_once('%')
        .map_or(text, |(a, scope)| if scope.is_empty() { "" } else { a });
    bare.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn masked(ip: IpAddr, len: u32) -> String {
    match ip {
        IpAddr::V4(a) => {
            let len = len.min(32);
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            format!("{}/{len}", Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let len = len.min(128);
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            format!("{}/{len}", Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// Envoy's decision tree, flattened: every combination of one value per
/// level is a leaf, and a leaf may hold one chain only.
#[derive(Default)]
struct Tree {
    leaves: HashSet<String>,
}

/// A listener whose chains expand to more leaves than this is not checked
/// further (the cross product of long lists grows fast).
const MAX_LEAVES: usize = 100_000;

impl Tree {
    /// Adds a chain's leaves; on the first that is taken, returns where to
    /// report it: the first listed entry of that combination, or the chain.
    fn add(&mut self, levels: Vec<Level>, chain: Vec<PathStep>) -> Option<Vec<PathStep>> {
        let count = levels
            .iter()
            .map(Vec::len)
            .try_fold(1usize, |n, l| n.checked_mul(l));
        if count.is_none_or(|n| self.leaves.len().saturating_add(n) > MAX_LEAVES) {
            return None;
        }
        let mut index = vec![0usize; levels.len()];
        loop {
            let picked: Vec<&(String, Option<Vec<PathStep>>)> = levels
                .iter()
                .zip(&index)
                .filter_map(|(l, &j)| l.get(j))
                .collect();
            let leaf: Vec<&str> = picked.iter().map(|(key, _)| key.as_str()).collect();
            if !self.leaves.insert(leaf.join("\u{0}")) {
                let entry = picked.iter().find_map(|(_, path)| path.clone());
                return Some(entry.unwrap_or(chain));
            }
            // Next combination, like an odometer.
            let mut level = levels.len();
            loop {
                if level == 0 {
                    return None;
                }
                level -= 1;
                index[level] += 1;
                if index[level] < levels.get(level).map_or(0, Vec::len) {
                    break;
                }
                index[level] = 0;
            }
        }
    }
}
