//! Reading the `validate.rules` out of the descriptor options: once per
//! message type, into what the evaluation needs. Apart from the evaluation
//! because it is about how protoc-gen-validate encodes its rules, not
//! about what they mean.

use prost_reflect::{
    DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor, OneofDescriptor,
    Value,
};

/// One field's rules, with what every check needs read out once.
pub(super) struct FieldRule {
    pub(super) field: FieldDescriptor,
    /// Presence is required (`message.required`, or `required` in duration/timestamp/any rules).
    pub(super) required: bool,
    /// The typed rule set (`string`, `uint32`, `repeated`, ...) and its name.
    pub(super) typed: Option<(String, DynamicMessage)>,
    /// `ignore_empty` in the typed rules: a default value is not checked.
    pub(super) ignore_empty: bool,
}

impl FieldRule {
    fn new(field: FieldDescriptor, rules: &DynamicMessage) -> Self {
        let message_required = rule(rules, "message").and_then(|m| {
            m.as_message()
                .and_then(|m| rule(m, "required"))
                .and_then(|v| v.as_bool())
        }) == Some(true);
        let typed = rule_kind(rules);
        let ignore_empty = typed
            .as_ref()
            .and_then(|(_, r)| rule(r, "ignore_empty").and_then(|v| v.as_bool()))
            == Some(true);
        FieldRule {
            field,
            required: message_required || typed_required(rules),
            typed,
            ignore_empty,
        }
    }
}

pub(super) struct MessageRules {
    pub(super) fields: Vec<FieldRule>,
    pub(super) required_oneofs: Vec<OneofDescriptor>,
}

struct Extensions {
    rules: ExtensionDescriptor,
    required: ExtensionDescriptor,
    disabled: ExtensionDescriptor,
    ignored: ExtensionDescriptor,
}

impl Extensions {
    /// Looked up in the pool `desc` belongs to: extension descriptors of
    /// another pool would not match its options.
    fn of(desc: &MessageDescriptor) -> Option<Extensions> {
        let pool = desc.parent_pool();
        Some(Extensions {
            rules: pool.get_extension_by_name("validate.rules")?,
            required: pool.get_extension_by_name("validate.required")?,
            disabled: pool.get_extension_by_name("validate.disabled")?,
            ignored: pool.get_extension_by_name("validate.ignored")?,
        })
    }
}

fn bool_option(options: &DynamicMessage, ext: &ExtensionDescriptor) -> bool {
    options.has_extension(ext) && options.get_extension(ext).as_bool() == Some(true)
}

pub(super) fn read_message_rules(desc: &MessageDescriptor) -> MessageRules {
    let Some(ext) = Extensions::of(desc) else {
        return MessageRules {
            fields: Vec::new(),
            required_oneofs: Vec::new(),
        };
    };
    let options = desc.options();
    if bool_option(&options, &ext.disabled) || bool_option(&options, &ext.ignored) {
        return MessageRules {
            fields: Vec::new(),
            required_oneofs: Vec::new(),
        };
    }
    let fields = desc
        .fields()
        .filter_map(|field| {
            let options = field.options();
            options.has_extension(&ext.rules).then(|| {
                let rules = options.get_extension(&ext.rules).as_message().cloned();
                rules.map(|rules| FieldRule::new(field, &rules))
            })?
        })
        .collect();
    let required_oneofs = desc
        .oneofs()
        .filter(|o| bool_option(&o.options(), &ext.required))
        .collect();
    MessageRules {
        fields,
        required_oneofs,
    }
}

/// Does `field` carry `message.skip` (its message's own rules are not checked)?
pub fn skips_contents(field: &FieldDescriptor) -> bool {
    if !matches!(field.kind(), Kind::Message(_)) {
        return false;
    }
    let Some(ext) = field.parent_pool().get_extension_by_name("validate.rules") else {
        return false;
    };
    let options = field.options();
    if !options.has_extension(&ext) {
        return false;
    }
    let rules = options.get_extension(&ext);
    rules
        .as_message()
        .and_then(|r| rule(r, "message"))
        .and_then(|m| {
            m.as_message()
                .and_then(|m| rule(m, "skip"))
                .and_then(|v| v.as_bool())
        })
        == Some(true)
}

/// A rules message's field, when set.
pub(super) fn rule<'m>(
    rules: &'m DynamicMessage,
    name: &str,
) -> Option<std::borrow::Cow<'m, Value>> {
    rules
        .has_field_by_name(name)
        .then(|| rules.get_field_by_name(name))
        .flatten()
}

/// `required` inside the typed rules of a message-valued field (`duration`, `timestamp`, `any`).
fn typed_required(rules: &DynamicMessage) -> bool {
    ["duration", "timestamp", "any"].iter().any(|kind| {
        rule(rules, kind).and_then(|r| {
            r.as_message()
                .and_then(|r| rule(r, "required"))
                .and_then(|v| v.as_bool())
        }) == Some(true)
    })
}

/// The one member set in a `FieldRules.type` oneof, with its name.
pub(super) fn rule_kind(rules: &DynamicMessage) -> Option<(String, DynamicMessage)> {
    rules.fields().find_map(|(f, v)| match v {
        Value::Message(m) if f.name() != "message" => Some((f.name().to_string(), m.clone())),
        _ => None,
    })
}
