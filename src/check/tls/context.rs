//! Downstream and upstream TLS contexts: which side takes which, the lists
//! handed to BoringSSL (curves, signature algorithms, ALPN), session ticket
//! keys, and how many certificates each side may carry.

use super::{
    DOWNSTREAM, QUIC_DOWNSTREAM, QUIC_UPSTREAM, UPSTREAM, certificate, child, field, has, is_true,
    items, join, under, validation,
};
use crate::check::{Finding, Rule};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, Value};

/// A TLS context of the other direction.
pub static WRONG_DIRECTION: Rule = Rule {
    id: "tls-context-wrong-direction",
    summary: "an UpstreamTlsContext in a listener, or a DownstreamTlsContext in a cluster",
    explanation: "TLS contexts are directional. A listener terminates TLS from clients with a \
DownstreamTlsContext (certificate required), and a cluster originates TLS to backends with an \
UpstreamTlsContext. Envoy looks up the transport socket factory by the context type, and the other \
direction's type is not registered there.",
    envoy: "source/common/config/utility.h",
    ..Rule::ERROR
};

/// An ECDH curve BoringSSL does not know.
pub static ECDH_CURVE_UNKNOWN: Rule = Rule {
    id: "tls-ecdh-curve-unknown",
    summary: "tls_params.ecdh_curves names a curve BoringSSL does not know",
    explanation: "Envoy hands ecdh_curves to BoringSSL, which refuses the whole list if one name is \
unknown, and the TLS context fails to build. BoringSSL spells the NIST curves P-256/P-384/P-521 \
(prime256v1, secp384r1 and secp521r1 also work, but secp256r1 does not). X25519, X25519MLKEM768 and \
MLKEM1024 are the other choices.",
    envoy: "source/common/tls/context_impl.cc",
    ..Rule::ERROR
};

/// A signature algorithm BoringSSL does not know.
pub static SIGNATURE_ALGORITHM_UNKNOWN: Rule = Rule {
    id: "tls-signature-algorithm-unknown",
    summary: "tls_params.signature_algorithms names an algorithm BoringSSL does not know",
    explanation: "signature_algorithms goes straight to BoringSSL, which refuses the whole list if one \
name is unknown, so the TLS context fails to build. Use the TLS 1.3 names (for example \
ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, ed25519). rsa_pss_pss_* is not supported by BoringSSL.",
    envoy: "source/common/tls/context_impl.cc",
    ..Rule::ERROR
};

/// A session ticket key of the wrong size.
pub static SESSION_TICKET_KEY_LENGTH: Rule = Rule {
    id: "tls-session-ticket-key-length",
    summary: "a session ticket key is not exactly 80 bytes",
    explanation: "Envoy session ticket keys are exactly 80 bytes: a 16-byte name, a 32-byte HMAC secret \
and a 32-byte AES key. Any other length is refused. Generate one with `openssl rand 80` and give it as \
inline_bytes (base64), or as a file.",
    envoy: "source/common/tls/server_context_config_impl.cc",
    ..Rule::ERROR
};

/// A server TLS context without a certificate.
pub static SERVER_NO_CERTIFICATE: Rule = Rule {
    id: "tls-server-no-certificate",
    summary: "a DownstreamTlsContext has no certificate",
    explanation: "A server-side TLS context must present a certificate: inline `tls_certificates` or an SDS \
secret (`tls_certificate_sds_secret_configs`), unless a `custom_tls_certificate_selector` picks them (\"No \
TLS certificates found for server context\"). A `tls_certificate_provider_instance` alone does not count, \
and neither does a context without `common_tls_context`. Only listeners are judged: a DownstreamTlsContext \
in a cluster is the wrong direction, which is reported on its own.",
    envoy: "source/common/tls/server_context_config_impl.cc",
    ..Rule::ERROR
};

/// Inline and SDS certificates in one server context.
pub static SERVER_CERTIFICATES_MIXED: Rule = Rule {
    id: "tls-server-certificates-mixed",
    summary: "a DownstreamTlsContext sets both inline and SDS certificates",
    explanation: "A listener's TLS context takes its certificates either inline or from SDS, not both. \
Move the inline certificate into a Secret and list it in tls_certificate_sds_secret_configs, or drop the \
SDS reference.",
    envoy: "source/common/tls/server_context_config_impl.cc",
    ..Rule::ERROR
};

