//! A throwaway PKI for TLS tests: a CA and the leaves it signs, made per
//! test run with rcgen and written as PEM files.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use std::path::{Path, PathBuf};

/// PEM armour around DER, 64 columns as RFC 7468 has it.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A CA and the leaves it signs, written as PEM files in a directory.
pub struct Pki {
    dir: PathBuf,
    ca_key: KeyPair,
    ca_params: CertificateParams,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "xdsd test CA");
        let ca_key = KeyPair::generate().expect("key");
        let ca = params.clone().self_signed(&ca_key).expect("CA");
        std::fs::write(dir.join("ca.pem"), pem("CERTIFICATE", ca.der())).expect("write CA");
        Pki {
            dir: dir.to_path_buf(),
            ca_key,
            ca_params: params,
        }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Writes `name.pem` and `name.key` for a leaf with these SANs; returns their paths.
    pub fn leaf(&self, name: &str, sans: Vec<SanType>) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = sans;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).expect("sign");
        let cert_path = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, pem("CERTIFICATE", cert.der())).expect("write cert");
        std::fs::write(&key_path, pem("PRIVATE KEY", &key.serialize_der())).expect("write key");
        (cert_path, key_path)
    }
}

pub fn spiffe(node: &str) -> SanType {
    SanType::URI(
        format!("spiffe://xdsd.test/envoy/{node}")
            .try_into()
            .expect("URI"),
    )
}

/// SANs of the server certificate every TLS test uses: 127.0.0.1 and localhost.
pub fn server_sans() -> Vec<SanType> {
    vec![
        SanType::IpAddress("127.0.0.1".parse().expect("ip")),
        SanType::DnsName("localhost".try_into().expect("dns")),
    ]
}

/// A path as a command-line argument.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The lines of a PEM file's base64 body at least 16 characters long: a
/// test that finds none of them in an output knows the key is not there.
pub fn body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect()
}

/// `text` (a PEM file) indented by `spaces`, for a YAML block scalar.
pub fn indented(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// `xdsd serve` flags for mTLS on the xDS port with node authorization:
/// the server's pair, the client CA, and the `--authorize-node` template.
pub fn mtls_serve_flags<'a>(
    cert: &'a Path,
    key: &'a Path,
    client_ca: &'a Path,
    authorize: &'a str,
) -> Vec<&'a str> {
    vec![
        "--tls-cert",
        path_str(cert),
        "--tls-key",
        path_str(key),
        "--tls-client-ca",
        path_str(client_ca),
        "--authorize-node",
        authorize,
    ]
}

/// An Envoy (node cluster `edge`) started from what `xdsd bootstrap
/// --format envoy` prints for `xds` with `tls_flags` (`--tls-ca`, ...), so
/// the tests also prove the bootstraps xdsd hands out.
pub fn envoy_bootstrapped_by_xdsd(
    work: &Path,
    name: &str,
    node_id: &str,
    xds: &super::Xdsd,
    tls_flags: &[&str],
) -> super::Envoy {
    let admin = super::free_port();
    let server = format!("127.0.0.1:{}", xds.listen);
    let admin_port = admin.to_string();
    let fixed = [
        "bootstrap",
        "--format",
        "envoy",
        "--server",
        &server,
        "--node-id",
        node_id,
        "--node-cluster",
        "edge",
        "--admin-port",
        &admin_port,
    ];
    let out = super::xdsd(&[&fixed[..], tls_flags].concat());
    assert!(out.status.success(), "bootstrap: {out:?}");
    let bootstrap = String::from_utf8(out.stdout).expect("UTF-8");
    super::Envoy::start_bootstrap(work, name, &bootstrap, admin)
}
