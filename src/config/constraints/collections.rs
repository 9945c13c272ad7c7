//! The rules of repeated and map fields (item counts, uniqueness, and the
//! rule sets of their items, keys and values). Apart because these rules
//! are about the container: each item is checked by the kind of its own
//! rule set, through `Rules::check_single`.

use super::read::{rule, rule_kind};
use super::{FieldMarks, Rules};
use crate::config::yaml::Mark;
use prost_reflect::{DynamicMessage, FieldDescriptor, Value};

impl Rules {
    pub(super) fn check_map(
        &mut self,
        value: &Value,
        r: &DynamicMessage,
        field: &FieldDescriptor,
        mark: Mark,
        out: &mut Vec<(Mark, String)>,
    ) {
        let name = field.name();
        let Value::Map(entries) = value else {
            return;
        };
        if let Some(min) = rule(r, "min_pairs").and_then(|v| v.as_u64())
            && (entries.len() as u64) < min
        {
            out.push((mark, format!("`{name}` needs at least {min} entries")));
        }
        if let Some(max) = rule(r, "max_pairs").and_then(|v| v.as_u64())
            && entries.len() as u64 > max
        {
            out.push((mark, format!("`{name}` may have at most {max} entries")));
        }
        // Keys and values each have a rule set of their own kind.
        let part_rules = |part: &str| {
            rule(r, part)
                .and_then(|v| v.as_message().cloned())
                .and_then(|m| rule_kind(&m))
        };
        let (keys, values) = (part_rules("keys"), part_rules("values"));
        let mut sorted: Vec<_> = entries.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (key, item) in sorted {
            let key_value = map_key_value(key);
            if let Some((kind, kr)) = &keys
                && let Some(text) = self.check_single(kind, kr, &key_value, field)
            {
                out.push((mark, format!("`{name}` key: {text}")));
            }
            if let Some((kind, vr)) = &values
                && let Some(text) = self.check_single(kind, vr, item, field)
            {
                out.push((mark, format!("`{name}` value: {text}")));
            }
        }
    }

    pub(super) fn check_repeated(
        &mut self,
        value: &Value,
        r: &DynamicMessage,
        field: &FieldDescriptor,
        marks: &FieldMarks<'_>,
        out: &mut Vec<(Mark, String)>,
    ) {
        let items: &[Value] = match value {
            Value::List(l) => l,
            _ => &[],
        };
        let name = field.name();
        let mark = marks.value_mark(field.number());
        if let Some(min) = rule(r, "min_items").and_then(|v| v.as_u64())
            && (items.len() as u64) < min
        {
            out.push((
                mark,
                format!(
                    "`{name}` needs at least {min} item{}",
                    if min == 1 { "" } else { "s" }
                ),
            ));
        }
        if let Some(max) = rule(r, "max_items").and_then(|v| v.as_u64())
            && items.len() as u64 > max
        {
            out.push((mark, format!("`{name}` may have at most {max} items")));
        }
        if rule(r, "unique").and_then(|v| v.as_bool()) == Some(true) {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    out.push((
                        marks.item_mark(field.number(), i),
                        format!("`{name}`: items must be unique"),
                    ));
                }
            }
        }
        let Some(item_rules) = rule(r, "items").and_then(|v| v.as_message().cloned()) else {
            return;
        };
        let Some((kind, ir)) = rule_kind(&item_rules) else {
            return;
        };
        for (i, item) in items.iter().enumerate() {
            if let Some(text) = self.check_single(&kind, &ir, item, field) {
                out.push((
                    marks.item_mark(field.number(), i),
                    format!("`{name}` item: {text}"),
                ));
            }
        }
    }
}

/// A map key as a value, for the rules of the key's own type.
fn map_key_value(key: &prost_reflect::MapKey) -> Value {
    use prost_reflect::MapKey;
    match key {
        MapKey::Bool(b) => Value::Bool(*b),
        MapKey::I32(n) => Value::I32(*n),
        MapKey::I64(n) => Value::I64(*n),
        MapKey::U32(n) => Value::U32(*n),
        MapKey::U64(n) => Value::U64(*n),
        MapKey::String(s) => Value::String(s.clone()),
    }
}
