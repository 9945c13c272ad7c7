//! Authorization on every door of the xDS port: with `--authorize-node`, a
//! certificate gets, through ADS, each per-type service (stream, delta,
//! fetch) and CSDS, only what the node it proves is sent; an
//! `--admin-identity` certificate reads every node's status through CSDS.
//! Real certificates (rcgen), a real `xdsd serve` on 127.0.0.1.

use crate::common::pki::{
    Pki, body_lines, indented, mtls_serve_flags, path_str, server_sans, spiffe,
};
use crate::common::{ScratchDir, Xdsd, free_port, wait_for, xdsd};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::status::v3::{ClientStatusRequest, ClientStatusResponse};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    NodeMatcher, StringMatcher, string_matcher::MatchPattern,
};
use prost::Message;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const AUTHORIZE: &str = "spiffe://xdsd.test/envoy/{node_id}";
const ADMINS: &str = "spiffe://xdsd.test/ops/*";

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// One resource of each served type, seen by node `internal-1` only; the
/// Secret holds a real certificate and private key.
fn internal_set(cert_pem: &str, key_pem: &str) -> String {
    let only = "nodes: {id: [internal-1]}";
    format!(
        r#"kind: Cluster
{only}
spec: {{name: internal-backend, connect_timeout: 1s, type: EDS, eds_cluster_config: {{eds_config: {{ads: {{}}}}}}}}
---
kind: ClusterLoadAssignment
{only}
spec:
  cluster_name: internal-backend
  endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 9}}}}}}}}]}}]
---
kind: RouteConfiguration
{only}
spec:
  name: internal-routes
  virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: internal-backend}}}}]}}]
---
kind: Listener
{only}
spec:
  name: internal-listener
  address: {{socket_address: {{address: 127.0.0.1, port_value: 10443}}}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: internal
        rds: {{route_config_name: internal-routes, config_source: {{ads: {{}}}}}}
        http_filters: [{{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
---
kind: Secret
{only}
spec:
  name: internal-cert
  tls_certificate:
    certificate_chain:
      inline_string: |
{}    private_key:
      inline_string: |
{}"#,
        indented(cert_pem, 8),
        indented(key_pem, 8)
    )
}

/// The served set, the PKI and a running `xdsd serve` holding them to
/// `--authorize-node` with an `--admin-identity` glob.
struct Setup {
    pki: Pki,
    key_pem: String,
    xds: Xdsd,
    // Last: the files outlive the daemon.
    _work: ScratchDir,
}

impl Setup {
    fn start(tag: &str) -> Setup {
        let work = ScratchDir::new(tag);
        let pki = Pki::new(work.path());
        let (server_cert, server_key) = pki.leaf("server", server_sans());
        let (served_cert, served_key) = pki.leaf("served", server_sans());
        let read = |p: &Path| std::fs::read_to_string(p).expect("read PEM");
        let key_pem = read(&served_key);
        work.write(
            "config/internal.yaml",
            &internal_set(&read(&served_cert), &key_pem),
        );
        let ca = pki.ca_path();
        let xds = Xdsd::start_with(
            &work.path().join("config"),
            &work.path().join("xdsd.log"),
            &[
                mtls_serve_flags(&server_cert, &server_key, &ca, AUTHORIZE),
                vec!["--admin-identity", ADMINS],
            ]
            .concat(),
        );
        Setup {
            pki,
            key_pem,
            xds,
            _work: work,
        }
    }

    /// An mTLS channel to xdsd with a certificate for `identity`.
    async fn channel(&self, name: &str, identity: rcgen::SanType) -> Channel {
        let (cert, key) = self.pki.leaf(name, vec![identity]);
        let read = |p: &Path| std::fs::read(p).expect("read PEM");
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.pki.ca_path())))
            .identity(Identity::from_pem(read(&cert), read(&key)))
            .domain_name("localhost");
        Channel::from_shared(format!("https://127.0.0.1:{}", self.xds.listen))
            .expect("uri")
            .tls_config(tls)
            .expect("tls")
            .connect()
            .await
            .expect("connect over mTLS")
    }

    /// True when `bytes` (any answer, encoded) hold a line of the served key.
    fn holds_the_key(&self, bytes: &[u8]) -> bool {
        let text = String::from_utf8_lossy(bytes);
        body_lines(&self.key_pem)
            .iter()
            .any(|l| text.contains(l.as_str()))
    }
}

