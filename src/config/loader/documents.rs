//! The three document forms of the SPEC (bare `"@type"` resource,
//! `kind`/`nodes`/`spec` envelope, `DiscoveryResponse` with `resources:`),
//! recognised in each YAML document, and each resource decoded against the
//! Envoy schema, named (a nameless listener from its address) and located.

use super::{Loaded, PartKey};
use crate::check::Rule;
use crate::config::constraints::Rules;
use crate::config::decode::Decoder;
use crate::config::diag::Location;
use crate::config::resource::Resource;
use crate::config::schema::{self, ResourceType};
use crate::config::selector::NodeSelector;
use crate::config::yaml::{self, Mark, Node, NodeKind};
use prost_reflect::{DynamicMessage, Value};
use std::sync::Arc;

/// YAML that does not parse.
pub static YAML_SYNTAX: Rule = Rule {
    id: "yaml-syntax",
    summary: "the YAML does not parse",
    explanation: "The file is not valid YAML (or JSON) at that place: a bad indentation, an unclosed quote or \
bracket, a tab used for indentation, or an alias bomb or nesting beyond xdsd's limits. Envoy's parser refuses \
the same text.",
    envoy: "source/common/protobuf/yaml_utility.cc",
    allowable: false,
    ..Rule::ERROR
};

/// A document of none of the three forms.
pub static DOCUMENT_FORM: Rule = Rule {
    id: "document-form",
    summary: "a document is not a resource, an envelope or a DiscoveryResponse",
    explanation: "Each YAML document in the directory is one of three forms: a bare resource with \
\"@type\"; an envelope with `kind`, optional `nodes` (cluster/id glob lists) and `spec`; or a \
DiscoveryResponse with `resources`. The message says which part of the form is wrong, for example an \
unknown `kind`, a `nodes` selector that is not a mapping of glob lists, or a type xdsd does not serve.",
    allowable: false,
    ..Rule::ERROR
};

/// A resource without the name xDS needs.
pub static MISSING_NAME: Rule = Rule {
    id: "missing-name",
    summary: "a resource served over xDS has no name",
    explanation: "Resources are served and referenced by name (`cluster_name` for a ClusterLoadAssignment). \
Give it one; a Listener without a name gets one derived from its address instead.",
    allowable: false,
    ..Rule::ERROR
};

/// A listener named from its address.
pub static DERIVED_NAME: Rule = Rule {
    id: "listener-name-derived",
    summary: "a listener has no name; xdsd derives one from its address",
    explanation: "Envoy needs a name for every listener it receives over LDS. xdsd derives a stable one from \
the address (`0.0.0.0_10000`) so that the listener can be served and diffed; write the name to choose it.",
    ..Rule::WARNING
};

const DISCOVERY_RESPONSE: &str = "envoy.service.discovery.v3.DiscoveryResponse";

/// Loads documents into `loaded`, with one cache of `validate.rules` for
/// all of them.
pub(super) struct FileLoader {
    pub(super) rules: Rules,
    pub(super) loaded: Loaded,
}

impl FileLoader {
    pub(super) fn load_part(&mut self, part: &PartKey) {
        self.load_documents(&part.file, &part.text, part.first_line);
    }

    pub(super) fn load_text(&mut self, file: &Arc<str>, text: &str) {
        self.load_documents(file, text, 1);
    }

    fn load_documents(&mut self, file: &Arc<str>, text: &str, first_line: u32) {
        if let Some(allowance) =
            crate::check::policy::scan(file, text, first_line, &mut self.loaded.diagnostics)
        {
            self.loaded.allowances.push(allowance);
        }
        match yaml::parse_documents_at(text, yaml::NestingLimits::default(), first_line) {
            Ok(docs) => {
                for doc in docs {
                    self.document(file, Arc::new(doc));
                }
            }
            Err(e) => self.error(&YAML_SYNTAX, file, e.mark, format!("YAML: {}", e.message)),
        }
    }

    fn error(
        &mut self,
        rule: &'static Rule,
        file: &Arc<str>,
        mark: Mark,
        message: impl Into<String>,
    ) {
        self.loaded
            .diagnostics
            .report(rule, Location::at(file, mark), message);
    }

