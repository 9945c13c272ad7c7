//! Certificates, keys, TLS contexts and secrets: what Envoy refuses when it
//! builds a TLS context (BoringSSL loading the PEM material, its curve and
//! signature lists) or resolves a secret.
//!
//! * [`certificate`]: a TlsCertificate (chain, key, their pairing);
//! * [`validation`]: a CertificateValidationContext (trusted CA, pins);
//! * [`context`]: Downstream/UpstreamTlsContext and their parameters;
//! * [`secrets`]: Secret resources and the SDS references to them;
//! * [`pem`]: reading PEM and DER as BoringSSL does.
//!
//! TLS material is only judged where Envoy loads it: inline in a TLS
//! context, or in a Secret that a TLS context references.

mod certificate;
mod context;
mod pem;
mod secrets;
mod strict;
mod validation;

use super::proxyless_grpc::is_for_proxyless_grpc;
use super::{Finding, Place, Rule};
use crate::config::diag::Diagnostics;
use crate::config::reflect::field;
use crate::config::resource::{PathStep, Resource};
use prost_reflect::{DynamicMessage, FieldDescriptor, ReflectMessage, Value};

/// The rules this module reports.
pub static RULES: &[&Rule] = &[
    &certificate::CHAIN_INVALID,
    &certificate::PRIVATE_KEY_INVALID,
    &certificate::KEY_CERT_MISMATCH,
    &certificate::INCOMPLETE,
    &certificate::KEY_TOO_SMALL,
    &certificate::NO_NAME,
    &certificate::OCSP_INLINE_STRING,
    &validation::TRUSTED_CA_INVALID,
    &validation::WITHOUT_TRUSTED_CA,
    &validation::PIN_INVALID,
    &context::WRONG_DIRECTION,
    &context::ECDH_CURVE_UNKNOWN,
    &context::SIGNATURE_ALGORITHM_UNKNOWN,
    &context::SESSION_TICKET_KEY_LENGTH,
    &context::SERVER_NO_CERTIFICATE,
    &context::SERVER_CERTIFICATES_MIXED,
    &context::ALPN_INVALID,
    &context::OCSP_STAPLE_MISSING,
    &context::CLIENT_MULTIPLE_CERTIFICATES,
    &context::AUTO_SNI_SAN_WITHOUT_CA,
    &context::QUIC_CLIENT_CERTIFICATE,
    &secrets::KIND_MISMATCH,
    &secrets::TYPE_MISSING,
];

const TLS: &str = "envoy.extensions.transport_sockets.tls.v3.";
const DOWNSTREAM: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const UPSTREAM: &str = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const QUIC_DOWNSTREAM: &str = "envoy.extensions.transport_sockets.quic.v3.QuicDownstreamTransport";
const QUIC_UPSTREAM: &str = "envoy.extensions.transport_sockets.quic.v3.QuicUpstreamTransport";

/// Checks one message at `place`.
pub fn message(m: &DynamicMessage, place: &Place<'_>, out: &mut Vec<Finding>) {
    let name = m.descriptor().full_name().to_string();
    match name.as_str() {
        DOWNSTREAM => {
            // gRPC servers take certificates from a provider, not inline
            // (grpc-server-tls judges theirs).
            let envoy_server = in_listener(place.path) && !is_for_proxyless_grpc(place.resource);
            context::downstream(m, in_quic(place.path), envoy_server, out)
        }
        UPSTREAM => context::upstream(m, out),
        QUIC_DOWNSTREAM => context::quic_client_certificate(m, out),
        "envoy.config.listener.v3.FilterChain" => context::direction(m, true, out),
        "envoy.config.cluster.v3.Cluster"
        | "envoy.config.cluster.v3.Cluster.TransportSocketMatch" => {
            context::direction(m, false, out)
        }
        _ if place.path.is_empty() && name == format!("{TLS}Secret") => {
            secrets::type_missing(m, out)
        }
        _ => {}
    }
}

/// Checks across resources.
pub fn set(resources: &[Resource], diags: &mut Diagnostics) {
    secrets::set(resources, diags);
}

