//! Broken and abusive clients against `xdsd serve`: thousands of
//! connect/disconnect cycles leave nothing behind, and a client that stops
//! reading neither grows the daemon without bound nor delays anyone else.

use crate::common::{WorkDir, Xdsd, wait_for};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// `count` clusters whose names are padded to make responses large; `round`
/// changes every cluster's timeout.
fn clusters(count: usize, round: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "\"@type\": {CDS}\nname: cluster-{i:04}-{}\nconnect_timeout: {}s\n",
                "x".repeat(4000),
                round % 50 + 1
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn request(nonce: &str, version: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node {
            id: "client".into(),
            cluster: "clients".into(),
            ..Node::default()
        }),
        type_url: CDS.into(),
        response_nonce: nonce.into(),
        version_info: version.into(),
        ..DiscoveryRequest::default()
    }
}

/// An ADS stream asking for every cluster.
async fn open(port: u16) -> (mpsc::Sender<DiscoveryRequest>, Streaming<DiscoveryResponse>) {
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect");
    let (requests, rx) = mpsc::channel(4);
    requests.send(request("", "")).await.expect("send");
    let responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    (requests, responses)
}

/// Streams xdsd lists in `/clients`.
fn streams(xdsd: &Xdsd) -> usize {
    xdsd.admin_json("/clients").as_array().map_or(0, Vec::len)
}

/// `cycles` clients, 50 at a time: each connects, gets its clusters, and goes.
async fn connect_cycles(port: u16, cycles: usize) {
    for _ in 0..cycles / 50 {
        let batch: Vec<_> = (0..50)
            .map(|_| {
                tokio::spawn(async move {
                    let (_requests, mut responses) = open(port).await;
                    let first = responses.message().await.expect("response").expect("one");
                    assert!(!first.resources.is_empty());
                })
            })
            .collect();
        for task in batch {
            task.await.expect("client task");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connects_leave_nothing_behind() {
    let work = WorkDir::new("clients-cycles");
    work.put("clusters.yaml", &clusters(20, 0));
    let xdsd = Xdsd::start_with(&work.config(), &work.beside("xdsd.log"), &[]);
    let pid = xdsd.guard.pid();
    let settle = |xdsd: &Xdsd| {
        let gone = wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
            (streams(xdsd) == 0).then_some(())
        });
        assert!(gone.is_some(), "streams left behind: {}", streams(xdsd));
    };
    // The first round brings the allocator to its working size.
    connect_cycles(xdsd.listen, 1000).await;
    settle(&xdsd);
    let after_first = rss_kib(pid);
    connect_cycles(xdsd.listen, 2000).await;
    settle(&xdsd);
    let after_more = rss_kib(pid);
    eprintln!("RSS after 1,000 cycles {after_first} KiB, after 2,000 more {after_more} KiB");
    assert!(
        after_more <= after_first + (after_first / 10).max(4096),
        "RSS grew from {after_first} KiB to {after_more} KiB over 2,000 connect/disconnect cycles"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_contained() {
    let work = WorkDir::new("clients-stuck");
    // About 1 MB per response: the stream's HTTP/2 window fills at once,
    // and a queue that did not stop would hold one more set per change.
    work.put("clusters.yaml", &clusters(250, 0));
    let xdsd = Xdsd::start_with(
        &work.config(),
        &work.beside("xdsd.log"),
        &["--debounce-ms", "20"],
    );
    let pid = xdsd.guard.pid();
    // The stuck client asks, then never reads again.
    let (_stuck_requests, _stuck_responses) = open(xdsd.listen).await;
    let (healthy, mut responses) = open(xdsd.listen).await;
    let first = responses.message().await.expect("response").expect("one");
    healthy
        .send(request(&first.nonce, &first.version_info))
        .await
        .expect("ack");
    let mut version = first.version_info;
    let mut rss = vec![rss_kib(pid)];
    let mut slowest = Duration::ZERO;
    for round in 1..=60 {
        let changed = Instant::now();
        work.put("clusters.yaml", &clusters(250, round));
        // The healthy client gets every change promptly (it ACKs each).
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), responses.message())
                .await
                .unwrap_or_else(|_| panic!("round {round}: the healthy client waited over 5 s"))
                .expect("stream")
                .expect("response");
            healthy
                .send(request(&next.nonce, &next.version_info))
                .await
                .expect("ack");
            let new = next.version_info != version;
            version = next.version_info;
            if new {
                break;
            }
        }
        slowest = slowest.max(changed.elapsed());
        rss.push(rss_kib(pid));
    }
    // Memory reaches a working size and stays there: it does not grow with
    // every change, as it would if the stuck stream's responses piled up.
    // A queue that did not stop would add about 1 MB per change (30 MB
    // over the last 30); the allocator's own drift is a few MB.
    let peak = |range: std::ops::Range<usize>| rss[range].iter().copied().max().unwrap_or(0);
    let (warm, last) = (peak(20..31), peak(50..61));
    eprintln!(
        "stuck reader: slowest healthy update {slowest:?}; RSS at start {} KiB, peak over changes 20-30 {warm} KiB, over 50-60 {last} KiB",
        rss[0]
    );
    assert!(
        slowest < Duration::from_secs(2),
        "the healthy client was held up: {slowest:?}"
    );
    assert!(
        last <= warm + 12 * 1024,
        "RSS kept growing with a client that stopped reading: peak {warm} KiB over changes 20-30 of 1 MB sets, {last} KiB over changes 50-60"
    );
    assert_eq!(streams(&xdsd), 2, "both streams are still known");
}
