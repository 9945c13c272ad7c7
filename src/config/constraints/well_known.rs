//! The rule kinds of well-known message types: wrappers (`UInt32Value`
//! ...), checked by the rules of the value they wrap; `duration` bounds;
//! `any` allowed type URLs. Apart because each looks inside a message
//! rather than at a scalar.

use super::numbers::compare_bounds;
use super::read::rule;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

pub(super) fn unwrap_wrapper(value: &Value) -> Option<std::borrow::Cow<'_, Value>> {
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

fn duration_seconds(m: &DynamicMessage) -> Option<f64> {
    let s = m.get_field_by_name("seconds")?.as_i64()?;
    let n = m.get_field_by_name("nanos")?.as_i32()?;
    Some(s as f64 + f64::from(n) / 1e9)
}

pub(super) fn check_duration(r: &DynamicMessage, value: &DynamicMessage) -> Option<String> {
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

pub(super) fn check_any(r: &DynamicMessage, value: &DynamicMessage) -> Option<String> {
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
