//! TLS for the xDS listener: the server identity and, for mTLS, the client
//! CA; and node authorization, which ties the identity in a client's
//! certificate to the node id it claims, so one proxy's key cannot fetch
//! another's config.

use crate::selector::NodeIdentity;
use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

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

impl TlsFiles {
    /// Reads the files into a server TLS configuration (HTTP/2 via ALPN).
    pub fn load(&self) -> Result<ServerTlsConfig, String> {
        let cert = read(&self.cert)?;
        let key = read(&self.key)?;
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        Ok(config)
    }
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
                .any(|admin| crate::selector::glob_match(admin, id))
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
