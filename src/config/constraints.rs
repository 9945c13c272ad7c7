//! The `validate.rules` (protoc-gen-validate) constraints carried by the
//! Envoy descriptors, evaluated on decoded messages.
//!
//! Rules are read from the descriptor options once per message type and cached.
//!
//! Split by what the code does with a rule: `read` takes the rules out of
//! the descriptor options; this file evaluates one message (required fields
//! and oneofs, then each field's typed rule set, dispatched by kind); the
//! rule kinds themselves are evaluated in `numbers`, `strings`,
//! `collections` (repeated and map) and `well_known` (wrappers, Duration,
//! Any).

mod collections;
mod numbers;
mod read;
mod strings;
mod well_known;

pub use read::skips_contents;
pub use strings::check_re2;

use crate::config::yaml::{Mark, Node, NodeKind};
use numbers::{check_enum, check_number};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, ReflectMessage, Value};
use read::{FieldRule, MessageRules, read_message_rules, rule};
use regex::Regex;
use std::collections::HashMap;
use std::sync::Arc;
use strings::check_bytes;
use well_known::{check_any, check_duration, unwrap_wrapper};

/// A `validate.rules` constraint of the Envoy protos is violated.
pub static CONSTRAINT: crate::check::Rule = crate::check::Rule {
    id: "proto-constraint",
    summary: "a `validate.rules` constraint of Envoy's API is violated",
    explanation: "Envoy's protos carry protoc-gen-validate constraints (required fields, string lengths, number \
ranges, `min_items`, `defined_only` enums, required oneofs, well-known regexes for header names, ...). Envoy \
checks them on every resource and every `typed_config` and refuses the resource when one fails \
(\"Proto constraint validation failed\"). The message names the field and the constraint.",
    envoy: "source/common/protobuf/utility.cc",
    ..crate::check::Rule::ERROR
};

/// The rules this module reports.
pub static RULES: &[&crate::check::Rule] = &[&CONSTRAINT];

/// Where each field of one decoded message came from. Messages have few
/// fields, so a list beats a map here.
pub struct FieldMarks<'n> {
    message: Mark,
    fields: Vec<FieldMark<'n>>,
}

struct FieldMark<'n> {
    number: u32,
    key: Mark,
    node: &'n Node,
    decoded: bool,
}

impl<'n> FieldMarks<'n> {
    /// Marks for a message that starts at `message`.
    pub fn new(message: Mark) -> Self {
        FieldMarks {
            message,
            fields: Vec::new(),
        }
    }

    /// Records field `number`, its key's mark and value, and whether it
    /// decoded (a failed one was already reported, so its rules are skipped).
    pub fn record(&mut self, number: u32, key: Mark, node: &'n Node, decoded: bool) {
        self.fields.push(FieldMark {
            number,
            key,
            node,
            decoded,
        });
    }

    /// Where field `number`'s key was, if it was written.
    pub fn key_of(&self, number: u32) -> Option<Mark> {
        self.get(number).map(|f| f.key)
    }

    fn get(&self, number: u32) -> Option<&FieldMark<'n>> {
        self.fields.iter().find(|f| f.number == number)
    }

    fn failed(&self, number: u32) -> bool {
        self.get(number).is_some_and(|f| !f.decoded)
    }

    /// Findings about a block value (a mapping or list) point at its key,
    /// those about a scalar at the value.
    fn value_mark(&self, number: u32) -> Mark {
        match self.get(number) {
            Some(f) if f.node.as_scalar().is_some() => f.node.mark,
            Some(f) => f.key,
            None => self.message,
        }
    }

    fn item_mark(&self, number: u32, index: usize) -> Mark {
        match self.get(number).map(|f| (f.key, f.node)) {
            Some((
                _,
                Node {
                    kind: NodeKind::Seq(items),
                    ..
                },
            )) => items.get(index).map_or(self.message, |n| n.mark),
            Some((key, _)) => key,
            None => self.message,
        }
    }
}

