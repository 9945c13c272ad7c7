//! Client bootstraps that point at a running xdsd: an Envoy bootstrap (ADS,
//! node, admin on localhost) and a `GRPC_XDS_BOOTSTRAP` file for proxyless
//! gRPC clients.

use serde_json::{Value, json};

/// Where xdsd is and who the client is.
#[derive(Clone, Debug)]
pub struct Client {
    /// xdsd's gRPC address, `host:port`.
    pub server: String,
    /// `node.id`.
    pub node_id: String,
    /// `node.cluster`.
    pub node_cluster: String,
    /// TLS to xdsd; plaintext when `None`.
    pub tls: Option<ClientTls>,
}

/// How a client reaches xdsd over TLS. Paths are as the client sees them.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// CA bundle that signed xdsd's certificate.
    pub ca: String,
    /// The client's certificate chain and key, for mTLS.
    pub identity: Option<(String, String)>,
    /// The name xdsd's certificate must carry; default: the host of `server`.
    pub server_name: Option<String>,
}

impl Client {
    fn host_port(&self) -> (&str, u16) {
        match self.server.rsplit_once(':') {
            Some((host, port)) => (host.trim_matches(['[', ']']), port.parse().unwrap_or(18000)),
            None => (self.server.as_str(), 18000),
        }
    }
}

/// An Envoy bootstrap: everything over ADS from xdsd, admin on 127.0.0.1:`admin_port`.
pub fn envoy(client: &Client, admin_port: u16) -> Value {
    let (host, port) = client.host_port();
    // A name must be resolved by DNS; an IP is used as is.
    let discovery = if host.parse::<std::net::IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    let mut cluster = json!({
        "name": "xds_cluster",
        "type": discovery,
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}
            }
        },
        "load_assignment": {
            "cluster_name": "xds_cluster",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}]
        }
    });
    if let Some(tls) = &client.tls {
        cluster["transport_socket"] = envoy_tls(tls, host);
    }
    json!({
        "node": {"id": client.node_id, "cluster": client.node_cluster},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds_cluster"}}]
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"}
        },
        "static_resources": {"clusters": [cluster]}
    })
}

/// Envoy's upstream TLS to xdsd: trust the CA, check xdsd's name, present
/// the client certificate for mTLS.
fn envoy_tls(tls: &ClientTls, host: &str) -> Value {
    let name = tls.server_name.as_deref().unwrap_or(host);
    let san_type = if name.parse::<std::net::IpAddr>().is_ok() {
        "IP_ADDRESS"
    } else {
        "DNS"
    };
    let mut common = json!({
        "alpn_protocols": ["h2"],
        "validation_context": {
            "trusted_ca": {"filename": tls.ca},
            "match_typed_subject_alt_names": [{"san_type": san_type, "matcher": {"exact": name}}]
        }
    });
    if let Some((cert, key)) = &tls.identity {
        common["tls_certificates"] =
            json!([{"certificate_chain": {"filename": cert}, "private_key": {"filename": key}}]);
    }
    let mut context = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": common
    });
    // SNI carries host names only, never addresses.
    if san_type == "DNS" {
        context["sni"] = json!(name);
    }
    json!({"name": "envoy.transport_sockets.tls", "typed_config": context})
}

/// A `GRPC_XDS_BOOTSTRAP` document for gRPC's xDS resolver (gRFC A27).
pub fn grpc(client: &Client) -> Value {
    json!({
        "xds_servers": [{
            "server_uri": client.server,
            "channel_creds": [grpc_creds(client.tls.as_ref())],
            "server_features": ["xds_v3"]
        }],
        "node": {"id": client.node_id, "cluster": client.node_cluster}
    })
}

/// gRPC's channel credentials (gRFC A65 for `tls`).
fn grpc_creds(tls: Option<&ClientTls>) -> Value {
    let Some(tls) = tls else {
        return json!({"type": "insecure"});
    };
    let mut config = json!({"ca_certificate_file": tls.ca});
    if let Some((cert, key)) = &tls.identity {
        config["certificate_file"] = json!(cert);
        config["private_key_file"] = json!(key);
    }
    json!({"type": "tls", "config": config})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(server: &str) -> Client {
        Client {
            server: server.into(),
            node_id: "n".into(),
            node_cluster: "c".into(),
            tls: None,
        }
    }

    #[test]
    fn tls_settings_match_the_server() {
        let mut c = client("127.0.0.1:18000");
        c.tls = Some(ClientTls {
            ca: "/ca.pem".into(),
            identity: Some(("/c.pem".into(), "/k.pem".into())),
            server_name: None,
        });
        let b = envoy(&c, 9901);
        let socket = &b["static_resources"]["clusters"][0]["transport_socket"]["typed_config"];
        let common = &socket["common_tls_context"];
        assert_eq!(
            common["validation_context"]["trusted_ca"]["filename"],
            "/ca.pem"
        );
        assert_eq!(
            common["validation_context"]["match_typed_subject_alt_names"][0]["san_type"],
            "IP_ADDRESS"
        );
        assert_eq!(
            common["tls_certificates"][0]["private_key"]["filename"],
            "/k.pem"
        );
        assert!(socket.get("sni").is_none(), "no SNI for an address");
        let g = grpc(&c);
        let creds = &g["xds_servers"][0]["channel_creds"][0];
        assert_eq!(creds["type"], "tls");
        assert_eq!(creds["config"]["certificate_file"], "/c.pem");
    }

    #[test]
    fn envoy_bootstrap_points_at_the_server() {
        let b = envoy(&client("127.0.0.1:18000"), 9901);
        let cluster = &b["static_resources"]["clusters"][0];
        assert_eq!(cluster["type"], "STATIC");
        let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"];
        assert_eq!(
            (address["address"].as_str(), address["port_value"].as_u64()),
            (Some("127.0.0.1"), Some(18000))
        );
        assert_eq!(
            envoy(&client("xdsd.internal:18000"), 9901)["static_resources"]["clusters"][0]["type"],
            "STRICT_DNS"
        );
    }

    #[test]
    fn grpc_bootstrap_has_server_and_node() {
        let b = grpc(&client("127.0.0.1:18000"));
        assert_eq!(b["xds_servers"][0]["server_uri"], "127.0.0.1:18000");
        assert_eq!(b["xds_servers"][0]["server_features"][0], "xds_v3");
        assert_eq!(b["node"]["id"], "n");
    }
}
