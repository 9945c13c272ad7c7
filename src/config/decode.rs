//! The proto3 JSON mapping, applied to located YAML: turns a [`Node`] into a
//! `DynamicMessage` of a given type, strictly, reporting every problem at
//! the line and column of the node that causes it.
//!
//! Scalars are read as Envoy reads them (see [`crate::config::yaml::Scalar::value`]),
//! so what Envoy's parser rejects (a plain `123` for a string, `yes` for a
//! name) is rejected here too. After each message is decoded, its
//! `validate.rules` are checked by [`crate::config::constraints`].
//!
//! The code is split by the seams of the mapping: this file holds the rules
//! reported and the [`Decoder`] core (messages, their fields, lists and
//! maps); `scalars` reads singular values, `well_known` the types with a
//! JSON form of their own, and `any` the `Any`/TypedStruct indirection.

mod any;
mod scalars;
mod well_known;

pub use well_known::parse_duration;

use crate::check::Rule;
use crate::config::constraints::{FieldMarks, Rules};
use crate::config::diag::{Diagnostics, Location};
use crate::config::yaml::{Mark, Node, NodeKind};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// What the proto3 JSON mapping (and Envoy's YAML reading) rejects.
pub static RULES: &[&Rule] = &[
    &WRONG_TYPE,
    &UNKNOWN_FIELD,
    &DUPLICATE_FIELD,
    &ONEOF_CONFLICT,
    &OUT_OF_RANGE,
    &NEGATIVE_DURATION,
    &UNKNOWN_ENUM,
    &ENUM_CASE,
    &UNKNOWN_TYPE_URL,
    &UNKNOWN_EXTENSION,
    &DEPRECATED_FIELD,
    &SINGLE_VALUE_LIST,
    &HEX_NUMBER,
];

/// A value of the wrong shape or type for its field.
pub static WRONG_TYPE: Rule = Rule {
    id: "wrong-type",
    summary: "a value has the wrong type for its field",
    explanation: "Envoy reads YAML as JSON and applies the proto3 JSON mapping: a string field needs a string \
(an unquoted `yes`, `on` or `123` is a bool or a number to Envoy's YAML reader, so quote it), a number field \
a number, a message field a mapping, a Duration a string such as \"1.5s\". Envoy refuses the whole resource.",
    envoy: "source/common/protobuf/yaml_utility.cc",
    allowable: false,
    ..Rule::ERROR
};

/// A key the message type does not have.
pub static UNKNOWN_FIELD: Rule = Rule {
    id: "unknown-field",
    summary: "a key is not a field of the message",
    explanation: "The key is not a field of the message at that place (often a typo, or a field of a newer or \
older Envoy API). Envoy rejects unknown fields in static configuration; over xDS it ignores them, which \
silently drops the setting. xdsd cannot encode a field the schema lacks, so it is always an error here.",
    envoy: "source/common/protobuf/message_validator_impl.cc",
    allowable: false,
    ..Rule::ERROR
};

/// A field (or map key) written twice.
pub static DUPLICATE_FIELD: Rule = Rule {
    id: "duplicate-field",
    summary: "a field or map key is written twice",
    explanation: "A mapping sets the same field (or the same map key) twice. JSON parsers keep one of them \
silently; Envoy's parser refuses it. Remove one of the two.",
    envoy: "source/common/protobuf/yaml_utility.cc",
    allowable: false,
    ..Rule::ERROR
};

/// Two members of one oneof.
pub static ONEOF_CONFLICT: Rule = Rule {
    id: "oneof-conflict",
    summary: "two members of one oneof are set",
    explanation: "The fields belong to one `oneof` (for example a route's `cluster` and `weighted_clusters`, or \
a match's `prefix` and `path`): at most one may be set. Envoy refuses the message.",
    envoy: "source/common/protobuf/yaml_utility.cc",
    allowable: false,
    ..Rule::ERROR
};

/// A number or duration outside what its type can hold.
pub static OUT_OF_RANGE: Rule = Rule {
    id: "out-of-range",
    summary: "a number or duration is out of range for its type",
    explanation: "The value does not fit the field's type (a uint32 above 4294967295, a negative number in an \
unsigned field), or a Duration is longer than Envoy allows (9223372035s: its nanoseconds must fit a signed \
64-bit integer).",
    envoy: "source/common/protobuf/utility.cc",
    allowable: false,
    ..Rule::ERROR
};

