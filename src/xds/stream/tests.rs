//! The engine's rules, one test each, driven with a fake clock: no gRPC,
//! no runtime, no sleeping.

use super::{Barrier, Effect, Engine, Incoming, Peers, Record, Subscription, Wire};
use crate::config::schema::ResourceType;
use crate::xds::delta::Delta;
use crate::xds::messages::DiscoveryResponse;
use crate::xds::snapshot::Snapshot;
use crate::xds::sotw::Sotw;
use crate::xds::{Caller, Peer};
use envoy_types::pb::envoy::config::core::v3::Node;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::time::{Duration, Instant};

mod pushes_per_change;

const CDS: ResourceType = ResourceType::Cluster;
const EDS: ResourceType = ResourceType::ClusterLoadAssignment;
const RDS: ResourceType = ResourceType::RouteConfiguration;

/// Clusters (EDS, with endpoints) and the route configuration `r` sending `/` to `target`.
fn routed(names: &[&str], target: &str) -> String {
    let mut text: String = names
        .iter()
        .map(|n| {
            format!(
                "\"@type\": {}\nname: {n}\nconnect_timeout: 1s\ntype: EDS\neds_cluster_config: {{eds_config: {{ads: {{}}}}}}\n---\n\"@type\": {}\ncluster_name: {n}\n---\n",
                CDS.type_url(),
                EDS.type_url()
            )
        })
        .collect();
    text.push_str(&format!(
        "\"@type\": {}\nname: r\nvirtual_hosts:\n- name: all\n  domains: [\"*\"]\n  routes:\n  - match: {{prefix: /}}\n    route: {{cluster: {target}}}\n",
        RDS.type_url()
    ));
    text
}

fn build(text: &str) -> Snapshot {
    let loaded = crate::config::loader::load_str("t.yaml", text);
    assert!(
        loaded.diagnostics.is_ok(),
        "{:?}",
        loaded.diagnostics.sorted()
    );
    Snapshot::build(&loaded.resources)
}

fn snapshot(names: &[&str], target: &str) -> Arc<Snapshot> {
    Arc::new(build(&routed(names, target)))
}

/// `current`, made the successor of `previous` (what a reconnecting client may hold).
fn following(previous: &Arc<Snapshot>, names: &[&str], target: &str) -> Arc<Snapshot> {
    let mut current = build(&routed(names, target));
    current.follow(previous);
    Arc::new(current)
}

/// What the other per-type streams of the node say, set by the test.
#[derive(Default)]
struct FakePeers(AtomicBool);

