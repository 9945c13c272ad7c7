//! The well-known types whose proto3 JSON form is not a mapping of their
//! fields (Duration, Timestamp, FieldMask, wrappers, Struct/Value/ListValue),
//! with the parsers of their text forms. Apart because each has a syntax of
//! its own that the generic message decoding must not apply.

use super::{Decoder, NEGATIVE_DURATION, OUT_OF_RANGE, WRONG_TYPE, with_field};
use crate::config::schema;
use crate::config::yaml::{Node, NodeKind, ScalarValue};
use prost_reflect::{DynamicMessage, MapKey, MessageDescriptor, Value};
use std::collections::HashMap;

impl Decoder<'_> {
    /// Message-typed values, including the well-known types with special JSON forms.
    pub(super) fn message_value(
        &mut self,
        desc: &MessageDescriptor,
        node: &Node,
    ) -> Option<DynamicMessage> {
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

    pub(super) fn structure(
        &mut self,
        desc: &MessageDescriptor,
        node: &Node,
    ) -> Option<DynamicMessage> {
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

pub(super) fn has_special_json(name: &str) -> bool {
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
pub(super) fn parse_rfc3339(text: &str) -> Option<(i64, i32)> {
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