    fn document(&mut self, file: &Arc<str>, doc: Arc<Node>) {
        if doc.is_null() {
            return;
        }
        if doc.as_map().is_none() {
            self.error(
                &DOCUMENT_FORM,
                file,
                doc.mark,
                format!("a document must be a mapping, got {}", doc.shape()),
            );
            return;
        }
        let type_name = doc
            .get("@type")
            .and_then(Node::as_str)
            .map(|u| u.rsplit('/').next().unwrap_or(u).to_string());
        if doc.get("kind").is_some() {
            self.envelope(file, &doc);
        } else if doc.get("resources").is_some()
            && type_name.as_deref().is_none_or(|t| t == DISCOVERY_RESPONSE)
        {
            self.discovery_response(file, &doc);
        } else if doc.get("@type").is_some() {
            self.bare(file, doc, NodeSelector::default());
        } else {
            self.error(&DOCUMENT_FORM,
                file,
                doc.mark,
                "not an xdsd document: expected a resource with \"@type\", an envelope with `kind` and `spec`, or a DiscoveryResponse with `resources`",
            );
        }
    }

    fn bare(&mut self, file: &Arc<str>, node: Arc<Node>, selector: NodeSelector) {
        let Some(type_node) = node.get("@type") else {
            self.error(
                &DOCUMENT_FORM,
                file,
                node.mark,
                "a resource needs \"@type\"",
            );
            return;
        };
        let Some(url) = type_node.as_str() else {
            self.error(
                &DOCUMENT_FORM,
                file,
                type_node.mark,
                "\"@type\" must be a string",
            );
            return;
        };
        let Some(desc) = schema::message_by_type_url(url) else {
            self.error(
                &crate::config::decode::UNKNOWN_TYPE_URL,
                file,
                type_node.mark,
                format!("unknown type URL `{url}`"),
            );
            return;
        };
        let Some(rtype) = ResourceType::from_message_name(desc.full_name()) else {
            let served: Vec<&str> = ResourceType::ALL.iter().map(|t| t.kind_name()).collect();
            self.error(
                &DOCUMENT_FORM,
                file,
                type_node.mark,
                format!(
                    "`{}` is not a resource type xdsd serves ({})",
                    desc.full_name(),
                    served.join(", ")
                ),
            );
            return;
        };
        self.resource(file, rtype, node, selector);
    }

    fn envelope(&mut self, file: &Arc<str>, doc: &Node) {
        for (key, _) in doc.as_map().unwrap_or(&[]) {
            if !matches!(key.as_str(), Some("kind" | "nodes" | "spec")) {
                self.error(
                    &DOCUMENT_FORM,
                    file,
                    key.mark,
                    format!(
                        "unknown envelope field `{}` (expected kind, nodes, spec)",
                        key.as_str().unwrap_or("?")
                    ),
                );
            }
        }
        let kind_node = doc.get("kind");
        let Some(rtype) = kind_node
            .and_then(Node::as_str)
            .and_then(ResourceType::from_kind)
        else {
            let mark = kind_node.map_or(doc.mark, |n| n.mark);
            let kinds: Vec<&str> = ResourceType::ALL.iter().map(|t| t.kind_name()).collect();
            self.error(
                &DOCUMENT_FORM,
                file,
                mark,
                format!(
                    "unknown kind; expected one of {}, Endpoints, Route",
                    kinds.join(", ")
                ),
            );
            return;
        };
        let selector = match doc.get("nodes") {
            Some(nodes) => match self.selector(file, nodes) {
                Some(s) => s,
                None => return,
            },
            None => NodeSelector::default(),
        };
        let Some(spec) = doc.get("spec") else {
            self.error(&DOCUMENT_FORM, file, doc.mark, "an envelope needs `spec`");
            return;
        };
        if let Some(t) = spec.get("@type") {
            let url = t.as_str().unwrap_or("");
            if schema::message_by_type_url(url)
                .is_none_or(|d| d.full_name() != rtype.message_name())
            {
                self.error(
                    &DOCUMENT_FORM,
                    file,
                    t.mark,
                    format!(
                        "\"@type\" `{url}` does not match kind {}",
                        rtype.kind_name()
                    ),
                );
                return;
            }
        }
        self.resource(file, rtype, Arc::new(spec.clone()), selector);
    }