impl Peers for FakePeers {
    fn ready(&self, _: &Barrier<'_>) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// One engine, its fake clock and its peers.
struct Client<W: Wire> {
    engine: Engine<W>,
    now: Instant,
    peers: FakePeers,
}

impl<W: Wire> Client<W> {
    fn new(only: Option<ResourceType>, snapshot: Arc<Snapshot>) -> Self {
        let caller = Caller {
            peer: Peer::default(),
            authorization: None,
        };
        Client {
            engine: Engine::new(1, only, caller, snapshot),
            now: Instant::now(),
            peers: FakePeers::default(),
        }
    }

    fn request(&mut self, request: Incoming) -> Vec<Effect<W::Response>> {
        let first = self.engine.node.is_none();
        let mut effects = self.engine.on_request(request, self.now, &self.peers);
        // What the driver does once a per-type stream joined its node's streams.
        if first && self.engine.only.is_some() {
            effects.extend(self.engine.on_tick(self.now, &self.peers));
        }
        effects
    }

    fn change(&mut self, snapshot: &Arc<Snapshot>) -> Vec<Effect<W::Response>> {
        self.engine
            .on_snapshot(Arc::clone(snapshot), self.now, &self.peers)
    }

    /// Moves the fake clock on by `ms` and tells the engine.
    fn tick(&mut self, ms: u64) -> Vec<Effect<W::Response>> {
        self.now += Duration::from_millis(ms);
        self.engine.on_tick(self.now, &self.peers)
    }
}

fn node() -> Option<Node> {
    Some(Node {
        id: "n".into(),
        cluster: "c".into(),
        ..Node::default()
    })
}

/// A SotW request for `names` of `rtype`, answering `nonce` with `version`.
fn sotw(rtype: ResourceType, names: &[&str], version: &str, nonce: &str) -> Incoming {
    Incoming {
        type_url: rtype.type_url(),
        node: node(),
        nonce: nonce.into(),
        error: None,
        version: version.into(),
        subscription: Subscription::Replace(names.iter().map(|n| n.to_string()).collect()),
    }
}

/// A response as the ledger records it: type, resource names, version.
#[derive(Debug, PartialEq)]
struct Push {
    rtype: ResourceType,
    names: Vec<String>,
    version: String,
}

/// The responses among `effects` (each goes out right after its record).
fn pushes<R>(effects: &[Effect<R>]) -> Vec<Push> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Record(Record::Sent {
                rtype,
                version,
                resources,
                ..
            }) => Some(Push {
                rtype: *rtype,
                names: resources.keys().cloned().collect(),
                version: version.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The only response among `effects`.
fn one<R>(effects: &[Effect<R>]) -> Push {
    let mut all = pushes(effects);
    assert_eq!(all.len(), 1, "one response expected: {all:?}");
    all.remove(0)
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

impl Client<Sotw> {
    /// ACKs the last response of `rtype` with the subscription `names`.
    fn ack(&mut self, rtype: ResourceType, names: &[&str]) -> Vec<Effect<DiscoveryResponse>> {
        let state = &self.engine.types[&rtype];
        let (version, nonce) = (state.sent_version.clone(), state.nonce.clone());
        self.request(sotw(rtype, names, &version, &nonce))
    }
}

/// The subscriptions of [`settled`].
fn names_of(rtype: ResourceType) -> &'static [&'static str] {
    match rtype {
        EDS => &["a", "b"],
        RDS => &["r"],
        _ => &[],
    }
}

/// A SotW client (ADS, or per-type for `only`) subscribed to every cluster,
/// endpoints a and b, and route `r`, all ACKed.
fn settled(only: Option<ResourceType>, snapshot: Arc<Snapshot>) -> Client<Sotw> {
    let mut c = Client::<Sotw>::new(only, snapshot);
    // The node's other per-type streams have the set (a per-type route
    // stream's arrival waits for its clusters and endpoints); later changes
    // find them not ready until a test says so.
    c.peers.0.store(true, Ordering::Relaxed);
    for rtype in [CDS, EDS, RDS] {
        if only.is_none_or(|t| t == rtype) {
            one(&c.request(sotw(rtype, names_of(rtype), "", "")));
            assert!(pushes(&c.ack(rtype, names_of(rtype))).is_empty());
        }
    }
    c.peers.0.store(false, Ordering::Relaxed);
    c
}

/// ACKs every response as it comes; the pushes in order.
fn ack_through(c: &mut Client<Sotw>, mut effects: Vec<Effect<DiscoveryResponse>>) -> Vec<Push> {
    let mut order = Vec::new();
    while let Some(push) = pushes(&effects).pop() {
        let rtype = push.rtype;
        order.push(push);
        effects = c.ack(rtype, names_of(rtype));
    }
    order
}

#[test]
fn a_change_moves_in_stages_each_waiting_for_its_ack() {
    let mut c = settled(None, snapshot(&["a"], "a"));
    let effects = c.change(&snapshot(&["b"], "b"));
    let order: Vec<(ResourceType, Vec<String>)> = ack_through(&mut c, effects)
        .into_iter()
        .map(|p| (p.rtype, p.names))
        .collect();
    assert_eq!(
        order,
        [
            (CDS, strings(&["a", "b"])),
            (EDS, strings(&["a", "b"])),
            (RDS, strings(&["r"])),
            (CDS, strings(&["b"])),
            (EDS, strings(&["b"])),
        ]
    );
    assert!(c.engine.stages.idle());
}

#[test]
fn a_stage_goes_on_without_its_ack_after_five_seconds() {
    let mut c = settled(None, snapshot(&["a"], "a"));
    assert_eq!(one(&c.change(&snapshot(&["b"], "b"))).rtype, CDS);
    assert_eq!(c.engine.deadline(), Some(c.now + Duration::from_secs(5)));
    assert!(pushes(&c.tick(4_999)).is_empty(), "still waiting");
    assert_eq!(one(&c.tick(1)).rtype, EDS);
}

#[test]
fn a_type_whose_stage_has_not_come_keeps_what_the_client_has() {
    let mut c = settled(None, snapshot(&["a"], "a"));
    let old_route = c.engine.types[&RDS].sent_version.clone();
    assert_eq!(one(&c.change(&snapshot(&["b"], "b"))).rtype, CDS);
    // Asked again before its stage, the route stays on a (b is not in place yet).
    assert!(pushes(&c.ack(RDS, &["r"])).is_empty());
    assert_eq!(c.engine.types[&RDS].sent_version, old_route);
}

#[test]
fn a_stale_nonce_is_ignored_and_a_nacked_version_is_not_sent_again() {
    let mut c = settled(None, snapshot(&["a"], "a"));
    let clusters = one(&c.change(&snapshot(&["b"], "b")));
    // An answer to an older response does not move the transition.
    assert!(c.request(sotw(CDS, &[], "old", "0")).is_empty());
    let nonce = c.engine.types[&CDS].nonce.clone();
    let mut nack = sotw(CDS, &[], "", &nonce);
    nack.error = Some("refused".into());
    let effects = c.request(nack);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Record(Record::Nack { version, .. }) if *version == clusters.version
    )));
    // The NACK answers the stage: the next one runs, clusters are not re-sent.
    assert_eq!(one(&effects).rtype, EDS);
}

/// As `a_route_waits_for_pending_endpoints_across_changes` in
/// tests/it/xds_protocol.rs: endpoints not ACKed yet (Envoy still warming a
/// new cluster) hold back a route sent by a later change.
#[test]
fn a_stage_waits_for_an_unanswered_response_of_an_earlier_change() {
    let mut c = settled(None, snapshot(&["a"], "a"));
    assert_eq!(one(&c.change(&snapshot(&["a", "b"], "a"))).rtype, CDS);
    assert_eq!(one(&c.ack(CDS, &[])).rtype, EDS);
    // The endpoints are never ACKed: each endpoints stage gives up after 5 s.
    assert!(pushes(&c.tick(5_000)).is_empty());
    assert!(pushes(&c.tick(5_000)).is_empty());
    assert!(c.engine.stages.idle());
    // The route moves to b: the endpoints stage sends nothing, but waits.
    assert!(pushes(&c.change(&snapshot(&["a", "b"], "b"))).is_empty());
    assert_eq!(one(&c.ack(EDS, names_of(EDS))).rtype, RDS);
}

#[test]
fn a_per_type_stream_waits_for_its_peers() {
    let mut c = settled(Some(RDS), snapshot(&["a"], "a"));
    assert!(pushes(&c.change(&snapshot(&["b"], "b"))).is_empty());
    assert!(c.engine.waits_for_peers());
    assert!(pushes(&c.tick(1_000)).is_empty());
    c.peers.0.store(true, Ordering::Relaxed);
    assert_eq!(one(&c.tick(50)).rtype, RDS);
}

#[test]
fn a_per_type_stream_waits_for_its_peers_five_seconds_at_most() {
    let mut c = settled(Some(CDS), snapshot(&["a"], "a"));
    // Clusters: old plus new at once (nothing to wait for), and the stream
    // tells its peers it is ready once they are ACKed.
    let union = one(&c.change(&snapshot(&["b"], "b")));
    assert_eq!(union.names, strings(&["a", "b"]));
    let effects = c.ack(CDS, &[]);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Record(Record::Ready { .. })))
    );
    // Pruning waits for the listener and route streams.
    assert!(pushes(&effects).is_empty());
    assert!(pushes(&c.tick(4_999)).is_empty());
    assert_eq!(one(&c.tick(1)).names, strings(&["b"]));
}

