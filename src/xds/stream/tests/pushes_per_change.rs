//! How many responses one client is sent for each kind of change users
//! make, against a client that behaves as Envoy does over ADS: it asks for
//! the endpoints of every EDS cluster it is given before it ACKs the
//! clusters (Envoy's CDS update resumes the paused EDS subscription first),
//! and ACKs every response at once. Each count is the minimum the change
//! needs; a response more is a duplicate every client of a fleet pays for.

use super::{Client, EDS, RDS, build};
use crate::config::schema::ResourceType;
use crate::xds::delta::Delta;
use crate::xds::messages::{DeltaDiscoveryResponse, DiscoveryResponse};
use crate::xds::snapshot::Snapshot;
use crate::xds::sotw::Sotw;
use crate::xds::stream::{Effect, Incoming, Record, Subscription, Wire};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

const CDS: ResourceType = ResourceType::Cluster;

/// An EDS cluster: name, connect timeout (seconds), its endpoint's port.
type ClusterSpec<'a> = (&'a str, u32, u32);

/// EDS clusters with one endpoint each, and route `r` sending `/` to `target`.
fn fleet(clusters: &[ClusterSpec<'_>], target: &str) -> Arc<Snapshot> {
    let mut text = String::new();
    for (name, timeout, port) in clusters {
        text.push_str(&format!(
            "\"@type\": {}\nname: {name}\nconnect_timeout: {timeout}s\ntype: EDS\neds_cluster_config: {{eds_config: {{ads: {{}}}}}}\n---\n\"@type\": {}\ncluster_name: {name}\nendpoints:\n- lb_endpoints:\n  - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}\n---\n",
            CDS.type_url(),
            EDS.type_url()
        ));
    }
    text.push_str(&format!(
        "\"@type\": {}\nname: r\nvirtual_hosts:\n- name: all\n  domains: [\"*\"]\n  routes:\n  - match: {{prefix: /}}\n    route: {{cluster: {target}}}\n",
        RDS.type_url()
    ));
    Arc::new(build(&text))
}

/// What the modelled Envoy needs of each wire format.
trait EnvoyWire: Wire {
    /// The nonce of a response.
    fn nonce(response: &Self::Response) -> String;
    /// The first request for `rtype`, subscribing `names` (none: wildcard).
    fn first(rtype: ResourceType, names: &BTreeSet<String>) -> Incoming;
    /// The ACK of `response`, with the subscription `names`.
    fn ack(rtype: ResourceType, response: &Seen, names: &BTreeSet<String>) -> Incoming;
    /// The subscription moving from `old` to `new` names; `last` is the
    /// last response of the type.
    fn resubscribe(
        rtype: ResourceType,
        last: &Seen,
        old: &BTreeSet<String>,
        new: &BTreeSet<String>,
    ) -> Incoming;
}

/// A response as the client saw it.
#[derive(Clone, Default)]
struct Seen {
    rtype: Option<ResourceType>,
    nonce: String,
    version: String,
    /// Every name the client holds after it (SotW: the response; delta: the sum).
    holds: Vec<String>,
}

fn request(
    rtype: ResourceType,
    nonce: &str,
    version: &str,
    subscription: Subscription,
) -> Incoming {
    Incoming {
        type_url: rtype.type_url(),
        node: super::node(),
        nonce: nonce.into(),
        error: None,
        version: version.into(),
        subscription,
    }
}

impl EnvoyWire for Sotw {
    fn nonce(response: &DiscoveryResponse) -> String {
        response.nonce.clone()
    }
    fn first(rtype: ResourceType, names: &BTreeSet<String>) -> Incoming {
        request(rtype, "", "", Subscription::Replace(names.clone()))
    }
    fn ack(rtype: ResourceType, seen: &Seen, names: &BTreeSet<String>) -> Incoming {
        let names = Subscription::Replace(names.clone());
        request(rtype, &seen.nonce, &seen.version, names)
    }
    /// Envoy's SotW request carries the version it accepted last and the
    /// nonce it saw last.
    fn resubscribe(
        rtype: ResourceType,
        last: &Seen,
        _: &BTreeSet<String>,
        new: &BTreeSet<String>,
    ) -> Incoming {
        Self::ack(rtype, last, new)
    }
}

impl EnvoyWire for Delta {
    fn nonce(response: &DeltaDiscoveryResponse) -> String {
        response.nonce.clone()
    }
    fn first(rtype: ResourceType, names: &BTreeSet<String>) -> Incoming {
        let subscribe = match names.is_empty() {
            true => ["*".to_string()].into(),
            false => names.clone(),
        };
        request(rtype, "", "", delta_change(subscribe, BTreeSet::new()))
    }
    fn ack(rtype: ResourceType, seen: &Seen, _: &BTreeSet<String>) -> Incoming {
        let none = delta_change(BTreeSet::new(), BTreeSet::new());
        request(rtype, &seen.nonce, "", none)
    }
    /// Envoy's delta subscription change answers no response: no nonce.
    fn resubscribe(
        rtype: ResourceType,
        _: &Seen,
        old: &BTreeSet<String>,
        new: &BTreeSet<String>,
    ) -> Incoming {
        let subscribe = new.difference(old).cloned().collect();
        let unsubscribe = old.difference(new).cloned().collect();
        request(rtype, "", "", delta_change(subscribe, unsubscribe))
    }
}

fn delta_change(subscribe: BTreeSet<String>, unsubscribe: BTreeSet<String>) -> Subscription {
    Subscription::Delta {
        subscribe,
        unsubscribe,
        initial: BTreeMap::new(),
    }
}

/// An Envoy on ADS: clusters (wildcard), the endpoints of its clusters,
/// route `r`.
struct Envoy<W: EnvoyWire> {
    client: Client<W>,
    /// The endpoint names it subscribes to: one per cluster it has.
    eds: BTreeSet<String>,
    /// The last response of each type.
    last: BTreeMap<ResourceType, Seen>,
    /// Responses received but not handled yet, in order.
    inbox: VecDeque<Seen>,
    /// Responses received, per type.
    counts: BTreeMap<ResourceType, usize>,
}

impl<W: EnvoyWire> Envoy<W> {
    /// Connected to `snapshot`, everything received and ACKed.
    fn settled_on(snapshot: Arc<Snapshot>) -> Self {
        let mut envoy = Envoy {
            client: Client::new(None, snapshot),
            eds: BTreeSet::new(),
            last: BTreeMap::new(),
            inbox: VecDeque::new(),
            counts: BTreeMap::new(),
        };
        let effects = envoy.client.request(W::first(CDS, &BTreeSet::new()));
        envoy.receive(effects);
        let effects = envoy.client.request(W::first(RDS, &names(&["r"])));
        envoy.receive(effects);
        envoy.handle_all();
        envoy.counts.clear();
        envoy
    }

    /// The responses a change to `snapshot` takes, per type, once the
    /// client handled (and ACKed) all of them.
    fn change(&mut self, snapshot: &Arc<Snapshot>) -> BTreeMap<ResourceType, usize> {
        let effects = self.client.change(snapshot);
        self.receive(effects);
        self.handle_all();
        assert!(self.client.engine.stages.idle(), "the transition finished");
        std::mem::take(&mut self.counts)
    }

    fn receive(&mut self, effects: Vec<Effect<W::Response>>) {
        let mut sent: Option<Seen> = None;
        for effect in effects {
            match effect {
                Effect::Record(Record::Sent {
                    rtype,
                    version,
                    resources,
                    ..
                }) => {
                    sent = Some(Seen {
                        rtype: Some(rtype),
                        nonce: String::new(),
                        version,
                        holds: resources.keys().cloned().collect(),
                    })
                }
                Effect::Send(response) => {
                    let mut seen = sent.take().expect("each response is recorded first");
                    seen.nonce = W::nonce(&response);
                    self.inbox.push_back(seen);
                }
                _ => {}
            }
        }
    }

    fn handle_all(&mut self) {
        while let Some(seen) = self.inbox.pop_front() {
            let rtype = seen.rtype.expect("typed");
            *self.counts.entry(rtype).or_default() += 1;
            self.last.insert(rtype, seen.clone());
            if rtype == CDS {
                // The clusters' endpoints are asked for before the clusters are ACKed.
                let wanted: BTreeSet<String> = seen.holds.iter().cloned().collect();
                if wanted != self.eds {
                    let old = std::mem::replace(&mut self.eds, wanted);
                    let request = match self.last.get(&EDS) {
                        Some(last) => W::resubscribe(EDS, last, &old, &self.eds),
                        None => W::first(EDS, &self.eds),
                    };
                    let effects = self.client.request(request);
                    self.receive(effects);
                }
            }
            let subscription = match rtype {
                EDS => self.eds.clone(),
                RDS => names(&["r"]),
                _ => BTreeSet::new(),
            };
            let effects = self.client.request(W::ack(rtype, &seen, &subscription));
            self.receive(effects);
        }
    }
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|n| n.to_string()).collect()
}

