//! Small accessors on dynamic messages shared by the checks: set fields,
//! borrowed (checks never copy the subtrees they look into), and `Any` unpacking.

use crate::config::schema;
use prost_reflect::{DynamicMessage, FieldDescriptor, ReflectMessage, Value};
use std::borrow::Cow;

/// A field's descriptor and value, when the field is set.
pub fn field<'m>(m: &'m DynamicMessage, name: &str) -> Option<(FieldDescriptor, &'m Value)> {
    let f = m.descriptor().get_field_by_name(name)?;
    if !m.has_field(&f) {
        return None;
    }
    match m.get_field(&f) {
        Cow::Borrowed(v) => Some((f, v)),
        Cow::Owned(_) => None,
    }
}

/// A repeated field's items, when set.
pub fn list<'m>(m: &'m DynamicMessage, name: &str) -> Option<(FieldDescriptor, &'m [Value])> {
    match field(m, name)? {
        (f, Value::List(items)) => Some((f, items.as_slice())),
        _ => None,
    }
}

/// A string field's value, when set.
pub fn string_field(m: &DynamicMessage, name: &str) -> Option<(FieldDescriptor, String)> {
    let (f, v) = field(m, name)?;
    Some((f, v.as_str()?.to_string()))
}

/// Decodes an `Any` into its message, through the schema pool.
pub fn unpack_any(m: &DynamicMessage) -> Option<Cow<'_, DynamicMessage>> {
    if m.descriptor().full_name() != "google.protobuf.Any" {
        return None;
    }
    let url = m.get_field_by_name("type_url")?;
    let desc = schema::message_by_type_url(url.as_str()?)?;
    let value = m.get_field_by_name("value")?;
    DynamicMessage::decode(desc, value.as_bytes()?.clone())
        .ok()
        .map(Cow::Owned)
}
