//! The ledger: what each connected stream was sent and what it answered, per
//! type, and the counters derived from it. Streams write it; the admin API,
//! CSDS and metrics read copies of it.

use crate::config::schema::ResourceType;
use crate::config::selector::NodeIdentity;
use crate::sync::lock;
use crate::xds::snapshot::Resources;
use envoy_types::pb::envoy::config::core::v3::Node;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A NACK: the version refused, the client's error text, and when.
#[derive(Clone, Debug)]
pub struct Nack {
    /// The version refused.
    pub version: String,
    /// The client's `error_detail` message.
    pub error: String,
    /// When it arrived.
    pub at: SystemTime,
}

/// What one client was sent and what it answered, for one type.
#[derive(Clone, Debug, Default)]
pub struct TypeStatus {
    /// Version of the last response sent.
    pub sent_version: String,
    /// Version the client last ACKed.
    pub acked_version: String,
    /// The last response is not answered (ACK or NACK) yet.
    pub pending: bool,
    /// The last NACK.
    pub last_nack: Option<Nack>,
    /// The resources the client was last given (sent, or known to be held).
    pub resources: Resources,
}

impl TypeStatus {
    /// Where the client stands: in sync, waiting for an answer, or refusing the last push.
    pub fn sync(&self) -> Sync {
        if self.pending {
            Sync::Stale
        } else if self
            .last_nack
            .as_ref()
            .is_some_and(|n| n.version == self.sent_version)
        {
            Sync::Nacked
        } else if self.acked_version == self.sent_version {
            Sync::Synced
        } else {
            Sync::Stale
        }
    }
}

/// A client's state for one type, as `xdsd status` and CSDS report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// The client ACKed the last response.
    Synced,
    /// A response is not answered yet.
    Stale,
    /// The client refused the last response.
    Nacked,
}

impl Sync {
    /// As shown by `/clients` and `xdsd status`.
    pub fn label(self) -> &'static str {
        match self {
            Sync::Synced => "SYNCED",
            Sync::Stale => "STALE",
            Sync::Nacked => "NACKED",
        }
    }
}

/// Who is on the other end of a stream, as known when it opens.
#[derive(Clone, Debug, Default)]
pub struct Peer {
    /// The client's address.
    pub addr: Option<SocketAddr>,
    /// Identities in its TLS client certificate (SANs, then the subject CN).
    pub identities: Vec<String>,
}

/// One connected stream.
#[derive(Clone, Debug)]
pub struct ClientStatus {
    /// The node it identified as.
    pub node: NodeIdentity,
    /// The `Node` it sent, without its (long) extension and feature lists.
    pub details: Node,
    /// Its address.
    pub peer: Option<SocketAddr>,
    /// When it sent its first request.
    pub connected_at: SystemTime,
    /// The one type of a per-type stream (CDS, EDS, ...); `None` for ADS.
    pub only: Option<ResourceType>,
    /// Delta (incremental) rather than state of the world.
    pub incremental: bool,
    /// The last snapshot version this stream has made ready for its peers
    /// (clusters and endpoints: old plus new in place; other types: new in place).
    pub ready_for: String,
    /// Per type.
    pub types: BTreeMap<ResourceType, TypeStatus>,
}

/// What happened to a response, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Sent to a client.
    Sent,
    /// ACKed by the client.
    Acked,
    /// NACKed by the client.
    Nacked,
}

/// Upper bounds (seconds) of the push latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A Prometheus-style histogram with [`LATENCY_BUCKETS`].
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
    /// Sum of observations, in seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// Totals since start, by type.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Responses sent, ACKed and NACKed.
    pub outcomes: BTreeMap<(ResourceType, Outcome), u64>,
    /// Encoded response bytes sent.
    pub bytes_sent: BTreeMap<ResourceType, u64>,
    /// From a new set being built to a client's ACK of a response carrying it.
    pub push_latency: BTreeMap<ResourceType, Histogram>,
}

/// Every connected stream's status, shared with the admin API and CSDS.
#[derive(Debug, Default)]
pub struct Ledger {
    clients: Mutex<HashMap<u64, ClientStatus>>,
    counters: Mutex<Counters>,
}

impl Ledger {
    fn with(&self, id: u64, f: impl FnOnce(&mut ClientStatus)) {
        if let Some(client) = lock(&self.clients).get_mut(&id) {
            f(client);
        }
    }

    fn with_type(&self, id: u64, rtype: ResourceType, f: impl FnOnce(&mut TypeStatus)) {
        self.with(id, |c| f(c.types.entry(rtype).or_default()));
    }

    fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut lock(&self.counters));
    }

    /// The distinct identities of the connected streams' nodes.
    pub fn nodes(&self) -> std::collections::HashSet<NodeIdentity> {
        lock(&self.clients)
            .values()
            .map(|c| c.node.clone())
            .collect()
    }

    /// A stream identified itself with its first request.
    pub(super) fn connect(
        &self,
        id: u64,
        node: &Node,
        peer: &Peer,
        only: Option<ResourceType>,
        incremental: bool,
    ) {
        let identity = NodeIdentity::from(node.clone());
        tracing::info!(stream = id, node_id = %identity.id, node_cluster = %identity.cluster, peer = ?peer.addr, "client connected");
        let details = Node {
            extensions: Vec::new(),
            client_features: Vec::new(),
            ..node.clone()
        };
        let client = ClientStatus {
            node: identity,
            details,
            peer: peer.addr,
            connected_at: SystemTime::now(),
            only,
            incremental,
            ready_for: String::new(),
            types: BTreeMap::new(),
        };
        lock(&self.clients).insert(id, client);
    }

    /// The stream has snapshot `version`'s content in place (recorded for
    /// inspection; streams coordinate through `coordinator`, not here).
    pub(super) fn ready_for(&self, id: u64, version: &str) {
        self.with(id, |c| c.ready_for = version.to_string());
    }

    /// A response went out.
    pub(super) fn sent(
        &self,
        id: u64,
        rtype: ResourceType,
        version: &str,
        resources: &Resources,
        bytes: usize,
    ) {
        self.count(|c| {
            *c.outcomes.entry((rtype, Outcome::Sent)).or_insert(0) += 1;
            *c.bytes_sent.entry(rtype).or_insert(0) += bytes as u64;
        });
        self.with_type(id, rtype, |t| {
            t.sent_version = version.to_string();
            t.pending = true;
            t.resources = Arc::clone(resources);
        });
    }

    /// The client has `version` without being sent it (a SotW reconnect
    /// naming the current version).
    pub(super) fn resumed(&self, id: u64, rtype: ResourceType, version: &str) {
        self.with_type(id, rtype, |t| {
            t.sent_version = version.to_string();
            t.acked_version = version.to_string();
        });
    }

    /// The client holds `resources` (nothing was sent: it had them already).
    pub(super) fn holds(&self, id: u64, rtype: ResourceType, resources: &Resources) {
        self.with_type(id, rtype, |t| t.resources = Arc::clone(resources));
    }

    /// The client ACKed `version`; `latency` is the time since the change it carries.
    pub(super) fn ack(
        &self,
        id: u64,
        rtype: ResourceType,
        version: &str,
        latency: Option<Duration>,
    ) {
        self.count(|c| {
            *c.outcomes.entry((rtype, Outcome::Acked)).or_insert(0) += 1;
            if let Some(latency) = latency {
                c.push_latency.entry(rtype).or_default().observe(latency);
            }
        });
        self.with_type(id, rtype, |t| {
            t.acked_version = version.to_string();
            t.pending = false;
        });
    }

    /// The client refused `version`.
    pub(super) fn nack(&self, id: u64, rtype: ResourceType, version: &str, error: &str) {
        self.count(|c| *c.outcomes.entry((rtype, Outcome::Nacked)).or_insert(0) += 1);
        let nack = Nack {
            version: version.to_string(),
            error: error.to_string(),
            at: SystemTime::now(),
        };
        self.with_type(id, rtype, |t| {
            t.last_nack = Some(nack);
            t.pending = false;
        });
    }

    pub(super) fn remove(&self, id: u64) {
        if let Some(c) = lock(&self.clients).remove(&id) {
            tracing::info!(stream = id, node_id = %c.node.id, "client disconnected");
        }
    }

    /// A copy of every identified stream's status, by stream id.
    pub fn clients(&self) -> BTreeMap<u64, ClientStatus> {
        lock(&self.clients)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// A copy of the counters.
    pub fn counters(&self) -> Counters {
        lock(&self.counters).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_follows_the_last_answer() {
        let mut t = TypeStatus {
            sent_version: "2".into(),
            acked_version: "1".into(),
            pending: true,
            ..TypeStatus::default()
        };
        assert_eq!(t.sync(), Sync::Stale);
        t.pending = false;
        t.last_nack = Some(Nack {
            version: "2".into(),
            error: "bad".into(),
            at: SystemTime::now(),
        });
        assert_eq!(t.sync(), Sync::Nacked);
        t.acked_version = "2".into();
        t.last_nack = None;
        assert_eq!(t.sync(), Sync::Synced);
    }

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let mut h = Histogram::default();
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(7));
        h.observe(Duration::from_secs(60));
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[LATENCY_BUCKETS.len()], 1);
        assert_eq!(h.count, 3);
    }

    #[test]
    fn only_identified_streams_are_listed() {
        let ledger = Ledger::default();
        ledger.sent(1, ResourceType::Cluster, "v", &Resources::default(), 10);
        assert!(ledger.clients().is_empty());
        let node = Node {
            id: "n".into(),
            extensions: vec![Default::default()],
            ..Node::default()
        };
        ledger.connect(1, &node, &Peer::default(), None, false);
        ledger.sent(1, ResourceType::Cluster, "v", &Resources::default(), 10);
        let clients = ledger.clients();
        assert!(clients[&1].details.extensions.is_empty());
        assert!(clients[&1].types[&ResourceType::Cluster].pending);
        assert_eq!(ledger.counters().bytes_sent[&ResourceType::Cluster], 20);
    }
}
