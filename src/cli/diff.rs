//! Resource-level comparison of two node views: added, removed and changed
//! resources per type, and for each changed one the fields that differ.
//! Values are shown redacted ([`crate::config::redact`]); a change only inside a
//! secret is reported as such, never with its values.

use crate::config::render::{redacted_json, to_json};
use crate::config::resource::Resource;
use crate::config::schema::ResourceType;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One field that differs; `None` where the field is absent on that side.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// Path like `virtual_hosts[0].routes[1].route.cluster`.
    pub path: String,
    /// The old value, secrets redacted.
    pub old: Option<Value>,
    /// The new value, secrets redacted.
    pub new: Option<Value>,
    /// True when what changed is a secret (then `old` and `new` are `None`).
    pub secret: bool,
}

/// The differences for one resource type, field by field (the diff `xdsd diff`
/// prints; not the snapshot's name-level `xds::snapshot::TypeDiff`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FieldDiffs {
    /// Names only in the new set.
    pub added: Vec<String>,
    /// Names only in the old set.
    pub removed: Vec<String>,
    /// Names in both, with the fields that changed.
    pub changed: Vec<(String, Vec<FieldChange>)>,
}

impl FieldDiffs {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Compares two views; only types with differences are returned, in type order.
pub fn diff(old: &[&Resource], new: &[&Resource]) -> BTreeMap<ResourceType, FieldDiffs> {
    let index = |set: &[&Resource]| -> BTreeMap<(ResourceType, String), Shown> {
        set.iter()
            .map(|r| {
                let shown = Shown {
                    raw: to_json(r),
                    redacted: redacted_json(r),
                };
                ((r.rtype, r.name.clone()), shown)
            })
            .collect()
    };
    let (old, new) = (index(old), index(new));
    let mut out: BTreeMap<ResourceType, FieldDiffs> = BTreeMap::new();
    for ((t, name), old_value) in &old {
        match new.get(&(*t, name.clone())) {
            None => out.entry(*t).or_default().removed.push(name.clone()),
            Some(new_value) if new_value.raw != old_value.raw => {
                out.entry(*t)
                    .or_default()
                    .changed
                    .push((name.clone(), shown_changes(old_value, new_value)));
            }
            Some(_) => {}
        }
    }
    for (t, name) in new.keys() {
        if !old.contains_key(&(*t, name.clone())) {
            out.entry(*t).or_default().added.push(name.clone());
        }
    }
    out.retain(|_, d| !d.is_empty());
    out
}

/// A resource as JSON, and as shown.
struct Shown {
    raw: Value,
    redacted: Value,
}

/// The changes between the raw forms, each shown as it is between the
/// redacted forms; one the redacted forms do not have is a secret's.
fn shown_changes(old: &Shown, new: &Shown) -> Vec<FieldChange> {
    let mut raw = Vec::new();
    field_changes("", &old.raw, &new.raw, &mut raw);
    let mut redacted = Vec::new();
    field_changes("", &old.redacted, &new.redacted, &mut redacted);
    let mut shown: BTreeMap<String, FieldChange> =
        redacted.into_iter().map(|c| (c.path.clone(), c)).collect();
    raw.into_iter()
        .map(|c| {
            shown.remove(&c.path).unwrap_or(FieldChange {
                path: c.path,
                old: None,
                new: None,
                secret: true,
            })
        })
        .collect()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn field_changes(path: &str, old: &Value, new: &Value, out: &mut Vec<FieldChange>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, av) in a {
                match b.get(k) {
                    Some(bv) => field_changes(&join(path, k), av, bv, out),
                    None => out.push(FieldChange {
                        path: join(path, k),
                        old: Some(av.clone()),
                        new: None,
                        secret: false,
                    }),
                }
            }
            for (k, bv) in b {
                if !a.contains_key(k) {
                    out.push(FieldChange {
                        path: join(path, k),
                        old: None,
                        new: Some(bv.clone()),
                        secret: false,
                    });
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let p = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => field_changes(&p, x, y, out),
                    (x, y) => out.push(FieldChange {
                        path: p,
                        old: x.cloned(),
                        new: y.cloned(),
                        secret: false,
                    }),
                }
            }
        }
        _ if old != new => out.push(FieldChange {
            path: path.to_string(),
            old: Some(old.clone()),
            new: Some(new.clone()),
            secret: false,
        }),
        _ => {}
    }
}

/// Human-readable report: `+` added, `-` removed, `~` changed with field lines.
pub fn report(diffs: &BTreeMap<ResourceType, FieldDiffs>) -> String {
    let mut out = String::new();
    for (t, d) in diffs {
        let _ = writeln!(out, "{}:", t.kind_name());
        for name in &d.added {
            let _ = writeln!(out, "  + {name}");
        }
        for name in &d.removed {
            let _ = writeln!(out, "  - {name}");
        }
        for (name, changes) in &d.changed {
            let _ = writeln!(out, "  ~ {name}");
            for c in changes {
                if c.secret {
                    let _ = writeln!(out, "      {}: (a secret; changed)", c.path);
                    continue;
                }
                let show = |v: &Option<Value>| {
                    v.as_ref()
                        .map_or_else(|| "(unset)".to_string(), Value::to_string)
                };
                let _ = writeln!(
                    out,
                    "      {}: {} -> {}",
                    c.path,
                    show(&c.old),
                    show(&c.new)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::loader::load_str;

    #[test]
    fn added_removed_and_changed_fields() {
        let c = |name: &str, timeout: &str| {
            format!(
                "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: {name}\nconnect_timeout: {timeout}\n---\n"
            )
        };
        let old = load_str("o.yaml", &(c("a", "1s") + &c("b", "1s")));
        let new = load_str("n.yaml", &(c("a", "2s") + &c("c", "1s")));
        let o: Vec<&Resource> = old.resources.iter().collect();
        let n: Vec<&Resource> = new.resources.iter().collect();
        let d = diff(&o, &n);
        let text = report(&d);
        assert_eq!(
            text,
            "Cluster:\n  + c\n  - b\n  ~ a\n      connect_timeout: \"1s\" -> \"2s\"\n"
        );
        assert!(diff(&o, &o).is_empty());
    }

    #[test]
    fn a_changed_secret_is_named_never_shown() {
        let secret = |key: &str, chain: &str| {
            load_str(
                "s.yaml",
                &format!(
                    "\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n\
                     name: s\ntls_certificate:\n  certificate_chain: {{inline_string: {chain}}}\n  \
                     private_key: {{inline_string: {key}}}\n"
                ),
            )
        };
        let (old, new) = (
            secret("old-key-text", "chain-a"),
            secret("new-key-text", "chain-b"),
        );
        let o: Vec<&Resource> = old.resources.iter().collect();
        let n: Vec<&Resource> = new.resources.iter().collect();
        let text = report(&diff(&o, &n));
        assert_eq!(
            text,
            "Secret:\n  ~ s\n      tls_certificate.certificate_chain.inline_string: \"chain-a\" -> \"chain-b\"\n      \
             tls_certificate.private_key.inline_string: (a secret; changed)\n"
        );
    }
}
