//! TLS for the xDS listener: the server identity and, for mTLS, the client
//! CA; and node authorization, which ties the identity in a client's
//! certificate to the node id it claims, so one proxy's key cannot fetch
//! another's config.

use crate::config::selector::NodeIdentity;
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

    /// The directories to watch for changes to the files: each file's own
    /// (as given: a symlinked directory swapped later is noticed by the
    /// watch), then the directory of each symlink it leads through, when
    /// that lies outside the link's own directory (an ACME client's `live/`
    /// link into `archive/`; a Kubernetes `..data/` swap happens inside the
    /// directory already watched, whose hidden targets come and go).
    /// Directories rather than files: agents replace files by rename, and a
    /// watch on the old file would see nothing.
    pub fn directories(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for file in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
        {
            for dir in link_directories(file) {
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

/// How many symlinks a file may lead through before the rest is ignored.
const MAX_LINKS: usize = 8;

/// `file`'s directory, then that of each symlink's target outside the
/// link's own directory.
fn link_directories(file: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![directory(file)];
    let mut link = file.to_path_buf();
    for _ in 0..MAX_LINKS {
        let Ok(target) = std::fs::read_link(&link) else {
            break;
        };
        let here = directory(&link);
        let next = here.join(target);
        let there = real(&directory(&next));
        if !there.starts_with(real(&here)) {
            dirs.push(there);
        }
        link = next;
    }
    dirs
}

/// The directory a file is in (`.` for a bare name).
fn directory(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `path` with symlinks and `..` resolved, when it exists.
fn real(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
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
    /// `--admin-identity`: exact identities or `*`/`?` globs that may read
    /// every node's status (CSDS); they claim no node.
    admins: Vec<String>,
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
            admins: Vec::new(),
        })
    }

    /// Lets certificates carrying one of `identities` (exact, or globs with
    /// `*` and `?`) read the status of every node.
    pub fn with_admins(mut self, identities: Vec<String>) -> NodeAuthorization {
        self.admins = identities;
        self
    }

    /// True when `identities` include an admin identity.
    pub fn is_admin(&self, identities: &[String]) -> bool {
        identities.iter().any(|id| {
            self.admins
                .iter()
                .any(|admin| crate::config::selector::glob_match(admin, id))
        })
    }

    /// True when a client with `identities` may see what `node` is sent:
    /// it proves that node, or it is an admin.
    pub fn may_see(&self, identities: &[String], node: &NodeIdentity) -> bool {
        identities.contains(&self.expected(node)) || self.is_admin(identities)
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
pub(crate) mod tests {
    use super::*;

    /// A self-signed certificate for localhost expiring on `not_after`
    /// (year, month, day), written as `name.pem` and `name.key` in `dir`.
    pub(crate) fn write_pair(
        dir: &Path,
        name: &str,
        not_after: (i32, u8, u8),
    ) -> (PathBuf, PathBuf) {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("certificate");
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, pem("CERTIFICATE", cert.der())).expect("write");
        std::fs::write(&key_path, pem("PRIVATE KEY", &key.serialize_der())).expect("write");
        (cert_path, key_path)
    }

    fn pem(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{text}\n-----END {label}-----\n")
    }

    /// A fresh directory for one test.
    pub(crate) fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xdsd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::canonicalize(&dir).expect("canonical")
    }

    #[test]
    fn a_pair_loads_with_its_expiry_and_h2() {
        let dir = scratch("tls-pair");
        let (cert, key) = write_pair(&dir, "a", (2031, 1, 2));
        let loaded = TlsFiles {
            cert: cert.clone(),
            key,
            client_ca: Some(cert),
        }
        .load()
        .expect("a matching pair loads");
        let expected = UNIX_EPOCH + Duration::from_secs(1_925_078_400); // 2031-01-02T00:00:00Z
        assert_eq!(loaded.not_after, expected);
        assert_eq!(loaded.config.alpn_protocols, vec![b"h2".to_vec()]);
        assert!(!loaded.serial.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = scratch("tls-mismatch");
        let (cert, _) = write_pair(&dir, "a", (2031, 1, 2));
        let (_, other_key) = write_pair(&dir, "b", (2031, 1, 2));
        let error = TlsFiles {
            cert,
            key: other_key,
            client_ca: None,
        }
        .load()
        .expect_err("the key is not the certificate's");
        assert!(
            error.contains("b.key: the private key does not match the certificate in")
                && error.contains("a.pem"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pem_files_without_the_right_blocks_are_refused() {
        let dir = scratch("tls-blocks");
        let (cert, key) = write_pair(&dir, "a", (2031, 1, 2));
        // The key where the certificate should be, and the other way round.
        let swapped = TlsFiles {
            cert: key.clone(),
            key: cert.clone(),
            client_ca: None,
        };
        let error = swapped.load().expect_err("no certificate");
        assert!(error.contains("a.key: no certificate"), "{error}");
        let no_key = TlsFiles {
            cert: cert.clone(),
            key: cert.clone(),
            client_ca: None,
        };
        let error = no_key.load().expect_err("no key");
        assert!(error.contains("a.pem: no usable private key"), "{error}");
        let bad_ca = TlsFiles {
            cert,
            key: key.clone(),
            client_ca: Some(key),
        };
        let error = bad_ca.load().expect_err("no CA certificate");
        assert!(error.contains("a.key: no certificate"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_watched_directories_include_symlink_targets() {
        let dir = scratch("tls-dirs");
        let live = dir.join("live");
        let archive = dir.join("archive");
        std::fs::create_dir_all(&live).expect("mkdir");
        std::fs::create_dir_all(&archive).expect("mkdir");
        let (cert, key) = write_pair(&archive, "a", (2031, 1, 2));
        // An ACME client's relative link from live/ into archive/.
        std::os::unix::fs::symlink("../archive/a.pem", live.join("cert.pem")).expect("symlink");
        let files = TlsFiles {
            cert: live.join("cert.pem"),
            key,
            client_ca: None,
        };
        assert_eq!(files.directories(), vec![live, archive.clone()]);

        // Kubernetes: tls.crt -> ..data/tls.crt, ..data -> ..v1 (swapped by
        // rename in the mounted directory, which is all there is to watch).
        let mount = dir.join("mount");
        std::fs::create_dir_all(mount.join("..v1")).expect("mkdir");
        std::fs::copy(&cert, mount.join("..v1/tls.crt")).expect("copy");
        std::os::unix::fs::symlink("..v1", mount.join("..data")).expect("symlink");
        std::os::unix::fs::symlink("..data/tls.crt", mount.join("tls.crt")).expect("symlink");
        let files = TlsFiles {
            cert: mount.join("tls.crt"),
            key: mount.join("tls.crt"),
            client_ca: Some(cert),
        };
        assert_eq!(files.directories(), vec![mount, archive]);
        let _ = std::fs::remove_dir_all(&dir);
    }

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
    fn admins_see_every_node_and_others_only_their_own() {
        let auth = NodeAuthorization::new("spiffe://corp/{node_id}")
            .expect("ok")
            .with_admins(vec!["spiffe://ops/*".into(), "root.corp".into()]);
        let edge = node("edge-1", "edge");
        let internal = node("internal-1", "internal");
        let own = ["spiffe://corp/edge-1".to_string()];
        assert!(auth.may_see(&own, &edge));
        assert!(!auth.may_see(&own, &internal));
        for admin in ["spiffe://ops/alice", "root.corp"] {
            assert!(auth.may_see(&[admin.to_string()], &internal), "{admin}");
        }
        assert!(!auth.is_admin(&["spiffe://ops2/x".to_string(), "root.corp.evil".into()]));
        assert!(!auth.is_admin(&[]));
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
