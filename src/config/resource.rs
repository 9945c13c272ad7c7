//! Typed resources as loaded from files, and per-node views of a set.

use crate::config::diag::Location;
use crate::config::schema::ResourceType;
use crate::config::selector::{NodeIdentity, NodeSelector};
use crate::config::yaml::{Mark, Node};
use prost_reflect::DynamicMessage;
use std::sync::Arc;

/// One Envoy resource from the config directory.
#[derive(Clone, Debug)]
pub struct Resource {
    /// Its xDS type.
    pub rtype: ResourceType,
    /// Its name (`cluster_name` for endpoints; generated for nameless listeners).
    pub name: String,
    /// Which nodes see it.
    pub selector: NodeSelector,
    /// The decoded message.
    pub message: Arc<DynamicMessage>,
    /// The file it came from, as reached from `--dir`.
    pub file: Arc<str>,
    /// The YAML of the resource body, kept to locate findings made later.
    pub source: Arc<Node>,
}

/// One step into a message: a field name, a list index, or a map key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathStep {
    /// A field.
    Field(prost_reflect::FieldDescriptor),
    /// An element of a list.
    Index(usize),
    /// The entry of a map (the map's field comes first), by its key as written.
    Key(String),
}

/// The one-step path to field `name` of `m`, whether it is set or not
/// (empty when `m` has no such field): where a finding about that field
/// points.
pub fn field_step(m: &prost_reflect::DynamicMessage, name: &str) -> Vec<PathStep> {
    use prost_reflect::ReflectMessage;
    m.descriptor()
        .get_field_by_name(name)
        .map(PathStep::Field)
        .into_iter()
        .collect()
}

impl PathStep {
    /// The step to a map's entry.
    pub fn key(key: &prost_reflect::MapKey) -> PathStep {
        use prost_reflect::MapKey;
        PathStep::Key(match key {
            MapKey::String(s) => s.clone(),
            MapKey::Bool(b) => b.to_string(),
            MapKey::I32(n) => n.to_string(),
            MapKey::I64(n) => n.to_string(),
            MapKey::U32(n) => n.to_string(),
            MapKey::U64(n) => n.to_string(),
        })
    }
}

impl Resource {
    /// Where the resource starts.
    pub fn location(&self) -> Location {
        Location::at(&self.file, self.source.mark)
    }

    /// The location of the value at `path` inside the resource (or the
    /// deepest part of it that exists in the YAML). Fields inside an
    /// `Any` are found in the same mapping, as they are written.
    pub fn locate(&self, path: &[PathStep]) -> Location {
        Location::at(&self.file, locate_in(&self.source, path, false))
    }

    /// Like [`Resource::locate`], but a mapping or list is located at its
    /// first line rather than at its key: where something missing from it is reported.
    pub fn locate_body(&self, path: &[PathStep]) -> Location {
        Location::at(&self.file, locate_in(&self.source, path, true))
    }

    /// Is the resource served to `node`?
    pub fn visible_to(&self, node: &NodeIdentity) -> bool {
        self.selector.matches(node)
    }
}

/// Walks `path` through the YAML tree, accepting snake_case and lowerCamel
/// keys. A block value (mapping or list) is located at its key, a scalar at itself.
pub fn locate_in(root: &Node, path: &[PathStep], body: bool) -> Mark {
    let mut node = root;
    let mut mark = root.mark;
    for step in path {
        let next = match step {
            // A Struct is written as a plain mapping, a Value as its content,
            // a ListValue as a plain list: their fields have no key in YAML.
            PathStep::Field(field) if written_inline(field) => continue,
            PathStep::Field(field) => node
                .entry(field.name())
                .or_else(|| node.entry(field.json_name()))
                .map(|entry| keyed(entry, body)),
            PathStep::Key(key) => node.entry(key).map(|entry| keyed(entry, body)),
            PathStep::Index(i) => match &node.kind {
                crate::config::yaml::NodeKind::Seq(items) => items.get(*i).map(|n| (n.mark, n)),
                _ => None,
            },
        };
        match next {
            Some((m, n)) => {
                mark = m;
                node = n;
            }
            None => break,
        }
    }
    mark
}

/// Is the whole of `path` written in the YAML under `root` (each field's
/// key, list item and map key present)?
pub fn written(root: &Node, path: &[PathStep]) -> bool {
    let mut node = root;
    for step in path {
        let next = match step {
            PathStep::Field(field) if written_inline(field) => continue,
            PathStep::Field(field) => node
                .entry(field.name())
                .or_else(|| node.entry(field.json_name()))
                .map(|(_, v)| v),
            PathStep::Index(i) => match &node.kind {
                crate::config::yaml::NodeKind::Seq(items) => items.get(*i),
                _ => None,
            },
            PathStep::Key(key) => node.entry(key).map(|(_, v)| v),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    true
}

/// A mapping entry's location (a block value at its key, a scalar at
/// itself unless it starts on a later line, as a `|` block does) and its value.
fn keyed((k, v): &(Node, Node), body: bool) -> (Mark, &Node) {
    let scalar_here = v.as_scalar().is_some() && v.mark.line == k.mark.line;
    (if body || scalar_here { v.mark } else { k.mark }, v)
}

/// Fields of the JSON well-known types that YAML writes without a key.
fn written_inline(field: &prost_reflect::FieldDescriptor) -> bool {
    matches!(
        field.parent_message().full_name(),
        "google.protobuf.Struct" | "google.protobuf.Value" | "google.protobuf.ListValue"
    )
}

/// The resources `node` is served, in a stable order (type, then name).
pub fn view<'a>(resources: &'a [Resource], node: &NodeIdentity) -> Vec<&'a Resource> {
    let mut seen: Vec<&Resource> = resources.iter().filter(|r| r.visible_to(node)).collect();
    seen.sort_by(|a, b| (a.rtype, &a.name).cmp(&(b.rtype, &b.name)));
    seen
}
