//! `Any` and TypedStruct: the `@type` indirection, with the cases where
//! xdsd's schema lags the Envoy it serves (unknown extensions,
//! work-in-progress APIs), which are carried as TypedStructs. Apart because
//! it is where decoding changes type, and with it how strictly it reports.

use super::well_known::has_special_json;
use super::{Decoder, UNKNOWN_EXTENSION, UNKNOWN_FIELD, UNKNOWN_TYPE_URL, WRONG_TYPE, with_field};
use crate::config::diag::Diagnostics;
use crate::config::schema;
use crate::config::yaml::{Node, NodeKind};
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, Value};
use std::sync::Arc;

impl Decoder<'_> {
    pub(super) fn any(&mut self, desc: &MessageDescriptor, node: &Node) -> Option<DynamicMessage> {
        let Some(type_node) = node.get("@type") else {
            self.report(
                &WRONG_TYPE,
                node.mark,
                format!("an Any needs \"@type\", got {}", node.shape()),
            );
            return None;
        };
        let url = self.string(type_node, "@type")?;
        let Some(inner_desc) = schema::message_by_type_url(&url) else {
            return self.unknown_any(desc, node, type_node, url);
        };
        if schema::is_work_in_progress(&inner_desc) {
            return self.work_in_progress_any(desc, node, &inner_desc, url);
        }
        let below_lb_policy = self.in_lb_policy > 0;
        self.unconstrained += u32::from(below_lb_policy);
        let inner = self.any_content(node, &inner_desc);
        self.unconstrained -= u32::from(below_lb_policy);
        let inner = inner?;
        if matches!(
            inner_desc.full_name(),
            "xds.type.v3.TypedStruct" | "udpa.type.v1.TypedStruct"
        ) {
            self.typed_struct_content(node);
        }
        let mut any = DynamicMessage::new(desc.clone());
        any.set_field_by_name("type_url", Value::String(url));
        any.set_field_by_name("value", Value::Bytes(inner.encode_to_vec().into()));
        Some(any)
    }

    /// The message inside an `Any` of a known type.
    fn any_content(
        &mut self,
        node: &Node,
        inner_desc: &MessageDescriptor,
    ) -> Option<DynamicMessage> {
        let inner = if has_special_json(inner_desc.full_name()) {
            for (k, _) in node.as_map().unwrap_or(&[]) {
                if !matches!(k.as_str(), Some("@type" | "value")) {
                    self.report(
                        &UNKNOWN_FIELD,
                        k.mark,
                        format!(
                            "unknown field `{}` in an Any of {}",
                            k.as_str().unwrap_or("?"),
                            inner_desc.full_name()
                        ),
                    );
                }
            }
            let value = node.get("value")?;
            self.message_value(inner_desc, value)?
        } else {
            self.message(inner_desc, node, &["@type"])
        };
        Some(inner)
    }

    /// A type URL the schema lacks. A message in a package the schema knows
    /// is a typo (an error, as in Envoy); an extension package the schema
    /// lacks entirely is taken to be newer than xdsd's Envoy API: a warning,
    /// and the content is carried as a TypedStruct, which Envoy converts and
    /// checks itself.
    fn unknown_any(
        &mut self,
        desc: &MessageDescriptor,
        node: &Node,
        type_node: &Node,
        url: String,
    ) -> Option<DynamicMessage> {
        let name = url.rsplit_once('/').map_or(url.as_str(), |(_, n)| n);
        let package = name.rsplit_once('.').map_or("", |(p, _)| p);
        let package_known = schema::pool()
            .all_messages()
            .any(|m| m.package_name() == package);
        if package_known || !name.starts_with("envoy.extensions.") {
            self.report(
                &UNKNOWN_TYPE_URL,
                type_node.mark,
                format!("unknown type URL `{url}`"),
            );
            return None;
        }
        self.report(&UNKNOWN_EXTENSION,
            type_node.mark,
            format!("`{name}` is not in xdsd's Envoy schema; its fields are not checked, and it is served as a TypedStruct for Envoy to check"),
        );
        self.typed_struct_any(desc, node, url)
    }

    /// Work-in-progress Envoy APIs change between releases, so xdsd's schema
    /// may lag the Envoy it serves: problems found in them are warnings, and
    /// content that does not fit the schema is carried as a TypedStruct.
    fn work_in_progress_any(
        &mut self,
        desc: &MessageDescriptor,
        node: &Node,
        inner_desc: &MessageDescriptor,
        url: String,
    ) -> Option<DynamicMessage> {
        let mut scratch = Diagnostics::default();
        let mut decoder = Decoder::new(Arc::clone(&self.file), &mut scratch, self.rules);
        decoder.in_lb_policy = self.in_lb_policy;
        decoder.unconstrained = self.unconstrained;
        decoder.firm = Some(match self.firm.as_deref_mut() {
            Some(firm) => firm,
            None => &mut *self.diags,
        });
        let inner = decoder.message(inner_desc, node, &["@type"]);
        let clean = scratch.is_ok();
        let note = format!(
            "in work-in-progress API {}, which may differ in the Envoy you run",
            inner_desc.package_name()
        );
        self.diags.extend_as_warnings(scratch, &note);
        if !clean {
            return self.typed_struct_any(desc, node, url);
        }
        let mut any = DynamicMessage::new(desc.clone());
        any.set_field_by_name("type_url", Value::String(url));
        any.set_field_by_name("value", Value::Bytes(inner.encode_to_vec().into()));
        Some(any)
    }

    /// An Any holding a TypedStruct with the node's fields (all but `"@type"`) as its Struct.
    fn typed_struct_any(
        &mut self,
        desc: &MessageDescriptor,
        node: &Node,
        url: String,
    ) -> Option<DynamicMessage> {
        let struct_desc = schema::pool().get_message_by_name("google.protobuf.Struct")?;
        let without_type = Node {
            kind: NodeKind::Map(
                node.as_map()?
                    .iter()
                    .filter(|(k, _)| k.as_str() != Some("@type"))
                    .cloned()
                    .collect(),
            ),
            mark: node.mark,
        };
        let content = self.structure(&struct_desc, &without_type)?;
        let typed_struct_desc = schema::pool().get_message_by_name(schema::TYPED_STRUCT)?;
        let mut typed_struct = with_field(&typed_struct_desc, "type_url", Value::String(url));
        typed_struct.set_field_by_name("value", Value::Message(content));
        let mut any = with_field(
            desc,
            "type_url",
            Value::String(format!(
                "{}{}",
                schema::TYPE_URL_PREFIX,
                schema::TYPED_STRUCT
            )),
        );
        any.set_field_by_name("value", Value::Bytes(typed_struct.encode_to_vec().into()));
        Some(any)
    }

    /// A TypedStruct carries a message as a Struct; Envoy converts it to the
    /// named type, so its fields are checked as that type. Without a
    /// `value` (or with a null one) the factory's config stays the empty
    /// message (translateAnyToFactoryConfig in source/common/config/utility.h)
    /// and is still validated, so it is checked as an empty mapping.
    fn typed_struct_content(&mut self, node: &Node) {
        let Some(url) = node.get("type_url").and_then(Node::as_str) else {
            return;
        };
        let Some(desc) = schema::message_by_type_url(url) else {
            return;
        };
        match node.get("value") {
            Some(value) if !value.is_null() => {
                self.message(&desc, value, &[]);
            }
            _ => {
                let empty = Node {
                    kind: NodeKind::Map(Vec::new()),
                    mark: node.mark,
                };
                self.message(&desc, &empty, &[]);
            }
        }
    }
}