#[test]
fn a_reconnecting_client_keeps_the_previous_clusters_until_its_routes_moved() {
    let previous = snapshot(&["a"], "a");
    let mut c = Client::<Sotw>::new(None, following(&previous, &["b"], "b"));
    let clusters = one(&c.request(sotw(CDS, &[], "held-before", "")));
    assert_eq!(clusters.names, strings(&["a", "b"]));
    assert!(
        pushes(&c.ack(CDS, &[])).is_empty(),
        "held while routes are old"
    );
    assert_eq!(
        one(&c.request(sotw(RDS, &["r"], "held-before", ""))).rtype,
        RDS
    );
    let pruned = one(&c.ack(RDS, &["r"]));
    assert_eq!((pruned.rtype, pruned.names), (CDS, strings(&["b"])));
}

#[test]
fn the_holdover_ends_after_five_seconds() {
    let previous = snapshot(&["a"], "a");
    let mut c = Client::<Sotw>::new(None, following(&previous, &["b"], "b"));
    one(&c.request(sotw(CDS, &[], "held-before", "")));
    assert!(pushes(&c.ack(CDS, &[])).is_empty());
    assert!(pushes(&c.tick(4_999)).is_empty());
    assert_eq!(one(&c.tick(1)).names, strings(&["b"]));
}

