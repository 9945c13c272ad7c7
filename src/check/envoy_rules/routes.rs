//! Route path rewrites and header rules: one way to rewrite a path per
//! route, and no header rule (a route table's removals, a HeaderValueOption
//! anywhere) that touches pseudo-headers or `host`, which Envoy refuses
//! because they would break the request.

use super::{get, step, wrong};
use crate::check::{Finding, Rule};
use crate::config::reflect::list;
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, Value};

/// Two path rewrites on one route.
pub static REWRITE_CONFLICT: Rule = Rule {
    id: "route-rewrite-conflict",
    summary: "a route sets more than one of prefix_rewrite, regex_rewrite, path_rewrite and path_rewrite_policy",
    explanation: "A route rewrites the path in one way only: prefix_rewrite, regex_rewrite, path_rewrite (a \
format string) or a path_rewrite_policy extension (\"Specify only one of prefix_rewrite, regex_rewrite or \
path_rewrite_policy\"). Keep the one that does what you need.",
    envoy: "source/common/router/config_impl.cc",
    ..Rule::ERROR
};

/// Adding or removing a pseudo-header or host.
pub static IMMUTABLE_HEADER: Rule = Rule {
    id: "header-immutable",
    summary: "a `:`-prefixed or host header is added or removed",
    explanation: "Envoy refuses header rules that add, set or remove pseudo-headers (`:path`, `:authority`, \
...) or `host`: they would break the request. Use the route's rewrite options (prefix_rewrite, \
host_rewrite_literal, ...) instead.",
    envoy: "source/common/router/header_parser.cc",
    ..Rule::ERROR
};

pub(super) fn rewrites(m: &DynamicMessage, out: &mut Vec<Finding>) {
    // path_rewrite (a format string) counts too (config_impl.cc).
    let set: Vec<&str> = [
        "prefix_rewrite",
        "regex_rewrite",
        "path_rewrite",
        "path_rewrite_policy",
    ]
    .into_iter()
    .filter(|n| match get(m, n) {
        Some((_, Value::String(s))) => !s.is_empty(),
        Some(_) => true,
        None => false,
    })
    .collect();
    if set.len() > 1 {
        let path = step(m, set[1]).into_iter().collect();
        out.push(wrong(&REWRITE_CONFLICT, path, format!("only one of prefix_rewrite, regex_rewrite, path_rewrite and path_rewrite_policy may be set; found {}", set.join(" and "))));
    }
}

pub(super) fn removed_headers(m: &DynamicMessage, out: &mut Vec<Finding>) {
    for field in ["request_headers_to_remove", "response_headers_to_remove"] {
        let Some((f, items)) = list(m, field) else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let Some(name) = item.as_str() else { continue };
            if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                out.push(wrong(&IMMUTABLE_HEADER, vec![PathStep::Field(f.clone()), PathStep::Index(i)], format!("header `{name}` may not be removed: Envoy refuses `:`-prefixed and host headers here")));
            }
        }
    }
}

pub(super) fn modified_header(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((hf, Value::Message(header))) = get(m, "header") else {
        return;
    };
    let Some((kf, Value::String(key))) = get(header, "key") else {
        return;
    };
    if key.starts_with(':') || key.eq_ignore_ascii_case("host") {
        out.push(wrong(&IMMUTABLE_HEADER, vec![PathStep::Field(hf), PathStep::Field(kf)], format!("header `{key}` may not be modified: Envoy refuses `:`-prefixed and host headers here")));
    }
}
