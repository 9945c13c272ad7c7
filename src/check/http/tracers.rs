//! Tracers: where the spans go.

use super::{step, text};
use crate::check::{Finding, Rule};
use prost_reflect::DynamicMessage;

pub static ZIPKIN_COLLECTOR: Rule = Rule {
    id: "tracer-zipkin-collector",
    summary: "zipkin without collector_service lacks collector_cluster or collector_endpoint",
    explanation: "The Zipkin tracer needs to know where to send spans: either collector_service, or both \
collector_cluster and collector_endpoint (e.g. /api/v2/spans).",
    envoy: "source/extensions/tracers/zipkin/zipkin_tracer_impl.cc",
    ..Rule::ERROR
};

pub static OPENTELEMETRY_EXPORTER: Rule = Rule {
    id: "tracer-opentelemetry-exporter",
    summary: "the OpenTelemetry tracer does not have exactly one exporter",
    explanation: "The OpenTelemetry tracer exports spans through exactly one channel: an OTLP gRPC service, \
an OTLP HTTP service, or a custom exporter extension. Envoy 1.40 rejects a config with none or with more \
than one.",
    envoy: "source/extensions/tracers/opentelemetry/opentelemetry_tracer_impl.cc",
    ..Rule::ERROR
};

pub fn message(name: &str, m: &DynamicMessage, out: &mut Vec<Finding>) {
    match name {
        "envoy.config.trace.v3.ZipkinConfig"
            if !m.has_field_by_name("collector_service")
                && (text(m, "collector_cluster").is_empty()
                    || text(m, "collector_endpoint").is_empty()) =>
        {
            out.push(Finding::missing_in(
                &ZIPKIN_COLLECTOR,
                Vec::new(),
                "zipkin needs collector_cluster and collector_endpoint (or collector_service)",
            ));
        }
        "envoy.config.trace.v3.OpenTelemetryConfig" => {
            let set: Vec<&str> = ["grpc_service", "http_service", "exporter"]
                .into_iter()
                .filter(|f| m.has_field_by_name(f))
                .collect();
            let message =
                "opentelemetry tracer needs exactly one of grpc_service, http_service or exporter";
            match set.as_slice() {
                [] => out.push(Finding::missing_in(
                    &OPENTELEMETRY_EXPORTER,
                    Vec::new(),
                    message,
                )),
                [_] => {}
                [_, second, ..] => out.push(Finding::at(
                    &OPENTELEMETRY_EXPORTER,
                    step(m, second),
                    message,
                )),
            }
        }
        _ => {}
    }
}