fn node(id: &str) -> Option<Node> {
    Some(Node {
        id: id.into(),
        cluster: "edge".into(),
        ..Default::default()
    })
}

fn ops_identity() -> rcgen::SanType {
    rcgen::SanType::URI("spiffe://xdsd.test/ops/alice".try_into().expect("URI"))
}

/// What one door gave: resources (encoded), or the refusal.
type Given = Result<Vec<Vec<u8>>, tonic::Status>;

/// The first message of a stream (or its refusal); none in 8 s is nothing
/// (a per-type stream may wait up to 5 s for the node's other streams).
async fn first<T>(
    stream: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Result<Option<T>, tonic::Status> {
    let mut stream = stream?.into_inner();
    match tokio::time::timeout(Duration::from_secs(8), stream.message()).await {
        Ok(message) => message,
        Err(_) => Ok(None),
    }
}

/// The name of `internal-1`'s resource of type `type_url`.
fn name_of(type_url: &str) -> &'static str {
    match type_url {
        CLUSTER | ENDPOINTS => "internal-backend",
        LISTENER => "internal-listener",
        ROUTE => "internal-routes",
        _ => "internal-cert",
    }
}

/// A request stream holding one SotW request; open while the sender lives.
fn sotw_request(
    node_id: &str,
    type_url: &str,
) -> (
    mpsc::Sender<DiscoveryRequest>,
    ReceiverStream<DiscoveryRequest>,
) {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(fetch_request(node_id, type_url));
    (tx, ReceiverStream::new(rx))
}

/// A request stream holding one delta subscription; open while the sender lives.
fn delta_request(
    node_id: &str,
    type_url: &str,
) -> (
    mpsc::Sender<DeltaDiscoveryRequest>,
    ReceiverStream<DeltaDiscoveryRequest>,
) {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(DeltaDiscoveryRequest {
        node: node(node_id),
        type_url: type_url.into(),
        resource_names_subscribe: vec![name_of(type_url).into()],
        ..Default::default()
    });
    (tx, ReceiverStream::new(rx))
}

fn fetch_request(node_id: &str, type_url: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: node(node_id),
        type_url: type_url.into(),
        resource_names: vec![name_of(type_url).into()],
        ..Default::default()
    }
}

fn delta_given(
    r: Result<
        Option<envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse>,
        tonic::Status,
    >,
) -> Given {
    r.map(|m| {
        m.map(|m| {
            m.resources
                .into_iter()
                .filter_map(|r| r.resource.map(|a| a.value))
                .collect()
        })
        .unwrap_or_default()
    })
}

fn sotw_given(r: Result<Option<DiscoveryResponse>, tonic::Status>) -> Given {
    r.map(|m| {
        m.map(|m| m.resources.into_iter().map(|a| a.value).collect())
            .unwrap_or_default()
    })
}

/// Every door of the xDS port, each asked for `node_id`'s resources of
/// its type: (door, what it gave).
async fn every_door(channel: &Channel, node_id: &str) -> Vec<(String, Given)> {
    use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_client::ClusterDiscoveryServiceClient as Cds;
    use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient as Ads;
    use envoy_types::pb::envoy::service::endpoint::v3::endpoint_discovery_service_client::EndpointDiscoveryServiceClient as Eds;
    use envoy_types::pb::envoy::service::listener::v3::listener_discovery_service_client::ListenerDiscoveryServiceClient as Lds;
    use envoy_types::pb::envoy::service::route::v3::route_discovery_service_client::RouteDiscoveryServiceClient as Rds;
    use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient as Sds;

    let mut given = Vec::new();
    macro_rules! door {
        ($client:ident, $name:literal, $type_url:expr, $stream:ident, $delta:ident, $fetch:ident) => {{
            let mut client = $client::new(channel.clone());
            let (_open, requests) = sotw_request(node_id, $type_url);
            let sotw = first(client.$stream(requests).await).await;
            given.push((format!("{} stream", $name), sotw_given(sotw)));
            let (_open, requests) = delta_request(node_id, $type_url);
            let delta = first(client.$delta(requests).await).await;
            given.push((format!("{} delta", $name), delta_given(delta)));
            let fetch = client.$fetch(fetch_request(node_id, $type_url)).await;
            given.push((
                format!("{} fetch", $name),
                fetch.map(|r| {
                    r.into_inner()
                        .resources
                        .into_iter()
                        .map(|a| a.value)
                        .collect()
                }),
            ));
        }};
    }
    door!(
        Cds,
        "CDS",
        CLUSTER,
        stream_clusters,
        delta_clusters,
        fetch_clusters
    );
    door!(
        Eds,
        "EDS",
        ENDPOINTS,
        stream_endpoints,
        delta_endpoints,
        fetch_endpoints
    );
    door!(
        Lds,
        "LDS",
        LISTENER,
        stream_listeners,
        delta_listeners,
        fetch_listeners
    );
    door!(Rds, "RDS", ROUTE, stream_routes, delta_routes, fetch_routes);
    door!(
        Sds,
        "SDS",
        SECRET,
        stream_secrets,
        delta_secrets,
        fetch_secrets
    );
    let mut ads = Ads::new(channel.clone());
    let (_open, requests) = sotw_request(node_id, SECRET);
    let sotw = first(ads.stream_aggregated_resources(requests).await).await;
    given.push(("ADS stream (secrets)".into(), sotw_given(sotw)));
    let (_open, requests) = delta_request(node_id, SECRET);
    let delta = first(ads.delta_aggregated_resources(requests).await).await;
    given.push(("ADS delta (secrets)".into(), delta_given(delta)));
    given
}