/// A negative Duration.
pub static NEGATIVE_DURATION: Rule = Rule {
    id: "negative-duration",
    summary: "a duration is negative",
    explanation: "Envoy checks every Duration in its configuration, with or without validation rules on the \
field, and rejects negative ones (\"Invalid duration: Expected positive duration\").",
    envoy: "source/common/protobuf/utility.cc",
    allowable: false,
    ..Rule::ERROR
};

/// An enum name the enum does not have.
pub static UNKNOWN_ENUM: Rule = Rule {
    id: "unknown-enum",
    summary: "an enum value name is not defined",
    explanation: "The name is not one of the enum's values (Envoy compares names without regard to case). The \
message lists the values there are. An empty string names no value either (\"unknown enum value: ''\"). In \
a work-in-progress API an unknown name is a warning, since the Envoy you run may be newer than xdsd's \
schema; an empty name stays an error there, as no version has one.",
    envoy: "source/common/protobuf/yaml_utility.cc",
    allowable: false,
    ..Rule::ERROR
};

/// An enum name in another case than its definition.
pub static ENUM_CASE: Rule = Rule {
    id: "enum-case",
    summary: "an enum value is spelled in another case than its canonical name",
    explanation: "Envoy parses enum names without regard to case, so `strict_dns` works as `STRICT_DNS`. Other \
tools (protoc, gRPC clients' JSON parsers, editors) do not: write the canonical name the message gives.",
    ..Rule::WARNING
};

/// An `@type` naming no known message.
pub static UNKNOWN_TYPE_URL: Rule = Rule {
    id: "unknown-type-url",
    summary: "an `@type` names no message Envoy knows",
    explanation: "The type URL names no message in Envoy's API (often a typo in the package or message name, \
or a `v2` type). Envoy cannot decode the `Any` and refuses the resource.",
    envoy: "source/common/protobuf/utility.cc",
    allowable: false,
    ..Rule::ERROR
};

/// An `@type` newer than xdsd's schema.
pub static UNKNOWN_EXTENSION: Rule = Rule {
    id: "unknown-extension",
    summary: "an extension type is not in xdsd's Envoy schema; its fields are not checked",
    explanation: "The type looks like an Envoy extension that xdsd's schema (from the envoy-types crate) does \
not have, usually because it is newer. xdsd serves it as a TypedStruct, which Envoy converts and checks \
itself; lint cannot check its fields.",
    ..Rule::WARNING
};

/// A deprecated field.
pub static DEPRECATED_FIELD: Rule = Rule {
    id: "deprecated-field",
    summary: "a field is deprecated",
    explanation: "Envoy still accepts the field but marks it for removal; some deprecated fields are refused \
unless a runtime flag re-allows them. The field's documentation names its replacement.",
    envoy: "source/common/protobuf/utility.cc",
    ..Rule::WARNING
};

/// A single value where a list belongs.
pub static SINGLE_VALUE_LIST: Rule = Rule {
    id: "single-value-list",
    summary: "a single value is written where a list belongs",
    explanation: "The field is a list; Envoy's JSON parser accepts a single value there, but other readers do \
not. Write it as a one-item list.",
    ..Rule::WARNING
};

/// A hex or octal integer.
pub static HEX_NUMBER: Rule = Rule {
    id: "hex-number",
    summary: "an integer is written in hex or octal",
    explanation: "Envoy's YAML reader accepts hex (`0x1F90`) integers; decimal is clearer and portable.",
    ..Rule::WARNING
};

/// The message below which typed configs are not constraint-checked.
const LB_POLICY: &str = "envoy.config.cluster.v3.LoadBalancingPolicy";

/// Decodes YAML nodes of one file into messages, collecting diagnostics.
pub struct Decoder<'a> {
    file: Arc<str>,
    diags: &'a mut Diagnostics,
    rules: &'a mut Rules,
    /// How many `LoadBalancingPolicy` messages enclose the node being decoded.
    in_lb_policy: u32,
    /// How many `Any`s below a `LoadBalancingPolicy` enclose it: Envoy never
    /// checks the `validate.rules` of typed load-balancing policy configs
    /// (Config::Utility::translateOpaqueConfig skips them), so neither may we.
    unconstrained: u32,
    /// False below a field whose contents Envoy does not validate (`message.skip`).
    checking: bool,
    /// The scalars of the sensitive fields (`udpa.annotations.sensitive`)
    /// enclosing the node being decoded: scrubbed from what is reported, so
    /// no message quotes a key.
    secrets: Vec<String>,
    /// Inside a work-in-progress API, whose findings become warnings: where
    /// findings that hold for every Envoy version go instead, as errors
    /// (the enclosing decoder's diagnostics).
    firm: Option<&'a mut Diagnostics>,
}

