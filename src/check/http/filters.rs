//! The smaller HTTP filters: header_to_metadata, health_check, ext_authz,
//! ext_proc and compressor.

use super::{enum_number, field, flag, items, join, millis, msg, step, text};
use crate::check::{Finding, Place, Rule};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

pub static HEADER_TO_METADATA: Rule = Rule {
    id: "filter-header-to-metadata-rule",
    summary: "a header_to_metadata rule is malformed",
    explanation: "Each header_to_metadata rule must name exactly one source (a header or a cookie) and say \
what to do when it is present or missing. on_header_missing needs a value to write, a cookie cannot be \
removed, and value and regex_value_rewrite exclude each other. A per-route config needs some rules. Envoy \
checks these rules at load time.",
    envoy: "source/extensions/filters/http/header_to_metadata/header_to_metadata_filter.cc",
    ..Rule::ERROR
};

pub static HEALTH_CHECK_CACHE: Rule = Rule {
    id: "filter-health-check-cache-time",
    summary: "the health_check filter sets cache_time while pass_through_mode is false",
    explanation: "cache_time caches the upstream's health answer in pass-through mode. When \
pass_through_mode is false, Envoy answers health checks itself, so a cache makes no sense and is rejected.",
    envoy: "source/extensions/filters/http/health_check/config.cc",
    ..Rule::ERROR
};

pub static EXT_AUTHZ_PATH: Rule = Rule {
    id: "filter-ext-authz-http-path",
    summary: "ext_authz http_service path_prefix does not start with `/`",
    explanation: "path_prefix is prepended to the request path sent to the authorization service and must \
itself be an absolute path starting with '/'.",
    envoy: "source/extensions/filters/common/ext_authz/ext_authz_http_impl.cc",
    ..Rule::ERROR
};

pub static EXT_AUTHZ_ALLOWED_HEADERS: Rule = Rule {
    id: "filter-ext-authz-allowed-headers",
    summary: "ext_authz sets allowed_headers both at the top level and in http_service.authorization_request",
    explanation: "The top-level allowed_headers replaced http_service.authorization_request.allowed_headers; \
Envoy refuses configs that set both (\"Invalid duplicate configuration for allowed_headers\"). Keep the \
top-level field.",
    envoy: "source/extensions/filters/http/ext_authz/ext_authz.cc",
    ..Rule::ERROR
};

pub static EXT_PROC_SERVICE: Rule = Rule {
    id: "filter-ext-proc-service",
    summary: "ext_proc does not set exactly one of grpc_service and http_service",
    explanation: "The external processor is reached over gRPC or over HTTP, and exactly one of \
grpc_service and http_service must be configured.",
    envoy: "source/extensions/filters/http/ext_proc/config.cc",
    ..Rule::ERROR
};

pub static EXT_PROC_MODE: Rule = Rule {
    id: "filter-ext-proc-processing-mode",
    summary: "ext_proc processing_mode or route cache settings are inconsistent",
    explanation: "Over http_service, ext_proc can only exchange headers, so body and trailer modes are not \
allowed. FULL_DUPLEX_STREAMED body mode requires the matching trailer mode SEND. disable_clear_route_cache \
cannot be combined with a route_cache_action.",
    envoy: "source/extensions/filters/http/ext_proc/config.cc",
    ..Rule::ERROR
};

pub fn message(name: &str, m: &DynamicMessage, place: &Place<'_>, out: &mut Vec<Finding>) {
    match name {
        "envoy.extensions.filters.http.header_to_metadata.v3.Config" => {
            header_to_metadata(m, per_route(place.path), out)
        }
        "envoy.extensions.filters.http.health_check.v3.HealthCheck"
            if !flag(m, "pass_through_mode")
                && millis(m, "cache_time").is_some_and(|ms| ms > 0) =>
        {
            out.push(Finding::at(
                &HEALTH_CHECK_CACHE,
                step(m, "cache_time"),
                "health_check cache_time has no effect unless pass_through_mode is true",
            ));
        }
        "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz" => ext_authz(m, out),
        "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor" => ext_proc(m, out),
        _ => {}
    }
}

/// Is the message at `path` a per-route config (inside typed_per_filter_config)?
fn per_route(path: &[PathStep]) -> bool {
    path.iter()
        .rev()
        .any(|s| matches!(s, PathStep::Field(f) if f.name() == "typed_per_filter_config"))
}

fn header_to_metadata(m: &DynamicMessage, per_route: bool, out: &mut Vec<Finding>) {
    let request = items(m, "request_rules");
    let response = items(m, "response_rules");
    if per_route && request.is_empty() && response.is_empty() {
        out.push(Finding::missing_in(
            &HEADER_TO_METADATA,
            Vec::new(),
            "a per-route header_to_metadata config needs request_rules or response_rules",
        ));
        return;
    }
    for list in ["request_rules", "response_rules"] {
        for (i, rule) in items(m, list).iter().enumerate() {
            if let Some(rule) = rule.as_message()
                && let Some((at, why)) = header_rule_defect(rule)
            {
                let path = join(&step(m, list), [PathStep::Index(i)].into_iter().chain(at));
                out.push(Finding::at(&HEADER_TO_METADATA, path, why));
                return;
            }
        }
    }
}

