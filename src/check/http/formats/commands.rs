//! The format string parser: Envoy's token pattern, its table of commands
//! with the shape of each (argument, `:N` length), and the options the
//! commands that validate their argument accept. Kept apart from where
//! format strings occur so that a new Envoy command is one table entry.

use super::Format;
use crate::check::Rule;
use crate::check::http::{msg, text};
use prost_reflect::Value;
use regex::Regex;
use std::sync::LazyLock;

pub static UNKNOWN_COMMAND: Rule = Rule {
    id: "format-unknown-command",
    summary: "a substitution format string uses a `%COMMAND%` that Envoy 1.40 does not know",
    explanation: "Envoy parses every `%...%` command in access-log formats and header values when it \
loads the config, and refuses the whole listener if a command name is unknown (\"Not supported field in \
StreamInfo\"). Command names are case-sensitive upper case. Commands from formatter extensions \
(FILE_CONTENT, SECRET, REQ_WITHOUT_QUERY) work only when that extension is listed under `formatters`. Fix \
the name, or write a literal percent sign as `%%`.",
    envoy: "source/common/formatter/substitution_formatter.cc",
    ..Rule::ERROR
};

pub static MALFORMED_COMMAND: Rule = Rule {
    id: "format-malformed-command",
    summary: "a `%` in a format string does not start a well-formed `%COMMAND(arg):N%` token",
    explanation: "In Envoy format strings (access logs and header values) every `%` starts a command such \
as `%REQ(:PATH)%`, which must be closed by another `%`. Command names are upper case. A literal percent \
sign must be written `%%`. Envoy rejects the config if a `%` does not begin a well-formed command.",
    envoy: "source/common/formatter/substitution_formatter.cc",
    ..Rule::ERROR
};

pub static COMMAND_ARGUMENTS: Rule = Rule {
    id: "format-command-arguments",
    summary: "a format command is given an argument or length it does not take, or lacks a required argument",
    explanation: "Each format command has a fixed shape. Header commands such as `%REQ(name)%` need a \
header name (optionally `name?fallback`, and at most one fallback). Most commands take no argument. Only \
some accept a `:N` truncation length. Envoy checks these shapes when it loads the config and rejects the \
listener on a mismatch.",
    envoy: "source/common/formatter/substitution_format_utility.cc",
    ..Rule::ERROR
};

pub static COMMAND_OPTION: Rule = Rule {
    id: "format-command-option",
    summary: "a format command's argument is not one of the values that command accepts",
    explanation: "Some format commands take an option from a fixed list, e.g. `%GRPC_STATUS(CAMEL_STRING)%`, \
`%PATH(NQ:ORIG)%`, `%FILTER_STATE(key:PLAIN)%`, `%COMMON_DURATION(start:end:ms)%`. Envoy validates these \
options at load time and rejects the config on an unknown one. Use one of the listed spellings.",
    envoy: "source/common/formatter/stream_info_formatter.cc",
    ..Rule::ERROR
};

/// Envoy's token pattern (`SubstitutionFormatParser::parse`), anchored at a `%`.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^%([A-Z0-9_]+)(?:\((.*?)\))?(?::([0-9]+))?%").expect("static pattern")
});

/// What a command accepts.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// No argument, no length.
    Bare,
    /// A header name argument (`main?alt`), length allowed.
    Header,
    /// Argument required, length allowed.
    Required,
    /// Argument required, no length.
    RequiredNoLength,
    /// Argument optional, no length.
    OptionalNoLength,
    /// Argument optional, length allowed.
    Optional,
}

