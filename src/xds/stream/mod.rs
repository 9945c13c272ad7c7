//! One xDS stream, state of the world or incremental, split as in
//! go-control-plane between the protocol logic and the transport, but with
//! the logic free of I/O altogether:
//!
//! * [`engine::Engine`] is the state machine: it is given requests
//!   ([`Engine::on_request`]), snapshots ([`Engine::on_snapshot`]) and the
//!   time ([`Engine::on_tick`]), and answers with [`Effect`]s (send this
//!   response, record this in the ledger, end the stream). It never reads
//!   the clock, a channel or the network, so every rule is unit-tested with
//!   a fake clock (`tests.rs`).
//! * Its parts, one file per concept: `subscriptions` (what the client asked
//!   for and what it holds), `transition` (the make-before-break stages, their
//!   order defined once), `holdover` (the previous set kept for a client
//!   that reconnects), `responses` (choosing and building a response).
//! * [`driver::run`] is the only part that touches tonic and channels: it
//!   feeds the engine and carries out its effects.
//! * The wire formats ([`Wire`], `sotw.rs` and `delta.rs`) hold every
//!   difference between state of the world and delta, as trait methods:
//!   the engine does not branch on the protocol.

mod driver;
mod engine;
mod holdover;
mod responses;
mod subscriptions;
mod transition;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

pub(crate) use driver::{Shared, run};
pub use engine::Engine;
pub use responses::Force;
pub use subscriptions::TypeState;
pub(crate) use subscriptions::join;

use super::Resources;
use crate::config::schema::ResourceType;
use crate::xds::snapshot::{Entry, Transition};
use envoy_types::pb::envoy::config::core::v3::Node;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// A request, in the terms both wire formats share.
pub struct Incoming {
    /// The requested type.
    pub type_url: String,
    /// The node, if the request carries it.
    pub node: Option<Node>,
    /// The nonce being answered (empty on a first request).
    pub nonce: String,
    /// The NACK's error text.
    pub error: Option<String>,
    /// The version being ACKed, or on a first request the version the client
    /// already has (SotW only: always empty for delta, which ACKs by nonce).
    pub version: String,
    /// How the subscription changes.
    pub subscription: Subscription,
}

/// A subscription change.
pub enum Subscription {
    /// SotW: the full list of names (empty: wildcard, until names are given).
    Replace(BTreeSet<String>),
    /// Delta: names added and removed, and on reconnect the versions the client has.
    Delta {
        /// Names to add (`*`: wildcard).
        subscribe: BTreeSet<String>,
        /// Names to drop.
        unsubscribe: BTreeSet<String>,
        /// Versions the client already has (first request of a reconnect).
        initial: BTreeMap<String, String>,
    },
}

/// What one response carries.
pub struct Outgoing<'a> {
    /// The type.
    pub type_url: String,
    /// Version of everything chosen for the client.
    pub version: &'a str,
    /// The nonce.
    pub nonce: &'a str,
    /// Every resource the client should have (SotW sends these).
    pub all: &'a BTreeMap<String, Arc<Entry>>,
    /// What changed for the client (delta sends these).
    pub changes: Changes<'a>,
}

/// What changed for a client since what it holds (delta only; SotW
/// responses carry everything and leave this empty).
#[derive(Default)]
pub struct Changes<'a> {
    /// Resources new or changed for the client.
    pub changed: Vec<&'a Arc<Entry>>,
    /// Names the client has that are gone.
    pub removed: Vec<String>,
}

/// A wire format: SotW or delta. Everything the two do differently is here.
pub trait Wire: Send + 'static {
    /// The request message.
    type Request: Send + 'static;
    /// The response message.
    type Response: prost::Message + Send + 'static;
    /// Delta (incremental), as the ledger reports it.
    const INCREMENTAL: bool;
    /// Reads a request.
    fn incoming(request: Self::Request) -> Incoming;
    /// Builds a response.
    fn outgoing(out: Outgoing<'_>) -> Self::Response;
    /// The version an ACK accepts: the one it names (SotW) or the one last
    /// sent (delta ACKs by nonce).
    fn acked_version(request: &Incoming, state: &TypeState) -> String;
    /// A client's first request is answered even when there is nothing to
    /// send, so the client can finish starting (delta).
    fn answers_first_request(state: &TypeState) -> bool;
    /// What the client said it holds, name → version, when the wire tells
    /// (delta); `None` when it holds exactly what it was last sent (SotW).
    fn told_holdings(state: &TypeState) -> Option<&BTreeMap<String, String>>;
    /// What a response giving the client `chosen` (at `version`) must carry,
    /// or `None` when the client needs none.
    fn changes<'c>(
        state: &TypeState,
        diff: Option<&Transition>,
        rtype: ResourceType,
        chosen: &'c Resources,
        version: &str,
        force: &Force,
    ) -> Option<Changes<'c>>;
    /// The client now holds `chosen`: sent with `changes`, or, when `None`,
    /// because it had it already.
    fn now_holds(state: &mut TypeState, changes: Option<&Changes<'_>>);
}

/// What the engine asks of the world: sending, recording, ending.
pub enum Effect<R> {
    /// Send this response.
    Send(R),
    /// Record this in the ledger (and, for readiness, tell the node's peers).
    Record(Record),
    /// End the stream, telling the client why when there is a status.
    End(Option<tonic::Status>),
}

/// What the ledger records of a stream.
#[derive(Debug)]
pub enum Record {
    /// The stream identified its node with its first request.
    Connect {
        /// The node as sent (boxed: it is large, and sent once).
        node: Box<Node>,
    },
    /// The stream has snapshot `version`'s content in place for its peers.
    Ready {
        /// The snapshot.
        version: String,
        /// The endpoints it holds, if it serves endpoints.
        endpoints: Option<Resources>,
    },
    /// A response went out.
    Sent {
        /// Its type.
        rtype: ResourceType,
        /// Its version.
        version: String,
        /// Everything the client was given.
        resources: Resources,
        /// Its encoded size.
        bytes: usize,
    },
    /// The client has `version` without being sent it.
    Resumed {
        /// The type.
        rtype: ResourceType,
        /// The version it said it has.
        version: String,
    },
    /// The client holds `resources` (it had them; nothing was sent).
    Holds {
        /// The type.
        rtype: ResourceType,
        /// What it holds.
        resources: Resources,
    },
    /// The client ACKed `version`, `latency` after the change it carries.
    Ack {
        /// The type.
        rtype: ResourceType,
        /// The version accepted.
        version: String,
        /// Since the change was made (pushes of a change only).
        latency: Option<Duration>,
    },
    /// The client refused `version`.
    Nack {
        /// The type.
        rtype: ResourceType,
        /// The version refused.
        version: String,
        /// The client's error text.
        error: String,
    },
}

/// The other per-type streams of the same node, as one stream sees them.
pub trait Peers: Send {
    /// Is `barrier` passed?
    fn ready(&self, barrier: &Barrier<'_>) -> bool;
}

/// What a per-type stream's stage waits for on the node's other streams.
#[derive(Clone, Copy, Debug)]
pub struct Barrier<'a> {
    /// Every stream serving one of these types has snapshot `version` in place.
    pub types: &'a [ResourceType],
    /// The snapshot version.
    pub version: &'a str,
    /// Endpoint streams hold these (when the node has endpoint streams, or
    /// `present` names them).
    pub endpoints: &'a [String],
    /// Types of which a stream must exist at all. Empty but on arrival: a
    /// route stream that reconnects first must not find "no cluster stream"
    /// ready (the view's clusters, and its EDS clusters' endpoints, are
    /// then required).
    pub present: &'a [ResourceType],
}
