//! Health checks: what Envoy refuses when it builds a cluster's health checkers.

use super::{Cluster, enum_number, messages, sub, with, wrapped_u64};
use crate::check::{Finding, Rule};
use crate::config::reflect::field;
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

/// A gRPC health check without HTTP/2.
pub static GRPC_NEEDS_HTTP2: Rule = Rule {
    id: "health-check-grpc-needs-http2",
    summary: "a gRPC health check on a cluster not configured for HTTP/2",
    explanation: "gRPC health checks speak the gRPC health protocol over HTTP/2, so Envoy requires the cluster \
to talk HTTP/2 to its hosts. Add `explicit_http_config: {http2_protocol_options: {}}` to the cluster's \
HttpProtocolOptions (under the key envoy.extensions.upstreams.http.v3.HttpProtocolOptions), or use an HTTP \
or TCP health check.",
    envoy: "source/common/upstream/health_checker_impl.cc",
    ..Rule::ERROR
};

/// An empty or out-of-range status range.
pub static HTTP_STATUS_RANGE: Rule = Rule {
    id: "health-check-http-status-range",
    summary: "an http_health_check expected_statuses or retriable_statuses range is empty or outside 100..600",
    explanation: "Status ranges are half-open [start, end) over HTTP codes 100-599, so Envoy requires start \
below end (use end = code + 1 for a single code) and the range within 100..600.",
    envoy: "source/extensions/health_checkers/http/health_checker_impl.cc",
    ..Rule::ERROR
};

/// A request body with a method that has none.
pub static HTTP_PAYLOAD_METHOD: Rule = Rule {
    id: "health-check-http-payload-method",
    summary: "an http_health_check send payload is used with a method that has no request body (GET, the default, or HEAD, DELETE, TRACE)",
    explanation: "A health-check request body is only sent with methods that carry one, and Envoy refuses a \
payload with any other. With `send` set, choose POST, PUT, PATCH or OPTIONS, or remove `send`.",
    envoy: "source/extensions/health_checkers/http/health_checker_impl.cc",
    ..Rule::ERROR
};

/// A payload text that is not hex.
pub static INVALID_HEX_PAYLOAD: Rule = Rule {
    id: "health-check-invalid-hex-payload",
    summary: "a health-check payload `text` is not an even-length hex string",
    explanation: "Payload `text` is hex-encoded bytes, not plain text, and Envoy refuses text it cannot decode: \
write each byte as two hex digits (`ping` is `70696e67`), or use `binary` with base64.",
    envoy: "source/common/upstream/health_checker_impl.cc",
    ..Rule::ERROR
};

/// Expected content that cannot fit the response buffer.
pub static RESPONSE_BUFFER_TOO_SMALL: Rule = Rule {
    id: "health-check-response-buffer-too-small",
    summary: "http_health_check receive payloads are longer than response_buffer_size",
    explanation: "An HTTP health check matches `receive` only within the first response_buffer_size bytes of \
the body (default 1024), so Envoy refuses longer expected content, which could never match. Raise \
response_buffer_size (0 means unlimited) or shorten the payloads.",
    envoy: "source/extensions/health_checkers/http/health_checker_impl.cc",
    ..Rule::ERROR
};

/// Several health checks without distinct names.
pub static MULTIPLE_NAMES: Rule = Rule {
    id: "health-check-multiple-names",
    summary: "a cluster has more than one health check and one of them has no name, or two share a name",
    explanation: "Since Envoy 1.40 a cluster may have several health checks, and each one is then identified \
by its `name` (in stats and events), so Envoy refuses unnamed or duplicate ones. Give every health check of \
such a cluster a distinct name.",
    envoy: "source/common/upstream/cluster_factory_impl.cc",
    ..Rule::ERROR
};

/// `RequestMethod` values that carry no request body (and METHOD_UNSPECIFIED, which is GET).
const BODILESS: [(i32, &str); 5] = [
    (0, "GET"),
    (1, "GET"),
    (2, "HEAD"),
    (5, "DELETE"),
    (8, "TRACE"),
];