const BARE: &[&str] = &[
    "ACCESS_LOG_TYPE",
    "BYTES_RECEIVED",
    "BYTES_RETRANSMITTED",
    "BYTES_SENT",
    "CONNECTION_ID",
    "CONNECTION_TERMINATION_DETAILS",
    "CUSTOM_FLAGS",
    "DOWNSTREAM_CX_RTT",
    "DOWNSTREAM_DECOMPRESSED_HEADER_BYTES_RECEIVED",
    "DOWNSTREAM_DECOMPRESSED_HEADER_BYTES_SENT",
    "DOWNSTREAM_DETECTED_CLOSE_TYPE",
    "DOWNSTREAM_DIRECT_LOCAL_ADDRESS",
    "DOWNSTREAM_DIRECT_LOCAL_ADDRESS_ENDPOINT_ID",
    "DOWNSTREAM_DIRECT_LOCAL_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
    "DOWNSTREAM_DIRECT_REMOTE_PORT",
    "DOWNSTREAM_HANDSHAKE_DURATION",
    "DOWNSTREAM_HEADER_BYTES_RECEIVED",
    "DOWNSTREAM_HEADER_BYTES_SENT",
    "DOWNSTREAM_LOCAL_ADDRESS",
    "DOWNSTREAM_LOCAL_ADDRESS_ENDPOINT_ID",
    "DOWNSTREAM_LOCAL_CLOSE_REASON",
    "DOWNSTREAM_LOCAL_DNS_SAN",
    "DOWNSTREAM_LOCAL_EMAIL_SAN",
    "DOWNSTREAM_LOCAL_IP_SAN",
    "DOWNSTREAM_LOCAL_OTHERNAME_SAN",
    "DOWNSTREAM_LOCAL_PORT",
    "DOWNSTREAM_LOCAL_SUBJECT",
    "DOWNSTREAM_LOCAL_URI_SAN",
    "DOWNSTREAM_PEER_CERT",
    "DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_1",
    "DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_256",
    "DOWNSTREAM_PEER_CHAIN_SERIALS",
    "DOWNSTREAM_PEER_DNS_SAN",
    "DOWNSTREAM_PEER_EMAIL_SAN",
    "DOWNSTREAM_PEER_FINGERPRINT_1",
    "DOWNSTREAM_PEER_FINGERPRINT_256",
    "DOWNSTREAM_PEER_IP_SAN",
    "DOWNSTREAM_PEER_ISSUER",
    "DOWNSTREAM_PEER_ISSUER_FINGERPRINT_256",
    "DOWNSTREAM_PEER_ISSUER_SERIAL",
    "DOWNSTREAM_PEER_OTHERNAME_SAN",
    "DOWNSTREAM_PEER_SERIAL",
    "DOWNSTREAM_PEER_SUBJECT",
    "DOWNSTREAM_PEER_URI_SAN",
    "DOWNSTREAM_REMOTE_ADDRESS",
    "DOWNSTREAM_REMOTE_PORT",
    "DOWNSTREAM_TLS_CIPHER",
    "DOWNSTREAM_TLS_GROUP",
    "DOWNSTREAM_TLS_SESSION_ID",
    "DOWNSTREAM_TLS_VERSION",
    "DOWNSTREAM_TRANSPORT_FAILURE_REASON",
    "DOWNSTREAM_WIRE_BYTES_RECEIVED",
    "DOWNSTREAM_WIRE_BYTES_SENT",
    "DURATION",
    "FILTER_CHAIN_NAME",
    "GRPC_STATUS_NUMBER",
    "HOSTNAME",
    "LISTENER_NAME",
    "LOCAL_REPLY_BODY",
    "PACKETS_RETRANSMITTED",
    "PROTOCOL",
    "REQUEST_DURATION",
    "REQUEST_HEADERS_BYTES",
    "REQUEST_TX_DURATION",
    "RESPONSE_CODE",
    "RESPONSE_DURATION",
    "RESPONSE_FLAGS",
    "RESPONSE_FLAGS_LONG",
    "RESPONSE_HEADERS_BYTES",
    "RESPONSE_TRAILERS_BYTES",
    "RESPONSE_TX_DURATION",
    "ROUNDTRIP_DURATION",
    "ROUTE_NAME",
    "ROUTE_RESOLUTION_COUNT",
    "ROUTE_RESOLUTION_TIME_US",
    "SPAN_ID",
    "STREAM_ID",
    "TLS_JA3_FINGERPRINT",
    "TLS_JA4_FINGERPRINT",
    "TRACE_ID",
    "UNIQUE_ID",
    "UPSTREAM_CLUSTER",
    "UPSTREAM_CLUSTER_RAW",
    "UPSTREAM_CONNECTION_ID",
    "UPSTREAM_CONNECTION_IDS_ATTEMPTED",
    "UPSTREAM_CONNECTION_POOL_READY_DURATION",
    "UPSTREAM_DECOMPRESSED_HEADER_BYTES_RECEIVED",
    "UPSTREAM_DECOMPRESSED_HEADER_BYTES_SENT",
    "UPSTREAM_DETECTED_CLOSE_TYPE",
    "UPSTREAM_HEADER_BYTES_RECEIVED",
    "UPSTREAM_HEADER_BYTES_SENT",
    "UPSTREAM_HOST",
    "UPSTREAM_HOSTS_ATTEMPTED",
    "UPSTREAM_HOSTS_ATTEMPTED_WITHOUT_PORT",
    "UPSTREAM_HOST_NAME",
    "UPSTREAM_HOST_NAMES_ATTEMPTED",
    "UPSTREAM_HOST_NAMES_ATTEMPTED_WITHOUT_PORT",
    "UPSTREAM_HOST_NAME_WITHOUT_PORT",
    "UPSTREAM_LOCAL_ADDRESS",
    "UPSTREAM_LOCAL_CLOSE_REASON",
    "UPSTREAM_LOCAL_DNS_SAN",
    "UPSTREAM_LOCAL_IP_SAN",
    "UPSTREAM_LOCAL_PORT",
    "UPSTREAM_LOCAL_URI_SAN",
    "UPSTREAM_PEER_CERT",
    "UPSTREAM_PEER_DNS_SAN",
    "UPSTREAM_PEER_IP_SAN",
    "UPSTREAM_PEER_ISSUER",
    "UPSTREAM_PEER_SUBJECT",
    "UPSTREAM_PEER_URI_SAN",
    "UPSTREAM_PROTOCOL",
    "UPSTREAM_REMOTE_ADDRESS",
    "UPSTREAM_REMOTE_ADDRESS_ENDPOINT_ID",
    "UPSTREAM_REMOTE_PORT",
    "UPSTREAM_REQUEST_ATTEMPT_COUNT",
    "UPSTREAM_SERVER_NAME",
    "UPSTREAM_TLS_CIPHER",
    "UPSTREAM_TLS_GROUP",
    "UPSTREAM_TLS_SESSION_ID",
    "UPSTREAM_TLS_VERSION",
    "UPSTREAM_TRANSPORT_FAILURE_REASON",
    "UPSTREAM_WIRE_BYTES_RECEIVED",
    "UPSTREAM_WIRE_BYTES_SENT",
    "VIRTUAL_CLUSTER_NAME",
];

