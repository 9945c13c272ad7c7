//! Enum values Envoy no longer accepts. When Envoy checks a config for
//! deprecated options (source/common/protobuf/utility.cc,
//! checkForDeprecatedNonRepeatedEnumValue) it looks at the value of every
//! singular enum field, set or not: a value marked `deprecated` and
//! `(envoy.annotations.disallowed_by_default_enum)` is fatal unless a
//! runtime flag re-allows it. Left unset, the field holds its 0 value, so
//! an enum whose 0 is such a placeholder (ZipkinConfig's
//! `collector_endpoint_version`, ApiConfigSource's `api_type`) must be set.

use super::{Finding, Place, Rule};
use prost_reflect::{DynamicMessage, EnumValueDescriptor, FieldDescriptor, Kind, ReflectMessage};

pub static DISALLOWED_ENUM_VALUE: Rule = Rule {
    id: "enum-disallowed-value",
    summary: "an enum field holds (or, left unset, defaults to) a value Envoy disallows as deprecated",
    explanation: "Some enum values are deprecated and disallowed by default; Envoy refuses a config that \
uses one (\"Using deprecated value ... This enum value will be removed from Envoy soon\"). This includes \
enums whose default 0 value is such a placeholder: leaving the field unset selects it (\"Using the \
default now-deprecated value DEPRECATED_AND_UNAVAILABLE_DO_NOT_USE ... a non-default value must now be \
explicitly set\"), e.g. the Zipkin tracer's `collector_endpoint_version` (set HTTP_JSON or HTTP_PROTO). \
Set the field to one of its current values.",
    envoy: "source/common/protobuf/utility.cc",
    ..Rule::ERROR
};

/// Checks one message at `place`.
pub fn message(m: &DynamicMessage, _place: &Place<'_>, out: &mut Vec<Finding>) {
    enum_fields(m, out);
}

/// Checks the singular enum fields of one message.
fn enum_fields(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some(disallowed) = m
        .descriptor()
        .parent_pool()
        .get_extension_by_name("envoy.annotations.disallowed_by_default_enum")
    else {
        return;
    };
    let is_disallowed = |value: &EnumValueDescriptor| {
        let options = value.options();
        value
            .enum_value_descriptor_proto()
            .options
            .as_ref()
            .is_some_and(|o| o.deprecated())
            && options.has_extension(&disallowed)
            && options.get_extension(&disallowed).as_bool() == Some(true)
    };
    for field in m.descriptor().fields() {
        let Some(value) = enum_value(m, &field) else {
            continue;
        };
        if !is_disallowed(&value) {
            continue;
        }
        out.push(finding(m, field, &value));
    }
}

/// The value a singular enum field holds, set or not (unset: its 0 value).
fn enum_value(m: &DynamicMessage, field: &FieldDescriptor) -> Option<EnumValueDescriptor> {
    if field.is_list() {
        return None;
    }
    let Kind::Enum(e) = field.kind() else {
        return None;
    };
    let number = if m.has_field(field) {
        m.get_field(field).as_enum_number()?
    } else {
        0
    };
    e.get_value(number)
}

/// At the field when it is written, else at the message that leaves it out.
fn finding(m: &DynamicMessage, field: FieldDescriptor, value: &EnumValueDescriptor) -> Finding {
    let full = field.full_name().to_string();
    if m.has_field(&field) {
        Finding::at(
            &DISALLOWED_ENUM_VALUE,
            vec![crate::config::resource::PathStep::Field(field)],
            format!(
                "{} of `{full}` is deprecated and no longer accepted",
                value.name()
            ),
        )
    } else {
        Finding::missing_in(
            &DISALLOWED_ENUM_VALUE,
            Vec::new(),
            format!(
                "`{}` must be set: its default {} is deprecated and no longer accepted",
                field.name(),
                value.name()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(type_name: &str) -> Vec<Finding> {
        let desc = crate::config::schema::pool()
            .get_message_by_name(type_name)
            .expect("in the schema");
        let mut out = Vec::new();
        enum_fields(&DynamicMessage::new(desc), &mut out);
        out
    }

    #[test]
    fn an_unset_zipkin_collector_version_is_disallowed() {
        let out = findings("envoy.config.trace.v3.ZipkinConfig");
        assert_eq!(out.len(), 1);
        assert!(out[0].message.contains("collector_endpoint_version"));
    }

    #[test]
    fn an_enum_with_an_ordinary_default_is_fine() {
        assert!(findings("envoy.config.cluster.v3.Cluster").is_empty());
    }
}
