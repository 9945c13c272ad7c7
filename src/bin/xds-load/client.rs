//! One simulated xDS client: an ADS stream, subscribing as Envoy does (CDS
//! and LDS wildcard, then EDS and RDS for the names those reference) or as
//! proxyless gRPC does (one listener by name, then what it references),
//! ACKing every response with its version and nonce. Like Envoy (with its
//! defaults), it puts the node on every request, asks for the endpoints and
//! routes a response references before it ACKs that response, and when the
//! stream ends it reconnects after a jittered exponential backoff and
//! resumes with what it holds (SotW: the accepted versions; delta: the
//! resource versions). Each response is counted (bytes, time) in the
//! client's [`ClientStats`].

use super::refs::{self, Refs};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// How clients subscribe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Envoy over ADS, state of the world.
    Sotw,
    /// Envoy over ADS, incremental.
    Delta,
    /// Proxyless gRPC: the listener named here, then what it references (SotW).
    Named(String),
}

/// Counters of one client, shared with the fleet; times are nanoseconds since the fleet's start.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Responses received.
    pub responses: AtomicU64,
    /// Encoded bytes received.
    pub bytes: AtomicU64,
    /// When the last response arrived (0: none yet).
    pub last_response: AtomicU64,
    /// When every subscribed type had its first response (0: not yet).
    pub synced: AtomicU64,
    /// Responses NACKed (resources that did not decode).
    pub nacks: AtomicU64,
    /// Streams that ended (the server closed them, or failed to open one).
    pub disconnects: AtomicU64,
    /// When the client's current stream opened (0: none yet).
    pub stream_opened: AtomicU64,
    /// A stream is open.
    pub open: AtomicBool,
}

/// What the fleet shares with every client.
#[derive(Debug)]
pub struct Shared {
    /// The fleet's time origin.
    pub start: Instant,
    /// When any client last received anything (nanoseconds since `start`).
    pub last_event: AtomicU64,
}

impl Shared {
    /// Nanoseconds since the start.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One type's subscription and what its resources reference.
#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    subscribed: bool,
    answered: bool,
    version: String,
    nonce: String,
    /// Delta: each held resource's version and what it references.
    held: BTreeMap<String, (String, Refs)>,
    /// SotW: what the last response's resources reference.
    refs: Refs,
}

impl TypeState {
    /// Subscribed to something: every resource, or some names.
    fn is_asked(&self) -> bool {
        self.subscribed && (self.wildcard || !self.names.is_empty())
    }
}

/// The subscription state of one client, the same for both wire formats.
#[derive(Debug, Default)]
struct Subscriptions {
    types: BTreeMap<&'static str, TypeState>,
}

impl Subscriptions {
    fn initial(mode: &Mode) -> Subscriptions {
        let mut subs = Subscriptions::default();
        match mode {
            Mode::Sotw | Mode::Delta => {
                for t in [CDS, LDS] {
                    let state = subs.types.entry(t).or_default();
                    state.wildcard = true;
                    state.subscribed = true;
                }
            }
            Mode::Named(listener) => {
                let state = subs.types.entry(LDS).or_default();
                state.names.insert(listener.clone());
                state.subscribed = true;
            }
        }
        subs
    }

    /// Every type's references together.
    fn refs(&self, type_url: &str) -> Refs {
        let mut all = Refs::default();
        if let Some(state) = self.types.get(type_url) {
            all.extend(clone_refs(&state.refs));
            for (_, r) in state.held.values() {
                all.extend(clone_refs(r));
            }
        }
        all
    }

    /// After a response of `answered`: the names each dependent type should
    /// now ask for; returns the types whose names changed. Endpoints (and,
    /// for Envoy-like clients, routes) reference nothing, so a response of
    /// theirs costs no recomputation: the generator stays cheaper than the
    /// server it measures.
    fn follow(&mut self, answered: &str, mode: &Mode) -> Vec<&'static str> {
        let named = matches!(mode, Mode::Named(_));
        if !(answered == CDS || answered == LDS || answered == RDS && named) {
            return Vec::new();
        }
        let clusters = self.refs(CDS);
        let listeners = self.refs(LDS);
        let routes = self.refs(RDS);
        let mut wanted: Vec<(&'static str, BTreeSet<String>)> =
            vec![(EDS, clusters.endpoints), (RDS, listeners.routes.clone())];
        if matches!(mode, Mode::Named(_)) {
            let mut names = listeners.clusters;
            names.extend(routes.clusters);
            wanted.push((CDS, names));
        }
        let mut changed = Vec::new();
        for (type_url, names) in wanted {
            let state = self.types.entry(type_url).or_default();
            // An empty first SotW subscription would mean "everything": not sent.
            if (state.subscribed || !names.is_empty()) && state.names != names {
                state.names = names;
                state.subscribed = true;
                changed.push(type_url);
            }
        }
        changed
    }

    /// Every subscribed type with a non-empty subscription has had a response.
    fn synced(&self) -> bool {
        self.types
            .values()
            .filter(|t| t.is_asked())
            .all(|t| t.answered)
    }
}