const HEADER: &[&str] = &[
    "REQ",
    "REQUEST_HEADER",
    "RESP",
    "RESPONSE_HEADER",
    "TRAILER",
    "RESPONSE_TRAILER",
    "STREAM_INFO_REQ",
];
const REQUIRED: &[&str] = &["DYNAMIC_METADATA", "ENVIRONMENT", "QUERY_PARAM"];
const REQUIRED_NO_LENGTH: &[&str] = &["CLUSTER_METADATA", "UPSTREAM_METADATA", "COMMON_DURATION"];
const OPTIONAL_NO_LENGTH: &[&str] = &[
    "START_TIME",
    "START_TIME_LOCAL",
    "EMIT_TIME",
    "EMIT_TIME_LOCAL",
    "RESPONSE_CODE_DETAILS",
    "DOWNSTREAM_PEER_CERT_V_START",
    "DOWNSTREAM_PEER_CERT_V_END",
    "UPSTREAM_PEER_CERT_V_START",
    "UPSTREAM_PEER_CERT_V_END",
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
    "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
    "GRPC_STATUS",
    "REQUESTED_SERVER_NAME",
];
/// Optional argument, length allowed; the last four validate their argument
/// themselves (METADATA, CEL, TYPED_CEL, COALESCE, XFCC_VALUE: only where lint knows how).
const OPTIONAL: &[&str] = &[
    "PATH",
    "QUERY_PARAMS",
    "FILTER_STATE",
    "UPSTREAM_FILTER_STATE",
    "METADATA",
    "CEL",
    "TYPED_CEL",
    "COALESCE",
    "XFCC_VALUE",
];

