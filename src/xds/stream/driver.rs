//! The driver: the only part of a stream that touches tonic and channels.
//! It feeds the engine requests, snapshots and the time, and carries out
//! the effects the engine returns, in order.

use super::{Effect, Engine, Peers, Record, Wire};
use crate::schema::ResourceType;
use crate::snapshot::Snapshot;
use crate::xds::{Caller, Ledger, Peer};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::{Status, Streaming};

/// How often a per-type stream waiting for its peers looks again.
const PEER_POLL: Duration = Duration::from_millis(50);

/// Where a stream's responses go.
type Out<W> = mpsc::Sender<Result<<W as Wire>::Response, Status>>;

/// Serves one stream until the client goes away (or is refused).
/// `only` is the type of a per-type service (CDS, EDS, ...).
pub(crate) async fn run<W: Wire>(
    id: u64,
    only: Option<ResourceType>,
    caller: Caller,
    mut requests: Streaming<W::Request>,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    ledger: Arc<Ledger>,
    out: Out<W>,
) where
    W::Request: prost::Message + Default,
{
    let peer = caller.peer.clone();
    let snapshot = Arc::clone(&snapshots.borrow_and_update());
    let mut engine = Engine::<W>::new(id, only, caller, snapshot);
    let mut peers = LedgerPeers {
        ledger: Arc::clone(&ledger),
        id,
        node: None,
    };
    loop {
        let mut deadline = engine.deadline();
        if engine.waits_for_peers() {
            // Peers are looked at again every 50 ms.
            let poll = Instant::now() + PEER_POLL;
            deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
        }
        let effects = tokio::select! {
            message = requests.message() => match message {
                Ok(Some(request)) => engine.on_request(W::incoming(request), Instant::now(), &peers),
                Ok(None) => break,
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
        };
        let stream = Stream::<W> {
            id,
            only,
            peer: &peer,
            ledger: &ledger,
            out: &out,
        };
        if stream.apply(effects, &mut peers).await.is_break() {
            break;
        }
    }
    ledger.remove(id);
}

/// What the effects act on.
struct Stream<'a, W: Wire> {
    id: u64,
    only: Option<ResourceType>,
    peer: &'a Peer,
    ledger: &'a Ledger,
    out: &'a Out<W>,
}

impl<W: Wire> Stream<'_, W> {
    /// Carries out `effects` in order; breaks when the stream ends (also when
    /// the client stopped listening).
    async fn apply(
        &self,
        effects: Vec<Effect<W::Response>>,
        peers: &mut LedgerPeers,
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

    fn record(&self, record: Record, peers: &mut LedgerPeers) {
        let (id, ledger) = (self.id, self.ledger);
        match record {
            Record::Connect { node } => {
                peers.node = Some(node.id.clone());
                ledger.connect(id, &node, self.peer, self.only, W::INCREMENTAL);
            }
            Record::Ready(version) => ledger.ready_for(id, &version),
            Record::Sent {
                rtype,
                version,
                resources,
                bytes,
            } => ledger.sent(id, rtype, &version, &resources, bytes),
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

/// A node's other per-type streams, as the ledger knows them.
struct LedgerPeers {
    ledger: Arc<Ledger>,
    id: u64,
    node: Option<String>,
}

impl Peers for LedgerPeers {
    fn ready(&self, types: &[ResourceType], version: &str) -> bool {
        self.node
            .as_ref()
            .is_none_or(|node| self.ledger.peers_ready(self.id, node, types, version))
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