/// Checks of a cluster's health checks together.
pub(super) fn check_cluster(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    let Some((hf, checks)) = messages(c.m, "health_checks") else {
        return;
    };
    let http2 = has_http2(c);
    for (i, check) in &checks {
        if let Some((gf, _)) = field(check, "grpc_health_check")
            && !http2
        {
            out.push(Finding::at(
                &GRPC_NEEDS_HTTP2,
                vec![PathStep::Field(hf.clone()), PathStep::Index(*i), PathStep::Field(gf)],
                format!("gRPC health check needs HTTP/2 on cluster '{}' (set explicit_http_config.http2_protocol_options)", c.name),
            ));
        }
    }
    // Envoy 1.40 refuses several health checks unless each has a distinct
    // name. The schema xdsd carries predates HealthCheck.name, so there no
    // health check has a name and a cluster with several is refused, as
    // Envoy 1.40 refuses it (found by bench/differential).
    if checks.len() > 1 {
        names(&hf, &checks, out);
    }
}

fn names(
    hf: &prost_reflect::FieldDescriptor,
    checks: &[(usize, &DynamicMessage)],
    out: &mut Vec<Finding>,
) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, check) in checks {
        let base = vec![PathStep::Field(hf.clone()), PathStep::Index(*i)];
        match field(check, "name") {
            Some((nf, Value::String(name))) if !name.is_empty() => {
                if seen.contains(&name.as_str()) {
                    out.push(Finding::at(
                        &MULTIPLE_NAMES,
                        with(&base, [PathStep::Field(nf)]),
                        format!("health check #{i} has the name '{name}' of an earlier one; names must be unique within a cluster"),
                    ));
                } else {
                    seen.push(name);
                }
            }
            _ => out.push(Finding::missing_in(
                &MULTIPLE_NAMES,
                base,
                format!("health check #{i} has no name; every health check needs a unique name when a cluster has several"),
            )),
        }
    }
}

/// Does the cluster speak HTTP/2 to its hosts?
fn has_http2(c: &Cluster<'_>) -> bool {
    match &c.hpo {
        Some((_, hpo)) => {
            let configured = |name: &str| {
                sub(hpo, name)
                    .is_some_and(|(_, cfg)| cfg.has_field_by_name("http2_protocol_options"))
            };
            configured("explicit_http_config")
                || configured("use_downstream_protocol_config")
                || hpo.has_field_by_name("auto_config")
        }
        None => c.m.has_field_by_name("http2_protocol_options"),
    }
}

/// Checks of one health check.
pub(super) fn check(m: &DynamicMessage, out: &mut Vec<Finding>) {
    if let Some((hf, http)) = sub(m, "http_health_check") {
        let base = [PathStep::Field(hf)];
        status_ranges(http, &base, out);
        payload_method(http, &base, out);
        let valid = payloads(http, &base, out);
        if valid {
            response_buffer(http, &base, out);
        }
    }
    if let Some((tf, tcp)) = sub(m, "tcp_health_check") {
        payloads(tcp, &[PathStep::Field(tf)], out);
    }
}

fn status_ranges(http: &DynamicMessage, base: &[PathStep], out: &mut Vec<Finding>) {
    for (name, word) in [
        ("expected_statuses", "expected"),
        ("retriable_statuses", "retriable"),
    ] {
        let Some((rf, ranges)) = messages(http, name) else {
            continue;
        };
        for (i, range) in ranges {
            let get = |n: &str| {
                let f = range.descriptor().get_field_by_name(n);
                let v = field(range, n).and_then(|(_, v)| v.as_i64()).unwrap_or(0);
                (f, v)
            };
            let (sf, start) = get("start");
            let (ef, end) = get("end");
            // Envoy compares the bounds as uint64: negative values are huge.
            let (ustart, uend) = (start as u64, end as u64);
            let problem = if ustart >= uend {
                Some((
                    ef,
                    format!("{name} range [{start}, {end}) is empty (end is exclusive)"),
                ))
            } else if ustart < 100 {
                Some((
                    sf,
                    format!("{word} status range [{start}, {end}): start must be >= 100"),
                ))
            } else if uend > 600 {
                Some((
                    ef,
                    format!("{word} status range [{start}, {end}): end must be <= 600"),
                ))
            } else {
                None
            };
            if let Some((f, text)) = problem {
                let mut path = with(base, [PathStep::Field(rf.clone()), PathStep::Index(i)]);
                path.extend(f.map(PathStep::Field));
                out.push(Finding::at(&HTTP_STATUS_RANGE, path, text));
            }
        }
    }
}

