//! The YAML emitter: JSON values written as block-style YAML for output
//! (`render`, the CLI). Apart from the located parser because it goes the
//! other way and shares only the scalar rules, which decide what must be
//! quoted to read back as the same string.

use super::{Scalar, ScalarValue};

/// Writes a JSON value as block-style YAML, quoting every string that a YAML
/// reader (Envoy's included) could take for anything but that string.
pub fn to_yaml(value: &serde_json::Value) -> String {
    let mut out = String::new();
    emit(value, 0, &mut out);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn emit(value: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (i, (key, v)) in map.iter().enumerate() {
                if i > 0 {
                    push_indent(indent, out);
                }
                out.push_str(&yaml_string(key));
                out.push(':');
                emit_child(v, indent, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    push_indent(indent, out);
                }
                out.push_str("- ");
                emit(item, indent + 2, out);
                if !is_block(item) {
                    out.push('\n');
                }
            }
        }
        _ => out.push_str(&inline(value)),
    }
}

fn emit_child(v: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            push_indent(indent + 2, out);
            emit(v, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            push_indent(indent, out);
            emit(v, indent, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&inline(v));
            out.push('\n');
        }
    }
}

fn is_block(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => !m.is_empty(),
        serde_json::Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn push_indent(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn inline(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => yaml_string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string as a YAML scalar: plain when unambiguous, else JSON-quoted
/// (a JSON string literal is a valid YAML double-quoted scalar).
fn yaml_string(s: &str) -> String {
    let scalar = Scalar {
        text: s.to_string(),
        plain: true,
    };
    let reads_back_as_string = scalar.value() == ScalarValue::Str(s);
    let safe_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c));
    let starts_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '/' || c == '_');
    let looks_numeric = s.parse::<f64>().is_ok() || s.starts_with('.');
    if reads_back_as_string && safe_chars && starts_ok && !looks_numeric {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}
