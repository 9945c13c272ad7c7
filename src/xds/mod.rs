//! The xDS server: the Aggregated Discovery Service over gRPC, fed by a
//! watch channel of snapshots, and the ledger of what each client was sent
//! and ACKed.

mod delta;
mod grpc;
pub mod messages;
mod sotw;
mod stream;

use crate::schema::ResourceType;
use crate::selector::NodeIdentity;
use crate::snapshot::Snapshot;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

/// What one client was sent and what it answered, per type.
#[derive(Clone, Debug, Default)]
pub struct TypeStatus {
    /// Version of the last response sent.
    pub sent_version: String,
    /// Version the client last ACKed.
    pub acked_version: String,
    /// The last NACK: version, error text, when.
    pub last_nack: Option<(String, String, SystemTime)>,
}

/// One connected stream.
#[derive(Clone, Debug, Default)]
pub struct ClientStatus {
    /// The node it identified as.
    pub node: NodeIdentity,
    /// The one type of a per-type stream (CDS, EDS, ...); `None` for ADS.
    pub only: Option<ResourceType>,
    /// The last snapshot version this stream has made ready for its peers
    /// (clusters and endpoints: old plus new in place; other types: new in place).
    pub ready_for: String,
    /// Per type.
    pub types: BTreeMap<ResourceType, TypeStatus>,
}

/// Every connected stream's status, shared with the admin API.
#[derive(Debug, Default)]
pub struct Ledger {
    clients: Mutex<HashMap<u64, ClientStatus>>,
    /// Responses, ACKs and NACKs since start, by type (for metrics).
    totals: Mutex<BTreeMap<(ResourceType, Outcome), u64>>,
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

impl Ledger {
    fn with(&self, id: u64, f: impl FnOnce(&mut ClientStatus)) {
        let mut clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(clients.entry(id).or_default());
    }

    fn connect(&self, id: u64, node: &NodeIdentity, only: Option<ResourceType>) {
        tracing::info!(stream = id, node_id = %node.id, node_cluster = %node.cluster, "client connected");
        self.with(id, |c| {
            c.node = node.clone();
            c.only = only;
        });
    }

    fn ready_for(&self, id: u64, version: &str) {
        self.with(id, |c| c.ready_for = version.to_string());
    }

    /// Are all per-type streams of `node_id` serving one of `types` (other
    /// than `me`) ready for snapshot `version`?
    fn peers_ready(&self, me: u64, node_id: &str, types: &[ResourceType], version: &str) -> bool {
        let clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients.iter().all(|(id, c)| {
            *id == me
                || c.node.id != node_id
                || c.only.is_none_or(|t| !types.contains(&t))
                || c.ready_for == version
        })
    }

    fn count(&self, rtype: ResourceType, outcome: Outcome) {
        let mut totals = match self.totals.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        *totals.entry((rtype, outcome)).or_insert(0) += 1;
    }

    /// Responses sent, ACKed and NACKed since start, by type.
    pub fn totals(&self) -> BTreeMap<(ResourceType, Outcome), u64> {
        match self.totals.lock() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn sent(&self, id: u64, rtype: ResourceType, version: &str) {
        self.count(rtype, Outcome::Sent);
        self.with(id, |c| {
            c.types.entry(rtype).or_default().sent_version = version.to_string()
        });
    }

    fn ack(&self, id: u64, rtype: ResourceType, version: &str) {
        self.count(rtype, Outcome::Acked);
        self.with(id, |c| {
            c.types.entry(rtype).or_default().acked_version = version.to_string()
        });
    }

    fn nack(&self, id: u64, rtype: ResourceType, version: &str, error: &str) {
        self.count(rtype, Outcome::Nacked);
        let nack = (version.to_string(), error.to_string(), SystemTime::now());
        self.with(id, |c| {
            c.types.entry(rtype).or_default().last_nack = Some(nack)
        });
    }

    fn remove(&self, id: u64) {
        let mut clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(c) = clients.remove(&id) {
            tracing::info!(stream = id, node_id = %c.node.id, "client disconnected");
        }
    }

    /// A copy of every stream's status, by stream id.
    pub fn clients(&self) -> BTreeMap<u64, ClientStatus> {
        let clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients.iter().map(|(k, v)| (*k, v.clone())).collect()
    }
}

/// The ADS service (and, through [`Ads::services`], the per-type ones).
#[derive(Clone)]
pub struct Ads {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    ledger: Arc<Ledger>,
    next_id: Arc<AtomicU64>,
}

impl Ads {
    /// A service serving whatever snapshot `snapshots` holds.
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>, ledger: Arc<Ledger>) -> Self {
        Ads {
            snapshots,
            ledger,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The gRPC routes: ADS plus CDS, EDS, LDS, RDS and SDS, one engine behind all.
    pub fn routes(self) -> tonic::service::Routes {
        use grpc::{Aggregated, Clusters, Endpoints, Listeners, Routes, Secrets, Service};
        let mut builder = tonic::service::Routes::builder();
        builder
            .add_service(Service::<Aggregated>::new(self.clone()))
            .add_service(Service::<Clusters>::new(self.clone()))
            .add_service(Service::<Endpoints>::new(self.clone()))
            .add_service(Service::<Listeners>::new(self.clone()))
            .add_service(Service::<Routes>::new(self.clone()))
            .add_service(Service::<Secrets>::new(self));
        builder.routes()
    }

    /// A one-shot answer (the per-type `Fetch*` methods): what the node gets now.
    fn fetch(&self, request: DiscoveryRequest, rtype: ResourceType) -> messages::DiscoveryResponse {
        let node = request.node.map(NodeIdentity::from).unwrap_or_default();
        let snapshot = Arc::clone(&self.snapshots.borrow());
        let view = snapshot.view(&node);
        let names: std::collections::BTreeSet<String> =
            request.resource_names.into_iter().collect();
        let chosen: Vec<_> = view
            .of(rtype)
            .map(|t| {
                t.resources
                    .values()
                    .filter(|e| names.is_empty() || names.contains(&e.name))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let parts: Vec<String> = chosen
            .iter()
            .map(|e| format!("{}={}", e.name, e.version))
            .collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        messages::DiscoveryResponse {
            version_info: crate::snapshot::content_hash(&refs),
            resources: chosen.iter().map(|e| e.any.clone()).collect(),
            type_url: rtype.type_url(),
            nonce: String::new(),
        }
    }
}

type ResponseStream<T> = ReceiverStream<Result<T, Status>>;

impl Ads {
    /// Starts serving one stream in its own task.
    pub(crate) fn start<W: stream::Wire>(
        &self,
        only: Option<ResourceType>,
        requests: Streaming<W::Request>,
    ) -> ResponseStream<W::Response>
    where
        W::Request: prost::Message + Default,
    {
        let (tx, rx) = mpsc::channel(16);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(stream::Stream::<W>::run(
            id,
            only,
            requests,
            self.snapshots.clone(),
            Arc::clone(&self.ledger),
            tx,
        ));
        ReceiverStream::new(rx)
    }
}
