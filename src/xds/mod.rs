//! The xDS server: the Aggregated Discovery Service over gRPC, fed by a
//! watch channel of snapshots, and the ledger of what each client was sent
//! and ACKed.

mod coordinator;
mod csds;
mod delta;
mod grpc;
mod ledger;
pub mod messages;
pub mod snapshot;
mod sotw;
mod stream;

pub use ledger::{
    ClientStatus, Counters, Histogram, LATENCY_BUCKETS, Ledger, Nack, Outcome, Peer, Sync,
    TypeStatus,
};
pub use snapshot::Resources;

use crate::config::schema::ResourceType;
use crate::config::selector::NodeIdentity;
use crate::daemon::xds_tls::NodeAuthorization;
use crate::xds::snapshot::Snapshot;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

/// Who opened a stream, and what they must prove.
pub(crate) struct Caller {
    /// Address and certificate identities.
    pub peer: Peer,
    authorization: Option<Arc<NodeAuthorization>>,
}

impl Caller {
    /// Ok when the caller may act as `node` (always, without `--authorize-node`).
    fn admit(&self, node: &NodeIdentity) -> Result<(), Status> {
        let Some(authorization) = &self.authorization else {
            return Ok(());
        };
        authorization
            .check(&self.peer.identities, node)
            .map_err(|reason| {
                tracing::warn!(peer = ?self.peer.addr, "refused: {reason}");
                Status::permission_denied(reason)
            })
    }
}

/// What one server accepts from its clients.
#[derive(Clone, Copy, Debug)]
pub struct ClientLimits {
    /// Streams open at once (every ADS stream, and each per-type stream, is
    /// one); more are refused with RESOURCE_EXHAUSTED.
    pub max_streams: usize,
    /// Largest request message; a larger one ends its stream.
    pub max_request_bytes: usize,
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits {
            // The CLI's defaults (`--max-clients`, `--max-request-mb`).
            max_streams: 50_000,
            max_request_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The ADS service (and, through [`Ads::services`], the per-type ones).
#[derive(Clone)]
pub struct Ads {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    ledger: Arc<Ledger>,
    next_id: Arc<AtomicU64>,
    authorization: Option<Arc<NodeAuthorization>>,
    limits: ClientLimits,
    open_streams: Arc<AtomicUsize>,
    /// Per node, what its per-type streams have in place (see `coordinator`).
    coordinators: Arc<coordinator::Coordinators>,
}

/// A place among the open streams, given back when the stream ends.
struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Ads {
    /// A service serving whatever snapshot `snapshots` holds.
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>, ledger: Arc<Ledger>) -> Self {
        Ads {
            snapshots,
            ledger,
            next_id: Arc::new(AtomicU64::new(1)),
            authorization: None,
            limits: ClientLimits::default(),
            open_streams: Arc::new(AtomicUsize::new(0)),
            coordinators: Arc::default(),
        }
    }

    /// Holds clients to `limits`.
    pub fn with_limits(mut self, limits: ClientLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits clients are held to.
    pub fn limits(&self) -> ClientLimits {
        self.limits
    }

    /// A place for one more stream, unless the server is full.
    fn claim_slot(&self) -> Result<StreamSlot, Status> {
        let max = self.limits.max_streams;
        let taken = self.open_streams.fetch_add(1, Ordering::Relaxed);
        let slot = StreamSlot(Arc::clone(&self.open_streams));
        if taken >= max {
            drop(slot);
            tracing::warn!(max, "stream refused: the server is full (--max-clients)");
            return Err(Status::resource_exhausted(format!(
                "xdsd serves at most {max} streams at once (--max-clients)"
            )));
        }
        Ok(slot)
    }

    /// Refuses clients whose certificate does not prove the node they claim.
    pub fn with_authorization(mut self, authorization: NodeAuthorization) -> Self {
        self.authorization = Some(Arc::new(authorization));
        self
    }

    /// The caller `peer`, held to this server's authorization rule.
    fn caller(&self, peer: Peer) -> Caller {
        Caller {
            peer,
            authorization: self.authorization.clone(),
        }
    }

    /// The gRPC routes: ADS plus CDS, EDS, LDS, RDS and SDS, one engine behind
    /// all, and CSDS reporting what each client has.
    pub fn routes(self) -> tonic::service::Routes {
        use grpc::{Aggregated, Clusters, Endpoints, Listeners, Routes, Secrets, Service};
        let mut builder = tonic::service::Routes::builder();
        builder
            .add_service(Service::<Aggregated>::new(self.clone()))
            .add_service(Service::<Clusters>::new(self.clone()))
            .add_service(Service::<Endpoints>::new(self.clone()))
            .add_service(Service::<Listeners>::new(self.clone()))
            .add_service(Service::<Routes>::new(self.clone()))
            .add_service(csds::Csds::service(
                Arc::clone(&self.ledger),
                self.authorization.clone(),
            ))
            .add_service(Service::<Secrets>::new(self));
        builder.routes()
    }

    /// A one-shot answer (the per-type `Fetch*` methods): what the node gets now.
    fn fetch(
        &self,
        peer: Peer,
        request: DiscoveryRequest,
        rtype: ResourceType,
    ) -> Result<messages::DiscoveryResponse, Status> {
        let node = request.node.map(NodeIdentity::from).unwrap_or_default();
        self.caller(peer).admit(&node)?;
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
        Ok(messages::DiscoveryResponse {
            version_info: crate::xds::snapshot::content_hash(&refs),
            resources: chosen.iter().map(|e| e.any.clone()).collect(),
            type_url: rtype.type_url(),
            nonce: String::new(),
        })
    }
}

type ResponseStream<T> = ReceiverStream<Result<T, Status>>;

impl Ads {
    /// Starts serving one stream in its own task.
    pub(crate) fn start<W: stream::Wire>(
        &self,
        only: Option<ResourceType>,
        peer: Peer,
        requests: Streaming<W::Request>,
    ) -> Result<ResponseStream<W::Response>, Status>
    where
        W::Request: prost::Message + Default,
    {
        let slot = self.claim_slot()?;
        // A client that stops reading holds at most this many responses
        // here (their resource bytes are shared), then its task waits. A
        // transition never has more than one response per type unanswered.
        let (tx, rx) = mpsc::channel(4);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let run = stream::run::<W>(
            id,
            only,
            self.caller(peer),
            requests,
            stream::Shared {
                snapshots: self.snapshots.clone(),
                ledger: Arc::clone(&self.ledger),
                coordinators: Arc::clone(&self.coordinators),
            },
            tx,
        );
        tokio::spawn(async move {
            let _slot = slot;
            run.await;
        });
        Ok(ReceiverStream::new(rx))
    }
}