/// An ALPN protocol name too long for the TLS extension.
pub static ALPN_INVALID: Rule = Rule {
    id: "tls-alpn-protocol-invalid",
    summary: "an alpn_protocols entry is longer than 255 bytes (or the list is too long)",
    explanation: "In the TLS ALPN extension each protocol name is length-prefixed with one byte, so a \
name can be at most 255 bytes. Envoy refuses the context otherwise. ALPN names are short tokens like h2 or \
http/1.1.",
    envoy: "source/common/tls/context_impl.cc",
    ..Rule::ERROR
};

/// MUST_STAPLE without staples.
pub static OCSP_STAPLE_MISSING: Rule = Rule {
    id: "tls-ocsp-staple-missing",
    summary: "ocsp_staple_policy MUST_STAPLE but a certificate has no ocsp_staple",
    explanation: "With MUST_STAPLE Envoy will only serve connections with an OCSP staple, so every \
certificate in the context must carry ocsp_staple, and Envoy refuses the context otherwise. Add the staple \
as inline_bytes, or relax the policy to STRICT_STAPLING or LENIENT_STAPLING.",
    envoy: "source/common/tls/server_context_impl.cc",
    ..Rule::ERROR
};

/// More than one client certificate.
pub static CLIENT_MULTIPLE_CERTIFICATES: Rule = Rule {
    id: "tls-client-multiple-certificates",
    summary: "an UpstreamTlsContext has more than one client certificate",
    explanation: "Unlike listeners, which can pick a certificate per client, an upstream TLS context \
presents exactly one client certificate. Keep one, or configure a custom_tls_certificate_selector.",
    envoy: "source/common/tls/context_config_impl.cc",
    ..Rule::ERROR
};

/// auto_sni_san_validation with nothing to validate against.
pub static AUTO_SNI_SAN_WITHOUT_CA: Rule = Rule {
    id: "tls-auto-sni-san-without-ca",
    summary: "auto_sni_san_validation without a validation context with trusted_ca",
    explanation: "auto_sni_san_validation checks the upstream certificate's SAN against the SNI sent. \
That only means something if the chain is verified against a trusted CA, so Envoy requires one. Add \
common_tls_context.validation_context.trusted_ca.",
    envoy: "source/common/tls/client_context_impl.cc",
    ..Rule::ERROR
};

/// QUIC requiring client certificates it cannot validate.
pub static QUIC_CLIENT_CERTIFICATE: Rule = Rule {
    id: "tls-quic-client-certificate-without-validation",
    summary: "a QUIC DownstreamTlsContext requires client certificates but has no validation context",
    explanation: "Over QUIC Envoy refuses to require client certificates unless it has a way to validate \
them. Add a validation_context with the client CA in trusted_ca, or stop requiring client certificates.",
    envoy: "source/common/quic/quic_server_transport_socket_factory.cc",
    ..Rule::ERROR
};

/// Where a CommonTlsContext can get its validation context from.
pub const VALIDATION_SOURCES: [&str; 3] = [
    "validation_context",
    "validation_context_sds_secret_config",
    "combined_validation_context",
];

/// The transport socket of a filter chain (`downstream`) or of a cluster
/// or its transport_socket_matches entry must be of that side: factories
/// are looked up by type URL in the side's registry.
pub fn direction(m: &DynamicMessage, downstream: bool, out: &mut Vec<Finding>) {
    let Some((socket_step, socket)) = child(m, "transport_socket") else {
        return;
    };
    let Some((config_step, any)) = child(socket, "typed_config") else {
        return;
    };
    let Some(url) = field(any, "type_url").and_then(|(_, v)| v.as_str().map(str::to_string)) else {
        return;
    };
    let type_name = url.rsplit('/').next().unwrap_or(&url);
    let text = match type_name {
        UPSTREAM | QUIC_UPSTREAM if downstream => {
            "a listener needs a `DownstreamTlsContext`, not an upstream (cluster-side) context"
        }
        DOWNSTREAM | QUIC_DOWNSTREAM if !downstream => {
            "a cluster needs an `UpstreamTlsContext`, not a downstream (listener-side) context"
        }
        _ => return,
    };
    out.push(Finding::missing_in(
        &WRONG_DIRECTION,
        vec![socket_step, config_step],
        format!("{text} (Envoy: Didn't find a registered implementation ... `{type_name}`)"),
    ));
}