#[test]
fn a_client_that_is_not_reconnecting_gets_the_current_set_only() {
    let previous = snapshot(&["a"], "a");
    let mut c = Client::<Sotw>::new(None, following(&previous, &["b"], "b"));
    assert_eq!(
        one(&c.request(sotw(CDS, &[], "", ""))).names,
        strings(&["b"])
    );
}

/// A delta request subscribing `subscribe`, saying it holds `initial`.
fn delta(rtype: ResourceType, subscribe: &[&str], initial: &[(&str, &str)]) -> Incoming {
    Incoming {
        type_url: rtype.type_url(),
        node: node(),
        nonce: String::new(),
        error: None,
        version: String::new(),
        subscription: Subscription::Delta {
            subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
            unsubscribe: BTreeSet::new(),
            initial: initial
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        },
    }
}

#[test]
fn a_reconnecting_delta_client_keeps_only_what_it_said_it_has() {
    let previous = snapshot(&["a", "c"], "a");
    let mut c = Client::<Delta>::new(None, following(&previous, &["b"], "b"));
    let effects = c.request(delta(CDS, &["*"], &[("a", "old")]));
    // a is held (re-sent, at its previous version), b is new; c, which the
    // client did not say it has, is not sent.
    assert_eq!(one(&effects).names, strings(&["a", "b"]));
    let Some(response) = effects.iter().rev().find_map(|e| match e {
        Effect::Send(response) => Some(response),
        _ => None,
    }) else {
        panic!("a response");
    };
    let names: Vec<&str> = response.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(response.removed_resources.is_empty());
}

#[test]
fn a_new_delta_client_is_answered_even_when_it_gets_nothing() {
    let mut c = Client::<Delta>::new(None, snapshot(&["a"], "a"));
    let effects = c.request(delta(CDS, &["nope"], &[]));
    assert!(one(&effects).names.is_empty());
}

#[test]
fn a_refused_node_ends_the_stream_with_the_reason() {
    let authorization =
        crate::daemon::xds_tls::NodeAuthorization::new("spiffe://{node_id}").expect("template");
    let caller = Caller {
        peer: Peer::default(),
        authorization: Some(Arc::new(authorization)),
    };
    let mut engine = Engine::<Sotw>::new(1, None, caller, snapshot(&["a"], "a"));
    let effects = engine.on_request(
        sotw(CDS, &[], "", ""),
        Instant::now(),
        &FakePeers::default(),
    );
    assert!(matches!(effects.as_slice(), [Effect::End(Some(_))]));
}

/// The endpoints a stream told its peers it holds, if it told them anything.
fn told<R>(effects: &[Effect<R>]) -> Option<Vec<String>> {
    effects.iter().rev().find_map(|e| match e {
        Effect::Record(Record::Ready { endpoints, .. }) => {
            Some(endpoints.iter().flat_map(|e| e.keys().cloned()).collect())
        }
        _ => None,
    })
}

/// Without ADS, Envoy asks for a new cluster's endpoints on the endpoint
/// stream only once it has the cluster: that stream tells its peers what
/// it holds again once those endpoints are sent and ACKed.
#[test]
fn a_per_type_endpoint_stream_tells_its_peers_the_endpoints_it_holds() {
    let mut c = Client::<Sotw>::new(Some(EDS), snapshot(&["a"], "a"));
    one(&c.request(sotw(EDS, &["a"], "", "")));
    assert_eq!(told(&c.ack(EDS, &["a"])), Some(strings(&["a"])));
    let effects = c.change(&snapshot(&["a", "b"], "b"));
    assert!(pushes(&effects).is_empty(), "nothing new for a");
    assert_eq!(told(&effects), Some(strings(&["a"])), "the stage is done");
    let effects = c.ack(EDS, &["a", "b"]);
    assert_eq!(one(&effects).names, strings(&["a", "b"]));
    assert_eq!(told(&effects), None, "b is not ACKed yet");
    let effects = c.ack(EDS, &["a", "b"]);
    assert_eq!(told(&effects), Some(strings(&["a", "b"])));
    assert!(
        pushes(&effects).is_empty(),
        "pruning waits for the route stream"
    );
}

