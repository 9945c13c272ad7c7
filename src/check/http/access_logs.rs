//! Access loggers: where the log entries go.

use super::{msg, step};
use crate::check::{Finding, Rule};
use prost_reflect::DynamicMessage;

pub static OPENTELEMETRY_TRANSPORT: Rule = Rule {
    id: "access-log-opentelemetry-transport",
    summary: "the OpenTelemetry access logger does not have exactly one transport",
    explanation: "The OpenTelemetry access logger sends its records through exactly one transport: \
`grpc_service`, `http_service`, or the older `common_config.grpc_service`. Envoy 1.40 refuses a logger \
with none (\"OpenTelemetry access logger requires one of: grpc_service, http_service, or \
common_config.grpc_service to be configured\") or with more than one (\"can only have one transport \
configured\").",
    envoy: "source/extensions/access_loggers/open_telemetry/config.cc",
    ..Rule::ERROR
};

pub fn message(name: &str, m: &DynamicMessage, out: &mut Vec<Finding>) {
    if name == "envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig" {
        opentelemetry(m, out);
    }
}

/// Counts the transports as config.cc does: `common_config` counts only
/// when it holds a grpc_service.
fn opentelemetry(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let common_grpc = msg(m, "common_config").is_some_and(|c| c.has_field_by_name("grpc_service"));
    let mut set: Vec<&str> = ["grpc_service", "http_service"]
        .into_iter()
        .filter(|f| m.has_field_by_name(f))
        .collect();
    if common_grpc {
        set.push("common_config");
    }
    let message = "the OpenTelemetry access logger needs exactly one of grpc_service, http_service or common_config.grpc_service";
    match set.as_slice() {
        [] => out.push(Finding::missing_in(
            &OPENTELEMETRY_TRANSPORT,
            Vec::new(),
            message,
        )),
        [_] => {}
        [_, second, ..] => out.push(Finding::at(
            &OPENTELEMETRY_TRANSPORT,
            step(m, second),
            message,
        )),
    }
}
