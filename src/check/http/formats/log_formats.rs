//! Whole format strings and structured ones: SubstitutionFormatString
//! (access logs, local reply and direct response bodies) as text, inline
//! text source or JSON, FileAccessLog's deprecated formats, and the
//! OpenTelemetry access log's body and attributes. In the structured forms
//! every string value, however deep, is a format string of its own; keys
//! are sent as written.

use super::commands::extensions;
use super::{Format, check};
use crate::check::Finding;
use crate::check::http::{field, inline_source, items, join};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, Value};

pub(super) fn substitution_format(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let format = |what: &'static str| Format {
        what,
        header_value: false,
        extensions: extensions(items(m, "formatters")),
    };
    if let Some((f, Value::String(s))) = field(m, "text_format") {
        check(s, &format("text_format"), vec![PathStep::Field(f)], out);
    }
    if let Some((f, Value::Message(source))) = field(m, "text_format_source")
        && let Some((path, bytes)) = inline_source(source)
        && let Ok(s) = std::str::from_utf8(&bytes)
    {
        check(
            s,
            &format("text_format_source"),
            join(&[PathStep::Field(f)], path),
            out,
        );
    }
    if let Some((f, Value::Message(json))) = field(m, "json_format") {
        json_strings(json, &format("json_format"), vec![PathStep::Field(f)], out);
    }
}

/// Every string in a `json_format` Struct that holds a `%` (keys are not parsed).
fn json_strings(
    s: &DynamicMessage,
    format: &Format<'_>,
    path: Vec<PathStep>,
    out: &mut Vec<Finding>,
) {
    let Some((ff, Value::Map(fields))) = field(s, "fields") else {
        return;
    };
    for (key, value) in fields {
        let Value::Message(value) = value else {
            continue;
        };
        let at = join(&path, [PathStep::Field(ff.clone()), PathStep::key(key)]);
        json_value(value, format, at, out);
    }
}

fn json_value(
    v: &DynamicMessage,
    format: &Format<'_>,
    path: Vec<PathStep>,
    out: &mut Vec<Finding>,
) {
    if let Some((f, Value::String(s))) = field(v, "string_value") {
        if s.contains('%') {
            check(s, format, join(&path, [PathStep::Field(f)]), out);
        }
    } else if let Some((f, Value::Message(inner))) = field(v, "struct_value") {
        json_strings(inner, format, join(&path, [PathStep::Field(f)]), out);
    } else if let Some((f, Value::Message(list))) = field(v, "list_value")
        && let Some((lf, Value::List(values))) = field(list, "values")
    {
        for (i, item) in values.iter().enumerate() {
            if let Value::Message(item) = item {
                let at = join(
                    &path,
                    [
                        PathStep::Field(f.clone()),
                        PathStep::Field(lf.clone()),
                        PathStep::Index(i),
                    ],
                );
                json_value(item, format, at, out);
            }
        }
    }
}

/// FileAccessLog's deprecated `format`, `json_format` and `typed_json_format`.
pub(super) fn legacy_file_log(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let format = |what| Format {
        what,
        header_value: false,
        extensions: Some(Vec::new()),
    };
    if let Some((f, Value::String(s))) = field(m, "format") {
        check(s, &format("format"), vec![PathStep::Field(f)], out);
    }
    for name in ["json_format", "typed_json_format"] {
        if let Some((f, Value::Message(json))) = field(m, name) {
            json_strings(json, &format(name), vec![PathStep::Field(f)], out);
        }
    }
}

/// The OpenTelemetry access log's `body` and `attributes`: every string in
/// them, however deep in kvlist_value and array_value, is a format string
/// with the logger's `formatters`
/// (source/extensions/access_loggers/open_telemetry/substitution_formatter.cc,
/// access_log_impl.cc). `resource_attributes` are sent as written.
pub(super) fn opentelemetry_log(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let format = |what| Format {
        what,
        header_value: false,
        extensions: extensions(items(m, "formatters")),
    };
    if let Some((f, Value::Message(body))) = field(m, "body") {
        any_value(body, &format("body"), vec![PathStep::Field(f)], out);
    }
    if let Some((f, Value::Message(attributes))) = field(m, "attributes") {
        key_values(
            attributes,
            &format("attributes"),
            vec![PathStep::Field(f)],
            out,
        );
    }
}

/// The values of an OpenTelemetry KeyValueList (keys are not parsed).
fn key_values(
    list: &DynamicMessage,
    format: &Format<'_>,
    path: Vec<PathStep>,
    out: &mut Vec<Finding>,
) {
    let Some((lf, pairs)) = crate::config::reflect::list(list, "values") else {
        return;
    };
    for (i, pair) in pairs.iter().enumerate() {
        if let Value::Message(pair) = pair
            && let Some((vf, Value::Message(value))) = field(pair, "value")
        {
            let at = join(
                &path,
                [
                    PathStep::Field(lf.clone()),
                    PathStep::Index(i),
                    PathStep::Field(vf),
                ],
            );
            any_value(value, format, at, out);
        }
    }
}

/// An OpenTelemetry AnyValue: a string, or lists and maps of them.
fn any_value(v: &DynamicMessage, format: &Format<'_>, path: Vec<PathStep>, out: &mut Vec<Finding>) {
    if let Some((f, Value::String(s))) = field(v, "string_value") {
        check(s, format, join(&path, [PathStep::Field(f)]), out);
    } else if let Some((f, Value::Message(map))) = field(v, "kvlist_value") {
        key_values(map, format, join(&path, [PathStep::Field(f)]), out);
    } else if let Some((f, Value::Message(array))) = field(v, "array_value")
        && let Some((lf, values)) = crate::config::reflect::list(array, "values")
    {
        for (i, item) in values.iter().enumerate() {
            if let Value::Message(item) = item {
                let steps = [
                    PathStep::Field(f.clone()),
                    PathStep::Field(lf.clone()),
                    PathStep::Index(i),
                ];
                any_value(item, format, join(&path, steps), out);
            }
        }
    }
}