/// What a route stream asks of its peers.
#[derive(Default)]
struct Asked(std::sync::Mutex<Vec<(Vec<ResourceType>, Vec<String>)>>);

impl Peers for Asked {
    fn ready(&self, barrier: &Barrier<'_>) -> bool {
        if let Ok(mut asked) = self.0.lock() {
            asked.push((barrier.types.to_vec(), barrier.endpoints.to_vec()));
        }
        false
    }
}

#[test]
fn a_per_type_route_stream_waits_for_the_endpoints_of_new_clusters() {
    let mut c = settled(Some(RDS), snapshot(&["a"], "a"));
    let asked = Asked::default();
    let effects = c
        .engine
        .on_snapshot(snapshot(&["a", "b"], "b"), c.now, &asked);
    assert!(pushes(&effects).is_empty());
    let asked = asked.0.lock().map(|a| a.clone()).unwrap_or_default();
    assert_eq!(asked, [(vec![CDS, EDS], strings(&["b"]))]);
}

/// Staged arrival: a client that reconnects after a change made while it
/// was cut off asks for everything at once (as Envoy does). Its routes are
/// withheld until the clusters and endpoints they may name are ACKed, the
/// order of any change; answering each type as asked would send the route
/// to b with the clusters, before b could warm.
#[test]
fn a_reconnecting_client_gets_routes_only_after_their_clusters_are_acked() {
    let mut c = Client::<Sotw>::new(None, snapshot(&["a", "b"], "b"));
    let clusters = one(&c.request(sotw(CDS, &[], "held-before", "")));
    assert_eq!(clusters.names, strings(&["a", "b"]));
    // Envoy asks for the new cluster's endpoints and its routes before it ACKs.
    assert_eq!(
        one(&c.request(sotw(EDS, &["a", "b"], "held-before", ""))).rtype,
        EDS
    );
    assert!(
        pushes(&c.request(sotw(RDS, &["r"], "held-before", ""))).is_empty(),
        "routes wait for the clusters"
    );
    assert!(pushes(&c.ack(CDS, &[])).is_empty(), "and for the endpoints");
    let routes = one(&c.ack(EDS, &["a", "b"]));
    assert_eq!((routes.rtype, routes.names), (RDS, strings(&["r"])));
    assert!(pushes(&c.ack(RDS, &["r"])).is_empty(), "nothing sent twice");
}

/// A client that reconnects holding exactly the current set is sent
/// nothing, in any order it asks (no re-warming either).
#[test]
fn a_client_resuming_the_current_set_is_sent_nothing_on_arrival() {
    let current = snapshot(&["a", "b"], "b");
    let version = |rtype: ResourceType| {
        let view = current.view(&crate::config::selector::NodeIdentity {
            id: "n".into(),
            cluster: "c".into(),
        });
        view.of(rtype)
            .map(|t| t.version.clone())
            .unwrap_or_default()
    };
    let mut c = Client::<Sotw>::new(None, Arc::clone(&current));
    for rtype in [RDS, CDS, EDS] {
        let request = sotw(rtype, names_of(rtype), &version(rtype), "");
        assert!(pushes(&c.request(request)).is_empty(), "{rtype:?}");
    }
    assert!(pushes(&c.tick(6_000)).is_empty());
}

/// A per-type route stream that arrives waits for the node's cluster and
/// endpoint streams to hold the set (at most five seconds).
#[test]
fn a_per_type_route_stream_arriving_waits_for_its_peers() {
    let mut c = Client::<Sotw>::new(Some(RDS), snapshot(&["a"], "a"));
    assert!(pushes(&c.request(sotw(RDS, &["r"], "", ""))).is_empty());
    assert!(c.engine.waits_for_peers());
    c.peers.0.store(true, Ordering::Relaxed);
    assert_eq!(one(&c.tick(10)).rtype, RDS);
}