    fn selector(&mut self, file: &Arc<str>, nodes: &Node) -> Option<NodeSelector> {
        let Some(entries) = nodes.as_map() else {
            self.error(
                &DOCUMENT_FORM,
                file,
                nodes.mark,
                "`nodes` must be a mapping with `cluster` and/or `id` lists",
            );
            return None;
        };
        let mut selector = NodeSelector::default();
        for (key, value) in entries {
            let list = match key.as_str() {
                Some("cluster") => &mut selector.cluster,
                Some("id") => &mut selector.id,
                _ => {
                    self.error(
                        &DOCUMENT_FORM,
                        file,
                        key.mark,
                        "unknown `nodes` field (expected cluster, id)",
                    );
                    return None;
                }
            };
            let NodeKind::Seq(items) = &value.kind else {
                self.error(&DOCUMENT_FORM, file, value.mark, "expected a list of globs");
                return None;
            };
            for item in items {
                match item.as_scalar() {
                    Some(s) => list.push(s.text.clone()),
                    None => {
                        self.error(&DOCUMENT_FORM, file, item.mark, "a glob must be a string");
                        return None;
                    }
                }
            }
        }
        Some(selector)
    }

    fn discovery_response(&mut self, file: &Arc<str>, doc: &Node) {
        for (key, _) in doc.as_map().unwrap_or(&[]) {
            let known = [
                "@type",
                "version_info",
                "versionInfo",
                "resources",
                "type_url",
                "typeUrl",
                "nonce",
                "canary",
                "control_plane",
                "controlPlane",
            ];
            if !key.as_str().is_some_and(|k| known.contains(&k)) {
                self.error(
                    &DOCUMENT_FORM,
                    file,
                    key.mark,
                    format!(
                        "unknown DiscoveryResponse field `{}`",
                        key.as_str().unwrap_or("?")
                    ),
                );
            }
        }
        let Some(resources) = doc.get("resources") else {
            return;
        };
        let NodeKind::Seq(items) = &resources.kind else {
            self.error(
                &DOCUMENT_FORM,
                file,
                resources.mark,
                "`resources` must be a list",
            );
            return;
        };
        for item in items {
            self.bare(file, Arc::new(item.clone()), NodeSelector::default());
        }
    }

    fn resource(
        &mut self,
        file: &Arc<str>,
        rtype: ResourceType,
        node: Arc<Node>,
        selector: NodeSelector,
    ) {
        let desc = rtype.descriptor();
        let mut message = {
            let mut decoder = Decoder::new(
                Arc::clone(file),
                &mut self.loaded.diagnostics,
                &mut self.rules,
            );
            decoder.message(&desc, &node, &["@type"])
        };
        let mut name = message
            .get_field_by_name(rtype.name_field())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if name.is_empty()
            && rtype == ResourceType::Listener
            && let Some(derived) = listener_name_from_address(&message)
        {
            self.loaded.diagnostics.report(
                &DERIVED_NAME,
                Location::at(file, node.mark),
                format!("listener has no `name`; xdsd names it `{derived}` from its address"),
            );
            message.set_field_by_name("name", Value::String(derived.clone()));
            name = derived;
        }
        // A name written empty breaks the schema's own rule where it has
        // one (min_len), reported there already.
        let written_empty_with_rule = node.get(rtype.name_field()).is_some_and(|n| {
            self.loaded.diagnostics.iter().any(|d| {
                d.location.mark == Some(n.mark)
                    && d.rule == crate::config::constraints::CONSTRAINT.id
            })
        });
        if name.is_empty() && !written_empty_with_rule {
            self.error(
                &MISSING_NAME,
                file,
                node.mark,
                format!(
                    "a {} served over xDS needs a `{}`",
                    rtype.kind_name(),
                    rtype.name_field()
                ),
            );
        }
        self.loaded.resources.push(Resource {
            rtype,
            name,
            selector,
            message: Arc::new(message),
            file: Arc::clone(file),
            source: node,
        });
    }
}

/// `0.0.0.0_10000` for a socket address, the path for a pipe.
fn listener_name_from_address(listener: &DynamicMessage) -> Option<String> {
    let address = listener.get_field_by_name("address")?;
    let address = address.as_message()?;
    if let Some(sa) = address
        .get_field_by_name("socket_address")
        .filter(|_| address.has_field_by_name("socket_address"))
    {
        let sa = sa.as_message()?;
        let host = sa.get_field_by_name("address")?.as_str()?.to_string();
        let port = sa.get_field_by_name("port_value")?.as_u32()?;
        return Some(format!("{host}_{port}"));
    }
    let pipe = address
        .get_field_by_name("pipe")
        .filter(|_| address.has_field_by_name("pipe"))?;
    Some(
        pipe.as_message()?
            .get_field_by_name("path")?
            .as_str()?
            .to_string(),
    )
}