/// The commands formatter extensions add, by their config type.
const EXTENSIONS: &[(&str, &str)] = &[
    (
        "envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery",
        "REQ_WITHOUT_QUERY",
    ),
    (
        "envoy.extensions.formatter.file_content.v3.FileContent",
        "FILE_CONTENT",
    ),
    (
        "envoy.extensions.formatter.generic_secret.v3.GenericSecret",
        "SECRET",
    ),
    (
        "envoy.extensions.formatter.metadata.v3.Metadata",
        "METADATA",
    ),
    ("envoy.extensions.formatter.cel.v3.Cel", "CEL"),
];

fn shape(command: &str, header_value: bool) -> Option<Shape> {
    let has = |list: &[&str]| list.contains(&command);
    Some(if has(BARE) {
        Shape::Bare
    } else if has(HEADER) {
        Shape::Header
    } else if has(REQUIRED) {
        Shape::Required
    } else if has(REQUIRED_NO_LENGTH) {
        Shape::RequiredNoLength
    } else if has(OPTIONAL_NO_LENGTH) {
        Shape::OptionalNoLength
    } else if has(OPTIONAL) || (header_value && command == "PER_REQUEST_STATE") {
        // Header values rewrite PER_REQUEST_STATE(x) to FILTER_STATE(x:PLAIN).
        Shape::Optional
    } else {
        return None;
    })
}

pub(super) fn first_defect(text: &str, format: &Format<'_>) -> Option<(&'static Rule, String)> {
    let mut pos = 0;
    while let Some(offset) = text.get(pos..)?.find('%') {
        pos += offset;
        let rest = text.get(pos..)?;
        if rest.starts_with("%%") {
            pos += 2;
            continue;
        }
        let Some(token) = TOKEN.captures(rest) else {
            return Some((
                &MALFORMED_COMMAND,
                format!(
                    "malformed format command at byte {pos} of {}: write a literal % as %%",
                    format.what
                ),
            ));
        };
        let whole = token.get(0).map_or(1, |m| m.len());
        let command = token.get(1).map_or("", |m| m.as_str());
        let arg = token.get(2).map_or("", |m| m.as_str());
        let length = token.get(3).is_some();
        if let Some(defect) = command_defect(command, arg, length, format) {
            return Some(defect);
        }
        pos += whole;
    }
    None
}

fn command_defect(
    command: &str,
    arg: &str,
    length: bool,
    format: &Format<'_>,
) -> Option<(&'static Rule, String)> {
    let known_extension = format
        .extensions
        .as_ref()
        .is_none_or(|known| known.contains(&command));
    let Some(shape) = shape(command, format.header_value) else {
        return (!known_extension).then(|| {
            (
                &UNKNOWN_COMMAND,
                format!("unknown format command %{command}% in {}", format.what),
            )
        });
    };
    let args = |m: String| Some((&COMMAND_ARGUMENTS, m));
    match shape {
        Shape::Bare if !arg.is_empty() || length => {
            return args(format!("%{command}% takes no argument or length"));
        }
        Shape::Header | Shape::Required | Shape::RequiredNoLength if arg.is_empty() => {
            return args(format!("%{command}% requires an argument"));
        }
        Shape::RequiredNoLength | Shape::OptionalNoLength if length => {
            return args(format!("%{command}% does not accept a :N length"));
        }
        Shape::Header => return header_argument(command, arg),
        _ => {}
    }
    option_defect(command, arg).map(|why| (&COMMAND_OPTION, format!("%{command}({arg})%: {why}")))
}

/// `main[?alt]`: at most one alternative, both valid header names.
fn header_argument(command: &str, arg: &str) -> Option<(&'static Rule, String)> {
    let parts: Vec<&str> = arg.split('?').collect();
    if parts.len() > 2 {
        return Some((
            &COMMAND_ARGUMENTS,
            format!("%{command}({arg})% names more than two headers"),
        ));
    }
    if !parts.iter().all(|p| header_name_is_valid(p)) {
        return Some((
            &COMMAND_ARGUMENTS,
            format!("%{command}({arg})% has an invalid header name"),
        ));
    }
    None
}

