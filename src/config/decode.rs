//! The proto3 JSON mapping, applied to located YAML: turns a [`Node`] into a
//! `DynamicMessage` of a given type, strictly, reporting every problem at
//! the line and column of the node that causes it.
//!
//! Scalars are read as Envoy reads them (see [`crate::config::yaml::Scalar::value`]),
//! so what Envoy's parser rejects (a plain `123` for a string, `yes` for a
//! name) is rejected here too. After each message is decoded, its
//! `validate.rules` are checked by [`crate::config::constraints`].

use crate::check::Rule;
use crate::config::constraints::{FieldMarks, Rules};
use crate::config::diag::{Diagnostics, Location};
use crate::config::schema;
use crate::config::yaml::{Mark, Node, NodeKind, ScalarValue};
use base64::Engine;
use prost::Message;
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

    /// Decodes one singular value of `kind`; `field` names it in messages.
    fn value(&mut self, kind: &Kind, node: &Node, field: &str) -> Option<Value> {
        match kind {
            Kind::Message(desc) => self.message_value(desc, node).map(Value::Message),
            Kind::Enum(e) => self.enum_value(e, node, field),
            Kind::String => self.string(node, field).map(Value::String),
            Kind::Bytes => {
                let text = self.string(node, field)?;
                match decode_base64(&text) {
                    Some(bytes) => Some(Value::Bytes(bytes.into())),
                    None => {
                        self.report(
                            &WRONG_TYPE,
                            node.mark,
                            format!("`{field}` must be base64-encoded bytes"),
                        );
                        None
                    }
                }
            }
            Kind::Bool => match node.as_scalar().map(|s| s.value()) {
                Some(ScalarValue::Bool(b)) => Some(Value::Bool(b)),
                // Envoy's JSON parser also takes the strings "true" and "false".
                Some(ScalarValue::Str("true")) => Some(Value::Bool(true)),
                Some(ScalarValue::Str("false")) => Some(Value::Bool(false)),
                _ => {
                    self.report(
                        &WRONG_TYPE,
                        node.mark,
                        format!("`{field}` must be true or false, got {}", node.shape()),
                    );
                    None
                }
            },
            Kind::Float | Kind::Double => {
                let v = self.float(node, field)?;
                Some(if matches!(kind, Kind::Float) {
                    Value::F32(v as f32)
                } else {
                    Value::F64(v)
                })
            }
            _ => self.integer(kind, node, field),
        }
    }

    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match node.as_scalar().map(|s| s.value()) {
            Some(ScalarValue::Str(s)) => Some(s.to_string()),
            Some(ScalarValue::Bool(_)) | Some(ScalarValue::Int(_)) => {
                let text = node.as_scalar().map_or("", |s| s.text.as_str());
                self.report(&WRONG_TYPE,
                    node.mark,
                    format!(
                        "`{field}` must be a string; Envoy reads the unquoted `{text}` as {}: quote it",
                        node.shape()
                    ),
                );
                None
            }
            _ => {
                self.report(
                    &WRONG_TYPE,
                    node.mark,
                    format!("`{field}` must be a string, got {}", node.shape()),
                );
                None
            }
        }
    }

    fn float(&mut self, node: &Node, field: &str) -> Option<f64> {
        let parsed = match node.as_scalar().map(|s| s.value()) {
            Some(ScalarValue::Int(i)) => Some(i as f64),
            Some(ScalarValue::Str(s)) => match s {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                _ if s
                    .bytes()
                    .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
                {
                    None
                }
                _ => s.parse::<f64>().ok(),
            },
            _ => None,
        };
        if parsed.is_none() {
            self.report(
                &WRONG_TYPE,
                node.mark,
                format!("`{field}` must be a number, got {}", node.shape()),
            );
        }
        parsed
    }

    fn integer(&mut self, kind: &Kind, node: &Node, field: &str) -> Option<Value> {
        let parsed: Option<i128> = match node.as_scalar().map(|s| s.value()) {
            Some(ScalarValue::Int(i)) => Some(i128::from(i)),
            Some(ScalarValue::Str(s)) => parse_json_integer(s),
            _ => None,
        };
        let Some(n) = parsed else {
            self.report(
                &WRONG_TYPE,
                node.mark,
                format!("`{field}` must be an integer, got {}", node.shape()),
            );
            return None;
        };
        if node.as_scalar().is_some_and(|s| s.is_non_decimal_int()) {
            self.report(
                &HEX_NUMBER,
                node.mark,
                format!(
                    "`{field}` is written in hex or octal; Envoy accepts it, but decimal is clearer"
                ),
            );
        }
        let value = match kind {
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => i32::try_from(n).ok().map(Value::I32),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => i64::try_from(n).ok().map(Value::I64),
            Kind::Uint32 | Kind::Fixed32 => u32::try_from(n).ok().map(Value::U32),
            Kind::Uint64 | Kind::Fixed64 => u64::try_from(n).ok().map(Value::U64),
            _ => None,
        };
        if value.is_none() {
            self.report(
                &OUT_OF_RANGE,
                node.mark,
                format!("`{field}`: {n} is out of range for {kind:?}"),
            );
        }
        value
    }

    fn enum_value(
        &mut self,
        e: &prost_reflect::EnumDescriptor,
        node: &Node,
        field: &str,
    ) -> Option<Value> {
        if e.full_name() == "google.protobuf.NullValue" && node.is_null() {
            return Some(Value::EnumNumber(0));
        }
        match node.as_scalar().map(|s| s.value()) {
            Some(ScalarValue::Str(name)) => match e.get_value_by_name(name) {
                Some(v) => Some(Value::EnumNumber(v.number())),
                // Envoy's JSON parser matches enum names without regard to case.
                None if let Some(v) = e.values().find(|v| v.name().eq_ignore_ascii_case(name)) => {
                    self.report(
                        &ENUM_CASE,
                        node.mark,
                        format!(
                            "`{field}`: `{name}` is read as {} value `{}`; write the canonical name",
                            e.name(),
                            v.name()
                        ),
                    );
                    Some(Value::EnumNumber(v.number()))
                }
                None => {
                    let names: Vec<String> =
                        e.values().map(|v| v.name().to_string()).take(12).collect();
                    let message = format!(
                        "`{field}`: unknown {} value `{name}` (expected one of {})",
                        e.name(),
                        names.join(", ")
                    );
                    // A newer Envoy may know a name xdsd's schema lacks, but no
                    // enum has an empty name ("unknown enum value: ''").
                    if name.is_empty() {
                        self.report_firm(&UNKNOWN_ENUM, node.mark, message);
                    } else {
                        self.report(&UNKNOWN_ENUM, node.mark, message);
                    }
                    None
                }
            },
            Some(ScalarValue::Int(n)) => i32::try_from(n).ok().map(Value::EnumNumber),
            _ => {
                self.report(
                    &WRONG_TYPE,
                    node.mark,
                    format!("`{field}` must be an enum name, got {}", node.shape()),
                );
                None
            }
        }
    }

    /// Message-typed values, including the well-known types with special JSON forms.
    fn message_value(&mut self, desc: &MessageDescriptor, node: &Node) -> Option<DynamicMessage> {
        let name = desc.full_name();
        match name {
            "google.protobuf.Any" => self.any(desc, node),
            "google.protobuf.Duration" => self.duration(desc, node),
            "google.protobuf.Timestamp" => self.timestamp(desc, node),
            "google.protobuf.FieldMask" => {
                let text = self.string(node, "FieldMask")?;
                let paths: Vec<Value> = text
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(camel_to_snake(p)))
                    .collect();
                Some(with_field(desc, "paths", Value::List(paths)))
            }
            "google.protobuf.Struct" => self.structure(desc, node),
            "google.protobuf.Value" => self.json_value(desc, node),
            "google.protobuf.ListValue" => self.list_value(desc, node),
            _ if is_wrapper(name) => {
                let inner = desc.get_field_by_name("value")?;
                let v = self.value(&inner.kind(), node, desc.name())?;
                Some(with_field(desc, "value", v))
            }
            _ => {
                let before = self.diags.error_count();
                let msg = self.message(desc, node, &[]);
                (self.diags.error_count() == before || node.as_map().is_some()).then_some(msg)
            }
        }
    }

    fn any(&mut self, desc: &MessageDescriptor, node: &Node) -> Option<DynamicMessage> {
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

    fn duration(&mut self, desc: &MessageDescriptor, node: &Node) -> Option<DynamicMessage> {
        let text = self.string(node, "duration")?;
        let Some((seconds, nanos)) = parse_duration(&text) else {
            self.report(
                &WRONG_TYPE,
                node.mark,
                format!(
                    "`{text}` is not a duration; write seconds with an `s` suffix, e.g. \"1.5s\""
                ),
            );
            return None;
        };
        if seconds < 0 || nanos < 0 {
            self.report(
                &NEGATIVE_DURATION,
                node.mark,
                format!("duration `{text}` is negative; Envoy rejects negative durations"),
            );
            return None;
        }
        if seconds
            .checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(i64::from(nanos)))
            .is_none()
        {
            // Envoy keeps durations as int64 nanoseconds.
            self.report(
                &OUT_OF_RANGE,
                node.mark,
                format!("duration `{text}` is out of range (at most 9223372035s)"),
            );
            return None;
        }
        let mut msg = with_field(desc, "seconds", Value::I64(seconds));
        msg.set_field_by_name("nanos", Value::I32(nanos));
        Some(msg)
    }

    fn timestamp(&mut self, desc: &MessageDescriptor, node: &Node) -> Option<DynamicMessage> {
        let text = self.string(node, "timestamp")?;
        let Some((seconds, nanos)) = parse_rfc3339(&text) else {
            self.report(
                &WRONG_TYPE,
                node.mark,
                format!("`{text}` is not an RFC 3339 timestamp"),
            );
            return None;
        };
        let mut msg = with_field(desc, "seconds", Value::I64(seconds));
        msg.set_field_by_name("nanos", Value::I32(nanos));
        Some(msg)
    }

    fn structure(&mut self, desc: &MessageDescriptor, node: &Node) -> Option<DynamicMessage> {
        let Some(entries) = node.as_map() else {
            self.report(
                &WRONG_TYPE,
                node.mark,
                format!("a Struct must be a mapping, got {}", node.shape()),
            );
            return None;
        };
        let value_desc = schema::pool().get_message_by_name("google.protobuf.Value")?;
        let mut fields = HashMap::new();
        for (k, v) in entries {
            let Some(key) = k.as_scalar().map(|s| s.text.clone()) else {
                self.report(&WRONG_TYPE, k.mark, "a Struct key must be a scalar");
                continue;
            };
            if let Some(value) = self.json_value(&value_desc, v) {
                fields.insert(MapKey::String(key), Value::Message(value));
            }
        }
        Some(with_field(desc, "fields", Value::Map(fields)))
    }

    fn list_value(&mut self, desc: &MessageDescriptor, node: &Node) -> Option<DynamicMessage> {
        let NodeKind::Seq(items) = &node.kind else {
            self.report(
                &WRONG_TYPE,
                node.mark,
                format!("a ListValue must be a list, got {}", node.shape()),
            );
            return None;
        };
        let value_desc = schema::pool().get_message_by_name("google.protobuf.Value")?;
        let values = items
            .iter()
            .filter_map(|i| self.json_value(&value_desc, i))
            .map(Value::Message)
            .collect();
        Some(with_field(desc, "values", Value::List(values)))
    }

    fn json_value(&mut self, desc: &MessageDescriptor, node: &Node) -> Option<DynamicMessage> {
        let pool = schema::pool();
        let (field, value) = match &node.kind {
            NodeKind::Map(_) => {
                let d = pool.get_message_by_name("google.protobuf.Struct")?;
                ("struct_value", Value::Message(self.structure(&d, node)?))
            }
            NodeKind::Seq(_) => {
                let d = pool.get_message_by_name("google.protobuf.ListValue")?;
                ("list_value", Value::Message(self.list_value(&d, node)?))
            }
            NodeKind::Scalar(s) => match s.value() {
                ScalarValue::Null => ("null_value", Value::EnumNumber(0)),
                ScalarValue::Bool(b) => ("bool_value", Value::Bool(b)),
                ScalarValue::Int(i) => ("number_value", Value::F64(i as f64)),
                ScalarValue::Str(t) => ("string_value", Value::String(t.to_string())),
            },
        };
        Some(with_field(desc, field, value))
    }
}

