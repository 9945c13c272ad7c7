//! The TLS checks on whole sets: material in Secrets judged only where a
//! TLS context uses it, SDS kinds, merged validation contexts, and the
//! PEM reader's tolerance.

use crate::check::validate::{Settings, validate};
use crate::config::loader::load_str;
use rcgen::{CertificateParams, KeyPair};

/// Every error of `rule` in `text`, as `line: message`.
fn errors(text: &str, rule: &str) -> Vec<String> {
    let loaded = load_str("c.yaml", text);
    let mut diags = loaded.diagnostics;
    validate(&loaded.resources, &Settings::default(), &mut diags);
    let all: Vec<String> = diags
        .sorted()
        .iter()
        .filter(|d| d.severity == crate::config::diag::Severity::Error)
        .map(|d| d.to_string())
        .collect();
    all.into_iter()
        .filter(|d| d.ends_with(&format!("[{rule}]")))
        .collect()
}

/// A certificate for `name` and its key, as PEM escaped for a YAML "..." string.
fn pair(name: &str) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec![name.to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    (
        escaped("CERTIFICATE", cert.der()),
        escaped("PRIVATE KEY", &key.serialize_der()),
    )
}

/// PEM armour around DER, with its line breaks escaped.
fn escaped(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!(
        "-----BEGIN {label}-----\\n{}\\n-----END {label}-----\\n",
        lines.join("\\n")
    )
}

const CLUSTER: &str = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: backend
type: STATIC
load_assignment:
  cluster_name: backend
  endpoints:
  - lb_endpoints:
    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}
";

/// A listener whose DownstreamTlsContext is `tls` (YAML at 6 spaces).
fn listener(tls: &str) -> String {
    format!(
        "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener
name: main
address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
filter_chains:
- filters:
  - name: tcp
    typed_config:
      \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
      stat_prefix: s
      cluster: backend
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
{tls}---
{CLUSTER}"
    )
}

const SDS_CERT: &str = "      common_tls_context:
        tls_certificate_sds_secret_configs:
        - name: cert
          sds_config: {ads: {}, resource_api_version: V3}
";

fn secret(name: &str, body: &str) -> String {
    format!(
        "---\n\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\nname: {name}\n{body}"
    )
}

#[test]
fn a_referenced_secrets_material_is_checked_in_the_secret() {
    let (_, key) = pair("a.example");
    let bad = format!(
        "tls_certificate:\n  certificate_chain: {{inline_string: \"cert\"}}\n  private_key: {{inline_string: \"{key}\"}}\n"
    );
    let text = listener(SDS_CERT) + &secret("cert", &bad);
    let found = errors(&text, "tls-certificate-chain-invalid");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("c.yaml:32:"), "{found:?}");
}

#[test]
fn an_unreferenced_secret_is_not_loaded() {
    let bad = "tls_certificate:\n  certificate_chain: {inline_string: \"cert\"}\n  private_key: {inline_string: \"key\"}\n";
    let (cert, key) = pair("a.example");
    let tls = format!(
        "      common_tls_context:\n        tls_certificates:\n        - certificate_chain: {{inline_string: \"{cert}\"}}\n          private_key: {{inline_string: \"{key}\"}}\n"
    );
    let text = listener(&tls) + &secret("spare", bad);
    let load = load_str("c.yaml", &text);
    let mut diags = load.diagnostics;
    validate(&load.resources, &Settings::default(), &mut diags);
    assert_eq!(diags.error_count(), 0, "{:?}", diags.sorted());
}

