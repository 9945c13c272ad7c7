//! A TlsCertificate as Envoy loads it: the config (both halves present,
//! the OCSP staple's form), then BoringSSL reading the chain, the key and
//! checking that they pair, then the server's need for a name.

use super::pem::{self, ChainError, PrivateKey};
use super::{Data, data, has};
use crate::check::{Finding, Rule};
use crate::config::resource::PathStep;
use prost_reflect::DynamicMessage;

/// A certificate chain BoringSSL cannot load.
pub static CHAIN_INVALID: Rule = Rule {
    id: "tls-certificate-chain-invalid",
    summary: "a TlsCertificate's certificate_chain does not hold a loadable PEM certificate",
    explanation: "Envoy loads the certificate chain with BoringSSL when it builds the TLS context, and a \
chain with no parseable PEM CERTIFICATE block fails the whole listener or cluster. Paste the full PEM text, \
`-----BEGIN CERTIFICATE-----` through `-----END CERTIFICATE-----`, with the leaf first. Only RSA (2048 bits \
or more) and ECDSA P-256/P-384/P-521 certificates load.",
    envoy: "source/common/tls/context_impl.cc",
    ..Rule::ERROR
};

/// A private key BoringSSL cannot load.
pub static PRIVATE_KEY_INVALID: Rule = Rule {
    id: "tls-private-key-invalid",
    summary: "a TlsCertificate's private_key does not hold a loadable PEM private key",
    explanation: "The private key must be the PEM text of the certificate's key, from `-----BEGIN PRIVATE \
KEY-----` (or RSA/EC PRIVATE KEY) to the END line. Envoy loads it when the TLS context is built and refuses \
the listener or cluster if it does not parse. A PKCS#8 key (`PRIVATE KEY`) must have version 0: BoringSSL \
reads no version-1 OneAsymmetricKey (RFC 5958).",
    envoy: "source/common/tls/context_impl.cc",
    ..Rule::ERROR
};

/// A key that is not the certificate's.
pub static KEY_CERT_MISMATCH: Rule = Rule {
    id: "tls-key-cert-mismatch",
    summary: "the private key does not belong to the certificate",
    explanation: "BoringSSL checks that the private key and the leaf certificate form a pair, and Envoy \
refuses the TLS context when they do not. This usually means the key of a different or renewed certificate \
was pasted. Use the key that was generated with this certificate; the leaf must be the first certificate in \
the chain.",
    envoy: "source/common/tls/context_impl.cc",
    ..Rule::ERROR
};

/// A chain without a key or a key without a chain.
pub static INCOMPLETE: Rule = Rule {
    id: "tls-certificate-incomplete",
    summary: "a tls_certificates entry has a chain without a key, or a key without a chain",
    explanation: "A TLS certificate needs both halves: the PEM certificate chain and the matching private \
key (or a private_key_provider). Envoy refuses the context when one of them is missing. Add the missing \
field.",
    envoy: "source/common/ssl/tls_certificate_config_impl.cc",
    ..Rule::ERROR
};

/// An RSA certificate under 2048 bits.
pub static KEY_TOO_SMALL: Rule = Rule {
    id: "tls-certificate-key-too-small",
    summary: "an RSA certificate key is shorter than 2048 bits",
    explanation: "Envoy refuses RSA certificates with keys under 2048 bits, because such keys are too \
weak. Reissue the certificate with a 2048-bit or larger RSA key, or an ECDSA P-256 key.",
    envoy: "source/common/tls/context_impl.cc",
    ..Rule::ERROR
};

/// A server certificate without any name.
pub static NO_NAME: Rule = Rule {
    id: "tls-certificate-no-name",
    summary: "a server certificate has neither a subject CN nor DNS/IP/URI SANs",
    explanation: "Envoy derives the TLS session ID context from the server certificate's names and \
refuses a certificate that has none. Issue the certificate with a subjectAltName (DNS or IP) for the names \
it serves.",
    envoy: "source/common/tls/server_context_impl.cc",
    ..Rule::ERROR
};

/// An OCSP staple given as text.
pub static OCSP_INLINE_STRING: Rule = Rule {
    id: "tls-ocsp-staple-inline-string",
    summary: "ocsp_staple is given as inline_string",
    explanation: "An OCSP staple is a binary DER OCSP response. Envoy refuses it as inline_string, which \
would mangle the bytes. Give it as inline_bytes (base64 in YAML) or as a file.",
    envoy: "source/common/ssl/tls_certificate_config_impl.cc",
    ..Rule::ERROR
};

/// Does Envoy count this entry at all? Entries with none of the four
/// sources are skipped silently.
pub fn counts(tc: &DynamicMessage) -> bool {
    [
        "certificate_chain",
        "private_key",
        "private_key_provider",
        "pkcs12",
    ]
    .iter()
    .any(|n| has(tc, n))
}

/// Does the entry carry an OCSP staple (or one Envoy reads from elsewhere)?
pub fn has_ocsp_staple(tc: &DynamicMessage) -> bool {
    !data(tc, "ocsp_staple").1.is_empty()
}