fn with_field(desc: &MessageDescriptor, name: &str, value: Value) -> DynamicMessage {
    let mut msg = DynamicMessage::new(desc.clone());
    msg.set_field_by_name(name, value);
    msg
}

fn is_value_type(field: &FieldDescriptor) -> bool {
    matches!(field.kind(), Kind::Message(m) if m.full_name() == "google.protobuf.Value")
}

fn is_wrapper(name: &str) -> bool {
    matches!(
        name,
        "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

fn has_special_json(name: &str) -> bool {
    is_wrapper(name)
        || matches!(
            name,
            "google.protobuf.Duration"
                | "google.protobuf.Timestamp"
                | "google.protobuf.FieldMask"
                | "google.protobuf.Struct"
                | "google.protobuf.Value"
                | "google.protobuf.ListValue"
                | "google.protobuf.Any"
        )
}

fn is_deprecated(field: &FieldDescriptor) -> bool {
    field
        .field_descriptor_proto()
        .options
        .as_ref()
        .is_some_and(|o| o.deprecated())
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(text).ok())
}

/// A JSON-mapping integer in a string: decimal, optionally with an exponent
/// or a zero fraction (`"1e3"`, `"10.0"`), as protobuf accepts.
fn parse_json_integer(s: &str) -> Option<i128> {
    if let Ok(n) = s.parse::<i128>() {
        return Some(n);
    }
    let f: f64 = s.parse().ok().filter(|_| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b))
    })?;
    (f.fract() == 0.0 && f.abs() < 1.8e19).then_some(f as i128)
}

/// Parses a proto3 JSON duration (`"1.5s"`, `"-0.25s"`) into seconds and nanos.
pub fn parse_duration(text: &str) -> Option<(i64, i32)> {
    let body = text.strip_suffix('s')?;
    let (neg, body) = match body.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, body),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let seconds: i64 = int.parse().ok()?;
    let nanos: i32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(if neg {
        (-seconds, -nanos)
    } else {
        (seconds, nanos)
    })
}

/// Parses an RFC 3339 timestamp (`2024-01-02T03:04:05.5Z`, offsets allowed).
fn parse_rfc3339(text: &str) -> Option<(i64, i32)> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = text.get(19..)?;
    let mut nanos = 0i32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = format!("{:0<9}", &frac[..digits]).parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = rest[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    // Days from the civil date (proleptic Gregorian), as in Howard Hinnant's algorithm.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + s - offset, nanos))
}

fn camel_to_snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