#[test]
fn a_key_of_another_certificate_is_a_mismatch() {
    let (cert, _) = pair("a.example");
    let (_, other_key) = pair("b.example");
    let tls = format!(
        "      common_tls_context:\n        tls_certificates:\n        - certificate_chain: {{inline_string: \"{cert}\"}}\n          private_key: {{inline_string: \"{other_key}\"}}\n"
    );
    let found = errors(&listener(&tls), "tls-key-cert-mismatch");
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn text_around_blocks_and_a_key_block_in_the_chain_are_accepted() {
    let (cert, key) = pair("a.example");
    let chain = format!("subject: a.example\\n{key}{cert}trailing text\\n");
    let key_text = format!("{cert}{key}");
    let tls = format!(
        "      common_tls_context:\n        tls_certificates:\n        - certificate_chain: {{inline_string: \"{chain}\"}}\n          private_key: {{inline_string: \"{key_text}\"}}\n"
    );
    let load = load_str("c.yaml", &listener(&tls));
    let mut diags = load.diagnostics;
    validate(&load.resources, &Settings::default(), &mut diags);
    assert_eq!(diags.error_count(), 0, "{:?}", diags.sorted());
}

#[test]
fn a_corrupt_block_after_the_leaf_fails_the_chain() {
    let (cert, key) = pair("a.example");
    let chain =
        format!("{cert}-----BEGIN CERTIFICATE-----\\nnot base64\\n-----END CERTIFICATE-----\\n");
    let tls = format!(
        "      common_tls_context:\n        tls_certificates:\n        - certificate_chain: {{inline_string: \"{chain}\"}}\n          private_key: {{inline_string: \"{key}\"}}\n"
    );
    assert_eq!(
        errors(&listener(&tls), "tls-certificate-chain-invalid").len(),
        1
    );
}

#[test]
fn session_ticket_keys_are_no_certificate() {
    let tls = "      session_ticket_keys_sds_secret_config:
        name: keys
        sds_config: {ads: {}, resource_api_version: V3}
      common_tls_context: {alpn_protocols: [h2]}
";
    let found = errors(&listener(tls), "tls-server-no-certificate");
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn a_grpc_server_takes_its_certificate_from_a_provider() {
    // Envoy 1.40 refuses this context ("No TLS certificates found for server
    // context"); gRPC servers need exactly it (gRFC A29), and only they ask
    // for a listener with this name.
    let tls = "      common_tls_context:
        tls_certificate_provider_instance: {instance_name: default}
";
    let envoy = listener(tls);
    assert_eq!(errors(&envoy, "tls-server-no-certificate").len(), 1);
    let grpc = envoy.replace(
        "name: main",
        "name: grpc/server?xds.resource.listening_address=127.0.0.1:10000",
    );
    assert_eq!(
        errors(&grpc, "tls-server-no-certificate"),
        Vec::<String>::new()
    );
}

#[test]
fn a_referenced_short_ticket_key_is_reported_in_its_secret() {
    let (cert, key) = pair("a.example");
    let tls = format!(
        "      session_ticket_keys_sds_secret_config:
        name: keys
        sds_config: {{ads: {{}}, resource_api_version: V3}}
      common_tls_context:
        tls_certificates:
        - certificate_chain: {{inline_string: \"{cert}\"}}
          private_key: {{inline_string: \"{key}\"}}
"
    );
    let keys = "session_ticket_keys:\n  keys:\n  - inline_string: \"0123456789abcdef\"\n";
    let found = errors(
        &(listener(&tls) + &secret("keys", keys)),
        "tls-session-ticket-key-length",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("16 bytes"), "{found:?}");
}

#[test]
fn a_combined_context_is_judged_after_the_merge() {
    let (cert, key) = pair("a.example");
    let tls = |secret_name: &str| {
        format!(
            "      common_tls_context:
        tls_certificates:
        - certificate_chain: {{inline_string: \"{cert}\"}}
          private_key: {{inline_string: \"{key}\"}}
        combined_validation_context:
          default_validation_context:
            match_typed_subject_alt_names:
            - {{san_type: DNS, matcher: {{exact: a.example}}}}
          validation_context_sds_secret_config:
            name: {secret_name}
            sds_config: {{ads: {{}}, resource_api_version: V3}}
"
        )
    };
    let no_ca = "validation_context:\n  allow_expired_certificate: false\n  verify_certificate_spki: []\n  trust_chain_verification: VERIFY_TRUST_CHAIN\n";
    let with_ca = format!("validation_context:\n  trusted_ca: {{inline_string: \"{cert}\"}}\n");
    let found = errors(
        &(listener(&tls("ca")) + &secret("ca", no_ca)),
        "tls-validation-without-trusted-ca",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("c.yaml:21:"), "{found:?}");
    let fine = errors(
        &(listener(&tls("ca")) + &secret("ca", &with_ca)),
        "tls-validation-without-trusted-ca",
    );
    assert!(fine.is_empty(), "{fine:?}");
    // Without the Secret Envoy waits for it: nothing to say.
    assert!(errors(&listener(&tls("ca")), "tls-validation-without-trusted-ca").is_empty());
}

#[test]
fn curve_and_signature_algorithm_names() {
    let list = |field: &str, names: &str| {
        listener(&format!(
            "      common_tls_context:\n        tls_params: {{{field}: [{names}]}}\n        tls_certificate_sds_secret_configs: [{{name: c}}]\n"
        ))
    };
    for ok in [
        "P-256, x25519",
        "\"P-256:X25519\"",
        "\"\"",
        "X25519MLKEM768",
    ] {
        assert!(
            errors(&list("ecdh_curves", ok), "tls-ecdh-curve-unknown").is_empty(),
            "{ok}"
        );
    }
    for bad in ["secp256r1", "\"P-256 \"", "P-256, \"\"", "X448"] {
        assert_eq!(
            errors(&list("ecdh_curves", bad), "tls-ecdh-curve-unknown").len(),
            1,
            "{bad}"
        );
    }
    for ok in [
        "RSA+SHA256",
        "PSS+SHA256",
        "mldsa65",
        "rsa_pkcs1_sha1",
        "\"ed25519:ECDSA+SHA1\"",
    ] {
        assert!(
            errors(
                &list("signature_algorithms", ok),
                "tls-signature-algorithm-unknown"
            )
            .is_empty(),
            "{ok}"
        );
    }
    for bad in [
        "rsa_pss_pss_sha256",
        "RSA-PSS+SHA1",
        "Ed25519",
        "ecdsa+sha256",
    ] {
        assert_eq!(
            errors(
                &list("signature_algorithms", bad),
                "tls-signature-algorithm-unknown"
            )
            .len(),
            1,
            "{bad}"
        );
    }
}

#[test]
fn a_server_context_without_common_tls_context_has_no_certificate() {
    let found = errors(
        &listener("      require_client_certificate: false\n"),
        "tls-server-no-certificate",
    );
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn a_downstream_context_in_a_cluster_is_only_the_wrong_direction() {
    let cluster = CLUSTER.to_string()
        + "transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
";
    assert!(errors(&cluster, "tls-server-no-certificate").is_empty());
    assert_eq!(errors(&cluster, "tls-context-wrong-direction").len(), 1);
}

/// A listener with `cert` and `key` (escaped PEM) as its one certificate.
fn with_pair(cert: &str, key: &str) -> String {
    listener(&format!(
        "      common_tls_context:\n        tls_certificates:\n        - certificate_chain: {{inline_string: \"{cert}\"}}\n          private_key: {{inline_string: \"{key}\"}}\n"
    ))
}

#[test]
fn an_ec_key_whose_scalar_does_not_fit_its_point_is_refused() {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["a.example".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let mut der = key.serialize_der();
    let cert = escaped("CERTIFICATE", cert.der());
    assert!(
        errors(
            &with_pair(&cert, &escaped("PRIVATE KEY", &der)),
            "tls-private-key-invalid"
        )
        .is_empty()
    );
    // PKCS#8 header (26 bytes), SEC1 header (7 bytes), then the scalar.
    der[40] ^= 1;
    let found = errors(
        &with_pair(&cert, &escaped("PRIVATE KEY", &der)),
        "tls-private-key-invalid",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("do not fit together"), "{found:?}");
}

#[test]
fn boringssl_code_points() {
    use super::strict::valid_code_point;
    assert!(valid_code_point('é' as u32));
    assert!(valid_code_point(0x1F600));
    assert!(!valid_code_point(0xD800));
    assert!(!valid_code_point(0xFFFE));
    assert!(!valid_code_point(0xFDD0));
    assert!(!valid_code_point(0x110000));
}