/// A DownstreamTlsContext; `quic` when it is a QUIC listener's, `server`
/// when it sits in a listener (where Envoy builds it as a server context).
pub fn downstream(m: &DynamicMessage, quic: bool, server: bool, out: &mut Vec<Finding>) {
    if server {
        server_certificates(m, out);
    }
    if let Some((step, ctc)) = child(m, "common_tls_context") {
        let base = [step];
        common(ctc, !quic, &base, out);
        if !has(ctc, "custom_handshaker")
            && has(ctc, "tls_certificates")
            && let Some((sds, _)) =
                items(ctc, "tls_certificate_sds_secret_configs").filter(|(_, l)| !l.is_empty())
        {
            out.push(Finding::at(
                &SERVER_CERTIFICATES_MIXED,
                join(&base, [sds]),
                "server TLS context mixes `tls_certificates` and `tls_certificate_sds_secret_configs`; use one",
            ));
        }
        if must_staple(m)
            && !has(ctc, "custom_handshaker")
            && let Some((_, certs)) = items(ctc, "tls_certificates")
            && certs
                .iter()
                .any(|c| certificate::counts(c) && !certificate::has_ocsp_staple(c))
        {
            out.push(ocsp_missing(m));
        }
    }
    if let Some((step, keys)) = child(m, "session_ticket_keys") {
        under(&[step], ticket_keys(keys), out);
    }
}

/// A server context needs a certificate, inline or over SDS, or a custom
/// selector that picks them, as ServerContextConfigImpl's constructor
/// counts them (server_context_config_impl.cc). A missing
/// common_tls_context counts as an empty one. A custom handshaker may
/// provide certificates itself (its capabilities), so it is not judged.
fn server_certificates(dtc: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((step, ctc)) = child(dtc, "common_tls_context") else {
        out.push(Finding::missing_in(
            &SERVER_NO_CERTIFICATE,
            Vec::new(),
            "a server TLS context needs a certificate; this one has no `common_tls_context` (Envoy: No TLS certificates found for server context)",
        ));
        return;
    };
    let sources = [
        "tls_certificates",
        "tls_certificate_sds_secret_configs",
        "custom_tls_certificate_selector",
        "custom_handshaker",
    ];
    if !sources.iter().any(|s| has(ctc, s)) {
        out.push(Finding::missing_in(
            &SERVER_NO_CERTIFICATE,
            vec![step],
            "a server TLS context needs a certificate (tls_certificates or tls_certificate_sds_secret_configs)",
        ));
    }
}

/// Is the context's ocsp_staple_policy MUST_STAPLE?
pub fn must_staple(dtc: &DynamicMessage) -> bool {
    let Some((f, v)) = field(dtc, "ocsp_staple_policy") else {
        return false;
    };
    let number = v.as_enum_number();
    f.kind().as_enum().is_some_and(|e| {
        e.get_value_by_name("MUST_STAPLE")
            .is_some_and(|must| Some(must.number()) == number)
    })
}

/// The MUST_STAPLE finding, at the policy.
pub fn ocsp_missing(dtc: &DynamicMessage) -> Finding {
    let path = field(dtc, "ocsp_staple_policy")
        .map(|(f, _)| vec![PathStep::Field(f)])
        .unwrap_or_default();
    Finding::at(
        &OCSP_STAPLE_MISSING,
        path,
        "`ocsp_staple_policy: MUST_STAPLE` but a certificate has no `ocsp_staple`",
    )
}

