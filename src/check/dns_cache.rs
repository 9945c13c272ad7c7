//! Shared DNS caches of the dynamic forward proxy. The HTTP filter, the
//! cluster and the SNI/UDP proxies each name a `dns_cache_config`; Envoy
//! keeps one cache per name, created by whichever config comes first, and
//! refuses a later config of the same name whose settings differ ("config
//! specified DNS cache 'NAME' with different settings",
//! source/extensions/common/dynamic_forward_proxy/dns_cache_manager_impl.cc,
//! which compares with protobuf's MessageDifferencer::Equivalent: a field
//! left unset equals one set to its default). The caches are per Envoy, so
//! configs in resources served to disjoint nodes never meet.

use super::Rule;
use crate::config::diag::Diagnostics;
use crate::config::reflect::{string_field, unpack_any};
use crate::config::resource::{PathStep, Resource};
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

pub static CONFIG_MISMATCH: Rule = Rule {
    id: "dns-cache-config-mismatch",
    summary: "two dynamic forward proxy configs name the same DNS cache with different settings",
    explanation: "The dynamic forward proxy's HTTP filter and cluster (and the SNI and UDP proxies) share \
their DNS cache by `dns_cache_config.name`. The first config of a name creates the cache; Envoy refuses any \
other config of that name that differs in any setting (\"config specified DNS cache 'NAME' with different \
settings\"). Give every `dns_cache_config` of one name identical settings (copy it whole), or give the \
caches different names.",
    envoy: "source/extensions/common/dynamic_forward_proxy/dns_cache_manager_impl.cc",
    ..Rule::ERROR
};

const DNS_CACHE_CONFIG: &str = "envoy.extensions.common.dynamic_forward_proxy.v3.DnsCacheConfig";

/// One `dns_cache_config` of a resource.
#[derive(Debug)]
pub struct DnsCacheConfig {
    path: Vec<PathStep>,
    name: String,
    config: DynamicMessage,
}

/// Every `dns_cache_config` of a resource (also inside `Any`), with its path.
pub fn configs_in(m: &DynamicMessage) -> Vec<DnsCacheConfig> {
    let mut found = Vec::new();
    find(m, &mut Vec::new(), &mut found);
    found
}

/// Reports each DNS cache config that differs from an earlier one of the
/// same name that the same nodes can see. `configs[i]` are those of
/// `resources[i]` ([`configs_in`]).
pub fn check<C: AsRef<[DnsCacheConfig]>>(
    resources: &[Resource],
    configs: &[C],
    diags: &mut Diagnostics,
) {
    let caches: Vec<(usize, &DnsCacheConfig)> = configs
        .iter()
        .enumerate()
        .flat_map(|(i, found)| found.as_ref().iter().map(move |c| (i, c)))
        .collect();
    for (n, (resource, cache)) in caches.iter().enumerate() {
        let here = &resources[*resource];
        let conflict = caches[..n].iter().find(|(earlier_resource, earlier)| {
            earlier.name == cache.name
                && (earlier_resource == resource
                    || resources[*earlier_resource]
                        .selector
                        .overlaps(&here.selector))
                && !equivalent(&earlier.config, &cache.config)
        });
        if let Some((earlier_resource, _)) = conflict {
            let first = &resources[*earlier_resource];
            diags.report(
                &CONFIG_MISMATCH,
                here.locate(&cache.path),
                format!(
                    "DNS cache `{}` is configured with other settings than in {} `{}`; Envoy needs every config of one cache name to be identical",
                    cache.name,
                    first.rtype.kind_name(),
                    first.name
                ),
            );
        }
    }
}

fn find(m: &DynamicMessage, path: &mut Vec<PathStep>, found: &mut Vec<DnsCacheConfig>) {
    if let Some(inner) = unpack_any(m) {
        find(&inner, path, found);
        return;
    }
    if m.descriptor().full_name() == DNS_CACHE_CONFIG {
        found.push(DnsCacheConfig {
            path: path.clone(),
            name: string_field(m, "name").map(|(_, n)| n).unwrap_or_default(),
            config: m.clone(),
        });
        return;
    }
    for (f, v) in m.fields() {
        path.push(PathStep::Field(f.clone()));
        match v {
            Value::Message(child) => find(child, path, found),
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Message(child) = item {
                        path.push(PathStep::Index(i));
                        find(child, path, found);
                        path.pop();
                    }
                }
            }
            Value::Map(entries) => {
                for (key, value) in entries {
                    if let Value::Message(child) = value {
                        path.push(PathStep::key(key));
                        find(child, path, found);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
}

/// MessageDifferencer::Equivalent: every field compared with unset fields
/// read as their defaults; an `Any` by what it holds when the schema knows it.
fn equivalent(a: &DynamicMessage, b: &DynamicMessage) -> bool {
    if a.descriptor() != b.descriptor() {
        return false;
    }
    if let (Some(x), Some(y)) = (unpack_any(a), unpack_any(b)) {
        return equivalent(&x, &y);
    }
    a.descriptor()
        .fields()
        .all(|f| same_value(&a.get_field(&f), &b.get_field(&f)))
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Message(x), Value::Message(y)) => equivalent(x, y),
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(lookup_family: Option<i32>) -> DynamicMessage {
        let desc = crate::config::schema::pool()
            .get_message_by_name(DNS_CACHE_CONFIG)
            .expect("in the schema");
        let mut m = DynamicMessage::new(desc);
        m.set_field_by_name("name", Value::String("c".into()));
        if let Some(family) = lookup_family {
            m.set_field_by_name("dns_lookup_family", Value::EnumNumber(family));
        }
        m
    }

    #[test]
    fn unset_equals_default_and_other_values_differ() {
        // AUTO is 0: leaving it out is the same setting.
        assert!(equivalent(&config(None), &config(Some(0))));
        assert!(!equivalent(&config(Some(1)), &config(Some(3))));
    }
}
