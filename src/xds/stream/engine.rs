//! The stream engine: a state machine without I/O. Each call takes one
//! event (a request, a snapshot, the time) and returns the [`Effect`]s it
//! leads to, in order; the driver carries them out.

use super::holdover::Holdover;
use super::responses::{Force, since};
use super::transition::{Stage, Stages};
use super::{Barrier, Effect, Incoming, Peers, Record, TypeState, Wire};
use crate::config::schema::ResourceType;
use crate::config::selector::NodeIdentity;
use crate::xds::Caller;
use crate::xds::snapshot::{Snapshot, View};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::time::Instant;

/// The state of one stream.
pub struct Engine<W: Wire> {
    pub(super) id: u64,
    caller: Caller,
    /// The type of a per-type stream; `None` for ADS.
    pub(super) only: Option<ResourceType>,
    pub(super) node: Option<NodeIdentity>,
    pub(super) snapshot: Arc<Snapshot>,
    pub(super) view: Arc<View>,
    pub(super) types: BTreeMap<ResourceType, TypeState>,
    pub(super) stages: Stages,
    /// For a stream that began while the set was changing: the previous
    /// set, whose clusters and endpoints the client may still use.
    pub(super) holdover: Option<Holdover>,
    pub(super) next_nonce: u64,
    /// A stage put this stream's part of the snapshot in place: from then
    /// on, every answer that leaves nothing unanswered tells peers again
    /// (what it holds may have grown: Envoy asks for a new cluster's
    /// endpoints after the stage, on its own time).
    readied: bool,
    /// What the event being handled leads to.
    pub(super) effects: Vec<Effect<W::Response>>,
}

impl<W: Wire> Engine<W> {
    /// Stream `id` of `caller`, starting on `snapshot`; `only` is the type of
    /// a per-type service (CDS, EDS, ...), whose requests may leave
    /// `type_url` empty.
    pub fn new(
        id: u64,
        only: Option<ResourceType>,
        caller: Caller,
        snapshot: Arc<Snapshot>,
    ) -> Self {
        Engine {
            id,
            caller,
            only,
            node: None,
            snapshot,
            view: Arc::new(View::default()),
            types: BTreeMap::new(),
            stages: Stages::default(),
            holdover: None,
            next_nonce: 0,
            readied: false,
            effects: Vec::new(),
        }
    }

    /// When the engine must be called again ([`Engine::on_tick`]) if nothing
    /// else happens: an ACK's or a peer wait's deadline, the holdover's end.
    pub fn deadline(&self) -> Option<Instant> {
        let holdover = self.holdover.as_ref().map(|h| h.until);
        match (self.stages.deadline(), holdover) {
            (Some(d), Some(h)) => Some(d.min(h)),
            (d, h) => d.or(h),
        }
    }

    /// A stage waits for this node's other per-type streams.
    pub fn waits_for_peers(&self) -> bool {
        self.stages.waits_for_peers()
    }

    /// A request arrived at `now`.
    pub fn on_request(
        &mut self,
        mut request: Incoming,
        now: Instant,
        peers: &dyn Peers,
    ) -> Vec<Effect<W::Response>> {
        if let (true, Some(t)) = (request.type_url.is_empty(), self.only) {
            request.type_url = t.type_url();
        }
        let arriving = self.node.is_none();
        if arriving && !self.identify(&request, now) {
            return self.take();
        }
        let Some(rtype) = ResourceType::ALL
            .into_iter()
            .find(|t| t.type_url() == request.type_url)
        else {
            tracing::debug!(stream = self.id, type_url = %request.type_url, "request for a type xdsd does not serve");
            return self.take();
        };
        let state = self.types.entry(rtype).or_default();
        let first = request.nonce.is_empty();
        if !first && request.nonce != state.nonce {
            // An answer to an older response: superseded, ignored (xDS protocol).
            return self.take();
        }
        if !first {
            state.unanswered = false;
            let change_made = state.change_made.take();
            let record = match &request.error {
                Some(error) => {
                    tracing::warn!(stream = self.id, type_url = %request.type_url, version = %state.sent_version, error = %error, "NACK");
                    // The rejected content is not sent again: what the client
                    // holds keeps it, so only a later change of content
                    // produces a new response.
                    Record::Nack {
                        rtype,
                        version: state.sent_version.clone(),
                        error: error.clone(),
                    }
                }
                None => Record::Ack {
                    rtype,
                    version: W::acked_version(&request, state),
                    latency: change_made.map(|t| since(t, now)),
                },
            };
            self.effects.push(Effect::Record(record));
        }
        if first && !request.version.is_empty() {
            // A SotW client reconnecting says which version it has: if that is
            // what it would get, it is sent nothing (as after a restart).
            state.sent_version = request.version.clone();
            state.resumed = true;
            let version = request.version.clone();
            self.effects
                .push(Effect::Record(Record::Resumed { rtype, version }));
        }
        state.subscribe(request.subscription);
        let answered_wait = self.stages.answered(rtype, &request.nonce);
        if arriving && self.only.is_none() {
            // The arrival's first stages run now: this request may be
            // theirs (clusters), or wait for them (listeners, routes). A
            // per-type stream runs them once it has joined its node's other
            // streams (the driver calls `on_tick`).
            self.advance(now, peers);
        }
        let force = if first && self.owes_first_answer(rtype) {
            Force::Answer
        } else {
            Force::Nothing
        };
        self.respond(rtype, &force);
        if answered_wait {
            self.advance(now, peers);
        }
        self.end_holdover_if_over(now);
        self.report_if_settled();
        self.take()
    }