fn clone_refs(r: &Refs) -> Refs {
    Refs {
        endpoints: r.endpoints.clone(),
        routes: r.routes.clone(),
        clusters: r.clusters.clone(),
    }
}

/// What a resource of `type_url` references.
fn refs_of(type_url: &str, bytes: &[u8]) -> Result<Refs, prost::DecodeError> {
    match type_url {
        CDS => refs::of_cluster(bytes),
        LDS => refs::of_listener(bytes),
        RDS => refs::of_route(bytes),
        _ => Ok(Refs::default()),
    }
}

fn nack(error: &prost::DecodeError) -> RpcStatus {
    RpcStatus {
        code: 3,
        message: format!("xds-load cannot decode a resource: {error}"),
        details: Vec::new(),
    }
}

/// A connected client, ready to run.
pub struct Client {
    /// Its node.
    pub node: Node,
    /// How it subscribes.
    pub mode: Mode,
    /// Its counters.
    pub stats: Arc<ClientStats>,
    /// The fleet's clock.
    pub shared: Arc<Shared>,
}

impl Client {
    fn received(&self, bytes: usize) {
        let now = self.shared.now();
        self.stats.responses.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.stats.last_response.store(now, Ordering::Relaxed);
        self.shared.last_event.fetch_max(now, Ordering::Relaxed);
    }

    fn mark_synced(&self, subs: &Subscriptions) {
        if subs.synced() && self.stats.synced.load(Ordering::Relaxed) == 0 {
            self.stats
                .synced
                .store(self.shared.now(), Ordering::Relaxed);
        }
    }