/// CSDS as a caller sees it: `FetchClientStatus` without and with a
/// matcher for `internal-1`, and `StreamClientStatus` without one.
async fn csds(channel: &Channel) -> Vec<(&'static str, ClientStatusResponse)> {
    use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient as Csds;
    let mut client = Csds::new(channel.clone());
    let all = client
        .fetch_client_status(ClientStatusRequest::default())
        .await
        .expect("FetchClientStatus")
        .into_inner();
    let matcher = NodeMatcher {
        node_id: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Exact("internal-1".into())),
            ignore_case: false,
        }),
        node_metadatas: Vec::new(),
    };
    let matched = client
        .fetch_client_status(ClientStatusRequest {
            node_matchers: vec![matcher],
            ..Default::default()
        })
        .await
        .expect("FetchClientStatus")
        .into_inner();
    let (tx, rx) = mpsc::channel(1);
    tx.send(ClientStatusRequest::default()).await.expect("send");
    let streamed = first(client.stream_client_status(ReceiverStream::new(rx)).await)
        .await
        .expect("StreamClientStatus")
        .expect("an answer");
    vec![
        ("FetchClientStatus, no matcher", all),
        ("FetchClientStatus, internal-1", matched),
        ("StreamClientStatus, no matcher", streamed),
    ]
}

fn nodes_in(response: &ClientStatusResponse) -> Vec<String> {
    response
        .config
        .iter()
        .filter_map(|c| c.node.as_ref().map(|n| n.id.clone()))
        .collect()
}

/// An open ADS stream: its requests and responses.
struct Connected {
    _requests: mpsc::Sender<DiscoveryRequest>,
    _responses: tonic::Streaming<DiscoveryResponse>,
}

