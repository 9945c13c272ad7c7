//! Subset selectors (legacy `lb_subset_config` or the typed Subset policy):
//! a selector's fallback keys must fit its fallback policy and be a proper
//! subset of its keys, as Envoy checks each selector when it builds the
//! subset load balancer.

use crate::check::clusters::{enum_number, field, messages, with};
use crate::check::{Finding, Rule};
use crate::config::reflect::list;
use crate::config::resource::PathStep;
use prost_reflect::DynamicMessage;

/// A subset selector's fallback keys that do not fit its keys or policy.
pub static SUBSET_FALLBACK_KEYS: Rule = Rule {
    id: "lb-subset-fallback-keys",
    summary: "a subset selector's fallback_keys_subset is inconsistent with its fallback_policy or keys",
    explanation: "KEYS_SUBSET falls back from a selector to a less specific one made of some of its keys. So \
fallback_keys_subset must be set exactly when fallback_policy is KEYS_SUBSET, and it must be a proper subset \
of the selector's keys; Envoy refuses anything else.",
    envoy: "source/extensions/load_balancing_policies/subset/subset_lb_config.cc",
    ..Rule::ERROR
};

/// `subset_selectors` of a legacy LbSubsetConfig or a typed Subset policy.
pub(super) fn subset_selectors(config: &DynamicMessage, path: &[PathStep], out: &mut Vec<Finding>) {
    const KEYS_SUBSET: i32 = 4;
    let Some((sf, selectors)) = messages(config, "subset_selectors") else {
        return;
    };
    for (i, selector) in selectors {
        let at = |steps: Vec<PathStep>| {
            let mut p = with(path, [PathStep::Field(sf.clone()), PathStep::Index(i)]);
            p.extend(steps);
            p
        };
        let keys = strings(selector, "keys");
        if keys.is_empty() {
            continue;
        }
        let fallback = strings(selector, "fallback_keys_subset");
        let fallback_field = field(selector, "fallback_keys_subset").map(|(f, _)| f);
        let policy = field(selector, "fallback_policy");
        let keys_subset = enum_number(selector, "fallback_policy") == Some(KEYS_SUBSET);
        let label = format!("subset selector [{}]", keys.join(", "));
        let finding = if !keys_subset && !fallback.is_empty() {
            fallback_field.map(|f| {
                Finding::at(
                    &SUBSET_FALLBACK_KEYS,
                    at(vec![PathStep::Field(f)]),
                    format!("{label}: fallback_keys_subset is only allowed with fallback_policy KEYS_SUBSET"),
                )
            })
        } else if keys_subset && fallback.is_empty() {
            policy.map(|(f, _)| {
                Finding::at(
                    &SUBSET_FALLBACK_KEYS,
                    at(vec![PathStep::Field(f)]),
                    format!("{label}: fallback_policy KEYS_SUBSET needs fallback_keys_subset"),
                )
            })
        } else if let Some(j) = fallback.iter().position(|k| !keys.contains(k)) {
            fallback_field.map(|f| {
                Finding::at(
                    &SUBSET_FALLBACK_KEYS,
                    at(vec![PathStep::Field(f), PathStep::Index(j)]),
                    format!(
                        "{label}: fallback_keys_subset [{}] is not a subset of keys",
                        fallback.join(", ")
                    ),
                )
            })
        } else if !fallback.is_empty() && distinct(&fallback) == distinct(&keys) {
            fallback_field.map(|f| {
                Finding::at(
                    &SUBSET_FALLBACK_KEYS,
                    at(vec![PathStep::Field(f)]),
                    format!("{label}: fallback_keys_subset must be smaller than keys"),
                )
            })
        } else {
            None
        };
        out.extend(finding);
    }
}

/// A list of strings (empty when unset).
fn strings(m: &DynamicMessage, name: &str) -> Vec<String> {
    list(m, name).map_or_else(Vec::new, |(_, items)| {
        items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    })
}

/// How many distinct strings a list holds.
fn distinct(items: &[String]) -> usize {
    let set: std::collections::HashSet<&String> = items.iter().collect();
    set.len()
}
