//! The xDS protocol as the "xDS REST and gRPC protocol" document states it,
//! checked with a gRPC client against the server in-process (on 127.0.0.1).

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use xdsd::config::schema::ResourceType;
use xdsd::xds::snapshot::Snapshot;
use xdsd::xds::{Ads, ClientLimits, Ledger};

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

fn clusters(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| {
            format!(
                "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: {n}\nconnect_timeout: 1s\ntype: EDS\neds_cluster_config: {{eds_config: {{ads: {{}}}}}}\n---\n\"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\ncluster_name: {n}\n---\n"
            )
        })
        .collect()
}

fn snapshot(text: &str) -> Arc<Snapshot> {
    let loaded = xdsd::config::loader::load_str("t.yaml", text);
    assert!(
        loaded.diagnostics.is_ok(),
        "{:?}",
        loaded.diagnostics.sorted()
    );
    Arc::new(Snapshot::build(&loaded.resources))
}

struct Server {
    addr: std::net::SocketAddr,
    snapshots: watch::Sender<Arc<Snapshot>>,
    client: AggregatedDiscoveryServiceClient<tonic::transport::Channel>,
    ledger: Arc<Ledger>,
}

async fn start(text: &str) -> Server {
    start_with(text, ClientLimits::default()).await
}

async fn start_with(text: &str, limits: ClientLimits) -> Server {
    let (snapshots, rx) = watch::channel(snapshot(text));
    let ledger = Arc::new(Ledger::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let routes = Ads::new(rx, Arc::clone(&ledger))
        .with_limits(limits)
        .routes();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    Server {
        addr,
        snapshots,
        client,
        ledger,
    }
}

/// The next response, if one comes within 700 ms (none coming is what several tests expect).
async fn next_within<T>(responses: &mut Streaming<T>) -> Option<T> {
    match tokio::time::timeout(Duration::from_millis(700), responses.message()).await {
        Ok(Ok(Some(r))) => Some(r),
        _ => None,
    }
}

fn node() -> Option<Node> {
    Some(Node {
        id: "n1".into(),
        cluster: "c1".into(),
        ..Default::default()
    })
}

struct Sotw {
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
}

impl Sotw {
    async fn open(server: &mut Server) -> Sotw {
        let (requests, rx) = mpsc::channel(16);
        let responses = server
            .client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner();
        Sotw {
            requests,
            responses,
        }
    }

    async fn send(&self, type_url: &str, names: &[&str], version: &str, nonce: &str, nack: bool) {
        let request = DiscoveryRequest {
            node: node(),
            type_url: type_url.into(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            version_info: version.into(),
            response_nonce: nonce.into(),
            error_detail: nack.then(|| RpcStatus {
                code: 3,
                message: "rejected by test".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.requests.send(request).await.expect("send");
    }

    async fn recv(&mut self) -> Option<DiscoveryResponse> {
        next_within(&mut self.responses).await
    }
}

fn names(r: &DiscoveryResponse) -> Vec<String> {
    use prost::Message;
    let mut names: Vec<String> = r
        .resources
        .iter()
        .map(|a| {
            if a.type_url == CDS {
                envoy_types::pb::envoy::config::cluster::v3::Cluster::decode(a.value.as_slice())
                    .map(|c| c.name)
                    .unwrap_or_default()
            } else {
                envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment::decode(
                    a.value.as_slice(),
                )
                .map(|c| c.cluster_name)
                .unwrap_or_default()
            }
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn sotw_wildcard_ack_nack_and_stale_nonces() {
    let mut server = start(&clusters(&["a", "b"])).await;
    let mut s = Sotw::open(&mut server).await;
    s.send(CDS, &[], "", "", false).await;
    let first = s.recv().await.expect("initial response");
    assert_eq!(names(&first), ["a", "b"]);
    s.send(CDS, &[], &first.version_info, &first.nonce, false)
        .await;
    assert!(s.recv().await.is_none(), "an ACK gets no response");

    // A change is pushed; the client NACKs it; it is not re-sent.
    server
        .snapshots
        .send_replace(snapshot(&clusters(&["a", "c"])));
    let mut pushed = s.recv().await.expect("push");
    // Make-before-break: clusters first come as old plus new, then the old ones go.
    if names(&pushed) == ["a", "b", "c"] {
        s.send(CDS, &[], &pushed.version_info, &pushed.nonce, false)
            .await;
        pushed = s.recv().await.expect("final clusters");
    }
    assert_eq!(names(&pushed), ["a", "c"]);
    s.send(CDS, &[], &first.version_info, &pushed.nonce, true)
        .await;
    assert!(s.recv().await.is_none(), "a NACKed version is not re-sent");
    let clients = server.ledger.clients();
    let status = &clients.values().next().expect("one client").types[&ResourceType::Cluster];
    assert_eq!(
        status.last_nack.as_ref().map(|n| n.error.as_str()),
        Some("rejected by test")
    );

    // A request with a nonce that was never sent (or is stale) is ignored.
    s.send(CDS, &[], "", "999", false).await;
    assert!(s.recv().await.is_none(), "stale nonce ignored");
}

#[tokio::test]
async fn sotw_named_subscriptions_and_names_that_appear_later() {
    let mut server = start(&clusters(&["a"])).await;
    let mut s = Sotw::open(&mut server).await;
    s.send(EDS, &["a", "later"], "", "", false).await;
    let first = s.recv().await.expect("response");
    assert_eq!(names(&first), ["a"]);
    s.send(
        EDS,
        &["a", "later"],
        &first.version_info,
        &first.nonce,
        false,
    )
    .await;
    assert!(s.recv().await.is_none());
    server
        .snapshots
        .send_replace(snapshot(&clusters(&["a", "later", "other"])));
    // Stages may re-send endpoints; the last response holds both named ones, never "other".
    let mut last = None;
    while let Some(r) = s.recv().await {
        s.send(EDS, &["a", "later"], &r.version_info, &r.nonce, false)
            .await;
        last = Some(r);
    }
    assert_eq!(names(&last.expect("pushed")), ["a", "later"]);
}

#[tokio::test]
async fn sotw_reconnect_with_current_version_is_sent_nothing() {
    let mut server = start(&clusters(&["a"])).await;
    let mut s = Sotw::open(&mut server).await;
    s.send(CDS, &[], "", "", false).await;
    let first = s.recv().await.expect("response");
    drop(s);
    let mut again = Sotw::open(&mut server).await;
    again.send(CDS, &[], &first.version_info, "", false).await;
    assert!(again.recv().await.is_none(), "same content, nothing new");
}

struct DeltaClient {
    requests: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: Streaming<DeltaDiscoveryResponse>,
}

impl DeltaClient {
    async fn open(server: &mut Server) -> DeltaClient {
        let (requests, rx) = mpsc::channel(16);
        let responses = server
            .client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner();
        DeltaClient {
            requests,
            responses,
        }
    }

    async fn send(&self, request: DeltaDiscoveryRequest) {
        self.requests
            .send(DeltaDiscoveryRequest {
                node: node(),
                ..request
            })
            .await
            .expect("send");
    }

    async fn recv(&mut self) -> Option<DeltaDiscoveryResponse> {
        next_within(&mut self.responses).await
    }
}

fn delta_names(r: &DeltaDiscoveryResponse) -> Vec<String> {
    let mut names: Vec<String> = r.resources.iter().map(|x| x.name.clone()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn delta_sends_changes_and_removals_only() {
    let mut server = start(&clusters(&["a", "b"])).await;
    let mut d = DeltaClient::open(&mut server).await;
    d.send(DeltaDiscoveryRequest {
        type_url: CDS.into(),
        ..Default::default()
    })
    .await;
    let first = d.recv().await.expect("initial");
    assert_eq!(delta_names(&first), ["a", "b"]);
    d.send(DeltaDiscoveryRequest {
        type_url: CDS.into(),
        response_nonce: first.nonce.clone(),
        ..Default::default()
    })
    .await;
    server
        .snapshots
        .send_replace(snapshot(&clusters(&["a", "c"])));
    let mut added = Vec::new();
    let mut removed = Vec::new();
    while let Some(r) = d.recv().await {
        added.extend(delta_names(&r));
        removed.extend(r.removed_resources.clone());
        d.send(DeltaDiscoveryRequest {
            type_url: CDS.into(),
            response_nonce: r.nonce.clone(),
            ..Default::default()
        })
        .await;
    }
    assert_eq!(added, ["c"], "only the new cluster is sent");
    assert_eq!(removed, ["b"], "the removed one is named");
}

/// A delta client with clusters and endpoints gets, for a change of one
/// cluster's endpoints, only those endpoints; for a change of one cluster,
/// that cluster and its endpoints again (Envoy re-warms a changed cluster
/// only on a fresh assignment) and nothing else.
#[tokio::test]
async fn delta_change_sends_only_what_changed_and_rewarms_changed_clusters() {
    let base = clusters(&["a", "b", "c"]);
    let mut server = start(&base).await;
    let mut d = DeltaClient::open(&mut server).await;
    for type_url in [CDS, EDS] {
        d.send(DeltaDiscoveryRequest {
            type_url: type_url.into(),
            ..Default::default()
        })
        .await;
    }
    // Receives and ACKs everything until quiet; returns names sent per type.
    async fn drain(d: &mut DeltaClient) -> Vec<(String, Vec<String>)> {
        let mut sent = Vec::new();
        while let Some(r) = d.recv().await {
            sent.push((r.type_url.clone(), delta_names(&r)));
            d.send(DeltaDiscoveryRequest {
                type_url: r.type_url.clone(),
                response_nonce: r.nonce.clone(),
                ..Default::default()
            })
            .await;
        }
        sent
    }
    let initial = drain(&mut d).await;
    assert_eq!(initial.len(), 2, "{initial:?}");

    let endpoint_changed = base.replacen(
        "cluster_name: b\n",
        "cluster_name: b\npolicy: {overprovisioning_factor: 150}\n",
        1,
    );
    server.snapshots.send_replace(snapshot(&endpoint_changed));
    assert_eq!(
        drain(&mut d).await,
        [(EDS.to_string(), vec!["b".to_string()])],
        "only b's endpoints"
    );

    let cluster_changed = endpoint_changed.replacen(
        "name: c\nconnect_timeout: 1s",
        "name: c\nconnect_timeout: 2s",
        1,
    );
    server.snapshots.send_replace(snapshot(&cluster_changed));
    assert_eq!(
        drain(&mut d).await,
        [
            (CDS.to_string(), vec!["c".to_string()]),
            (EDS.to_string(), vec!["c".to_string()])
        ],
        "cluster c, then its endpoints again"
    );
}

#[tokio::test]
async fn delta_reconnect_honours_initial_resource_versions() {
    let mut server = start(&clusters(&["a", "b"])).await;
    let mut d = DeltaClient::open(&mut server).await;
    d.send(DeltaDiscoveryRequest {
        type_url: CDS.into(),
        ..Default::default()
    })
    .await;
    let first = d.recv().await.expect("initial");
    let versions: std::collections::HashMap<String, String> = first
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    drop(d);
    let mut again = DeltaClient::open(&mut server).await;
    let mut stale = versions.clone();
    stale.insert("b".into(), "old".into());
    again
        .send(DeltaDiscoveryRequest {
            type_url: CDS.into(),
            initial_resource_versions: stale,
            ..Default::default()
        })
        .await;
    let r = again.recv().await.expect("response for the stale one");
    assert_eq!(
        delta_names(&r),
        ["b"],
        "only the resource whose version differs"
    );
}

#[tokio::test]
async fn sotw_empty_list_is_wildcard_only_until_names_are_given() {
    let mut server = start(&clusters(&["a", "b"])).await;
    let mut s = Sotw::open(&mut server).await;
    s.send(CDS, &[], "", "", false).await;
    let all = s.recv().await.expect("wildcard response");
    assert_eq!(names(&all), ["a", "b"]);
    s.send(CDS, &["a"], &all.version_info, &all.nonce, false)
        .await;
    let named = s.recv().await.expect("named response");
    assert_eq!(names(&named), ["a"], "naming a resource ends the wildcard");
    s.send(CDS, &[], &named.version_info, &named.nonce, false)
        .await;
    if let Some(after) = s.recv().await {
        assert!(
            names(&after).is_empty(),
            "an empty list after names is not a wildcard again"
        );
    }
}

const SECRET: &str = "\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\nname: token\ngeneric_secret: {secret: {inline_string: s3cr3t}}\n";

#[tokio::test]
async fn per_type_services_stream_and_fetch() {
    use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
    use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
    let text = format!("{}{SECRET}", clusters(&["a", "b"]));
    let (_snapshots, rx) = watch::channel(snapshot(&text));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(Ads::new(rx, Arc::new(Ledger::default())).routes())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut cds = ClusterDiscoveryServiceClient::connect(addr.clone())
        .await
        .expect("connect");
    let fetched = cds
        .fetch_clusters(DiscoveryRequest {
            node: node(),
            resource_names: vec!["b".into()],
            ..Default::default()
        })
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(names(&fetched), ["b"]);

    // A per-type stream may leave type_url empty: the service says the type.
    let mut sds = SecretDiscoveryServiceClient::connect(addr)
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: node(),
        resource_names: vec!["token".into()],
        ..Default::default()
    })
    .await
    .expect("send");
    let mut responses = sds
        .stream_secrets(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let r = tokio::time::timeout(Duration::from_secs(2), responses.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("one");
    assert_eq!(
        r.type_url,
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    );
    assert_eq!(r.resources.len(), 1);
}

/// CSDS answers, per node, every resource the node was sent, SYNCED once
/// ACKed and ERROR (with the client's text) once NACKed.
#[tokio::test]
async fn csds_reports_what_each_client_was_sent_and_answered() {
    use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
    use envoy_types::pb::envoy::service::status::v3::{ClientStatusRequest, ConfigStatus};
    use envoy_types::pb::envoy::r#type::matcher::v3::{
        NodeMatcher, StringMatcher, string_matcher::MatchPattern,
    };

    let mut server = start(&clusters(&["a", "b"])).await;
    let mut s = Sotw::open(&mut server).await;
    s.send(CDS, &[], "", "", false).await;
    let first = s.recv().await.expect("initial response");
    s.send(CDS, &[], &first.version_info, &first.nonce, false)
        .await;
    assert!(s.recv().await.is_none());
    let mut csds = ClientStatusDiscoveryServiceClient::connect(format!("http://{}", server.addr))
        .await
        .expect("connect");
    let fetch = |matchers: Vec<NodeMatcher>| ClientStatusRequest {
        node_matchers: matchers,
        ..Default::default()
    };
    let all = csds
        .fetch_client_status(fetch(Vec::new()))
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(all.config.len(), 1, "{all:?}");
    let client = &all.config[0];
    assert_eq!(client.node.as_ref().map(|n| n.id.as_str()), Some("n1"));
    let mut listed: Vec<(&str, &str, i32)> = client
        .generic_xds_configs
        .iter()
        .map(|c| (c.name.as_str(), c.version_info.as_str(), c.config_status))
        .collect();
    listed.sort();
    let synced = ConfigStatus::Synced as i32;
    assert_eq!(
        listed,
        [
            ("a", first.version_info.as_str(), synced),
            ("b", first.version_info.as_str(), synced)
        ]
    );
    assert!(
        client
            .generic_xds_configs
            .iter()
            .all(|c| c.xds_config.is_some())
    );

    // Another node id is not selected by an exact matcher for n2.
    let other = NodeMatcher {
        node_id: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Exact("n2".into())),
            ignore_case: false,
        }),
        node_metadatas: Vec::new(),
    };
    let none = csds
        .fetch_client_status(fetch(vec![other]))
        .await
        .expect("fetch")
        .into_inner();
    assert!(none.config.is_empty());

    // A NACK turns the type's resources to ERROR with the client's text.
    server
        .snapshots
        .send_replace(snapshot(&clusters(&["a", "c"])));
    let mut pushed = s.recv().await.expect("push");
    if names(&pushed) == ["a", "b", "c"] {
        s.send(CDS, &[], &pushed.version_info, &pushed.nonce, false)
            .await;
        pushed = s.recv().await.expect("final clusters");
    }
    s.send(CDS, &[], &first.version_info, &pushed.nonce, true)
        .await;
    assert!(s.recv().await.is_none());
    let mut stream = csds
        .stream_client_status(tokio_stream::iter(vec![fetch(Vec::new())]))
        .await
        .expect("stream")
        .into_inner();
    let nacked = stream
        .message()
        .await
        .expect("answer")
        .expect("one response");
    let configs = &nacked.config[0].generic_xds_configs;
    assert!(!configs.is_empty());
    for c in configs {
        assert_eq!(c.config_status, ConfigStatus::Error as i32, "{c:?}");
        let error = c.error_state.as_ref().expect("error state");
        assert_eq!(error.details, "rejected by test");
        assert_eq!(error.version_info, pushed.version_info);
    }
}

/// Hostile or broken requests are contained: a type xdsd does not serve, a
/// first request without `node`, a nonce never sent, 100,000 names in one
/// request; the stream keeps working and so do others.
#[tokio::test]
async fn odd_requests_leave_the_stream_working() {
    let mut server = start(&clusters(&["a", "b"])).await;
    let mut s = Sotw::open(&mut server).await;
    let raw = |type_url: &str, names: Vec<String>| DiscoveryRequest {
        node: None,
        type_url: type_url.into(),
        resource_names: names,
        ..Default::default()
    };
    s.requests
        .send(raw("type.googleapis.com/no.such.Type", Vec::new()))
        .await
        .expect("send");
    assert!(s.recv().await.is_none(), "an unknown type gets nothing");
    s.send(CDS, &[], "", "12345", false).await;
    assert!(s.recv().await.is_none(), "a nonce never sent is ignored");
    let mut many: Vec<String> = (0..100_000).map(|i| format!("missing-{i}")).collect();
    many.push("a".into());
    s.requests.send(raw(EDS, many)).await.expect("send");
    let eds = s.recv().await.expect("EDS for the one name that exists");
    assert_eq!(names(&eds), ["a"]);
    s.send(CDS, &[], "", "", false).await;
    let cds = s.recv().await.expect("the stream still answers");
    assert_eq!(names(&cds), ["a", "b"]);

    // A flood: 20,000 requests as fast as they can be written. Another
    // client is still pushed a change promptly, and the flooding stream
    // still answers afterwards.
    let mut other = Sotw::open(&mut server).await;
    other.send(CDS, &[], "", "", false).await;
    let first = other.recv().await.expect("initial response");
    other
        .send(CDS, &[], &first.version_info, &first.nonce, false)
        .await;
    let flood = s.requests.clone();
    let flooding = tokio::spawn(async move {
        for i in 0..20_000 {
            let request = DiscoveryRequest {
                node: node(),
                type_url: CDS.into(),
                response_nonce: format!("stale-{i}"),
                ..Default::default()
            };
            if flood.send(request).await.is_err() {
                break;
            }
        }
    });
    let pushed_at = std::time::Instant::now();
    server
        .snapshots
        .send_replace(snapshot(&clusters(&["a", "b", "c"])));
    let pushed = other
        .recv()
        .await
        .expect("the other client is pushed the change");
    assert!(names(&pushed).contains(&"c".to_string()));
    assert!(
        pushed_at.elapsed() < Duration::from_secs(1),
        "the other client waited {:?} behind the flood",
        pushed_at.elapsed()
    );
    flooding.await.expect("flood");
    // The flooding stream gets the change too, once its own queue drains.
    let mut seen_c = false;
    for _ in 0..5 {
        match s.recv().await {
            Some(r) if names(&r).contains(&"c".to_string()) => {
                seen_c = true;
                break;
            }
            Some(r) => s.send(CDS, &[], &r.version_info, &r.nonce, false).await,
            None => break,
        }
    }
    assert!(seen_c, "the flooding stream still works");
}

/// `--max-clients` and `--max-request-mb`: streams over the limit are
/// refused (and the place comes back when one ends); a request over the
/// size limit ends its own stream only.
#[tokio::test]
async fn stream_and_request_limits_hold() {
    let limits = ClientLimits {
        max_streams: 2,
        max_request_bytes: 64 * 1024,
    };
    let mut server = start_with(&clusters(&["a"]), limits).await;
    let mut first = Sotw::open(&mut server).await;
    let mut second = Sotw::open(&mut server).await;
    for s in [&mut first, &mut second] {
        s.send(CDS, &[], "", "", false).await;
        assert!(s.recv().await.is_some(), "within the limit");
    }
    let (_requests, rx) = mpsc::channel::<DiscoveryRequest>(1);
    let refused = server
        .client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect_err("a third stream is refused");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(refused.message().contains("--max-clients"), "{refused:?}");

    // A request over the size limit ends that stream, not the other.
    let huge: Vec<String> = (0..10_000).map(|i| format!("name-{i:06}")).collect();
    let request = DiscoveryRequest {
        node: node(),
        type_url: EDS.into(),
        resource_names: huge,
        ..Default::default()
    };
    first.requests.send(request).await.expect("send");
    let ended = tokio::time::timeout(Duration::from_secs(5), first.responses.message()).await;
    assert!(
        matches!(ended, Ok(Err(ref status)) if status.code() == tonic::Code::OutOfRange || status.code() == tonic::Code::ResourceExhausted),
        "the oversized request ends its stream: {ended:?}"
    );
    second.send(CDS, &[], "", "", false).await;
    // The other stream is unaffected (it is answered or, having everything, sent nothing).
    drop(second.recv().await);

    // The ended stream's place is free again.
    let reopened = wait_for_stream(&mut server).await;
    assert!(reopened, "a place came back when a stream ended");
}

/// Opens a stream until the server accepts one (a place is freed when the
/// server notices a stream ended), for at most 5 s.
async fn wait_for_stream(server: &mut Server) -> bool {
    for _ in 0..50 {
        let (requests, rx) = mpsc::channel::<DiscoveryRequest>(1);
        if let Ok(response) = server
            .client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
        {
            drop((requests, response));
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// Clusters (with endpoints) and the route configuration `r` sending `/` to `target`.
fn routed(names: &[&str], target: &str) -> String {
    format!(
        "{}\"@type\": {RDS}\nname: r\nvirtual_hosts:\n- name: all\n  domains: [\"*\"]\n  routes:\n  - match: {{prefix: /}}\n    route: {{cluster: {target}}}\n",
        clusters(names)
    )
}

/// A new set arriving while an endpoints response of the previous change is
/// not ACKed yet (Envoy is still warming the new cluster): the route that
/// uses that cluster is sent only after the ACK.
#[tokio::test]
async fn a_route_waits_for_pending_endpoints_across_changes() {
    let mut server = start(&routed(&["a"], "a")).await;
    let mut s = Sotw::open(&mut server).await;
    for (type_url, names) in [(CDS, vec![]), (EDS, vec!["a"]), (RDS, vec!["r"])] {
        s.send(type_url, &names, "", "", false).await;
        let r = s.recv().await.expect("initial response");
        s.send(type_url, &names, &r.version_info, &r.nonce, false)
            .await;
    }
    // Cluster b appears (unused): clusters first; like Envoy, the client asks
    // for b's endpoints before it ACKs the clusters, then ACKs everything
    // but the last endpoints response.
    server
        .snapshots
        .send_replace(snapshot(&routed(&["a", "b"], "a")));
    let cds = s.recv().await.expect("clusters a and b");
    assert_eq!(cds.type_url, CDS);
    s.send(EDS, &["a", "b"], "", "", false).await;
    s.send(CDS, &[], &cds.version_info, &cds.nonce, false).await;
    let mut eds = (String::new(), String::new());
    while let Some(r) = s.recv().await {
        if r.type_url == EDS {
            eds = (r.version_info.clone(), r.nonce.clone());
        } else {
            s.send(&r.type_url, &[], &r.version_info, &r.nonce, false)
                .await;
        }
    }
    assert!(!eds.1.is_empty(), "an endpoints response went out");
    // The route moves to b while b's endpoints are not ACKed.
    server
        .snapshots
        .send_replace(snapshot(&routed(&["a", "b"], "b")));
    let early = s.recv().await;
    assert!(
        early.as_ref().is_none_or(|r| r.type_url != RDS),
        "the route to b was sent before b's endpoints were ACKed: {early:?}"
    );
    s.send(EDS, &["a", "b"], &eds.0, &eds.1, false).await;
    let mut route = None;
    while let Some(r) = s.recv().await {
        if r.type_url == RDS {
            route = Some(r);
            break;
        }
        s.send(&r.type_url, &[], &r.version_info, &r.nonce, false)
            .await;
    }
    assert!(
        route.is_some(),
        "the route comes once the endpoints are ACKed"
    );
}

/// A client that reconnects while a change may be under way (SotW: it
/// names a version it holds) keeps the previous set's clusters until its
/// routes are on the current set: clusters first come as old plus new, and
/// the old ones go only after the routes are ACKed.
#[tokio::test]
async fn a_reconnecting_client_keeps_old_clusters_until_its_routes_moved() {
    let previous = snapshot(&routed(&["a"], "a"));
    let mut current =
        Snapshot::build(&xdsd::config::loader::load_str("t.yaml", &routed(&["b"], "b")).resources);
    current.follow(&previous);
    let mut server = start(&routed(&["a"], "a")).await;
    server.snapshots.send_replace(Arc::new(current));
    let mut s = Sotw::open(&mut server).await;
    // Like Envoy after a reconnect: every subscription at once, each with
    // the version it holds.
    s.send(CDS, &[], "held-before", "", false).await;
    s.send(RDS, &["r"], "held-before", "", false).await;
    let mut clusters_seen = Vec::new();
    let mut route_acked = false;
    while let Some(r) = s.recv().await {
        if r.type_url == CDS {
            clusters_seen.push((names(&r), route_acked));
        }
        if r.type_url == RDS {
            route_acked = true;
        }
        s.send(
            &r.type_url,
            if r.type_url == RDS { &["r"] } else { &[] },
            &r.version_info,
            &r.nonce,
            false,
        )
        .await;
    }
    let first = clusters_seen.first().expect("clusters were sent");
    assert_eq!(
        first.0,
        ["a", "b"],
        "the old cluster is kept at first: {clusters_seen:?}"
    );
    let last = clusters_seen.last().expect("clusters were sent");
    assert_eq!(
        last.0,
        ["b"],
        "the old cluster goes in the end: {clusters_seen:?}"
    );
    assert!(
        last.1,
        "and only after the routes were ACKed: {clusters_seen:?}"
    );
}
