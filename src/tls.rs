//! TLS for the xDS listener: the server identity and, for mTLS, the client
//! CA; and node authorization, which ties the identity in a client's
//! certificate to the node id it claims, so one proxy's key cannot fetch
//! another's config.

use crate::selector::NodeIdentity;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the PEM files are.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// CA bundle for client certificates; when set, clients must present one it signed.
    pub client_ca: Option<PathBuf>,
}

/// The files' bytes, read but not yet checked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsPem {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// A checked server configuration and what operators watch of it.
#[derive(Clone, Debug)]
pub struct LoadedTls {
    /// For new handshakes: the certificate chain, its key, the client CA, ALPN `h2`.
    pub config: Arc<ServerConfig>,
    /// When the leaf certificate expires.
    pub not_after: SystemTime,
    /// The leaf's serial number (hex), to tell certificates apart in logs.
    pub serial: String,
}

impl TlsFiles {
    /// Reads and checks the files (see [`TlsFiles::build`]).
    pub fn load(&self) -> Result<LoadedTls, String> {
        self.build(&self.read()?)
    }

    /// Reads the files; each must be PEM.
    pub fn read(&self) -> Result<TlsPem, String> {
        Ok(TlsPem {
            cert: read(&self.cert)?,
            key: read(&self.key)?,
            client_ca: self.client_ca.as_deref().map(read).transpose()?,
        })
    }

    /// The server configuration for `pem`: refused when a file holds no
    /// certificate or key, or a malformed one, or when the key is not the
    /// certificate's (rustls compares the key's public half with the
    /// certificate's). Errors name the file.
    pub fn build(&self, pem: &TlsPem) -> Result<LoadedTls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = certificates(&self.cert, &pem.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&pem.key)
            .map_err(|e| format!("{}: no usable private key ({e})", self.key.display()))?;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let builder = match (&self.client_ca, &pem.client_ca) {
            (Some(path), Some(bytes)) => {
                let mut roots = RootCertStore::empty();
                for ca in certificates(path, bytes)? {
                    roots
                        .add(ca)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let leaf = chain.first().cloned();
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| self.pair_error(&e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        let (not_after, serial) = leaf
            .as_deref()
            .and_then(validity)
            .ok_or_else(|| format!("{}: the certificate cannot be read", self.cert.display()))?;
        Ok(LoadedTls {
            config: Arc::new(config),
            not_after,
            serial,
        })
    }

    /// The directories to watch for changes to the files: each file's own,
    /// and the one it resolves to through symlinks (an ACME client's
    /// `live/` link into `archive/`). Directories rather than files, since
    /// agents replace files by rename and Kubernetes swaps a symlinked
    /// directory: a watch on the old file would see nothing.
    pub fn directories(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for file in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
        {
            let resolved = std::fs::canonicalize(file).ok();
            for path in [Some(file.as_path()), resolved.as_deref()]
                .into_iter()
                .flatten()
            {
                let dir = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
        dirs
    }

    fn pair_error(&self, error: &rustls::Error) -> String {
        use rustls::{Error, InconsistentKeys};
        match error {
            Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => format!(
                "{}: the private key does not match the certificate in {}",
                self.key.display(),
                self.cert.display()
            ),
            other => format!(
                "{} and {}: {other}",
                self.cert.display(),
                self.key.display()
            ),
        }
    }
}

/// Every certificate of a PEM bundle; at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    Ok(chain)
}

/// A certificate's not_after and serial number.
fn validity(der: &[u8]) -> Option<(SystemTime, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let seconds = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
    Some((
        UNIX_EPOCH + Duration::from_secs(seconds),
        cert.raw_serial_as_string(),
    ))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN ") {
        return Err(format!("{}: not a PEM file", path.display()));
    }
    Ok(bytes)
}

/// The identities a certificate (DER) carries: its DNS and URI subject
/// alternative names, then its subject common name(s). Empty when it cannot be parsed.
pub fn certificate_identities(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut identities = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(s) | GeneralName::URI(s) => identities.push(s.to_string()),
                _ => {}
            }
        }
    }
    identities.extend(
        cert.subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string)),
    );
    identities
}

/// `--authorize-node`: the identity a client's certificate must carry, as a
/// template over the node it claims (`{node_id}`, `{node_cluster}`).
#[derive(Clone, Debug)]
pub struct NodeAuthorization {
    template: String,
}

impl NodeAuthorization {
    /// A template must name the node, or it would authorize any node.
    pub fn new(template: &str) -> Result<NodeAuthorization, String> {
        if !template.contains("{node_id}") && !template.contains("{node_cluster}") {
            return Err(format!(
                "--authorize-node `{template}` must contain {{node_id}} or {{node_cluster}}"
            ));
        }
        Ok(NodeAuthorization {
            template: template.to_string(),
        })
    }

    /// The identity `node` must prove.
    pub fn expected(&self, node: &NodeIdentity) -> String {
        self.template
            .replace("{node_id}", &node.id)
            .replace("{node_cluster}", &node.cluster)
    }

    /// Ok when `identities` (from the client's certificate) include the one
    /// `node` must prove; otherwise the reason, for the client and the log.
    pub fn check(&self, identities: &[String], node: &NodeIdentity) -> Result<(), String> {
        let expected = self.expected(node);
        if identities.contains(&expected) {
            return Ok(());
        }
        let shown = if identities.is_empty() {
            "no client certificate identity".to_string()
        } else {
            format!("certificate identities {identities:?}")
        };
        Err(format!(
            "node id `{}` (cluster `{}`) is not authorized: it requires certificate identity `{expected}`, the client has {shown}",
            node.id, node.cluster
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, cluster: &str) -> NodeIdentity {
        NodeIdentity {
            id: id.into(),
            cluster: cluster.into(),
        }
    }

    #[test]
    fn the_template_names_the_node() {
        assert!(NodeAuthorization::new("spiffe://corp/envoy").is_err());
        let auth = NodeAuthorization::new("spiffe://corp/{node_cluster}/{node_id}").expect("ok");
        let ids = vec![
            "edge-1.corp".to_string(),
            "spiffe://corp/edge/edge-1".to_string(),
        ];
        assert!(auth.check(&ids, &node("edge-1", "edge")).is_ok());
        let refused = auth
            .check(&ids, &node("edge-2", "edge"))
            .expect_err("other node");
        assert!(refused.contains("spiffe://corp/edge/edge-2"), "{refused}");
        assert!(auth.check(&[], &node("edge-1", "edge")).is_err());
    }

    #[test]
    fn garbage_certificates_have_no_identity() {
        assert!(certificate_identities(b"not DER").is_empty());
        assert!(certificate_identities(&[]).is_empty());
    }

    #[test]
    fn files_must_be_pem() {
        let dir = std::env::temp_dir().join(format!("xdsd-tls-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let junk = dir.join("junk.pem");
        let _ = std::fs::write(&junk, "junk");
        let files = TlsFiles {
            cert: junk.clone(),
            key: junk.clone(),
            client_ca: None,
        };
        let error = files.load().expect_err("not PEM");
        assert!(error.contains("junk.pem: not a PEM file"), "{error}");
        let missing = TlsFiles {
            cert: dir.join("missing.pem"),
            ..files
        };
        assert!(missing.load().expect_err("missing").contains("missing.pem"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