/// `internal-1` connected over ADS with its own certificate, holding its
/// Secret; the stream stays open while the returned value lives.
async fn connect_internal(setup: &Setup) -> Connected {
    use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient as Ads;
    let channel = setup.channel("internal-1", spiffe("internal-1")).await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(fetch_request("internal-1", SECRET))
        .await
        .expect("send");
    let mut responses = Ads::new(channel)
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("ADS")
        .into_inner();
    let response = tokio::time::timeout(Duration::from_secs(5), responses.message())
        .await
        .expect("a response in time")
        .expect("admitted")
        .expect("a response");
    assert_eq!(response.resources.len(), 1, "internal-1 gets its Secret");
    let ack = DiscoveryRequest {
        version_info: response.version_info.clone(),
        response_nonce: response.nonce.clone(),
        ..fetch_request("internal-1", SECRET)
    };
    tx.send(ack).await.expect("ACK");
    let listed = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        let clients = setup.xds.admin_json("/clients");
        clients
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["node_id"] == "internal-1"))
            .then_some(())
    });
    assert!(listed.is_some(), "internal-1 is a client");
    Connected {
        _requests: tx,
        _responses: responses,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_certificate_gets_nothing_of_it_through_any_door() {
    let setup = Setup::start("authz-doors");
    let _internal = connect_internal(&setup).await;

    // internal-1's own certificate opens every door: the refusals below are
    // about the identity, not doors that give nothing to anyone.
    let own = setup
        .channel("internal-1-again", spiffe("internal-1"))
        .await;
    for (door, given) in every_door(&own, "internal-1").await {
        let resources = given.unwrap_or_else(|s| panic!("{door}: internal-1 refused: {s:?}"));
        assert_eq!(resources.len(), 1, "{door}: internal-1 gets its resource");
    }
    let seen = csds(&own).await;
    for (call, response) in &seen {
        assert_eq!(
            nodes_in(response),
            ["internal-1"],
            "{call}: internal-1 sees itself"
        );
        let bytes = response.encode_to_vec();
        assert!(
            !setup.holds_the_key(&bytes),
            "{call}: even its own key is redacted in CSDS"
        );
        assert!(
            String::from_utf8_lossy(&bytes).contains("[redacted]"),
            "{call}"
        );
    }

    // edge-1's certificate, claiming internal-1: refused at every door.
    let edge = setup.channel("edge-1", spiffe("edge-1")).await;
    for (door, given) in every_door(&edge, "internal-1").await {
        match given {
            Err(status) => assert_eq!(
                status.code(),
                tonic::Code::PermissionDenied,
                "{door}: {status:?}"
            ),
            Ok(resources) => panic!(
                "{door}: edge-1 got {} of internal-1's resources",
                resources.len()
            ),
        }
    }
    // And CSDS tells edge-1 nothing about internal-1, with or without a matcher.
    for (call, response) in csds(&edge).await {
        assert!(
            nodes_in(&response).is_empty(),
            "{call}: edge-1 sees {:?}",
            nodes_in(&response)
        );
        let bytes = response.encode_to_vec();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !setup.holds_the_key(&bytes) && !text.contains("internal-cert"),
            "{call}: internal-1's Secret reached edge-1"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_identity_sees_every_node_through_csds_only() {
    let setup = Setup::start("authz-admin");
    let _internal = connect_internal(&setup).await;
    let ops = setup.channel("ops", ops_identity()).await;
    for (call, response) in csds(&ops).await {
        assert_eq!(nodes_in(&response), ["internal-1"], "{call}");
        assert!(
            !setup.holds_the_key(&response.encode_to_vec()),
            "{call}: redacted"
        );
    }
    // It claims no node: the discovery services refuse it.
    for (door, given) in every_door(&ops, "internal-1").await {
        let status = given.expect_err(&door);
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{door}");
    }

    // `xdsd status --xds` with the operator's certificate lists the node;
    // with edge-1's, nothing.
    let (ops_cert, ops_key) = setup.pki.leaf("ops-cli", vec![ops_identity()]);
    let (edge_cert, edge_key) = setup.pki.leaf("edge-cli", vec![spiffe("edge-1")]);
    let server = format!("127.0.0.1:{}", setup.xds.listen);
    let ca = setup.pki.ca_path();
    let status = |cert: &Path, key: &Path| {
        let out = xdsd(&[
            "status",
            "--xds",
            &server,
            "--tls-ca",
            path_str(&ca),
            "--tls-cert",
            path_str(cert),
            "--tls-key",
            path_str(key),
            "--tls-server-name",
            "localhost",
        ]);
        assert!(out.status.success(), "xdsd status --xds: {out:?}");
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let table = tokio::task::block_in_place(|| status(&ops_cert, &ops_key));
    assert!(
        table.contains("1 clients") && table.lines().any(|l| l.starts_with("internal-1 ")),
        "{table}"
    );
    let table = tokio::task::block_in_place(|| status(&edge_cert, &edge_key));
    assert!(
        table.contains("0 clients") && !table.contains("internal-1"),
        "{table}"
    );
}

#[test]
fn admin_identity_requires_authorize_node() {
    let work = ScratchDir::new("authz-flags");
    std::fs::create_dir_all(work.path().join("config")).expect("mkdir");
    let out = xdsd(&[
        "serve",
        "--dir",
        path_str(&work.path().join("config")),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--admin-identity",
        ADMINS,
    ]);
    assert_eq!(out.status.code(), Some(2), "a usage error: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--authorize-node"), "{stderr}");
}