fn payload_method(http: &DynamicMessage, base: &[PathStep], out: &mut Vec<Finding>) {
    let Some((sf, _)) = field(http, "send") else {
        return;
    };
    let method = enum_number(http, "method").unwrap_or(0);
    let Some((_, name)) = BODILESS.iter().find(|(n, _)| *n == method) else {
        return;
    };
    let at = match field(http, "method") {
        Some((mf, _)) => mf,
        None => sf,
    };
    out.push(Finding::at(
        &HTTP_PAYLOAD_METHOD,
        with(base, [PathStep::Field(at)]),
        format!(
            "http_health_check.send needs method POST, PUT, PATCH or OPTIONS (method is {name})"
        ),
    ));
}

/// Decoded length of a hex text: None when it is not hex.
fn hex_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (bytes.len().is_multiple_of(2) && bytes.iter().all(u8::is_ascii_hexdigit))
        .then_some(bytes.len() / 2)
}

/// Checks the hex of `send` and `receive[]`; true when all are valid.
fn payloads(check: &DynamicMessage, base: &[PathStep], out: &mut Vec<Finding>) -> bool {
    let mut all: Vec<(Vec<PathStep>, &DynamicMessage)> = Vec::new();
    if let Some((sf, send)) = sub(check, "send") {
        all.push((with(base, [PathStep::Field(sf)]), send));
    }
    if let Some((rf, receive)) = messages(check, "receive") {
        for (i, payload) in receive {
            all.push((
                with(base, [PathStep::Field(rf.clone()), PathStep::Index(i)]),
                payload,
            ));
        }
    }
    let mut valid = true;
    for (path, payload) in all {
        if let Some((tf, Value::String(text))) = field(payload, "text")
            && hex_len(text).is_none()
        {
            valid = false;
            let hint: String = text.bytes().map(|b| format!("{b:02x}")).collect();
            out.push(Finding::at(
                &INVALID_HEX_PAYLOAD,
                with(&path, [PathStep::Field(tf)]),
                format!("payload text '{text}' is not hex (expected pairs of hex digits; '{text}' as bytes is {hint})"),
            ));
        }
    }
    valid
}

fn response_buffer(http: &DynamicMessage, base: &[PathStep], out: &mut Vec<Finding>) {
    const DEFAULT_BUFFER: u64 = 1024;
    let Some((rf, receive)) = messages(http, "receive") else {
        return;
    };
    let total: u64 = receive
        .iter()
        .map(|(_, p)| match field(p, "text") {
            Some((_, Value::String(t))) => hex_len(t).unwrap_or(0) as u64,
            _ => match field(p, "binary") {
                Some((_, Value::Bytes(b))) => b.len() as u64,
                _ => 0,
            },
        })
        .sum();
    let size = wrapped_u64(http, "response_buffer_size");
    let buffer = size.as_ref().map_or(DEFAULT_BUFFER, |(_, n)| *n);
    if buffer == 0 || total <= buffer {
        return;
    }
    let at = match size {
        Some((f, _)) => f,
        None => rf,
    };
    out.push(Finding::at(
        &RESPONSE_BUFFER_TOO_SMALL,
        with(base, [PathStep::Field(at)]),
        format!("receive payloads total {total} bytes but response_buffer_size is {buffer}"),
    ));
}

#[cfg(test)]
mod tests {
    use super::hex_len;

    #[test]
    fn payload_text_is_pairs_of_hex_digits() {
        assert_eq!(hex_len("4F4b"), Some(2));
        assert_eq!(hex_len("4f4"), None);
        assert_eq!(hex_len("ping"), None);
        assert_eq!(hex_len("0x"), None);
        assert_eq!(hex_len("+1"), None);
    }
}
