//! Client bootstraps that point at a running xdsd: an Envoy bootstrap (ADS,
//! node, admin on localhost) and a `GRPC_XDS_BOOTSTRAP` file for proxyless
//! gRPC clients.

use crate::check::proxyless_grpc::SERVER_LISTENER_PREFIX;
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
    /// `node.locality`: where the client runs.
    pub locality: Locality,
    /// TLS to xdsd; plaintext when `None`.
    pub tls: Option<ClientTls>,
}

/// `node.locality` (`region/zone/sub_zone`). Every part may be empty; the
/// object itself is always printed, because grpc-js-xds refuses a bootstrap
/// whose node has no `locality` ("locality field missing in node element",
/// grpc-js-xds `src/xds-bootstrap.ts`), while C-core and Envoy take it as
/// optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locality {
    /// `region`.
    pub region: String,
    /// `zone`.
    pub zone: String,
    /// `sub_zone`.
    pub sub_zone: String,
}

impl std::str::FromStr for Locality {
    type Err = String;

    /// `REGION[/ZONE[/SUB_ZONE]]`; a part may be empty (`/zone-a`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() > 3 {
            return Err(format!(
                "`{text}` has {} parts; expected REGION[/ZONE[/SUB_ZONE]]",
                parts.len()
            ));
        }
        let part = |i: usize| parts.get(i).copied().unwrap_or_default().to_string();
        Ok(Locality {
            region: part(0),
            zone: part(1),
            sub_zone: part(2),
        })
    }
}

impl Locality {
    /// The bootstrap's `locality` object: `zone` always (empty by default),
    /// `region` and `sub_zone` when set.
    fn to_json(&self) -> Value {
        let mut locality = json!({"zone": self.zone});
        if !self.region.is_empty() {
            locality["region"] = json!(self.region);
        }
        if !self.sub_zone.is_empty() {
            locality["sub_zone"] = json!(self.sub_zone);
        }
        locality
    }
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
        "node": node(client),
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

/// The `node` of both bootstraps.
fn node(client: &Client) -> Value {
    json!({
        "id": client.node_id,
        "cluster": client.node_cluster,
        "locality": client.locality.to_json()
    })
}

/// A `GRPC_XDS_BOOTSTRAP` document for gRPC clients (gRFC A27) and
/// xDS-enabled gRPC servers (gRFC A36), accepted by C-core (C++, Python,
/// Ruby…) and grpc-js-xds alike.
///
/// `client_default_listener_resource_name_template` is `%s`, the default
/// spelled out: `xds:///NAME` asks for the Listener `NAME`, the name xdsd
/// serves. No `authorities` (gRFC A47): xdsd serves plain names, not
/// `xdstp://` ones, so there is no authority to name.
pub fn grpc(client: &Client) -> Value {
    json!({
        "xds_servers": [{
            "server_uri": client.server,
            "channel_creds": [grpc_creds(client.tls.as_ref())],
            "server_features": ["xds_v3"]
        }],
        "node": node(client),
        "client_default_listener_resource_name_template": "%s",
        // gRFC A36: `%s` becomes the server's listening address, `IP:PORT`;
        // lint recognises server listeners by the same prefix.
        "server_listener_resource_name_template": format!("{SERVER_LISTENER_PREFIX}%s")
    })
}

/// Printed on stderr with a TLS gRPC bootstrap: its one credential, `tls`,
/// is gRFC A65's, which C-core implements and grpc-js-xds does not (it
/// takes only `insecure` and `google_default`). No `insecure` fallback is
/// added: a client that cannot do TLS must fail, not talk in plaintext.
pub const GRPC_JS_TLS_NOTE: &str = "note: the `tls` channel credentials (gRFC A65) work with C-core clients \
(C++, Python, Ruby, PHP); grpc-js-xds (Node) refuses this bootstrap, as it supports only `insecure` and \
`google_default`";

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
            locality: Locality::default(),
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

    /// The bootstrap rules of grpc-js-xds 1.14 (`validateBootstrapConfig`
    /// and the functions it calls in `src/xds-bootstrap.ts`), restated.
    fn grpc_js_accepts(b: &Value) -> Result<(), String> {
        const CREDS: [&str; 2] = ["google_default", "insecure"];
        let servers = b["xds_servers"].as_array().ok_or("xds_servers")?;
        for server in servers {
            server["server_uri"].as_str().ok_or("server_uri")?;
            let creds = server["channel_creds"].as_array().ok_or("channel_creds")?;
            if !creds
                .iter()
                .any(|c| c["type"].as_str().is_some_and(|t| CREDS.contains(&t)))
            {
                return Err(
                    "channel_creds: no entry with a type in [google_default,insecure]".into(),
                );
            }
        }
        let node = &b["node"];
        node["id"]
            .as_str()
            .ok_or("id field missing in node element")?;
        let locality = node
            .get("locality")
            .ok_or("locality field missing in node element")?;
        for key in ["region", "zone", "sub_zone"] {
            if locality.get(key).is_some_and(|v| !v.is_string()) {
                return Err(format!("node.locality.{key}: expected string"));
            }
        }
        if node.get("cluster").is_some_and(|v| !v.is_string()) {
            return Err("node.cluster: expected string".into());
        }
        if b.get("server_listener_resource_name_template")
            .is_some_and(|v| !v.is_string())
        {
            return Err("server_listener_resource_name_template: expected string".into());
        }
        Ok(())
    }

