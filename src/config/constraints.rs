//! The `validate.rules` (protoc-gen-validate) constraints carried by the
//! Envoy descriptors, evaluated on decoded messages.
//!
//! Rules are read from the descriptor options once per message type and cached.

use crate::config::yaml::{Mark, Node, NodeKind};
use prost_reflect::{
    DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor, OneofDescriptor,
    ReflectMessage, Value,
};
use regex::Regex;
use std::collections::HashMap;
use std::sync::Arc;

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

/// One field's rules, with what every check needs read out once.
struct FieldRule {
    field: FieldDescriptor,
    /// Presence is required (`message.required`, or `required` in duration/timestamp/any rules).
    required: bool,
    /// The typed rule set (`string`, `uint32`, `repeated`, ...) and its name.
    typed: Option<(String, DynamicMessage)>,
    /// `ignore_empty` in the typed rules: a default value is not checked.
    ignore_empty: bool,
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

struct MessageRules {
    fields: Vec<FieldRule>,
    required_oneofs: Vec<OneofDescriptor>,
}

/// Evaluates rules, caching what it reads from descriptors.
#[derive(Default)]
pub struct Rules {
    by_message: HashMap<String, Arc<MessageRules>>,
    patterns: HashMap<String, Option<Regex>>,
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

fn read_message_rules(desc: &MessageDescriptor) -> MessageRules {
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
fn rule<'m>(rules: &'m DynamicMessage, name: &str) -> Option<std::borrow::Cow<'m, Value>> {
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
fn rule_kind(rules: &DynamicMessage) -> Option<(String, DynamicMessage)> {
    rules.fields().find_map(|(f, v)| match v {
        Value::Message(m) if f.name() != "message" => Some((f.name().to_string(), m.clone())),
        _ => None,
    })
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

    fn check_map(
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

    fn check_repeated(
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

    fn check_string(&mut self, r: &DynamicMessage, s: &str) -> Option<String> {
        let chars = s.chars().count() as u64;
        let bytes = s.len() as u64;
        let u = |n: &str| rule(r, n).and_then(|v| v.as_u64());
        if let Some(min) = u("min_len")
            && chars < min
        {
            return Some(if min == 1 {
                "must not be empty".into()
            } else {
                format!("must be at least {min} characters long")
            });
        }
        if let Some(max) = u("max_len")
            && chars > max
        {
            return Some(format!("must be at most {max} characters long"));
        }
        if let Some(len) = u("len")
            && chars != len
        {
            return Some(format!("must be exactly {len} characters long"));
        }
        if let Some(min) = u("min_bytes")
            && bytes < min
        {
            return Some(if min == 1 {
                "must not be empty".into()
            } else {
                format!("must be at least {min} bytes long")
            });
        }
        if let Some(max) = u("max_bytes")
            && bytes > max
        {
            return Some(format!("must be at most {max} bytes long"));
        }
        let text = |n: &str| rule(r, n).and_then(|v| v.as_str().map(str::to_string));
        if let Some(c) = text("const")
            && s != c
        {
            return Some(format!("must be `{c}`"));
        }
        if let Some(p) = text("prefix")
            && !s.starts_with(&p)
        {
            return Some(format!("must start with `{p}`"));
        }
        if let Some(p) = text("suffix")
            && !s.ends_with(&p)
        {
            return Some(format!("must end with `{p}`"));
        }
        if let Some(p) = text("contains")
            && !s.contains(&p)
        {
            return Some(format!("must contain `{p}`"));
        }
        if let Some(p) = text("not_contains")
            && s.contains(&p)
        {
            return Some(format!("must not contain `{p}`"));
        }
        if let Some(Value::List(allowed)) = rule(r, "in").as_deref()
            && !allowed.iter().any(|a| a.as_str() == Some(s))
        {
            return Some(format!("`{s}` is not one of the allowed values"));
        }
        if let Some(Value::List(denied)) = rule(r, "not_in").as_deref()
            && denied.iter().any(|a| a.as_str() == Some(s))
        {
            return Some(format!("`{s}` is not allowed"));
        }
        if let Some(p) = text("pattern")
            && let Some(re) = self.pattern(&p)
            && !re.is_match(s)
        {
            return Some(format!("`{s}` does not match the pattern `{p}`"));
        }
        if let Some(text) = check_well_known(r, s) {
            return Some(text);
        }
        None
    }

    fn pattern(&mut self, p: &str) -> Option<&Regex> {
        self.patterns
            .entry(p.to_string())
            .or_insert_with(|| Regex::new(p).ok())
            .as_ref()
    }
}

fn unwrap_wrapper(value: &Value) -> Option<std::borrow::Cow<'_, Value>> {
    match value {
        Value::Message(m)
            if m.descriptor().full_name().starts_with("google.protobuf.")
                && m.descriptor().full_name().ends_with("Value")
                && m.descriptor().fields().len() == 1 =>
        {
            m.get_field_by_name("value")
                .map(|v| std::borrow::Cow::Owned(v.into_owned()))
        }
        other => Some(std::borrow::Cow::Borrowed(other)),
    }
}

fn check_well_known(r: &DynamicMessage, s: &str) -> Option<String> {
    let strict = rule(r, "strict").and_then(|v| v.as_bool()).unwrap_or(true);
    if let Some(Value::EnumNumber(n)) = rule(r, "well_known_regex").as_deref() {
        // 1 = HTTP_HEADER_NAME, 2 = HTTP_HEADER_VALUE (validate.proto).
        let bad = match (*n, strict) {
            (1, true) => {
                s.is_empty()
                    || !s.strip_prefix(':').unwrap_or(s).bytes().all(is_token_byte)
                    || s == ":"
            }
            (2, true) => s.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n'),
            (_, false) => s.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n'),
            _ => false,
        };
        if bad {
            let what = if *n == 1 {
                "a valid HTTP header name"
            } else {
                "a valid HTTP header value"
            };
            return Some(format!("`{}` is not {what}", s.escape_debug()));
        }
    }
    let flag = |n: &str| rule(r, n).and_then(|v| v.as_bool()) == Some(true);
    if flag("ip") && s.parse::<std::net::IpAddr>().is_err() {
        return Some(format!("`{s}` is not an IP address"));
    }
    if flag("ipv4") && s.parse::<std::net::Ipv4Addr>().is_err() {
        return Some(format!("`{s}` is not an IPv4 address"));
    }
    if flag("ipv6") && s.parse::<std::net::Ipv6Addr>().is_err() {
        return Some(format!("`{s}` is not an IPv6 address"));
    }
    None
}

/// RFC 7230 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_enum(r: &DynamicMessage, value: &Value, field: &FieldDescriptor) -> Option<String> {
    let n = value.as_enum_number()?;
    let Kind::Enum(e) = field.kind() else {
        return None;
    };
    if rule(r, "defined_only").and_then(|v| v.as_bool()) == Some(true) && e.get_value(n).is_none() {
        return Some(format!("{n} is not a defined {} value", e.name()));
    }
    if let Some(Value::List(allowed)) = rule(r, "in").as_deref()
        && !allowed.iter().any(|a| a.as_i32() == Some(n))
    {
        return Some(format!(
            "{} is not one of the allowed values",
            e.get_value(n)
                .map_or(n.to_string(), |v| v.name().to_string())
        ));
    }
    if let Some(Value::List(denied)) = rule(r, "not_in").as_deref()
        && denied.iter().any(|a| a.as_i32() == Some(n))
    {
        return Some(format!(
            "{} is not allowed",
            e.get_value(n)
                .map_or(n.to_string(), |v| v.name().to_string())
        ));
    }
    None
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

fn check_bytes(r: &DynamicMessage, b: &[u8]) -> Option<String> {
    let len = b.len() as u64;
    let u = |n: &str| rule(r, n).and_then(|v| v.as_u64());
    if let Some(min) = u("min_len")
        && len < min
    {
        return Some(format!("must be at least {min} bytes long"));
    }
    if let Some(max) = u("max_len")
        && len > max
    {
        return Some(format!("must be at most {max} bytes long"));
    }
    u("len")
        .filter(|n| *n != len)
        .map(|n| format!("must be exactly {n} bytes long"))
}

fn as_f64(v: &Value) -> Option<f64> {
    Some(match v {
        Value::I32(n) => f64::from(*n),
        Value::I64(n) => *n as f64,
        Value::U32(n) => f64::from(*n),
        Value::U64(n) => *n as f64,
        Value::F32(n) => f64::from(*n),
        Value::F64(n) => *n,
        _ => return None,
    })
}

fn check_number(r: &DynamicMessage, value: &Value) -> Option<String> {
    let v = as_f64(value)?;
    let bound = |n: &str| rule(r, n).and_then(|b| as_f64(&b));
    compare_bounds(
        v,
        bound("gt"),
        bound("gte"),
        bound("lt"),
        bound("lte"),
        &|x| format_number(x),
    )
    .or_else(|| {
        bound("const")
            .filter(|c| *c != v)
            .map(|c| format!("must be {}", format_number(c)))
    })
    .or_else(|| match rule(r, "in").as_deref() {
        Some(Value::List(l)) if !l.is_empty() && !l.iter().any(|a| as_f64(a) == Some(v)) => Some(
            format!("{} is not one of the allowed values", format_number(v)),
        ),
        _ => None,
    })
}

fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e18 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

/// PGV bound semantics: with both a lower and an upper bound where the upper
/// is below the lower, the allowed range is the outside of the interval.
fn compare_bounds(
    v: f64,
    gt: Option<f64>,
    gte: Option<f64>,
    lt: Option<f64>,
    lte: Option<f64>,
    show: &dyn Fn(f64) -> String,
) -> Option<String> {
    let above_low = match (gt, gte) {
        (Some(g), _) => Some((v > g, format!("greater than {}", show(g)))),
        (_, Some(g)) => Some((v >= g, format!("at least {}", show(g)))),
        _ => None,
    };
    let below_high = match (lt, lte) {
        (Some(l), _) => Some((v < l, format!("less than {}", show(l)))),
        (_, Some(l)) => Some((v <= l, format!("at most {}", show(l)))),
        _ => None,
    };
    let low_value = gt.or(gte);
    let high_value = lt.or(lte);
    match (above_low, below_high) {
        (Some((a, at)), Some((b, bt))) => {
            let exclusive = matches!((low_value, high_value), (Some(lo), Some(hi)) if hi < lo);
            let ok = if exclusive { a || b } else { a && b };
            (!ok).then(|| {
                if exclusive {
                    format!("{} must be {at} or {bt}", show(v))
                } else {
                    format!("{} must be {at} and {bt}", show(v))
                }
            })
        }
        (Some((a, at)), None) => (!a).then(|| format!("{} must be {at}", show(v))),
        (None, Some((b, bt))) => (!b).then(|| format!("{} must be {bt}", show(v))),
        (None, None) => None,
    }
}

fn duration_seconds(m: &DynamicMessage) -> Option<f64> {
    let s = m.get_field_by_name("seconds")?.as_i64()?;
    let n = m.get_field_by_name("nanos")?.as_i32()?;
    Some(s as f64 + f64::from(n) / 1e9)
}

fn check_duration(r: &DynamicMessage, value: &DynamicMessage) -> Option<String> {
    let v = duration_seconds(value)?;
    let bound = |n: &str| rule(r, n).and_then(|b| b.as_message().and_then(duration_seconds));
    let show = |x: f64| format!("{x}s");
    compare_bounds(
        v,
        bound("gt"),
        bound("gte"),
        bound("lt"),
        bound("lte"),
        &show,
    )
    .map(|t| format!("duration {t}"))
}

fn check_any(r: &DynamicMessage, value: &DynamicMessage) -> Option<String> {
    let url = value.get_field_by_name("type_url")?;
    let url = url.as_str()?;
    if let Some(Value::List(allowed)) = rule(r, "in").as_deref()
        && !allowed.is_empty()
        && !allowed.iter().any(|a| a.as_str() == Some(url))
    {
        return Some(format!("type `{url}` is not allowed here"));
    }
    None
}

/// Compiles a regex with RE2's syntax as far as Rust's `regex` matches it
/// (both refuse look-around and backreferences).
pub fn check_re2(re: &str) -> Result<(), String> {
    match regex::RegexBuilder::new(re).size_limit(1 << 24).build() {
        Ok(_) => Ok(()),
        Err(regex::Error::Syntax(s)) => Err(s
            .lines()
            .last()
            .unwrap_or("syntax error")
            .trim()
            .trim_start_matches("error: ")
            .to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests;

/// Every `validate.rules` kind the Envoy descriptors use, each shown by an
/// example message that breaks it (or, for modifiers such as `ignore_empty`,
/// that it lets pass).
#[cfg(test)]
mod kinds;
