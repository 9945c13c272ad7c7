//! Singular values other than messages (strings, bytes, bools, numbers,
//! enums), read as Envoy's JSON parser reads them. Apart from the decoder
//! core because these rules are about one scalar's text and type, never
//! about a message's structure.

use super::{Decoder, ENUM_CASE, HEX_NUMBER, OUT_OF_RANGE, UNKNOWN_ENUM, WRONG_TYPE};
use crate::config::yaml::{Node, ScalarValue};
use base64::Engine;
use prost_reflect::{Kind, Value};

impl Decoder<'_> {
    /// Decodes one singular value of `kind`; `field` names it in messages.
    pub(super) fn value(&mut self, kind: &Kind, node: &Node, field: &str) -> Option<Value> {
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

    pub(super) fn string(&mut self, node: &Node, field: &str) -> Option<String> {
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