    /// The bootstrap rules of C-core (`GrpcXdsBootstrap::JsonLoader` and
    /// `JsonPostLoad` in `src/core/xds/grpc/xds_bootstrap_grpc.cc`, and the
    /// channel credentials it registers), restated.
    fn c_core_accepts(b: &Value) -> Result<(), String> {
        const CREDS: [&str; 4] = ["google_default", "insecure", "tls", "fake"];
        let servers = b["xds_servers"].as_array().ok_or("xds_servers")?;
        if servers.is_empty() {
            return Err("xds_servers: must be non-empty".into());
        }
        for server in servers {
            server["server_uri"].as_str().ok_or("server_uri")?;
            let creds = server["channel_creds"].as_array().ok_or("channel_creds")?;
            if !creds
                .iter()
                .any(|c| c["type"].as_str().is_some_and(|t| CREDS.contains(&t)))
            {
                return Err("no known channel_creds type".into());
            }
        }
        if let Some(node) = b.get("node") {
            for key in ["id", "cluster"] {
                if node.get(key).is_some_and(|v| !v.is_string()) {
                    return Err(format!("node.{key}: expected string"));
                }
            }
        }
        for key in [
            "server_listener_resource_name_template",
            "client_default_listener_resource_name_template",
        ] {
            if b.get(key).is_some_and(|v| !v.is_string()) {
                return Err(format!("{key}: expected string"));
            }
        }
        Ok(())
    }

    #[test]
    fn the_grpc_bootstrap_suits_c_core_and_grpc_js() {
        let mut c = client("127.0.0.1:18000");
        let plain = grpc(&c);
        assert_eq!(grpc_js_accepts(&plain), Ok(()));
        assert_eq!(c_core_accepts(&plain), Ok(()));
        assert_eq!(plain["node"]["locality"], json!({"zone": ""}));
        assert_eq!(
            plain["server_listener_resource_name_template"],
            "grpc/server?xds.resource.listening_address=%s"
        );
        assert_eq!(
            plain["client_default_listener_resource_name_template"],
            "%s"
        );
        // The bootstrap as it was before node.locality: grpc-js refused it.
        let mut old = plain.clone();
        old["node"].as_object_mut().map(|n| n.remove("locality"));
        assert_eq!(
            grpc_js_accepts(&old),
            Err("locality field missing in node element".into())
        );
        c.locality = "eu-west/eu-west-1b/rack7".parse().expect("locality");
        let placed = grpc(&c);
        assert_eq!(
            placed["node"]["locality"],
            json!({"region": "eu-west", "zone": "eu-west-1b", "sub_zone": "rack7"})
        );
        assert_eq!(grpc_js_accepts(&placed), Ok(()));
        // TLS (gRFC A65): C-core only; grpc-js fails closed, and the CLI says so.
        c.tls = Some(ClientTls {
            ca: "/ca.pem".into(),
            identity: None,
            server_name: None,
        });
        let tls = grpc(&c);
        assert_eq!(c_core_accepts(&tls), Ok(()));
        assert!(grpc_js_accepts(&tls).is_err());
    }

    #[test]
    fn locality_parses_one_to_three_parts() {
        let parse = |s: &str| s.parse::<Locality>();
        assert_eq!(parse(""), Ok(Locality::default()));
        assert_eq!(
            parse("/zone-a").map(|l| (l.region, l.zone)),
            Ok((String::new(), "zone-a".into()))
        );
        assert!(parse("a/b/c/d").is_err());
        let envoy_node = &envoy(
            &Client {
                locality: parse("r/z").expect("locality"),
                ..client("127.0.0.1:1")
            },
            9901,
        )["node"];
        assert_eq!(envoy_node["locality"], json!({"region": "r", "zone": "z"}));
    }

    #[test]
    fn grpc_bootstrap_has_server_and_node() {
        let b = grpc(&client("127.0.0.1:18000"));
        assert_eq!(b["xds_servers"][0]["server_uri"], "127.0.0.1:18000");
        assert_eq!(b["xds_servers"][0]["server_features"][0], "xds_v3");
        assert_eq!(b["node"]["id"], "n");
    }
}
