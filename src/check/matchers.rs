//! The extensions inside a unified matcher (`xds.type.matcher.v3.Matcher`):
//! its data inputs, custom matchers and actions. Their messages carry no
//! category annotation, because what they may hold depends on where the
//! matcher is used: Envoy's MatchTreeFactory (source/common/matcher/matcher.h)
//! looks each one up among the factories of the matcher's data type. A
//! listener's `filter_chain_matcher` matches network data
//! (filter_chain_manager_impl.cc), so its inputs are network (or common)
//! inputs and its actions filter chain names (a StringValue); anything else
//! is refused ("cannot create a filter chain matcher: Didn't find a
//! registered implementation for 'NAME' with type URL: '...'").

use super::extensions::{WRONG_CATEGORY, config_type, extension};
use super::{Finding, Place};
use crate::config::reflect::{field, list};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

/// What one use of a matcher accepts.
struct MatcherUse {
    /// Categories of its data inputs.
    inputs: &'static [&'static str],
    /// Categories of a matcher tree's `custom_match`.
    tree_matchers: &'static [&'static str],
    /// The config types of its actions (Envoy registers each use's actions
    /// under a factory type of its own, which `/server_info` does not list).
    actions: &'static [&'static str],
    /// What the actions are called in a finding.
    action_kind: &'static str,
}

const FILTER_CHAIN_MATCHER: MatcherUse = MatcherUse {
    inputs: &[
        "envoy.matching.network.input",
        "envoy.matching.common_inputs",
    ],
    tree_matchers: &["envoy.matching.network.custom_matchers"],
    actions: &["google.protobuf.StringValue"],
    action_kind: "filter chain matcher action (a filter chain name as a google.protobuf.StringValue)",
};

/// Categories of a single predicate's `custom_match`, whatever the data.
const INPUT_MATCHERS: &[&str] = &["envoy.matching.input_matchers"];

/// Checks the matchers of one message at `place`.
pub fn message(m: &DynamicMessage, _place: &Place<'_>, out: &mut Vec<Finding>) {
    if m.descriptor().full_name() != "envoy.config.listener.v3.Listener" {
        return;
    }
    if let Some((f, Value::Message(matcher))) = field(m, "filter_chain_matcher") {
        let mut walk = Walk {
            usage: &FILTER_CHAIN_MATCHER,
            out,
        };
        walk.matcher(matcher, vec![PathStep::Field(f)]);
    }
}

/// A walk through one matcher, reporting into `out`.
struct Walk<'a> {
    usage: &'static MatcherUse,
    out: &'a mut Vec<Finding>,
}

/// `path` extended by one field of `m`, when that field is set.
fn child<'m>(
    m: &'m DynamicMessage,
    name: &str,
    path: &[PathStep],
) -> Option<(&'m Value, Vec<PathStep>)> {
    let (f, v) = field(m, name)?;
    let mut here = path.to_vec();
    here.push(PathStep::Field(f));
    Some((v, here))
}

/// The messages of a repeated field, with their paths.
fn items<'m>(
    m: &'m DynamicMessage,
    name: &str,
    path: &[PathStep],
) -> Vec<(&'m DynamicMessage, Vec<PathStep>)> {
    let Some((f, values)) = list(m, name) else {
        return Vec::new();
    };
    values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let mut here = path.to_vec();
            here.push(PathStep::Field(f.clone()));
            here.push(PathStep::Index(i));
            v.as_message().map(|m| (m, here))
        })
        .collect()
}

impl Walk<'_> {
    fn matcher(&mut self, m: &DynamicMessage, path: Vec<PathStep>) {
        if let Some((Value::Message(list), here)) = child(m, "matcher_list", &path) {
            for (fm, at) in items(list, "matchers", &here) {
                if let Some((Value::Message(p), at)) = child(fm, "predicate", &at) {
                    self.predicate(p, at.clone());
                }
                if let Some((Value::Message(on), at)) = child(fm, "on_match", &at) {
                    self.on_match(on, at);
                }
            }
        }
        if let Some((Value::Message(tree), here)) = child(m, "matcher_tree", &path) {
            self.tree(tree, here);
        }
        if let Some((Value::Message(on), here)) = child(m, "on_no_match", &path) {
            self.on_match(on, here);
        }
    }

    fn tree(&mut self, tree: &DynamicMessage, path: Vec<PathStep>) {
        if let Some((Value::Message(input), at)) = child(tree, "input", &path) {
            extension(input, at, self.usage.inputs, self.out);
        }
        if let Some((Value::Message(custom), at)) = child(tree, "custom_match", &path) {
            extension(custom, at, self.usage.tree_matchers, self.out);
        }
        for map_name in ["exact_match_map", "prefix_match_map"] {
            let Some((Value::Message(map), here)) = child(tree, map_name, &path) else {
                continue;
            };
            let Some((Value::Map(entries), here)) = child(map, "map", &here) else {
                continue;
            };
            for (key, value) in entries {
                if let Value::Message(on) = value {
                    let mut at = here.clone();
                    at.push(PathStep::key(key));
                    self.on_match(on, at);
                }
            }
        }
    }

    fn predicate(&mut self, p: &DynamicMessage, path: Vec<PathStep>) {
        if let Some((Value::Message(single), here)) = child(p, "single_predicate", &path) {
            if let Some((Value::Message(input), at)) = child(single, "input", &here) {
                extension(input, at, self.usage.inputs, self.out);
            }
            if let Some((Value::Message(custom), at)) = child(single, "custom_match", &here) {
                extension(custom, at, INPUT_MATCHERS, self.out);
            }
        }
        for combined in ["or_matcher", "and_matcher"] {
            if let Some((Value::Message(set), here)) = child(p, combined, &path) {
                for (inner, at) in items(set, "predicate", &here) {
                    self.predicate(inner, at);
                }
            }
        }
        if let Some((Value::Message(inner), here)) = child(p, "not_matcher", &path) {
            self.predicate(inner, here);
        }
    }

    fn on_match(&mut self, on: &DynamicMessage, path: Vec<PathStep>) {
        if let Some((Value::Message(inner), here)) = child(on, "matcher", &path) {
            self.matcher(inner, here);
        }
        if let Some((Value::Message(action), here)) = child(on, "action", &path) {
            self.action(action, here);
        }
    }

    /// An action's config must be one of the use's action types.
    fn action(&mut self, action: &DynamicMessage, mut path: Vec<PathStep>) {
        let Some((f, Value::Message(any))) = field(action, "typed_config") else {
            return; // a missing config is reported by the schema's own rules
        };
        let type_name = config_type(any);
        if type_name.is_empty() || self.usage.actions.contains(&type_name.as_str()) {
            return;
        }
        path.push(PathStep::Field(f));
        self.out.push(Finding::missing_in(
            &WRONG_CATEGORY,
            path,
            format!("{type_name} is not a {}", self.usage.action_kind),
        ));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_chain_matcher_types_are_registered_where_expected() {
        use super::super::extensions::registered;
        assert_eq!(
            registered(
                "envoy.matching.network.input",
                "envoy.extensions.matching.common_inputs.network.v3.ServerNameInput"
            ),
            Some(true)
        );
        assert_eq!(
            registered(
                "envoy.matching.network.input",
                "google.protobuf.StringValue"
            ),
            Some(false)
        );
    }
}