/// Evaluates rules, caching what it reads from descriptors.
#[derive(Default)]
pub struct Rules {
    by_message: HashMap<String, Arc<MessageRules>>,
    patterns: HashMap<String, Option<Regex>>,
}

impl Rules {
    /// Checks one decoded message (not its children, which were checked when
    /// they were decoded). Returns `(mark, message)` per violation.
    pub fn check_message(
        &mut self,
        msg: &DynamicMessage,
        marks: &FieldMarks<'_>,
    ) -> Vec<(Mark, String)> {
        let desc = msg.descriptor();
        let rules = match self.by_message.get(desc.full_name()) {
            Some(rules) => Arc::clone(rules),
            None => {
                let rules = Arc::new(read_message_rules(&desc));
                self.by_message
                    .insert(desc.full_name().to_string(), Arc::clone(&rules));
                rules
            }
        };
        let mut out = Vec::new();
        for oneof in &rules.required_oneofs {
            // A member written but not decodable was reported already.
            let attempted = oneof
                .fields()
                .any(|f| msg.has_field(&f) || marks.failed(f.number()));
            if !attempted {
                let names: Vec<String> =
                    oneof.fields().map(|f| format!("`{}`", f.name())).collect();
                out.push((
                    marks.message,
                    format!(
                        "one of {} is required (oneof `{}`)",
                        names.join(", "),
                        oneof.name()
                    ),
                ));
            }
        }
        for fr in &rules.fields {
            self.check_field(msg, fr, marks, &mut out);
        }
        out
    }

    fn check_field(
        &mut self,
        msg: &DynamicMessage,
        fr: &FieldRule,
        marks: &FieldMarks<'_>,
        out: &mut Vec<(Mark, String)>,
    ) {
        let field = &fr.field;
        let set = msg.has_field(field);
        let number = field.number();
        let name = field.name();
        // A field that failed to decode was already reported; a unset member
        // of a oneof is not checked (the oneof's own rule covers it).
        if marks.failed(number)
            || !set && field.containing_oneof().is_some_and(|o| !o.is_synthetic())
        {
            return;
        }
        if !set && fr.required {
            out.push((marks.message, format!("`{name}` is required")));
            return;
        }
        // Unset message fields are checked only for presence.
        if !set && matches!(field.kind(), Kind::Message(_)) && !field.is_list() && !field.is_map() {
            return;
        }
        let Some((kind, r)) = &fr.typed else {
            return;
        };
        let value = msg.get_field(field);
        if fr.ignore_empty && value.is_default(&field.kind()) {
            return;
        }
        match kind.as_str() {
            "repeated" => self.check_repeated(&value, r, field, marks, out),
            "map" => self.check_map(&value, r, field, marks.value_mark(number), out),
            _ => {
                if let Some(text) = self.check_single(kind, r, &value, field) {
                    out.push((marks.value_mark(number), format!("`{name}`: {text}")));
                }
            }
        }
    }

    /// Checks one value against one typed rule set (`string`, `uint32`, ...).
    fn check_single(
        &mut self,
        kind: &str,
        r: &DynamicMessage,
        value: &Value,
        field: &FieldDescriptor,
    ) -> Option<String> {
        let value = unwrap_wrapper(value)?;
        match kind {
            "string" => self.check_string(r, value.as_str()?),
            "enum" => check_enum(r, &value, field),
            "duration" => check_duration(r, value.as_message()?),
            "any" => check_any(r, value.as_message()?),
            "bool" => rule(r, "const")
                .and_then(|c| c.as_bool())
                .filter(|c| value.as_bool() != Some(*c))
                .map(|c| format!("must be {c}")),
            "bytes" => check_bytes(r, value.as_bytes()?),
            "timestamp" | "message" => None,
            _ => check_number(r, &value),
        }
    }
}

#[cfg(test)]
mod tests;

/// Every `validate.rules` kind the Envoy descriptors use, each shown by an
/// example message that breaks it (or, for modifiers such as `ignore_empty`,
/// that it lets pass).
#[cfg(test)]
mod kinds;