/// The first defect of one rule, in Envoy's order, and where it is (relative to the rule).
fn header_rule_defect(rule: &DynamicMessage) -> Option<(Vec<PathStep>, String)> {
    let header = text(rule, "header");
    let cookie = text(rule, "cookie");
    if !header.is_empty() && !cookie.is_empty() {
        return Some((
            Vec::new(),
            "a rule cannot name both a header and a cookie".into(),
        ));
    }
    if header.is_empty() && cookie.is_empty() {
        return Some((Vec::new(), "a rule must name a header or a cookie".into()));
    }
    let present = msg(rule, "on_header_present");
    let missing = msg(rule, "on_header_missing");
    if present.is_none() && missing.is_none() {
        let source = if header.is_empty() {
            format!("cookie '{cookie}'")
        } else {
            format!("header '{header}'")
        };
        return Some((
            Vec::new(),
            format!("the rule for {source} has neither on_header_present nor on_header_missing"),
        ));
    }
    if let Some(present) = present
        && !text(present, "value").is_empty()
        && present.has_field_by_name("regex_value_rewrite")
    {
        return Some((
            step(rule, "on_header_present"),
            "on_header_present sets both value and regex_value_rewrite".into(),
        ));
    }
    if !cookie.is_empty() && flag(rule, "remove") {
        return Some((
            step(rule, "remove"),
            "a cookie rule cannot set remove".into(),
        ));
    }
    if let Some(missing) = missing
        && text(missing, "value").is_empty()
    {
        return Some((
            step(rule, "on_header_missing"),
            "on_header_missing needs a value to write".into(),
        ));
    }
    None
}

fn ext_authz(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((hf, Value::Message(http))) = field(m, "http_service") else {
        return;
    };
    let base = vec![PathStep::Field(hf)];
    let prefix = text(http, "path_prefix");
    if !prefix.is_empty() && !prefix.starts_with('/') {
        out.push(Finding::at(
            &EXT_AUTHZ_PATH,
            join(&base, step(http, "path_prefix")),
            format!("ext_authz path_prefix '{prefix}' must start with '/'"),
        ));
    }
    if m.has_field_by_name("allowed_headers")
        && let Some((rf, Value::Message(request))) = field(http, "authorization_request")
        && request.has_field_by_name("allowed_headers")
    {
        out.push(Finding::at(
            &EXT_AUTHZ_ALLOWED_HEADERS,
            join(&base, [PathStep::Field(rf)].into_iter().chain(step(request, "allowed_headers"))),
            "ext_authz allowed_headers set twice (top level and http_service.authorization_request)",
        ));
    }
}

fn ext_proc(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let grpc = m.has_field_by_name("grpc_service");
    let http = m.has_field_by_name("http_service");
    if grpc == http {
        let message = "ext_proc needs exactly one of grpc_service or http_service";
        out.push(if grpc {
            Finding::at(&EXT_PROC_SERVICE, step(m, "grpc_service"), message)
        } else {
            Finding::missing_in(&EXT_PROC_SERVICE, Vec::new(), message)
        });
        return;
    }
    const DEFAULT_ACTION: i32 = 0;
    if flag(m, "disable_clear_route_cache")
        && enum_number(m, "route_cache_action") != DEFAULT_ACTION
    {
        out.push(Finding::at(
            &EXT_PROC_MODE,
            step(m, "disable_clear_route_cache"),
            "disable_clear_route_cache cannot be combined with a route_cache_action",
        ));
        return;
    }
    let Some((pf, Value::Message(mode))) = field(m, "processing_mode") else {
        return;
    };
    if let Some((at, why)) = processing_mode_defect(mode, http) {
        out.push(Finding::at(
            &EXT_PROC_MODE,
            join(&[PathStep::Field(pf)], at),
            why,
        ));
    }
}

fn processing_mode_defect(mode: &DynamicMessage, http: bool) -> Option<(Vec<PathStep>, String)> {
    let named = |field_name: &str| -> String {
        let number = enum_number(mode, field_name);
        mode.descriptor()
            .get_field_by_name(field_name)
            .and_then(|f| f.kind().as_enum().and_then(|e| e.get_value(number)))
            .map_or(number.to_string(), |v| v.name().to_string())
    };
    if http {
        for (f, bad) in [
            ("request_body_mode", "NONE"),
            ("response_body_mode", "NONE"),
            ("request_trailer_mode", "SEND"),
            ("response_trailer_mode", "SEND"),
        ] {
            let value = named(f);
            let wrong = if bad == "NONE" {
                value != "NONE"
            } else {
                value == "SEND"
            };
            if wrong {
                return Some((
                    step(mode, f),
                    format!(
                        "ext_proc over http_service cannot send bodies or trailers ({f} is {value})"
                    ),
                ));
            }
        }
    }
    for direction in ["request", "response"] {
        let body = format!("{direction}_body_mode");
        let trailer = format!("{direction}_trailer_mode");
        if named(&body) == "FULL_DUPLEX_STREAMED" && named(&trailer) != "SEND" {
            return Some((
                step(mode, &body),
                format!("{body} FULL_DUPLEX_STREAMED needs {trailer}: SEND"),
            ));
        }
    }
    None
}
