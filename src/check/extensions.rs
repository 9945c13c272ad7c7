//! Extension categories: a `typed_config` must be of a type that Envoy
//! registers for the place it is written in. Envoy finds an extension's
//! factory by the config's type URL in the registry of one category (HTTP
//! filters, network filters, upstream transport sockets, access loggers...)
//! and refuses the resource when that category has no such type ("Didn't
//! find a registered implementation"), whatever the `name` says.
//!
//! Which category each field takes, and which types Envoy 1.40 registers in
//! each, is data, not code: `proto/extension-categories.txt`, generated from
//! the `[#extension-category]` annotations of Envoy's API and from a running
//! Envoy's `/server_info` (proto/README.md says how; tests/it/descriptors.rs
//! keeps it in step with the Envoy it runs).

use super::{Finding, Place, Rule};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, FieldDescriptor, ReflectMessage, Value};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

pub static WRONG_CATEGORY: Rule = Rule {
    id: "extension-wrong-category",
    summary: "a typed_config holds a type that Envoy registers for no extension of that place (e.g. a network filter's config as an HTTP filter)",
    explanation: "Envoy chooses an extension by the type of its `typed_config`, looked up among the \
extensions of the place's category: `http_filters` among HTTP filters, a filter chain's `filters` among \
network filters, a cluster's `transport_socket` among upstream transport sockets, `access_log` among access \
loggers, and so on. A message of another category (a network filter's config in `http_filters`, an \
UpstreamTlsContext on a listener, a tracer's config as an access logger) is refused (\"Didn't find a \
registered implementation for 'NAME' with type URL: '...'\"). Use the config message of the extension you \
mean; the message names the category the type does belong to. A listener's `filter_chain_matcher` \
takes network (or common) matching inputs and, as actions, filter chain names as \
`google.protobuf.StringValue` (\"cannot create a filter chain matcher\"). The categories come from Envoy's API \
annotations and the types from Envoy 1.40's `/server_info`; an HTTP filter marked `is_optional` is exempt, \
as Envoy skips it.",
    envoy: "source/common/config/utility.h",
    ..Rule::ERROR
};

/// The generated table (proto/extract_extension_categories.py).
const TABLE: &str = include_str!("../../proto/extension-categories.txt");

struct Categories {
    /// Message full name → (field name, the categories it takes).
    fields: HashMap<&'static str, Vec<(&'static str, Vec<&'static str>)>>,
    /// Category → the config types registered in it.
    types: HashMap<&'static str, HashSet<&'static str>>,
}

fn categories() -> &'static Categories {
    static PARSED: OnceLock<Categories> = OnceLock::new();
    PARSED.get_or_init(|| {
        let mut table = Categories {
            fields: HashMap::new(),
            types: HashMap::new(),
        };
        for line in TABLE.lines().filter(|l| !l.starts_with('#')) {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("field"), Some(path), Some(cats)) => {
                    let (message, field) = path.rsplit_once('.').unwrap_or(("", path));
                    let cats = cats.split(',').collect();
                    table.fields.entry(message).or_default().push((field, cats));
                }
                (Some("type"), Some(category), Some(type_name)) => {
                    table.types.entry(category).or_default().insert(type_name);
                }
                _ => {}
            }
        }
        table
    })
}

/// Transport socket configs that tls-context-wrong-direction judges.
const TLS_CONTEXTS: &[&str] = &[
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
];

/// Whether Envoy 1.40 registers config type `type_name` in `category`;
/// None when xdsd does not know the category (nothing registered in it).
pub fn registered(category: &str, type_name: &str) -> Option<bool> {
    categories()
        .types
        .get(category)
        .map(|types| types.contains(type_name))
}

/// The categories `type_name` is registered in.
fn categories_of(type_name: &str) -> Vec<&'static str> {
    let mut found: Vec<_> = categories()
        .types
        .iter()
        .filter(|(_, types)| types.contains(type_name))
        .map(|(category, _)| *category)
        .collect();
    found.sort_unstable();
    found
}

/// The type an Any configures: its own, or for a TypedStruct the type it
/// describes (Envoy looks that one up).
pub fn config_type(any: &DynamicMessage) -> String {
    let short = |url: &str| url.rsplit('/').next().unwrap_or(url).to_string();
    let url = any
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let own = short(&url);
    if matches!(
        own.as_str(),
        "xds.type.v3.TypedStruct" | "udpa.type.v1.TypedStruct"
    ) && let Some(inner) = crate::config::reflect::unpack_any(any)
    {
        let described = inner
            .get_field_by_name("type_url")
            .and_then(|v| v.as_str().map(short));
        return described.unwrap_or_default();
    }
    own
}

/// The categories of an annotated field.
fn field_categories(field: &FieldDescriptor) -> Option<&'static [&'static str]> {
    categories()
        .fields
        .get(field.parent_message().full_name())?
        .iter()
        .find(|(name, _)| *name == field.name())
        .map(|(_, cats)| cats.as_slice())
}