    /// The first request names the node: admits it (or ends the stream),
    /// records it, and starts a holdover if the set may be changing.
    fn identify(&mut self, request: &Incoming, now: Instant) -> bool {
        let node = request.node.clone().unwrap_or_default();
        let identity = NodeIdentity::from(node.clone());
        if let Err(refused) = self.caller.admit(&identity) {
            self.effects.push(Effect::End(Some(refused)));
            return false;
        }
        self.effects.push(Effect::Record(Record::Connect {
            node: Box::new(node),
        }));
        self.view = self.snapshot.view(&identity);
        self.stages
            .start_arrival(self.snapshot.arrival(&self.view), self.only);
        self.holdover = Holdover::begin(&self.snapshot, &identity, now);
        if let Some(holdover) = &self.holdover {
            tracing::debug!(
                stream = self.id,
                previous = %holdover.previous,
                "a client that may hold the previous set keeps it until its routes move"
            );
        }
        self.node = Some(identity);
        true
    }

    /// A new snapshot is served: starts a transition to it.
    pub fn on_snapshot(
        &mut self,
        snapshot: Arc<Snapshot>,
        now: Instant,
        peers: &dyn Peers,
    ) -> Vec<Effect<W::Response>> {
        if snapshot.version == self.snapshot.version {
            return self.take();
        }
        self.snapshot = snapshot;
        let Some(node) = &self.node else {
            return self.take();
        };
        // What was sent under the holdover is in `sent`: the transition keeps it.
        self.holdover = None;
        let old = std::mem::replace(&mut self.view, self.snapshot.view(node));
        let diff = self.snapshot.transition(&old, &self.view);
        self.stages.start(diff, self.only);
        self.readied = false;
        self.advance(now, peers);
        self.take()
    }

    /// Time passed: a stage's ACK overdue, peers to look at again, the
    /// holdover's end.
    pub fn on_tick(&mut self, now: Instant, peers: &dyn Peers) -> Vec<Effect<W::Response>> {
        if let Some(rtype) = self.stages.expire(now) {
            tracing::warn!(stream = self.id, type_url = %rtype.type_url(), "no ACK in time; continuing the transition");
        }
        self.advance(now, peers);
        self.end_holdover_if_over(now);
        self.take()
    }

    fn take(&mut self) -> Vec<Effect<W::Response>> {
        std::mem::take(&mut self.effects)
    }