/// `HeaderUtility::headerNameIsValid`: RFC 7230 token characters, after an
/// optional `:` (an empty name is valid).
fn header_name_is_valid(name: &str) -> bool {
    let name = match name.strip_prefix(':') {
        Some("") => return false,
        Some(rest) => rest,
        None => name,
    };
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// What is wrong with a known command's argument, for commands that validate it.
fn option_defect(command: &str, arg: &str) -> Option<String> {
    let one_of = |allowed: &[&str], what: &str| {
        (!arg.is_empty() && !allowed.contains(&arg)).then(|| format!("option must be {what}"))
    };
    match command {
        "FILTER_STATE" | "UPSTREAM_FILTER_STATE" => filter_state(arg),
        "PER_REQUEST_STATE" if arg.is_empty() => Some("a key is required".into()),
        "COMMON_DURATION" => common_duration(arg),
        "GRPC_STATUS" => one_of(
            &["CAMEL_STRING", "SNAKE_STRING", "NUMBER"],
            "CAMEL_STRING, SNAKE_STRING or NUMBER",
        ),
        "REQUESTED_SERVER_NAME" => one_of(
            &["SNI_ONLY", "SNI_FIRST", "HOST_FIRST"],
            "SNI_ONLY, SNI_FIRST or HOST_FIRST",
        ),
        "QUERY_PARAMS" => one_of(&["ORIG", "DECODED"], "ORIG or DECODED"),
        "PATH" => path_option(arg),
        "METADATA" => metadata(arg),
        "XFCC_VALUE" => xfcc(arg),
        _ => None,
    }
}

fn filter_state(arg: &str) -> Option<String> {
    let mut parts = arg.splitn(3, ':');
    let key = parts.next().unwrap_or("");
    let kind = parts.next().unwrap_or("");
    let field = parts.next().unwrap_or("");
    if key.is_empty() {
        return Some("a filter state key is required".into());
    }
    if !["", "PLAIN", "TYPED", "FIELD"].contains(&kind) {
        return Some(format!(
            "serialization type {kind} is not PLAIN, TYPED or FIELD"
        ));
    }
    if (kind == "FIELD") == field.is_empty() {
        return Some("FIELD goes with a field name, and only FIELD takes one".into());
    }
    None
}

fn common_duration(arg: &str) -> Option<String> {
    let parts: Vec<&str> = arg.split(':').collect();
    match parts.as_slice() {
        [_, _] => None,
        [_, _, precision] if ["ms", "us", "ns"].contains(precision) => None,
        [_, _, precision] => Some(format!("precision {precision} is not ms, us or ns")),
        _ => Some("expected START:END[:PRECISION]".into()),
    }
}

fn path_option(arg: &str) -> Option<String> {
    let (query, source) = arg.split_once(':').unwrap_or((arg, ""));
    if !["", "WQ", "NQ"].contains(&query) {
        return Some(format!("{query} is not WQ or NQ"));
    }
    if !["", "ORIG", "PATH", "ORIG_OR_PATH"].contains(&source) {
        return Some(format!("{source} is not ORIG, PATH or ORIG_OR_PATH"));
    }
    None
}

fn metadata(arg: &str) -> Option<String> {
    const KINDS: &[&str] = &[
        "DYNAMIC",
        "CLUSTER",
        "ROUTE",
        "UPSTREAM_HOST",
        "LISTENER",
        "LISTENER_FILTER_CHAIN",
        "VIRTUAL_HOST",
    ];
    let kind = arg.split(':').next().unwrap_or("");
    (!KINDS.contains(&kind)).then(|| format!("metadata type '{kind}' is not supported"))
}

fn xfcc(arg: &str) -> Option<String> {
    const KEYS: &[&str] = &["by", "hash", "cert", "chain", "subject", "uri", "dns"];
    if arg.is_empty() {
        return Some("a subcommand is required".into());
    }
    let key = arg.to_ascii_lowercase();
    (!KEYS.contains(&key.as_str())).then(|| format!("unknown subcommand {key}"))
}

/// The commands `formatters` add; `None` when one of them is unknown to lint.
pub(super) fn extensions(formatters: &[Value]) -> Option<Vec<&'static str>> {
    let mut known = Vec::new();
    for formatter in formatters.iter().filter_map(Value::as_message) {
        let url = msg(formatter, "typed_config").map_or("", |any| text(any, "type_url"));
        let type_name = url.rsplit('/').next().unwrap_or(url);
        let (_, command) = EXTENSIONS.iter().find(|(t, _)| *t == type_name)?;
        known.push(*command);
    }
    Some(known)
}
