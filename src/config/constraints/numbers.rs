//! The numeric rule kinds (`int32` ... `double`, and `enum`, whose values
//! are numbers): bounds, constants and allowed values, with
//! protoc-gen-validate's bound semantics, which Duration bounds share.
//! Apart because they compare values, where the other kinds inspect text or
//! structure.

use super::read::rule;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, Value};

pub(super) fn check_enum(
    r: &DynamicMessage,
    value: &Value,
    field: &FieldDescriptor,
) -> Option<String> {
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

pub(super) fn check_number(r: &DynamicMessage, value: &Value) -> Option<String> {
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
pub(super) fn compare_bounds(
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