fn counts(list: &[(ResourceType, usize)]) -> BTreeMap<ResourceType, usize> {
    list.iter().copied().collect()
}

/// Each kind of change, its responses checked for both wire formats.
fn each_change<W: EnvoyWire>(removal: &[(ResourceType, usize)]) {
    // Add a cluster and route to it: the clusters (old plus new), the new
    // endpoints (the answer to the client asking for them warms the
    // cluster: not sent again), the route. The final stage has nothing
    // stale to drop.
    let mut envoy = Envoy::<W>::settled_on(fleet(&[("a", 1, 1)], "a"));
    let added = envoy.change(&fleet(&[("a", 1, 1), ("b", 1, 2)], "b"));
    assert_eq!(
        added,
        counts(&[(CDS, 1), (EDS, 1), (RDS, 1)]),
        "add + route"
    );

    // An endpoint change: the endpoints alone.
    let mut envoy = Envoy::<W>::settled_on(fleet(&[("a", 1, 1)], "a"));
    let moved = envoy.change(&fleet(&[("a", 1, 2)], "a"));
    assert_eq!(moved, counts(&[(EDS, 1)]), "endpoint change");

    // A changed cluster: the cluster, and its endpoints once (Envoy warms
    // the new cluster only on a fresh assignment).
    let mut envoy = Envoy::<W>::settled_on(fleet(&[("a", 1, 1)], "a"));
    let changed = envoy.change(&fleet(&[("a", 2, 1)], "a"));
    assert_eq!(changed, counts(&[(CDS, 1), (EDS, 1)]), "cluster change");

    // A cluster no route uses, removed: see `removal`.
    let mut envoy = Envoy::<W>::settled_on(fleet(&[("a", 1, 1), ("b", 1, 2)], "a"));
    let removed = envoy.change(&fleet(&[("a", 1, 1)], "a"));
    assert_eq!(removed, counts(removal), "cluster removal");
}

#[test]
fn sotw_clients_get_the_fewest_responses_each_change_needs() {
    // Removal: the clusters without it; the client then drops its endpoints
    // from its subscription, and a SotW subscription that changed is
    // answered with what it now names (which is the final stage's content:
    // that stage sends nothing more).
    each_change::<Sotw>(&[(CDS, 1), (EDS, 1)]);
}

#[test]
fn delta_clients_get_the_fewest_responses_each_change_needs() {
    // Removal: the clusters without it; the client unsubscribes from its
    // endpoints, which needs no answer in delta.
    each_change::<Delta>(&[(CDS, 1)]);
}