/// Whether `m` is held (directly, or as an element of a list or map) by a
/// field with a category of its own, which then decides `m`'s typed_config:
/// an HttpFilter among a router's `upstream_http_filters` is an upstream
/// HTTP filter, whatever HttpFilter's own annotation says.
fn held_in_annotated_field(m: &DynamicMessage, path: &[PathStep]) -> bool {
    let holder = match path {
        [
            ..,
            PathStep::Field(f),
            PathStep::Index(_) | PathStep::Key(_),
        ]
        | [.., PathStep::Field(f)] => f,
        _ => return false,
    };
    // Inside an Any the path goes on from the Any's field, whose type differs.
    holder.kind().as_message() == Some(&m.descriptor()) && field_categories(holder).is_some()
}

/// Checks the annotated extension fields of one message at `place`.
pub fn message(m: &DynamicMessage, place: &Place<'_>, out: &mut Vec<Finding>) {
    let descriptor = m.descriptor();
    let Some(fields) = categories().fields.get(descriptor.full_name()) else {
        return;
    };
    let decided_by_holder = held_in_annotated_field(m, place.path);
    for (name, cats) in fields {
        if decided_by_holder && *name == "typed_config" {
            continue;
        }
        let Some(field) = descriptor.get_field_by_name(name) else {
            continue;
        };
        if !m.has_field(&field) {
            continue;
        }
        let here = vec![PathStep::Field(field.clone())];
        match &*m.get_field(&field) {
            Value::Message(e) => extension(e, here, cats, out),
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Message(e) = item {
                        let mut path = here.clone();
                        path.push(PathStep::Index(i));
                        extension(e, path, cats, out);
                    }
                }
            }
            Value::Map(entries) => {
                for (key, value) in entries {
                    if let Value::Message(e) = value {
                        let mut path = here.clone();
                        path.push(PathStep::key(key));
                        extension(e, path, cats, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// One extension: an Any, or a message holding its config in `typed_config`
/// (TypedExtensionConfig, TransportSocket, AccessLog, filters...).
pub(super) fn extension(
    e: &DynamicMessage,
    mut path: Vec<PathStep>,
    cats: &[&str],
    out: &mut Vec<Finding>,
) {
    let any = if e.descriptor().full_name() == "google.protobuf.Any" {
        e.clone()
    } else {
        let optional = e
            .get_field_by_name("is_optional")
            .is_some_and(|v| v.as_bool() == Some(true));
        let Some(field) = e.descriptor().get_field_by_name("typed_config") else {
            return;
        };
        if optional || !e.has_field(&field) {
            return;
        }
        let Value::Message(any) = &*e.get_field(&field) else {
            return;
        };
        path.push(PathStep::Field(field));
        any.clone()
    };
    let type_name = config_type(&any);
    if type_name.is_empty() {
        // A config without a type (a TypedStruct whose type_url is empty):
        // getFactoryByType finds nothing, as for a missing config.
        out.push(Finding::missing_in(
            &crate::check::envoy_rules::MISSING_TYPED_CONFIG,
            path,
            "the typed_config names no type (its type URL is empty): Envoy finds extensions by the type of their config",
        ));
        return;
    }
    if TLS_CONTEXTS.contains(&type_name.as_str()) {
        // tls-context-wrong-direction's case, whose message says more about
        // the one mistake it knows.
        return;
    }
    let verdicts: Vec<_> = cats.iter().map(|c| registered(c, &type_name)).collect();
    if verdicts.iter().any(|v| *v != Some(false)) {
        return; // registered, or a category xdsd cannot judge
    }
    let belongs = match categories_of(&type_name).as_slice() {
        [] => "no category".to_string(),
        found => found.join(", "),
    };
    // Located at the Any's first line: its `@type`.
    out.push(Finding::missing_in(
        &WRONG_CATEGORY,
        path,
        format!(
            "{type_name} is not a registered {} extension (Envoy 1.40 registers it in {belongs})",
            cats.join(" or ")
        ),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_knows_the_common_places_and_types() {
        let t = categories();
        assert!(
            t.fields["envoy.config.listener.v3.Filter"]
                .iter()
                .any(|(f, c)| *f == "typed_config" && c == &vec!["envoy.filters.network"])
        );
        assert_eq!(
            registered(
                "envoy.filters.http",
                "envoy.extensions.filters.http.router.v3.Router"
            ),
            Some(true)
        );
        assert_eq!(
            registered(
                "envoy.filters.http",
                "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
            ),
            Some(false)
        );
        assert_eq!(registered("no.such.category", "x"), None);
        assert_eq!(
            categories_of("envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"),
            vec!["envoy.transport_sockets.upstream"]
        );
    }
}
