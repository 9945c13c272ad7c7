//! Substitution format strings (`%REQ(:PATH)%`): access log formats, local
//! replies, direct response bodies, path rewrites and header values. Envoy
//! parses every one when it loads the config; one parser serves them all.
//!
//! `commands.rs` is that parser, with Envoy's table of commands and what
//! each accepts; the places format strings occur are apart from it, since
//! they grow with every Envoy extension that builds one at load:
//! `headers.rs` (header lists built by the HeaderParser, gRPC and HTTP
//! services) and `log_formats.rs` (SubstitutionFormatString, the legacy
//! file log formats, OpenTelemetry log bodies).

mod commands;
mod headers;
mod log_formats;

use super::field;
use crate::check::{Finding, Place};
use crate::config::resource::PathStep;
use commands::first_defect;
use headers::{
    GRPC_CLIENTS_BUILT_AT_LOAD, HTTP_SERVICES_BUILT_AT_LOAD, ext_authz, header_option, held_by,
    http_service, parsed_headers,
};
use log_formats::{legacy_file_log, opentelemetry_log, substitution_format};
use prost_reflect::{DynamicMessage, Value};

pub use commands::{COMMAND_ARGUMENTS, COMMAND_OPTION, MALFORMED_COMMAND, UNKNOWN_COMMAND};
pub use headers::header_option_is_parsed;

/// Where a format string is and what it may use.
pub struct Format<'a> {
    /// The field holding it, for messages (`log_format.text_format`).
    pub what: &'a str,
    /// A header value (which knows PER_REQUEST_STATE) rather than a log format.
    pub header_value: bool,
    /// Commands added by `formatters`; `None` when an unknown formatter may add any.
    pub extensions: Option<Vec<&'static str>>,
}

/// Checks one format string; reports the first defect, located at `path`.
pub fn check(text: &str, format: &Format<'_>, path: Vec<PathStep>, out: &mut Vec<Finding>) {
    if let Some((rule, message)) = first_defect(text, format) {
        out.push(Finding::at(rule, path, message));
    }
}

/// Finds the format strings of `m` and checks them.
pub fn message(name: &str, m: &DynamicMessage, place: &Place<'_>, out: &mut Vec<Finding>) {
    match name {
        "envoy.config.core.v3.SubstitutionFormatString" => substitution_format(m, out),
        "envoy.extensions.access_loggers.file.v3.FileAccessLog" => legacy_file_log(m, out),
        "envoy.config.core.v3.HeaderValueOption" if header_option_is_parsed(place.path) => {
            header_option(m, out)
        }
        "envoy.config.core.v3.GrpcService" if held_by(place.path, GRPC_CLIENTS_BUILT_AT_LOAD) => {
            parsed_headers(m, "initial_metadata", &[], out)
        }
        "envoy.config.core.v3.HttpService" if held_by(place.path, HTTP_SERVICES_BUILT_AT_LOAD) => {
            http_service(m, out)
        }
        "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz" => ext_authz(m, out),
        "envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig" => {
            opentelemetry_log(m, out)
        }
        "envoy.config.route.v3.RouteAction" => path_rewrite(m, out),
        _ => {}
    }
}

/// RouteAction `path_rewrite` (a format string since 1.36).
fn path_rewrite(m: &DynamicMessage, out: &mut Vec<Finding>) {
    if let Some((f, Value::String(s))) = field(m, "path_rewrite") {
        let format = Format {
            what: "path_rewrite",
            header_value: false,
            extensions: Some(Vec::new()),
        };
        check(s, &format, vec![PathStep::Field(f)], out);
    }
}

#[cfg(test)]
mod tests;