/// An UpstreamTlsContext.
pub fn upstream(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((step, ctc)) = child(m, "common_tls_context") else {
        if is_true(m, "auto_sni_san_validation") {
            out.push(auto_sni_finding(m, NO_VALIDATION_CONTEXT));
        }
        return;
    };
    let base = [step];
    common(ctc, false, &base, out);
    let inline = items(ctc, "tls_certificates");
    let sds = items(ctc, "tls_certificate_sds_secret_configs");
    let count =
        |l: &Option<(PathStep, Vec<&DynamicMessage>)>| l.as_ref().map_or(0, |(_, l)| l.len());
    let total = count(&inline) + count(&sds);
    if total > 1 && !has(ctc, "custom_tls_certificate_selector") {
        let at = inline
            .filter(|(_, l)| !l.is_empty())
            .or(sds)
            .map(|(s, _)| s);
        out.push(Finding::at(
            &CLIENT_MULTIPLE_CERTIFICATES,
            join(&base, at),
            format!("an UpstreamTlsContext can carry one client certificate; it has {total}"),
        ));
    }
    if is_true(m, "auto_sni_san_validation") {
        let inline_vc = child(ctc, "validation_context");
        let text = if !VALIDATION_SOURCES.iter().any(|s| has(ctc, s)) {
            NO_VALIDATION_CONTEXT
        } else if inline_vc.is_some_and(|(_, vc)| {
            !has(vc, "custom_validator_config") && !validation::has_trusted_ca(vc)
        }) {
            "`auto_sni_san_validation` needs a `trusted_ca` in the validation context"
        } else {
            return;
        };
        out.push(auto_sni_finding(m, text));
    }
}

const NO_VALIDATION_CONTEXT: &str =
    "`auto_sni_san_validation` needs a validation context with `trusted_ca`; there is none";

/// The auto_sni_san_validation finding, at the flag.
pub fn auto_sni_finding(utc: &DynamicMessage, text: &str) -> Finding {
    let path = field(utc, "auto_sni_san_validation")
        .map(|(f, _)| vec![PathStep::Field(f)])
        .unwrap_or_default();
    Finding::at(&AUTO_SNI_SAN_WITHOUT_CA, path, text)
}

/// What both sides share: certificates, the inline validation context,
/// BoringSSL's lists and ALPN. A custom handshaker does its own TLS, so
/// nothing is loaded by BoringSSL then.
fn common(ctc: &DynamicMessage, server: bool, base: &[PathStep], out: &mut Vec<Finding>) {
    if has(ctc, "custom_handshaker") {
        return;
    }
    if let Some((step, certs)) = items(ctc, "tls_certificates") {
        for (i, tc) in certs.into_iter().enumerate() {
            let at = join(base, [step.clone(), PathStep::Index(i)]);
            under(&at, certificate::check(tc, server), out);
        }
    }
    if let Some((step, vc)) = child(ctc, "validation_context") {
        under(&join(base, [step]), validation::check(vc), out);
    }
    if let Some((step, params)) = child(ctc, "tls_params") {
        let at = join(base, [step]);
        names(
            params,
            "ecdh_curves",
            &ECDH_CURVE_UNKNOWN,
            known_curve,
            "ECDH curve",
            &at,
            out,
        );
        names(
            params,
            "signature_algorithms",
            &SIGNATURE_ALGORITHM_UNKNOWN,
            known_signature_algorithm,
            "TLS signature algorithm",
            &at,
            out,
        );
    }
    alpn(ctc, base, out);
}

/// A BoringSSL list: the entries are joined with ":" and every piece must
/// be known, unless the whole list is empty (the default).
fn names(
    params: &DynamicMessage,
    name: &str,
    rule: &'static Rule,
    known: fn(&str) -> bool,
    what: &str,
    base: &[PathStep],
    out: &mut Vec<Finding>,
) {
    let Some((f, entries)) = crate::config::reflect::list(params, name) else {
        return;
    };
    let entries: Vec<&str> = entries.iter().filter_map(Value::as_str).collect();
    if entries.concat().is_empty() && entries.len() <= 1 {
        return;
    }
    for (i, entry) in entries.iter().enumerate() {
        if let Some(bad) = entry.split(':').find(|p| !known(p)) {
            out.push(Finding::at(
                rule,
                join(base, [PathStep::Field(f.clone()), PathStep::Index(i)]),
                format!(
                    "unknown {what} `{bad}` (Envoy: Failed to initialize ...: `{}`)",
                    entries.join(":")
                ),
            ));
        }
    }
}

/// The curve names BoringSSL accepts (verified on Envoy 1.40).
fn known_curve(name: &str) -> bool {
    [
        "P-256",
        "prime256v1",
        "P-384",
        "secp384r1",
        "P-521",
        "secp521r1",
        "X25519",
        "x25519",
        "X25519MLKEM768",
        "MLKEM1024",
    ]
    .contains(&name)
}