/// Checks one TlsCertificate; `server` asks for the server-only checks.
/// Like Envoy, stops at the first problem of the entry. Paths are relative to `tc`.
pub fn check(tc: &DynamicMessage, server: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    if let (path, Data::Inline(f, bytes)) = data(tc, "ocsp_staple")
        && f.name() == "inline_string"
        && !bytes.is_empty()
    {
        out.push(Finding::missing_in(
            &OCSP_INLINE_STRING,
            path,
            "`ocsp_staple` must be DER bytes (inline_bytes or filename), not inline_string",
        ));
        return out;
    }
    if has(tc, "pkcs12") || !counts(tc) {
        return out;
    }
    let (chain_path, chain) = data(tc, "certificate_chain");
    let (key_path, key) = data(tc, "private_key");
    let provider = has(tc, "private_key_provider");
    if chain.is_empty() {
        out.push(Finding::missing_in(
            &INCOMPLETE,
            Vec::new(),
            "certificate entry has no `certificate_chain` (Envoy: certificate chain not set)",
        ));
        return out;
    }
    if key.is_empty() && !provider {
        out.push(Finding::missing_in(
            &INCOMPLETE,
            Vec::new(),
            "certificate entry has `certificate_chain` but no `private_key` (or private_key_provider)",
        ));
        return out;
    }
    let leaf = match chain {
        Data::Inline(_, bytes) => match loaded_chain(bytes, &chain_path, &mut out) {
            Some(leaf) => Some(leaf),
            None => return out,
        },
        _ => None,
    };
    if let Data::Inline(_, bytes) = key
        && !provider
        && !key_pairs(bytes, leaf.as_ref(), &key_path, &mut out)
    {
        return out;
    }
    if server && let Some(leaf) = leaf {
        named(&leaf, chain_path, &mut out);
    }
    out
}

/// Loads the chain; reports why it does not load.
fn loaded_chain(bytes: &[u8], path: &[PathStep], out: &mut Vec<Finding>) -> Option<pem::Leaf> {
    let text = match pem::chain(bytes) {
        Ok(leaf) if leaf.rsa_bits > 0 && leaf.rsa_bits < 2048 => {
            out.push(Finding::missing_in(
                &KEY_TOO_SMALL,
                path.to_vec(),
                format!(
                    "certificate has a {}-bit RSA key; Envoy requires at least 2048 bits",
                    leaf.rsa_bits
                ),
            ));
            return None;
        }
        Ok(leaf) => return Some(leaf),
        Err(ChainError::NoCertificate) => {
            "`certificate_chain` holds no PEM certificate block (Envoy: Failed to load certificate chain)"
                .to_string()
        }
        Err(ChainError::Corrupt) => {
            "`certificate_chain` holds a PEM certificate that does not decode (Envoy: Failed to load certificate chain)"
                .to_string()
        }
        Err(ChainError::UnsupportedCurve(curve)) => format!(
            "the certificate's EC key is on curve {}; BoringSSL loads only P-256, P-384 and P-521 (Envoy: Failed to load certificate chain)",
            pem::curve_name(&curve)
        ),
    };
    out.push(Finding::missing_in(&CHAIN_INVALID, path.to_vec(), text));
    None
}

/// Loads the key and pairs it with the leaf; false when it was reported.
fn key_pairs(
    bytes: &[u8],
    leaf: Option<&pem::Leaf>,
    path: &[PathStep],
    out: &mut Vec<Finding>,
) -> bool {
    let text = match pem::private_key(bytes) {
        PrivateKey::Missing => {
            "`private_key` holds no PEM private key block (Envoy: Failed to load private key ... NO_START_LINE)".to_string()
        }
        PrivateKey::Corrupt => {
            "`private_key` holds a PEM private key that does not decode (Envoy: Failed to load private key)".to_string()
        }
        PrivateKey::Inconsistent => {
            "`private_key` decodes but its values do not fit together (a damaged key: the private value does not match the public one) (Envoy: Failed to load private key)".to_string()
        }
        PrivateKey::UnsupportedAlgorithm(oid) => format!(
            "`private_key` is a PKCS#8 key of algorithm {oid}, which BoringSSL does not know (Envoy: Failed to load private key ... UNSUPPORTED_ALGORITHM)"
        ),
        PrivateKey::Key(key) if leaf.is_some_and(|l| pem::mismatch(&l.key, &key)) => {
            out.push(Finding::missing_in(
                &KEY_CERT_MISMATCH,
                path.to_vec(),
                "`private_key` does not match the certificate in `certificate_chain` (Envoy: KEY_VALUES_MISMATCH)",
            ));
            return false;
        }
        PrivateKey::Key(_) | PrivateKey::Unknown => return true,
    };
    out.push(Finding::missing_in(
        &PRIVATE_KEY_INVALID,
        path.to_vec(),
        text,
    ));
    false
}

/// A server certificate needs a subject CN or a DNS/IP/URI SAN.
fn named(leaf: &pem::Leaf, path: Vec<PathStep>, out: &mut Vec<Finding>) {
    let text = match (&leaf.common_name, leaf.names) {
        (Some(cn), _) if cn.is_empty() => {
            "server certificate has an empty subject CN (Envoy: Invalid TLS context has an empty subject CN)"
        }
        (None, Some(0)) => "server certificate has no subject CN and no DNS/IP/URI SAN",
        _ => return,
    };
    out.push(Finding::missing_in(&NO_NAME, path, text));
}
