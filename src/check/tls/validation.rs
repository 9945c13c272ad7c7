//! A CertificateValidationContext as Envoy's default validator builds it:
//! the trusted CA bundle, what needs one, and the certificate pins.

use super::pem::{self, CaError};
use super::{Data, data, has, is_true};
use crate::check::{Finding, Rule};
use crate::config::reflect::{field, list};
use crate::config::resource::PathStep;
use base64::Engine;
use prost_reflect::DynamicMessage;

/// A trusted CA bundle BoringSSL cannot load.
pub static TRUSTED_CA_INVALID: Rule = Rule {
    id: "tls-trusted-ca-invalid",
    summary: "validation_context.trusted_ca holds no loadable CA certificate",
    explanation: "trusted_ca must be one or more PEM CA certificates. Envoy builds its trust store from \
them when the TLS context is created, and with no certificate in there it refuses the context. Paste the CA \
bundle in PEM form, not a key, a fingerprint or a file name in inline_string.",
    envoy: "source/common/tls/cert_validator/default_validator.cc",
    ..Rule::ERROR
};

/// Peer checks that mean nothing without a trusted CA.
pub static WITHOUT_TRUSTED_CA: Rule = Rule {
    id: "tls-validation-without-trusted-ca",
    summary: "SAN matchers, allow_expired_certificate or a CRL are configured without trusted_ca",
    explanation: "Without a trusted CA Envoy does not verify the peer's chain at all. Matching SANs, \
accepting expired certificates or checking a CRL then would give a false sense of security, so Envoy \
refuses such a validation context. Add trusted_ca (the CA that issued the peer certificates), or use \
verify_certificate_spki/verify_certificate_hash pinning instead.",
    envoy: "source/common/ssl/certificate_validation_context_config_impl.cc",
    ..Rule::ERROR
};

/// A certificate pin that is not a SHA-256.
pub static PIN_INVALID: Rule = Rule {
    id: "tls-certificate-pin-invalid",
    summary: "a verify_certificate_hash entry is not a hex SHA-256, or a verify_certificate_spki entry is not base64 of 32 bytes",
    explanation: "Certificate pins are SHA-256 digests. verify_certificate_hash takes the hex fingerprint \
(as printed by `openssl x509 -fingerprint -sha256`, with or without colons). verify_certificate_spki takes \
the base64 SHA-256 of the public key, 44 characters with the trailing `=`. Envoy refuses a pin that does not \
decode to 32 bytes.",
    envoy: "source/common/tls/cert_validator/default_validator.cc",
    ..Rule::ERROR
};

/// Does the context have a CA to verify against (or may have: a file)?
pub fn has_trusted_ca(vc: &DynamicMessage) -> bool {
    !data(vc, "trusted_ca").1.is_empty()
}

/// Checks one validation context, as Envoy builds it. Paths are relative to `vc`.
pub fn check(vc: &DynamicMessage) -> Vec<Finding> {
    let mut out = Vec::new();
    if has(vc, "custom_validator_config") {
        return out;
    }
    let (ca_path, ca) = data(vc, "trusted_ca");
    match ca {
        Data::Inline(_, []) => out.push(Finding::missing_in(
            &TRUSTED_CA_INVALID,
            ca_path,
            "`trusted_ca` is empty (Envoy: DataSource cannot be empty)",
        )),
        Data::Inline(_, bytes) => {
            let text = match pem::trusted_ca(bytes) {
                Ok(()) => None,
                Err(CaError::NoCertificate) => Some("`trusted_ca` holds no PEM certificate"),
                Err(CaError::Corrupt) => {
                    Some("`trusted_ca` holds a PEM certificate or CRL that does not decode")
                }
            };
            if let Some(text) = text {
                out.push(Finding::missing_in(
                    &TRUSTED_CA_INVALID,
                    ca_path,
                    format!("{text} (Envoy: Failed to load trusted CA certificates)"),
                ));
            }
        }
        Data::Unset => needs_ca(vc, &mut out),
        Data::Elsewhere => {}
    }
    pins(vc, &mut out);
    out
}

/// The first of CRL, SAN matchers and allow_expired_certificate (Envoy's
/// order), when there is no trusted CA.
fn needs_ca(vc: &DynamicMessage, out: &mut Vec<Finding>) {
    let (crl_path, crl) = data(vc, "crl");
    let (path, what) = if !crl.is_empty() {
        (crl_path, "crl")
    } else if let Some(name) = ["match_typed_subject_alt_names", "match_subject_alt_names"]
        .into_iter()
        .find(|n| has(vc, n))
    {
        (step(vc, name), name)
    } else if is_true(vc, "allow_expired_certificate") {
        (
            step(vc, "allow_expired_certificate"),
            "allow_expired_certificate",
        )
    } else {
        return;
    };
    out.push(Finding::at(
        &WITHOUT_TRUSTED_CA,
        path,
        format!("`{what}` needs a `trusted_ca`: without one Envoy verifies no peer chain"),
    ));
}

fn step(m: &DynamicMessage, name: &str) -> Vec<PathStep> {
    field(m, name)
        .map(|(f, _)| vec![PathStep::Field(f)])
        .unwrap_or_default()
}

/// Lenient like Envoy's decoder: padding as written, trailing bits ignored.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

fn pins(vc: &DynamicMessage, out: &mut Vec<Finding>) {
    if let Some((f, entries)) = list(vc, "verify_certificate_hash") {
        for (i, entry) in entries.iter().enumerate() {
            let Some(hash) = entry.as_str() else { continue };
            let hex: String = if hash.len() == 95 {
                hash.chars().filter(|&c| c != ':').collect()
            } else {
                hash.to_string()
            };
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(Finding::at(
                    &PIN_INVALID,
                    vec![PathStep::Field(f.clone()), PathStep::Index(i)],
                    format!("`verify_certificate_hash` entry `{hash}` is not a hex SHA-256 (64 hex digits, or 32 colon-separated pairs)"),
                ));
            }
        }
    }
    if let Some((f, entries)) = list(vc, "verify_certificate_spki") {
        for (i, entry) in entries.iter().enumerate() {
            let Some(spki) = entry.as_str() else { continue };
            if BASE64.decode(spki).map(|d| d.len()).ok() != Some(32) {
                out.push(Finding::at(
                    &PIN_INVALID,
                    vec![PathStep::Field(f.clone()), PathStep::Index(i)],
                    format!("`verify_certificate_spki` entry `{spki}` is not the base64 of a SHA-256 (44 characters ending in `=`)"),
                ));
            }
        }
    }
}
