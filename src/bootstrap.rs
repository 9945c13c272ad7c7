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
        "static_resources": {
            "clusters": [{
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
            }]
        }
    })
}

/// A `GRPC_XDS_BOOTSTRAP` document for gRPC's xDS resolver (gRFC A27).
pub fn grpc(client: &Client) -> Value {
    json!({
        "xds_servers": [{
            "server_uri": client.server,
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"]
        }],
        "node": {"id": client.node_id, "cluster": client.node_cluster}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(server: &str) -> Client {
        Client {
            server: server.into(),
            node_id: "n".into(),
            node_cluster: "c".into(),
        }
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