impl<'a> Decoder<'a> {
    /// A decoder reporting against `file`.
    pub fn new(file: Arc<str>, diags: &'a mut Diagnostics, rules: &'a mut Rules) -> Self {
        Decoder {
            file,
            diags,
            rules,
            in_lb_policy: 0,
            unconstrained: 0,
            checking: true,
            secrets: Vec::new(),
            firm: None,
        }
    }

    fn report(&mut self, rule: &'static Rule, mark: Mark, message: impl Into<String>) {
        let message = self.scrubbed(message.into());
        self.diags
            .report(rule, Location::at(&self.file, mark), message);
    }

    /// Reports what no Envoy version accepts: an error even inside a
    /// work-in-progress API, where xdsd's schema may lag the Envoy it serves.
    fn report_firm(&mut self, rule: &'static Rule, mark: Mark, message: impl Into<String>) {
        let message = self.scrubbed(message.into());
        let location = Location::at(&self.file, mark);
        match self.firm.as_deref_mut() {
            Some(firm) => firm.report(rule, location, message),
            None => self.diags.report(rule, location, message),
        }
    }

    fn scrubbed(&self, message: String) -> String {
        if self.secrets.is_empty() {
            message
        } else {
            crate::config::redact::scrub(&message, &self.secrets)
        }
    }

    /// Decodes a mapping into a message of type `desc`; keys in `skip` (such
    /// as `"@type"`) are ignored. Returns the message even when parts failed,
    /// so that later checks can still run; the diagnostics say whether it is valid.
    pub fn message(
        &mut self,
        desc: &MessageDescriptor,
        node: &Node,
        skip: &[&str],
    ) -> DynamicMessage {
        let Some(entries) = node.as_map() else {
            self.report(
                &WRONG_TYPE,
                node.mark,
                format!(
                    "expected a mapping for {}, got {}",
                    desc.full_name(),
                    node.shape()
                ),
            );
            return DynamicMessage::new(desc.clone());
        };
        let lb_policy = desc.full_name() == LB_POLICY;
        self.in_lb_policy += u32::from(lb_policy);
        let (msg, marks) = self.fields(desc, entries, node.mark, skip);
        self.in_lb_policy -= u32::from(lb_policy);
        if self.unconstrained == 0 && self.checking {
            let found = self.rules.check_message(&msg, &marks);
            // Firm: Envoy 1.40 checks these constraints in work-in-progress
            // APIs too, and the schema is its own.
            for (mark, text) in found {
                self.report_firm(&crate::config::constraints::CONSTRAINT, mark, text);
            }
        }
        msg
    }