/// Is the message at `path` the TLS context of a QUIC transport?
fn in_quic(path: &[PathStep]) -> bool {
    matches!(path.last(), Some(PathStep::Field(f)) if f.parent_message().full_name() == QUIC_DOWNSTREAM)
}

/// Is the message at `path` inside a filter chain's transport socket? Only
/// there is a DownstreamTlsContext built as a server context; in a
/// cluster it is the wrong direction, reported by itself.
fn in_listener(path: &[PathStep]) -> bool {
    path.iter().any(|step| {
        matches!(step, PathStep::Field(f)
            if f.full_name() == "envoy.config.listener.v3.FilterChain.transport_socket")
    })
}

/// What a `DataSource` field holds, as far as lint can see.
enum Data<'m> {
    /// Not set, or set to `{}`.
    Unset,
    /// `inline_string` or `inline_bytes`: the field and its bytes.
    Inline(FieldDescriptor, &'m [u8]),
    /// A file or an environment variable: unknown content.
    Elsewhere,
}

impl Data<'_> {
    /// Is there certainly no data (unset, or an empty inline value)?
    fn is_empty(&self) -> bool {
        match self {
            Data::Unset => true,
            Data::Inline(_, bytes) => bytes.is_empty(),
            Data::Elsewhere => false,
        }
    }
}

/// The `DataSource` in field `name` of `m`, with the path to it. Findings
/// about its content are reported with [`Finding::missing_in`] on that
/// path: at the `inline_string:` line, also for a block scalar (whose own
/// mark is the line after).
fn data<'m>(m: &'m DynamicMessage, name: &str) -> (Vec<PathStep>, Data<'m>) {
    let Some((f, Value::Message(source))) = field(m, name) else {
        return (Vec::new(), Data::Unset);
    };
    let path = vec![PathStep::Field(f)];
    for inline in ["inline_string", "inline_bytes"] {
        match field(source, inline) {
            Some((f, Value::String(s))) => return (path, Data::Inline(f, s.as_bytes())),
            Some((f, Value::Bytes(b))) => return (path, Data::Inline(f, b.as_ref())),
            _ => {}
        }
    }
    let elsewhere = ["filename", "environment_variable"]
        .iter()
        .any(|n| field(source, n).is_some());
    (
        path,
        if elsewhere {
            Data::Elsewhere
        } else {
            Data::Unset
        },
    )
}

/// A set message field of `m`, with its path step.
fn child<'m>(m: &'m DynamicMessage, name: &str) -> Option<(PathStep, &'m DynamicMessage)> {
    match field(m, name)? {
        (f, Value::Message(c)) => Some((PathStep::Field(f), c)),
        _ => None,
    }
}

/// The message items of a repeated field of `m`, with the field's step.
fn items<'m>(m: &'m DynamicMessage, name: &str) -> Option<(PathStep, Vec<&'m DynamicMessage>)> {
    let (f, values) = crate::config::reflect::list(m, name)?;
    Some((
        PathStep::Field(f),
        values.iter().filter_map(Value::as_message).collect(),
    ))
}

/// Is the (bool or BoolValue) field `name` of `m` true?
fn is_true(m: &DynamicMessage, name: &str) -> bool {
    match field(m, name) {
        Some((_, Value::Bool(b))) => *b,
        Some((_, Value::Message(w))) => matches!(field(w, "value"), Some((_, Value::Bool(true)))),
        _ => false,
    }
}

/// Is field `name` of `m` set (a repeated one: non-empty)?
fn has(m: &DynamicMessage, name: &str) -> bool {
    match field(m, name) {
        Some((_, Value::List(l))) => !l.is_empty(),
        Some(_) => true,
        None => false,
    }
}

/// `base` followed by `steps`.
fn join(base: &[PathStep], steps: impl IntoIterator<Item = PathStep>) -> Vec<PathStep> {
    base.iter().cloned().chain(steps).collect()
}

/// Findings made relative to a nested message, moved under `base`.
fn under(base: &[PathStep], findings: Vec<Finding>, out: &mut Vec<Finding>) {
    out.extend(findings.into_iter().map(|mut f| {
        f.path = join(base, f.path);
        f
    }));
}

#[cfg(test)]
mod tests;
