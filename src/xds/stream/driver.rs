//! The driver: the only part of a stream that touches tonic and channels.
//! It feeds the engine requests, snapshots, the time and changes of its
//! node's other per-type streams, and carries out the effects the engine
//! returns, in order.

use super::{Barrier, Effect, Engine, Peers, Record, Wire};
use crate::config::schema::ResourceType;
use crate::xds::coordinator::{Coordinators, Membership};
use crate::xds::snapshot::Snapshot;
use crate::xds::{Caller, Ledger, Peer};
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::{Status, Streaming};

/// Where a stream's responses go.
type Out<W> = mpsc::Sender<Result<<W as Wire>::Response, Status>>;

/// What every stream of a server shares.
pub(crate) struct Shared {
    /// The snapshot served.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Where streams record what happens.
    pub ledger: Arc<Ledger>,
    /// Per node, what its per-type streams have in place.
    pub coordinators: Arc<Coordinators>,
}

/// Serves one stream until the client goes away (or is refused).
/// `only` is the type of a per-type service (CDS, EDS, ...).
pub(crate) async fn run<W: Wire>(
    id: u64,
    only: Option<ResourceType>,
    caller: Caller,
    mut requests: Streaming<W::Request>,
    shared: Shared,
    out: Out<W>,
) where
    W::Request: prost::Message + Default,
{
    let Shared {
        mut snapshots,
        ledger,
        coordinators,
    } = shared;
    let peer = caller.peer.clone();
    let snapshot = Arc::clone(&snapshots.borrow_and_update());
    let mut engine = Engine::<W>::new(id, only, caller, snapshot);
    // A per-type stream's place among its node's (joined once it names the node).
    let mut peers = NodePeers(None);
    loop {
        let deadline = engine.deadline();
        let waits_for_peers = engine.waits_for_peers();
        let effects = tokio::select! {
            message = requests.message() => match message {
                Ok(Some(request)) => engine.on_request(W::incoming(request), Instant::now(), &peers),
                Ok(None) => break,
                // The connection went away (a client that exits or is
                // restarted): routine for a fleet, not a warning each.
                Err(status) if connection_lost(&status) => {
                    tracing::debug!(stream = id, error = %status.message(), "connection lost; stream ended");
                    break;
                }
                // A request that cannot be read (too large, malformed)
                // ends this stream, and the client is told why.
                Err(status) => {
                    tracing::warn!(stream = id, error = %status.message(), "request refused; stream ended");
                    vec![Effect::End(Some(status))]
                }
            },
            changed = snapshots.changed() => match changed {
                Ok(()) => {
                    let snapshot = Arc::clone(&snapshots.borrow_and_update());
                    engine.on_snapshot(snapshot, Instant::now(), &peers)
                }
                Err(_) => break,
            },
            () = sleep_until(deadline) => engine.on_tick(Instant::now(), &peers),
            // A peer's readiness changed: look again (the engine bounds the wait).
            () = peers.changed(), if waits_for_peers => engine.on_tick(Instant::now(), &peers),
        };
        let stream = Stream::<W> {
            id,
            only,
            peer: &peer,
            ledger: &ledger,
            coordinators: &coordinators,
            out: &out,
        };
        let joined = only.is_some() && effects.iter().any(is_connect);
        if stream.apply(effects, &mut peers).await.is_break() {
            break;
        }
        if joined {
            // The arrival's stages look at the node's other streams, which
            // the stream can see only now that it joined them.
            let effects = engine.on_tick(Instant::now(), &peers);
            if stream.apply(effects, &mut peers).await.is_break() {
                break;
            }
        }
    }
    ledger.remove(id);
}

fn is_connect<R>(effect: &Effect<R>) -> bool {
    matches!(effect, Effect::Record(Record::Connect { .. }))
}

/// The request stream failed in the transport (HTTP/2 or the socket), not
/// in a message: there is nobody left to tell why.
fn connection_lost(status: &tonic::Status) -> bool {
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        if error.is::<hyper::Error>() || error.is::<std::io::Error>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// What the effects act on.
struct Stream<'a, W: Wire> {
    id: u64,
    only: Option<ResourceType>,
    peer: &'a Peer,
    ledger: &'a Ledger,
    coordinators: &'a Arc<Coordinators>,
    out: &'a Out<W>,
}

impl<W: Wire> Stream<'_, W> {
    /// Carries out `effects` in order; breaks when the stream ends (also when
    /// the client stopped listening).
    async fn apply(
        &self,
        effects: Vec<Effect<W::Response>>,
        peers: &mut NodePeers,
    ) -> ControlFlow<()> {
        for effect in effects {
            match effect {
                Effect::Send(response) => {
                    if self.out.send(Ok(response)).await.is_err() {
                        return ControlFlow::Break(());
                    }
                }
                Effect::Record(record) => self.record(record, peers),
                Effect::End(status) => {
                    if let Some(status) = status {
                        let _ = self.out.send(Err(status)).await;
                    }
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn record(&self, record: Record, peers: &mut NodePeers) {
        let (id, ledger) = (self.id, self.ledger);
        match record {
            Record::Connect { node } => {
                // Only per-type streams coordinate: an ADS stream orders its
                // types itself.
                peers.0 = self.only.map(|t| self.coordinators.join(id, &node.id, t));
                ledger.connect(id, &node, self.peer, self.only, W::INCREMENTAL);
            }
            Record::Ready { version, endpoints } => {
                if let Some(membership) = &peers.0 {
                    membership.ready_for(&version, endpoints.as_ref());
                }
                ledger.ready_for(id, &version);
            }
            Record::Sent {
                rtype,
                version,
                resources,
                bytes,
            } => {
                tracing::debug!(stream = id, type_url = %rtype.type_url(), version = %version, resources = resources.len(), "sent");
                ledger.sent(id, rtype, &version, &resources, bytes);
            }
            Record::Resumed { rtype, version } => ledger.resumed(id, rtype, &version),
            Record::Holds { rtype, resources } => ledger.holds(id, rtype, &resources),
            Record::Ack {
                rtype,
                version,
                latency,
            } => ledger.ack(id, rtype, &version, latency),
            Record::Nack {
                rtype,
                version,
                error,
            } => ledger.nack(id, rtype, &version, &error),
        }
    }
}

/// A node's other per-type streams, through the node's coordinator.
struct NodePeers(Option<Membership>);

impl NodePeers {
    async fn changed(&mut self) {
        match &mut self.0 {
            Some(membership) => membership.changed().await,
            None => std::future::pending().await,
        }
    }
}

impl Peers for NodePeers {
    fn ready(&self, barrier: &Barrier<'_>) -> bool {
        self.0.as_ref().is_none_or(|m| m.peers_ready(barrier))
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