    /// Runs stages until one has to wait for an ACK (or for peers).
    fn advance(&mut self, now: Instant, peers: &dyn Peers) {
        while self.stages.waiting.is_none() {
            if self.stages.take_done().is_some() {
                self.readied = true;
                self.record_ready();
            }
            let Some(stage) = self.stages.next() else {
                return;
            };
            let version = &self.snapshot.version;
            let needs = self.rewarmed();
            let present = self.present_on_arrival(stage, &needs);
            if !self
                .stages
                .peers_allow(self.id, stage, self.only, now, |types| {
                    peers.ready(&Barrier {
                        types,
                        version,
                        endpoints: &needs,
                        present: &present,
                    })
                })
            {
                return;
            }
            self.stages.begin(stage);
            let force = if stage.rewarm {
                Force::Names(self.stages.rewarm_left())
            } else if self.owes_first_answer(stage.rtype) {
                Force::Answer
            } else {
                Force::Nothing
            };
            let sent = self.respond(stage.rtype, &force);
            // A response of this type not ACKed yet is waited for too, also
            // one sent outside the stage (Envoy asks for a new cluster's
            // endpoints before it ACKs the clusters): until it is applied,
            // a later stage must not build on it.
            let pending = sent.or_else(|| {
                self.types
                    .get(&stage.rtype)
                    .filter(|state| state.unanswered)
                    .map(|state| state.nonce.clone())
            });
            if let Some(nonce) = pending {
                self.stages.wait(stage.rtype, nonce, now);
            }
        }
    }

    /// On arrival, the types of which a listener or route stage needs a
    /// stream of the node at all: clusters when its view has some, and endpoints when
    /// clusters of it warm with endpoints (`needs`). A route stream that
    /// reconnects before the cluster stream must wait for it (at most
    /// [`super::transition::STAGE_TIMEOUT`]), not find it vacuously ready.
    fn present_on_arrival(&self, stage: Stage, needs: &[String]) -> Vec<ResourceType> {
        // Listeners and routes name clusters; secrets and runtime do not.
        let names_clusters = !matches!(stage.rtype, ResourceType::Secret | ResourceType::Runtime);
        if !self.stages.arriving()
            || !names_clusters
            || stage.waits_for() != Some(super::transition::WARMING)
        {
            return Vec::new();
        }
        let has_clusters = self
            .view
            .of(ResourceType::Cluster)
            .is_some_and(|t| !t.resources.is_empty());
        let mut present = Vec::new();
        if has_clusters {
            present.push(ResourceType::Cluster);
            if !needs.is_empty() {
                present.push(ResourceType::ClusterLoadAssignment);
            }
        }
        present
    }

    /// The client asked for `rtype`, was not answered yet, and must be
    /// answered even with nothing new (delta: so it can finish starting),
    /// also when its request was withheld during the arrival.
    fn owes_first_answer(&self, rtype: ResourceType) -> bool {
        self.types
            .get(&rtype)
            .is_some_and(|s| s.subscribed && s.nonce.is_empty() && W::answers_first_request(s))
    }

    /// Ends the holdover once it is over, and sends what it held back: the
    /// removal of the previous set's clusters and endpoints.
    fn end_holdover_if_over(&mut self, now: Instant) {
        let Some(holdover) = &self.holdover else {
            return;
        };
        if !holdover.over::<W>(now, &self.view, &self.types) {
            return;
        }
        self.holdover = None;
        for rtype in super::transition::WARMING {
            self.respond(*rtype, &Force::Nothing);
        }
    }

    /// A stream with no transition under way and every response answered
    /// has the current snapshot in place (a stream that starts after a change,
    /// such as Envoy's new EDS stream for a new cluster, is ready this way);
    /// so has one whose stage readied it, once all is answered again.
    fn report_if_settled(&mut self) {
        let settled = self.readied || self.stages.idle();
        if settled && !self.types.values().any(|t| t.unanswered) {
            self.record_ready();
        }
    }

    /// Tells peers (and the ledger) this stream has the snapshot in place,
    /// with the endpoints it holds.
    fn record_ready(&mut self) {
        let version = self.snapshot.version.clone();
        let endpoints = self
            .types
            .get(&ResourceType::ClusterLoadAssignment)
            .map(|t| Arc::clone(&t.sent));
        let ready = Record::Ready { version, endpoints };
        self.effects.push(Effect::Record(ready));
    }

    /// On a per-type stream, the endpoints a transition re-sends that the
    /// view has: the node's endpoint streams must hold them before routes
    /// may use them.
    fn rewarmed(&self) -> Vec<String> {
        let endpoints = self.view.of(ResourceType::ClusterLoadAssignment);
        match (&self.stages.diff, endpoints, self.only) {
            (Some(diff), Some(view), Some(_)) => diff
                .rewarm
                .iter()
                .filter(|name| view.resources.contains_key(*name))
                .cloned()
                .collect(),
            _ => Vec::new(),
        }
    }
}