/// The signature algorithm names BoringSSL accepts: IANA names, or
/// OpenSSL's KEY+HASH form.
fn known_signature_algorithm(name: &str) -> bool {
    const IANA: [&str; 15] = [
        "rsa_pkcs1_sha1",
        "rsa_pkcs1_sha256",
        "rsa_pkcs1_sha384",
        "rsa_pkcs1_sha512",
        "ecdsa_sha1",
        "ecdsa_secp256r1_sha256",
        "ecdsa_secp384r1_sha384",
        "ecdsa_secp521r1_sha512",
        "rsa_pss_rsae_sha256",
        "rsa_pss_rsae_sha384",
        "rsa_pss_rsae_sha512",
        "ed25519",
        "mldsa44",
        "mldsa65",
        "mldsa87",
    ];
    if IANA.contains(&name) {
        return true;
    }
    match name.split_once('+') {
        Some(("RSA" | "ECDSA", hash)) => ["SHA1", "SHA256", "SHA384", "SHA512"].contains(&hash),
        Some(("RSA-PSS" | "PSS", hash)) => ["SHA256", "SHA384", "SHA512"].contains(&hash),
        _ => false,
    }
}

/// ALPN names are length-prefixed with one byte on the wire.
fn alpn(ctc: &DynamicMessage, base: &[PathStep], out: &mut Vec<Finding>) {
    let Some((f, entries)) = crate::config::reflect::list(ctc, "alpn_protocols") else {
        return;
    };
    let entries: Vec<&str> = entries.iter().filter_map(Value::as_str).collect();
    let joined_len =
        entries.iter().map(|e| e.len()).sum::<usize>() + entries.len().saturating_sub(1);
    for (i, entry) in entries.iter().enumerate() {
        let longest = entry.split(',').map(str::len).max().unwrap_or(0);
        let text = if longest > 255 {
            format!("ALPN protocol is {longest} bytes; at most 255")
        } else if joined_len >= 65535 && i + 1 == entries.len() {
            format!("ALPN protocols take {joined_len} bytes together; under 65535 are allowed")
        } else {
            continue;
        };
        out.push(Finding::at(
            &ALPN_INVALID,
            join(base, [PathStep::Field(f.clone()), PathStep::Index(i)]),
            format!("{text} (Envoy: Invalid ALPN protocol string)"),
        ));
    }
}

/// Session ticket keys are exactly 80 bytes each; the first bad one is
/// reported. Paths are relative to the TlsSessionTicketKeys.
pub fn ticket_keys(keys: &DynamicMessage) -> Vec<Finding> {
    let Some((step, list)) = items(keys, "keys") else {
        return Vec::new();
    };
    for (i, key) in list.into_iter().enumerate() {
        let Some(len) = inline_len(key) else {
            continue;
        };
        let text = if len == 0 {
            "session ticket key is empty (Envoy: DataSource cannot be empty)".to_string()
        } else if len != 80 {
            format!("session ticket key is {len} bytes; it must be exactly 80")
        } else {
            continue;
        };
        // At the entry's first line (a block scalar's own mark is the line after).
        let path = vec![step.clone(), PathStep::Index(i)];
        return vec![Finding::missing_in(&SESSION_TICKET_KEY_LENGTH, path, text)];
    }
    Vec::new()
}

/// The length of a DataSource message's inline value.
fn inline_len(source: &DynamicMessage) -> Option<usize> {
    ["inline_string", "inline_bytes"]
        .iter()
        .find_map(|n| match field(source, n)? {
            (_, Value::String(s)) => Some(s.len()),
            (_, Value::Bytes(b)) => Some(b.len()),
            _ => None,
        })
}

/// A QUIC listener requiring client certificates needs a validation context.
pub fn quic_client_certificate(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((step, dtc)) = child(m, "downstream_tls_context") else {
        return;
    };
    if !is_true(dtc, "require_client_certificate") {
        return;
    }
    let validates = child(dtc, "common_tls_context")
        .is_some_and(|(_, ctc)| VALIDATION_SOURCES.iter().any(|s| has(ctc, s)));
    if !validates && let Some((f, _)) = field(dtc, "require_client_certificate") {
        out.push(Finding::at(
            &QUIC_CLIENT_CERTIFICATE,
            vec![step, PathStep::Field(f)],
            "QUIC listener requires client certificates but its TLS context has no validation context",
        ));
    }
}