    /// Runs streams on `channel` for ever: when one ends (or cannot open),
    /// waits as Envoy does and opens the next, resuming what it holds.
    pub async fn run(self, channel: Channel) {
        let mut ads =
            AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
        let mut subs = Subscriptions::initial(&self.mode);
        let mut attempt = 0;
        loop {
            let opened = match self.mode {
                Mode::Delta => self.run_delta(&mut ads, &mut subs).await,
                _ => self.run_sotw(&mut ads, &mut subs).await,
            };
            self.stats.open.store(false, Ordering::Relaxed);
            self.stats.disconnects.fetch_add(1, Ordering::Relaxed);
            self.shared
                .last_event
                .fetch_max(self.shared.now(), Ordering::Relaxed);
            attempt = if opened { 0 } else { attempt + 1 };
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    fn opened(&self) {
        let now = self.shared.now();
        self.stats.stream_opened.store(now, Ordering::Relaxed);
        self.stats.open.store(true, Ordering::Relaxed);
        self.shared.last_event.fetch_max(now, Ordering::Relaxed);
    }

    /// One SotW stream; `true` when it opened (and later ended).
    async fn run_sotw(
        &self,
        ads: &mut AggregatedDiscoveryServiceClient<Channel>,
        subs: &mut Subscriptions,
    ) -> bool {
        let (tx, rx) = mpsc::unbounded_channel();
        let request = |subs: &Subscriptions, type_url: &str, error: Option<RpcStatus>| {
            let state = subs.types.get(type_url);
            DiscoveryRequest {
                node: Some(self.node.clone()),
                type_url: type_url.to_string(),
                resource_names: state
                    .map(|s| s.names.iter().cloned().collect())
                    .unwrap_or_default(),
                version_info: state.map(|s| s.version.clone()).unwrap_or_default(),
                response_nonce: state.map(|s| s.nonce.clone()).unwrap_or_default(),
                error_detail: error,
                ..DiscoveryRequest::default()
            }
        };
        // A new stream: what is held, with no nonce (that was the old stream's).
        for state in subs.types.values_mut() {
            state.nonce.clear();
        }
        for (type_url, state) in &subs.types {
            if state.is_asked() {
                let _ = tx.send(request(subs, type_url, None));
            }
        }
        let Ok(responses) = ads
            .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
            .await
        else {
            return false;
        };
        self.opened();
        let mut responses = responses.into_inner();
        while let Ok(Some(response)) = responses.message().await {
            self.received(response.encoded_len());
            let type_url = known_type(&response.type_url);
            let decoded: Result<Vec<Refs>, _> = response
                .resources
                .iter()
                .map(|any| refs_of(type_url, &any.value))
                .collect();
            let DiscoveryResponse {
                version_info,
                nonce,
                ..
            } = response;
            let state = subs.types.entry(type_url).or_default();
            state.nonce = nonce;
            let error = match decoded {
                Ok(all) => {
                    state.version = version_info;
                    state.answered = true;
                    state.refs = all.into_iter().fold(Refs::default(), |mut acc, r| {
                        acc.extend(r);
                        acc
                    });
                    None
                }
                Err(e) => {
                    self.stats.nacks.fetch_add(1, Ordering::Relaxed);
                    Some(nack(&e))
                }
            };
            // Envoy asks for what the new clusters and listeners reference
            // while it applies them, before it ACKs them.
            for dependent in subs.follow(type_url, &self.mode) {
                let _ = tx.send(request(subs, dependent, None));
            }
            let _ = tx.send(request(subs, type_url, error));
            self.mark_synced(subs);
        }
        true
    }

    /// One delta stream; `true` when it opened (and later ended).
    async fn run_delta(
        &self,
        ads: &mut AggregatedDiscoveryServiceClient<Channel>,
        subs: &mut Subscriptions,
    ) -> bool {
        let (tx, rx) = mpsc::unbounded_channel();
        let node = Some(self.node.clone());
        // Delta subscriptions change by difference: what was last asked, per type.
        let mut asked: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        for (type_url, state) in &subs.types {
            if !state.is_asked() {
                continue;
            }
            let names = if state.wildcard {
                vec!["*".to_string()]
            } else {
                asked.insert(type_url, state.names.clone());
                state.names.iter().cloned().collect()
            };
            let _ = tx.send(DeltaDiscoveryRequest {
                node: node.clone(),
                type_url: type_url.to_string(),
                resource_names_subscribe: names,
                initial_resource_versions: state
                    .held
                    .iter()
                    .map(|(name, (version, _))| (name.clone(), version.clone()))
                    .collect(),
                ..DeltaDiscoveryRequest::default()
            });
        }
        let Ok(responses) = ads
            .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
            .await
        else {
            return false;
        };
        self.opened();
        let mut responses = responses.into_inner();
        while let Ok(Some(response)) = responses.message().await {
            self.received(response.encoded_len());
            let type_url = known_type(&response.type_url);
            let DeltaDiscoveryResponse {
                resources,
                removed_resources,
                nonce,
                ..
            } = response;
            let state = subs.types.entry(type_url).or_default();
            let mut error = None;
            for resource in resources {
                let bytes = resource.resource.map(|a| a.value).unwrap_or_default();
                match refs_of(type_url, &bytes) {
                    Ok(r) => {
                        state.held.insert(resource.name, (resource.version, r));
                    }
                    Err(e) => error = Some(nack(&e)),
                }
            }
            for name in removed_resources {
                state.held.remove(&name);
            }
            state.answered = true;
            if error.is_some() {
                self.stats.nacks.fetch_add(1, Ordering::Relaxed);
            }
            // As for SotW: the dependents' subscriptions first, then the ACK.
            for dependent in subs.follow(type_url, &self.mode) {
                let wanted = subs
                    .types
                    .get(dependent)
                    .map(|s| s.names.clone())
                    .unwrap_or_default();
                let before = asked.entry(dependent).or_default();
                let _ = tx.send(DeltaDiscoveryRequest {
                    node: node.clone(),
                    type_url: dependent.to_string(),
                    resource_names_subscribe: wanted.difference(before).cloned().collect(),
                    resource_names_unsubscribe: before.difference(&wanted).cloned().collect(),
                    ..DeltaDiscoveryRequest::default()
                });
                *before = wanted;
            }
            let _ = tx.send(DeltaDiscoveryRequest {
                node: node.clone(),
                type_url: type_url.to_string(),
                response_nonce: nonce,
                error_detail: error,
                ..DeltaDiscoveryRequest::default()
            });
            self.mark_synced(subs);
        }
        true
    }
}

/// Envoy's wait before the next stream (its defaults: a jittered
/// exponential backoff from 500 ms up to 30 s): uniform in [0, 500 ms · 2^attempt).
pub fn backoff(attempt: u32) -> Duration {
    let ceiling_ms: u64 = (500u64 << attempt.min(6)).min(30_000);
    // A fresh RandomState is randomly seeded: jitter without a PRNG crate.
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
    Duration::from_millis(random % ceiling_ms)
}

/// The type URL as one of the four known constants ("" for any other).
fn known_type(type_url: &str) -> &'static str {
    [CDS, EDS, LDS, RDS]
        .into_iter()
        .find(|t| *t == type_url)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_like_subscriptions_follow_references() {
        let mut subs = Subscriptions::initial(&Mode::Sotw);
        assert!(subs.types[CDS].wildcard && subs.types[LDS].wildcard);
        let cds = subs.types.entry(CDS).or_default();
        cds.refs.endpoints.insert("a".into());
        cds.answered = true;
        assert!(
            subs.follow(EDS, &Mode::Sotw).is_empty(),
            "an endpoints response references nothing: nothing is recomputed"
        );
        assert_eq!(subs.follow(CDS, &Mode::Sotw), vec![EDS]);
        assert!(!subs.synced(), "EDS not answered yet");
        assert!(
            subs.follow(CDS, &Mode::Sotw).is_empty(),
            "no change, no request"
        );
    }

    #[test]
    fn grpc_like_subscriptions_start_from_one_listener() {
        let mut subs = Subscriptions::initial(&Mode::Named("greeter".into()));
        let lds = subs.types.entry(LDS).or_default();
        lds.refs.routes.insert("r".into());
        lds.answered = true;
        let rds = subs.types.entry(RDS).or_default();
        rds.refs.clusters.insert("c".into());
        let mode = Mode::Named("greeter".into());
        let changed = subs.follow(RDS, &mode);
        assert!(
            changed.contains(&RDS) && changed.contains(&CDS),
            "{changed:?}"
        );
    }
}