    /// Decodes the entries of a mapping into a message of type `desc`, with
    /// the place of each field for the constraint checks.
    fn fields<'n>(
        &mut self,
        desc: &MessageDescriptor,
        entries: &'n [(Node, Node)],
        mark: Mark,
        skip: &[&str],
    ) -> (DynamicMessage, FieldMarks<'n>) {
        let mut msg = DynamicMessage::new(desc.clone());
        let mut marks = FieldMarks::new(mark);
        let mut oneofs: Vec<(String, String)> = Vec::new();
        for (key, value) in entries {
            let Some(name) = key.as_scalar().map(|s| s.text.as_str()) else {
                self.report(&WRONG_TYPE, key.mark, "a field name must be a plain string");
                continue;
            };
            if skip.contains(&name) {
                continue;
            }
            let Some(field) = desc
                .get_field_by_name(name)
                .or_else(|| desc.get_field_by_json_name(name))
            else {
                self.report(
                    &UNKNOWN_FIELD,
                    key.mark,
                    format!("unknown field `{name}` in {}", desc.full_name()),
                );
                continue;
            };
            if let Some(first) = marks.key_of(field.number()) {
                self.report(
                    &DUPLICATE_FIELD,
                    key.mark,
                    format!(
                        "field `{}` is set twice (first at line {})",
                        field.name(),
                        first.line
                    ),
                );
                continue;
            }
            if value.is_null() && !is_value_type(&field) {
                continue;
            }
            if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic())
                && let Some((_, other)) = oneofs.iter().find(|(o, _)| o == oneof.name())
            {
                self.report(
                    &ONEOF_CONFLICT,
                    key.mark,
                    format!(
                        "`{}` and `{other}` are both set, but only one of oneof `{}` may be",
                        field.name(),
                        oneof.name()
                    ),
                );
                continue;
            }
            if is_deprecated(&field) {
                self.report(
                    &DEPRECATED_FIELD,
                    key.mark,
                    format!(
                        "field `{}` of {} is deprecated",
                        field.name(),
                        desc.full_name()
                    ),
                );
            }
            if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
                oneofs.push((oneof.name().to_string(), field.name().to_string()));
            }
            // `message.skip`: Envoy does not check what is inside this field.
            let skip = crate::config::constraints::skips_contents(&field);
            let checking = self.checking;
            self.checking = checking && !skip;
            let enclosing_secrets = self.secrets.len();
            if crate::config::redact::is_sensitive(&field) {
                value.scalar_texts(&mut self.secrets);
            }
            let decoded = self.field_value(&field, value);
            self.secrets.truncate(enclosing_secrets);
            self.checking = checking;
            marks.record(field.number(), key.mark, value, decoded.is_some());
            if let Some(v) = decoded {
                msg.set_field(&field, v);
            }
        }
        (msg, marks)
    }

    fn field_value(&mut self, field: &FieldDescriptor, node: &Node) -> Option<Value> {
        if field.is_map() {
            return self.map_value(field, node);
        }
        if field.is_list() {
            let items = match &node.kind {
                NodeKind::Seq(items) => items.as_slice(),
                _ => {
                    // Envoy's parser takes a single value for a list of one.
                    self.report(
                        &SINGLE_VALUE_LIST,
                        node.mark,
                        format!(
                            "`{}` is a list; write a single value as a one-item list",
                            field.name()
                        ),
                    );
                    std::slice::from_ref(node)
                }
            };
            let kind = field.kind();
            let values: Vec<Value> = items
                .iter()
                .filter_map(|item| self.value(&kind, item, field.name()))
                .collect();
            return (values.len() == items.len()).then_some(Value::List(values));
        }
        self.value(&field.kind(), node, field.name())
    }

    fn map_value(&mut self, field: &FieldDescriptor, node: &Node) -> Option<Value> {
        let Kind::Message(entry) = field.kind() else {
            return None;
        };
        let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
        let Some(entries) = node.as_map() else {
            self.report(
                &WRONG_TYPE,
                node.mark,
                format!("`{}` must be a mapping, got {}", field.name(), node.shape()),
            );
            return None;
        };
        let mut map = HashMap::new();
        let mut ok = true;
        for (k, v) in entries {
            let key = self.map_key(&key_field.kind(), k);
            let value = self.value(&value_field.kind(), v, field.name());
            match (key, value) {
                (Some(key), Some(value)) => {
                    if map.insert(key, value).is_some() {
                        self.report(
                            &DUPLICATE_FIELD,
                            k.mark,
                            format!("duplicate key in map `{}`", field.name()),
                        );
                        ok = false;
                    }
                }
                _ => ok = false,
            }
        }
        ok.then_some(Value::Map(map))
    }

    fn map_key(&mut self, kind: &Kind, node: &Node) -> Option<MapKey> {
        let Some(text) = node.as_scalar().map(|s| s.text.clone()) else {
            self.report(&WRONG_TYPE, node.mark, "a map key must be a scalar");
            return None;
        };
        let key = match kind {
            Kind::String => Some(MapKey::String(text.clone())),
            Kind::Bool => match text.as_str() {
                "true" => Some(MapKey::Bool(true)),
                "false" => Some(MapKey::Bool(false)),
                _ => None,
            },
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => text.parse().ok().map(MapKey::I32),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => text.parse().ok().map(MapKey::I64),
            Kind::Uint32 | Kind::Fixed32 => text.parse().ok().map(MapKey::U32),
            Kind::Uint64 | Kind::Fixed64 => text.parse().ok().map(MapKey::U64),
            _ => None,
        };
        if key.is_none() {
            let text = node.as_scalar().map_or("", |s| s.text.as_str());
            self.report(
                &WRONG_TYPE,
                node.mark,
                format!("`{text}` is not a valid map key of type {kind:?}"),
            );
        }
        key
    }
}

/// A message of type `desc` with one field set: how the well-known types
/// and the `Any`s built by hand start.
fn with_field(desc: &MessageDescriptor, name: &str, value: Value) -> DynamicMessage {
    let mut msg = DynamicMessage::new(desc.clone());
    msg.set_field_by_name(name, value);
    msg
}

fn is_value_type(field: &FieldDescriptor) -> bool {
    matches!(field.kind(), Kind::Message(m) if m.full_name() == "google.protobuf.Value")
}

fn is_deprecated(field: &FieldDescriptor) -> bool {
    field
        .field_descriptor_proto()
        .options
        .as_ref()
        .is_some_and(|o| o.deprecated())
}

#[cfg(test)]
mod tests;
