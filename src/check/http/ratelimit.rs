//! Local rate limits: token bucket timers and descriptors.

use super::{field, items, join, millis, show_ms, step, text};
use crate::check::{Finding, Place, Rule};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, Value};

pub static FILL_INTERVAL: Rule = Rule {
    id: "ratelimit-local-fill-interval",
    summary: "a local rate limit token bucket refills faster than every 50 ms",
    explanation: "Envoy refills local rate limit token buckets on a timer and refuses intervals shorter \
than 50 ms (\"token bucket fill timer must be >= 50ms\"). For higher rates, keep the interval at 50 ms or \
more and raise tokens_per_fill.",
    envoy: "source/extensions/filters/common/local_ratelimit/local_ratelimit_impl.cc",
    ..Rule::ERROR
};

pub static DUPLICATE_DESCRIPTOR: Rule = Rule {
    id: "ratelimit-local-duplicate-descriptor",
    summary: "two local rate limit descriptors have identical entries",
    explanation: "Each local rate limit descriptor must be unique; Envoy cannot tell which token bucket \
applies to two identical descriptors (\"duplicate descriptor in the local rate descriptor\"). Merge them or \
change their entries.",
    envoy: "source/extensions/filters/common/local_ratelimit/local_ratelimit_impl.cc",
    ..Rule::ERROR
};

pub fn message(name: &str, m: &DynamicMessage, _place: &Place<'_>, out: &mut Vec<Finding>) {
    if name == "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit" {
        if let Some((f, Value::Message(bucket))) = field(m, "token_bucket") {
            bucket_interval(bucket, vec![PathStep::Field(f)], "", out);
        }
        descriptors(m, out);
    }
}

/// A bucket with tokens must not refill faster than every 50 ms (no tokens: always deny).
fn bucket_interval(
    bucket: &DynamicMessage,
    path: Vec<PathStep>,
    what: &str,
    out: &mut Vec<Finding>,
) {
    let max_tokens = field(bucket, "max_tokens")
        .and_then(|(_, v)| v.as_u32())
        .unwrap_or(0);
    let Some(ms) = millis(bucket, "fill_interval") else {
        return;
    };
    // The filter's own bucket skips the check for an interval under 1 ms; a
    // descriptor's bucket does not.
    let checked = ms > 0 || !what.is_empty();
    if max_tokens != 0 && ms < 50 && checked {
        out.push(Finding::at(
            &FILL_INTERVAL,
            join(&path, step(bucket, "fill_interval")),
            format!(
                "local rate limit {what}fill_interval {} is below the 50ms minimum",
                show_ms(ms)
            ),
        ));
    }
}

fn descriptors(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let mut seen: Vec<Vec<(String, String)>> = Vec::new();
    for (i, d) in items(m, "descriptors").iter().enumerate() {
        let Some(d) = d.as_message() else { continue };
        let path = join(&step(m, "descriptors"), [PathStep::Index(i)]);
        if let Some((f, Value::Message(bucket))) = field(d, "token_bucket") {
            bucket_interval(
                bucket,
                join(&path, [PathStep::Field(f)]),
                "descriptor ",
                out,
            );
        }
        let entries: Vec<(String, String)> = items(d, "entries")
            .iter()
            .filter_map(Value::as_message)
            .map(|e| (text(e, "key").to_string(), text(e, "value").to_string()))
            .collect();
        // Wildcard entries (empty values) are kept apart.
        if entries.iter().any(|(_, v)| v.is_empty()) {
            continue;
        }
        if seen.contains(&entries) {
            let shown: Vec<String> = entries.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(Finding::at(
                &DUPLICATE_DESCRIPTOR,
                join(&path, step(d, "entries")),
                format!(
                    "duplicate local rate limit descriptor {{{}}}",
                    shown.join(",")
                ),
            ));
        } else {
            seen.push(entries);
        }
    }
}
