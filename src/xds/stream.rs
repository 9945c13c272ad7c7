//! One ADS stream, state of the world or incremental: subscriptions, nonces,
//! ACK/NACK, and make-before-break transitions between snapshots. The two
//! wire formats differ only in how requests subscribe and how responses are
//! built ([`Wire`]); everything else is shared.
//!
//! A transition moves a client from what it has to a new snapshot in stages,
//! each waiting (bounded) for the client's ACK of the previous: clusters (new
//! plus old), endpoints (re-sent, since Envoy warms a changed cluster only on
//! a fresh assignment), secrets, listeners, routes and the rest, and only then
//! clusters and endpoints without the stale ones.

use super::{Caller, Ledger, Resources};
use crate::schema::ResourceType;
use crate::selector::NodeIdentity;
use crate::snapshot::{Entry, Snapshot, Transition, TypeDiff, View, set_version};
use envoy_types::pb::envoy::config::core::v3::Node;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::{Status, Streaming};

/// How long a transition stage waits for the client's ACK before going on.
const STAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a per-type stream waiting for its peers looks again.
const PEER_POLL: Duration = Duration::from_millis(50);

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
    /// The version being ACKed (SotW only; delta ACKs by nonce).
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
    /// Resources new or changed for the client (delta sends these).
    pub changed: Vec<&'a Arc<Entry>>,
    /// Names the client has that are gone (delta sends these).
    pub removed: Vec<String>,
}

/// A wire format: SotW or delta.
pub trait Wire: Send + 'static {
    /// The request message.
    type Request: Send + 'static;
    /// The response message.
    type Response: prost::Message + Send + 'static;
    /// Reads a request.
    fn incoming(request: Self::Request) -> Incoming;
    /// Builds a response.
    fn outgoing(out: Outgoing<'_>) -> Self::Response;
    /// Delta only sends what changed; SotW always sends everything chosen.
    const INCREMENTAL: bool;
}

/// Which content a type is answered with during a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// What the client has, plus new resources for names it does not have.
    Hold,
    /// The new snapshot plus what the client has (new wins): nothing is removed yet.
    Union,
    /// The new snapshot.
    New,
}

#[derive(Default)]
struct TypeState {
    /// Bumped whenever the subscription or what the client holds changes
    /// otherwise than by a response: keys the [`Choice`] memo.
    generation: u64,
    /// What the subscription last chose, reused while neither it nor the
    /// desired set changed (most responses during a transition).
    choice: Option<Choice>,
    /// Everything of the type (SotW: empty list; delta: `*` or legacy empty first request).
    wildcard: bool,
    /// Names asked for.
    names: BTreeSet<String>,
    /// Whether the client ever asked for this type.
    subscribed: bool,
    /// Nonce of the last response.
    nonce: String,
    /// Version of the last response.
    sent_version: String,
    /// What the client has, as far as xdsd knows: name → version.
    has: BTreeMap<String, String>,
    /// The client's first request said what it already holds (a SotW
    /// version, delta initial versions): it reconnected.
    resumed: bool,
    /// `has` is exactly `sent` (names and versions): a shared
    /// [`Transition`] diff from `sent` is then the client's delta too.
    has_is_sent: bool,
    /// The entries last chosen for the client.
    sent: Resources,
    /// The last response is not answered yet.
    unanswered: bool,
    /// When the change the last response carries was made (set during transitions).
    change_made: Option<std::time::Instant>,
}

/// A subscription's choice from a desired set.
struct Choice {
    /// The desired set it was made from.
    from: Resources,
    /// The subscription's generation then.
    generation: u64,
    /// The chosen resources.
    chosen: Resources,
    /// Their version.
    version: String,
}

/// One step of a transition: set the type's mode, then push it.
#[derive(Clone, Copy, Debug)]
struct Stage {
    rtype: ResourceType,
    mode: Mode,
    /// Re-send the endpoints of clusters that change (see [`Stream::rewarm`]).
    rewarm: bool,
}

fn transition_stages() -> VecDeque<Stage> {
    use ResourceType::*;
    let stage = |rtype, mode, rewarm| Stage {
        rtype,
        mode,
        rewarm,
    };
    VecDeque::from([
        stage(Cluster, Mode::Union, false),
        stage(ClusterLoadAssignment, Mode::Union, true),
        stage(Secret, Mode::New, false),
        stage(Listener, Mode::New, false),
        stage(RouteConfiguration, Mode::New, false),
        stage(ScopedRouteConfiguration, Mode::New, false),
        stage(VirtualHost, Mode::New, false),
        stage(Runtime, Mode::New, false),
        stage(Cluster, Mode::New, false),
        stage(ClusterLoadAssignment, Mode::New, false),
    ])
}

/// What a client that connects while a change may be under way (a
/// reconnect, a restarted xdsd) is presumed to hold: the previous set. Its
/// clusters and endpoints stay in the responses until the client's
/// listeners and routes are on the current set, as in a transition.
struct Holdover {
    view: Arc<View>,
    /// Held at most until then.
    until: Instant,
}

/// The state of one stream.
pub struct Stream<W: Wire> {
    id: u64,
    caller: Caller,
    node: Option<NodeIdentity>,
    snapshot: Arc<Snapshot>,
    view: Arc<View>,
    types: BTreeMap<ResourceType, TypeState>,
    modes: BTreeMap<ResourceType, Mode>,
    stages: VecDeque<Stage>,
    /// The type and nonce a stage waits on, and until when.
    waiting: Option<(ResourceType, String, Instant)>,
    /// The type of a per-type stream; `None` for ADS.
    only: Option<ResourceType>,
    /// Until when a per-type stream waits for its peers (see [`Stream::barrier`]).
    peer_wait: Option<Instant>,
    /// The stage last run, reported to peers once it is done.
    last_stage: Option<Stage>,
    /// The move from the previous view to the current one, shared with every
    /// stream making it; its `rewarm` names the endpoints re-sent in the
    /// transition (those of clusters that are new or changed, since Envoy
    /// warms such a cluster only on a fresh assignment).
    transition: Option<Arc<Transition>>,
    /// For a stream that began while the set was changing: the previous
    /// set, whose clusters and endpoints the client may still use.
    holdover: Option<Holdover>,
    next_nonce: u64,
    ledger: Arc<Ledger>,
    out: mpsc::Sender<Result<W::Response, Status>>,
}

impl<W: Wire> Stream<W> {
    /// Serves one stream until the client goes away.
    /// `only` is the type of a per-type service (CDS, EDS, ...), whose
    /// requests may leave `type_url` empty.
    pub async fn run(
        id: u64,
        only: Option<ResourceType>,
        caller: Caller,
        mut requests: Streaming<W::Request>,
        mut snapshots: watch::Receiver<Arc<Snapshot>>,
        ledger: Arc<Ledger>,
        out: mpsc::Sender<Result<W::Response, Status>>,
    ) where
        W::Request: prost::Message + Default,
    {
        let snapshot = Arc::clone(&snapshots.borrow_and_update());
        let mut stream = Stream::<W> {
            id,
            caller,
            node: None,
            view: Arc::new(View::default()),
            snapshot,
            types: BTreeMap::new(),
            modes: BTreeMap::new(),
            stages: VecDeque::new(),
            waiting: None,
            only,
            peer_wait: None,
            last_stage: None,
            transition: None,
            holdover: None,
            next_nonce: 0,
            ledger,
            out,
        };
        loop {
            let deadline = match (&stream.waiting, stream.peer_wait) {
                (Some((_, _, d)), _) => Some(*d),
                // Peers are checked again every 50 ms.
                (None, Some(_)) => Some(Instant::now() + PEER_POLL),
                (None, None) => None,
            };
            let deadline = match (deadline, stream.holdover.as_ref().map(|h| h.until)) {
                (Some(d), Some(h)) => Some(d.min(h)),
                (d, h) => d.or(h),
            };
            let step = tokio::select! {
                message = requests.message() => match message {
                    Ok(Some(request)) => {
                        let mut incoming = W::incoming(request);
                        if let (true, Some(t)) = (incoming.type_url.is_empty(), only) {
                            incoming.type_url = t.type_url();
                        }
                        stream.on_request(incoming).await
                    }
                    Ok(None) => Err(()),
                    // A request that cannot be read (too large, malformed)
                    // ends this stream, and the client is told why.
                    Err(status) => {
                        tracing::warn!(stream = id, error = %status.message(), "request refused; stream ended");
                        let _ = stream.out.send(Err(status)).await;
                        Err(())
                    }
                },
                changed = snapshots.changed() => match changed {
                    Ok(()) => {
                        let snapshot = Arc::clone(&snapshots.borrow_and_update());
                        stream.on_snapshot(snapshot).await
                    }
                    Err(_) => Err(()),
                },
                () = sleep_until(deadline) => {
                    if let Some((rtype, _, deadline)) = &stream.waiting
                        && Instant::now() >= *deadline
                    {
                        tracing::warn!(stream = id, type_url = %rtype.type_url(), "no ACK in time; continuing the transition");
                        stream.waiting = None;
                    }
                    match stream.advance().await {
                        Ok(()) => stream.end_holdover_if_done().await,
                        failed => failed,
                    }
                }
            };
            if step.is_err() {
                break;
            }
        }
        stream.ledger.remove(id);
    }

    async fn on_request(&mut self, request: Incoming) -> Result<(), ()> {
        if self.node.is_none() {
            let node = request.node.clone().unwrap_or_default();
            let identity = NodeIdentity::from(node.clone());
            if let Err(refused) = self.caller.admit(&identity) {
                let _ = self.out.send(Err(refused)).await;
                return Err(());
            }
            self.ledger
                .connect(self.id, &node, &self.caller.peer, self.only, W::INCREMENTAL);
            self.view = self.snapshot.view(&identity);
            let previous = self.snapshot.predecessor();
            if let Some(previous) = &previous {
                tracing::debug!(
                    stream = self.id,
                    previous = %previous.version,
                    "a client that may hold the previous set keeps it until its routes move"
                );
            }
            self.holdover = previous.map(|previous| Holdover {
                view: previous.view(&identity),
                until: Instant::now() + STAGE_TIMEOUT,
            });
            self.node = Some(identity);
        }
        let Some(rtype) = ResourceType::ALL
            .into_iter()
            .find(|t| t.type_url() == request.type_url)
        else {
            tracing::debug!(stream = self.id, type_url = %request.type_url, "request for a type xdsd does not serve");
            return Ok(());
        };
        let state = self.types.entry(rtype).or_default();
        if !request.nonce.is_empty() && request.nonce != state.nonce {
            // An answer to an older response: superseded, ignored (xDS protocol).
            return Ok(());
        }
        if !request.nonce.is_empty() {
            state.unanswered = false;
            let change_made = state.change_made.take();
            match &request.error {
                Some(error) => {
                    tracing::warn!(stream = self.id, type_url = %request.type_url, version = %state.sent_version, error = %error, "NACK");
                    self.ledger.nack(self.id, rtype, &state.sent_version, error);
                    // The rejected content is not sent again: `has` keeps it, so only
                    // a later change of content produces a new response.
                }
                None => {
                    let version = if W::INCREMENTAL {
                        state.sent_version.clone()
                    } else {
                        request.version.clone()
                    };
                    let latency = change_made.map(|t| t.elapsed());
                    self.ledger.ack(self.id, rtype, &version, latency);
                }
            }
        }
        let first = request.nonce.is_empty();
        if first && !W::INCREMENTAL && !request.version.is_empty() {
            // A SotW client reconnecting says which version it has: if that is
            // what it would get, it is sent nothing (as after a restart).
            state.sent_version = request.version.clone();
            state.resumed = true;
            self.ledger.resumed(self.id, rtype, &request.version);
        }
        subscribe(state, request.subscription);
        let answered_wait =
            matches!(&self.waiting, Some((t, n, _)) if *t == rtype && *n == request.nonce);
        if answered_wait {
            self.waiting = None;
        }
        // A new delta client is answered even when it gets nothing, so it can finish starting.
        let force = if first && W::INCREMENTAL && state.has.is_empty() {
            Force::Answer
        } else {
            Force::Nothing
        };
        self.respond(rtype, &force).await?;
        if answered_wait {
            self.advance().await?;
        }
        self.end_holdover_if_done().await?;
        self.report_if_settled();
        Ok(())
    }

    /// Ends the holdover once the client's listeners and routes are on the
    /// current set (or after [`STAGE_TIMEOUT`]), and sends what it held back:
    /// the removal of the previous set's clusters and endpoints.
    async fn end_holdover_if_done(&mut self) -> Result<(), ()> {
        let Some(holdover) = &self.holdover else {
            return Ok(());
        };
        // Nothing the client holds of `rtype` is older than the view (and its
        // last response is answered).
        let current = |rtype: ResourceType| {
            let view = self.view.of(rtype).map(|t| &t.resources);
            let now = |name: &String, version: &String| {
                view.and_then(|v| v.get(name))
                    .is_some_and(|e| &e.version == version)
            };
            self.types.get(&rtype).is_none_or(|s| {
                let held = if W::INCREMENTAL {
                    s.has.iter().all(|(n, v)| now(n, v))
                } else {
                    s.sent.iter().all(|(n, e)| now(n, &e.version))
                };
                !s.subscribed || !s.unanswered && held
            })
        };
        // Every type the client uses clusters through, that the node is
        // served at all, must be asked for (a reconnecting Envoy asks for
        // routes only after listeners) and current.
        let users = [ResourceType::Listener, ResourceType::RouteConfiguration];
        let asked = |t: &ResourceType| self.types.get(t).is_some_and(|s| s.subscribed);
        let listeners_moved = users.iter().any(asked)
            && users
                .into_iter()
                .all(|t| (self.view.of(t).is_none() || asked(&t)) && current(t));
        if !listeners_moved && Instant::now() < holdover.until {
            return Ok(());
        }
        self.holdover = None;
        for rtype in [ResourceType::Cluster, ResourceType::ClusterLoadAssignment] {
            self.respond(rtype, &Force::Nothing).await?;
        }
        Ok(())
    }

    /// A stream with no transition under way and every response answered
    /// has the current snapshot in place (a stream that starts after a change,
    /// such as Envoy's new EDS stream for a new cluster, is ready this way).
    fn report_if_settled(&self) {
        let idle = self.stages.is_empty() && self.waiting.is_none();
        if idle && !self.types.values().any(|t| t.unanswered) {
            self.ledger.ready_for(self.id, &self.snapshot.version);
        }
    }

    async fn on_snapshot(&mut self, snapshot: Arc<Snapshot>) -> Result<(), ()> {
        if snapshot.version == self.snapshot.version {
            return Ok(());
        }
        self.snapshot = snapshot;
        let Some(node) = &self.node else {
            return Ok(());
        };
        // What was sent under the holdover is in `sent`: the transition keeps it.
        self.holdover = None;
        let old = std::mem::replace(&mut self.view, self.snapshot.view(node));
        self.transition = Some(self.snapshot.transition(&old, &self.view));
        self.modes = ResourceType::ALL.iter().map(|t| (*t, Mode::Hold)).collect();
        let only = self.only;
        self.stages = transition_stages()
            .into_iter()
            .filter(|s| only.is_none_or(|t| s.rtype == t))
            .collect();
        // A response of the previous transition that is not ACKed yet is
        // still waited for (see `advance`).
        self.peer_wait = None;
        self.last_stage = None;
        self.advance().await
    }

    /// Runs stages until one has to wait for an ACK (or for peers).
    async fn advance(&mut self) -> Result<(), ()> {
        while self.waiting.is_none() {
            if let Some(done) = self.last_stage.take() {
                self.report(done);
            }
            let Some(stage) = self.stages.front().copied() else {
                self.modes.clear();
                return Ok(());
            };
            if !self.peers_ready(stage) {
                return Ok(());
            }
            self.stages.pop_front();
            self.last_stage = Some(stage);
            self.modes.insert(stage.rtype, stage.mode);
            let force = match (&self.transition, stage.rewarm) {
                (Some(t), true) => Force::Names(Arc::clone(&t.rewarm)),
                _ => Force::Nothing,
            };
            let sent = self.respond(stage.rtype, &force).await?;
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
                self.waiting = Some((stage.rtype, nonce, Instant::now() + STAGE_TIMEOUT));
            }
        }
        Ok(())
    }

    /// Without ADS, a client's types arrive on separate streams, so the
    /// order is kept across them: new listeners and routes wait until the
    /// same node's cluster and endpoint streams have the new ones in place,
    /// and those drop stale resources only once listeners and routes moved.
    /// Returns the types a stage waits on.
    fn barrier(&self, stage: Stage) -> Option<&'static [ResourceType]> {
        use ResourceType::*;
        const WARMING: &[ResourceType] = &[Cluster, ClusterLoadAssignment];
        const USING: &[ResourceType] = &[
            Secret,
            Listener,
            RouteConfiguration,
            ScopedRouteConfiguration,
            VirtualHost,
            Runtime,
        ];
        self.only?;
        if WARMING.contains(&stage.rtype) {
            (stage.mode == Mode::New).then_some(USING)
        } else {
            Some(WARMING)
        }
    }

    /// True when the stage may run: no barrier, peers ready, or waited long enough.
    fn peers_ready(&mut self, stage: Stage) -> bool {
        let (Some(types), Some(node)) = (self.barrier(stage), &self.node) else {
            return true;
        };
        let deadline = *self
            .peer_wait
            .get_or_insert_with(|| Instant::now() + STAGE_TIMEOUT);
        let ready = self
            .ledger
            .peers_ready(self.id, &node.id, types, &self.snapshot.version);
        if ready || Instant::now() >= deadline {
            if !ready {
                tracing::warn!(
                    stream = self.id,
                    "peer streams not ready in time; continuing the transition"
                );
            }
            self.peer_wait = None;
            return true;
        }
        false
    }

    /// Tells peers a stage is done when it puts this stream's new content in place.
    fn report(&self, done: Stage) {
        let warming = matches!(
            done.rtype,
            ResourceType::Cluster | ResourceType::ClusterLoadAssignment
        );
        if warming == (done.mode == Mode::Union) {
            self.ledger.ready_for(self.id, &self.snapshot.version);
        }
    }

    /// What the client should have for `rtype` now, before its subscription
    /// narrows it, and the set's version when it is the view's whole set.
    /// Shares the view's map whenever the mode makes no difference, which
    /// is every type but the one or two a change is about.
    fn desired(&self, rtype: ResourceType) -> (Resources, Option<String>) {
        let (new, version) = match self.view.of(rtype) {
            Some(t) => (Arc::clone(&t.resources), Some(t.version.clone())),
            None => (Resources::default(), None),
        };
        if let Some(held) = self.held_back(rtype, &new) {
            return (overlay(&held, &new), None);
        }
        let Some(sent) = self.types.get(&rtype).map(|s| &s.sent) else {
            return (new, version);
        };
        // Shared with every stream that had the previous view's map.
        let diff = self
            .transition
            .as_ref()
            .and_then(|t| t.diff(rtype, sent, &new));
        match self.modes.get(&rtype).copied().unwrap_or(Mode::New) {
            // The client was given this very map: the type did not change.
            _ if Arc::ptr_eq(sent, &new) => (new, version),
            Mode::New => (new, version),
            // Old plus new is new when nothing old is going away.
            Mode::Union
                if diff.map_or_else(
                    || {
                        join(sent.iter(), new.iter(), |_, s, n| {
                            s.is_none() || n.is_some()
                        })
                    },
                    |d| d.removed.is_empty(),
                ) =>
            {
                (new, version)
            }
            // What the client has plus new names is new when nothing it has changed.
            Mode::Hold
                if diff.map_or_else(
                    || {
                        join(sent.iter(), new.iter(), |_, s, n| match (s, n) {
                            (Some(s), Some(n)) => s.version == n.version,
                            (s, _) => s.is_none(),
                        })
                    },
                    |d| d.removed.is_empty() && d.changed.is_empty(),
                ) =>
            {
                (new, version)
            }
            Mode::Union => (overlay(sent, &new), None),
            Mode::Hold => (overlay(&new, sent), None),
        }
    }

    /// Under a holdover, the previous set's resources of `rtype` (clusters
    /// and endpoints only) that the client may hold and `new` lacks; `None`
    /// when there are none, or the client said it has exactly the current set.
    fn held_back(
        &self,
        rtype: ResourceType,
        new: &Resources,
    ) -> Option<BTreeMap<String, Arc<Entry>>> {
        let holdover = self.holdover.as_ref()?;
        if !matches!(
            rtype,
            ResourceType::Cluster | ResourceType::ClusterLoadAssignment
        ) {
            return None;
        }
        let previous = holdover.view.of(rtype)?;
        let state = self.types.get(&rtype).filter(|s| s.resumed)?;
        if Some(&state.sent_version) == self.view.of(rtype).map(|t| &t.version) {
            return None;
        }
        let held: BTreeMap<String, Arc<Entry>> = previous
            .resources
            .iter()
            .filter(|(name, _)| !new.contains_key(*name))
            // A delta client said what it has: only that is held.
            .filter(|(name, _)| !W::INCREMENTAL || state.has.contains_key(*name))
            .map(|(name, e)| (name.clone(), Arc::clone(e)))
            .collect();
        (!held.is_empty()).then_some(held)
    }

    /// Sends `rtype` if the client is subscribed and its content changed (or
    /// `force` says so). Returns the nonce when something was sent.
    async fn respond(&mut self, rtype: ResourceType, force: &Force) -> Result<Option<String>, ()> {
        let (desired, whole_version) = self.desired(rtype);
        let Some(state) = self.types.get_mut(&rtype) else {
            return Ok(None);
        };
        if !state.subscribed {
            return Ok(None);
        }
        let remembered = state
            .choice
            .as_ref()
            .filter(|c| c.generation == state.generation && Arc::ptr_eq(&c.from, &desired));
        if let Some(choice) = remembered
            && Arc::ptr_eq(&choice.chosen, &state.sent)
            && matches!(force, Force::Nothing)
        {
            // Same set, same subscription, and the client was given exactly this.
            return Ok(None);
        }
        let transition = self.transition.as_deref();
        let (chosen, version) = match remembered {
            Some(c) => (Arc::clone(&c.chosen), c.version.clone()),
            None => still_covered(state, transition, rtype, &desired, &whole_version)
                .unwrap_or_else(|| choose(state, &desired, whole_version)),
        };
        state.choice = Some(Choice {
            from: desired,
            generation: state.generation,
            chosen: Arc::clone(&chosen),
            version: version.clone(),
        });
        let (changed, removed): (Vec<&Arc<Entry>>, Vec<String>) = if W::INCREMENTAL {
            let shared = transition
                .filter(|_| state.has_is_sent)
                .and_then(|t| t.diff(rtype, &state.sent, &chosen));
            match shared {
                Some(diff) => delta_from_diff(diff, &chosen, force),
                None => delta_by_comparing(&chosen, &state.has, force),
            }
        } else {
            (Vec::new(), Vec::new())
        };
        let unchanged = if W::INCREMENTAL {
            changed.is_empty() && removed.is_empty() && !matches!(force, Force::Answer)
        } else {
            version == state.sent_version && !force.any_of(&chosen)
        };
        if unchanged {
            // The client has exactly this (it said so, or it was sent it).
            state.has_is_sent = W::INCREMENTAL;
            if !Arc::ptr_eq(&state.sent, &chosen) {
                state.sent = Arc::clone(&chosen);
                self.ledger.holds(self.id, rtype, &state.sent);
            }
            return Ok(None);
        }
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        if W::INCREMENTAL {
            // What the client holds becomes `chosen`: only the difference is applied.
            for entry in &changed {
                state.has.insert(entry.name.clone(), entry.version.clone());
            }
            for name in &removed {
                state.has.remove(name);
            }
            state.has_is_sent = true;
        }
        let response = W::outgoing(Outgoing {
            type_url: rtype.type_url(),
            version: &version,
            nonce: &nonce,
            all: &chosen,
            changed,
            removed,
        });
        tracing::debug!(stream = self.id, type_url = %rtype.type_url(), version = %version, resources = chosen.len(), "sent");
        state.nonce = nonce.clone();
        state.sent_version = version.clone();
        state.sent = chosen;
        state.unanswered = true;
        // Only pushes of a change are timed, not a client's first fetch.
        state.change_made = (!self.modes.is_empty()).then_some(self.snapshot.created);
        let bytes = prost::Message::encoded_len(&response);
        self.ledger
            .sent(self.id, rtype, &version, &state.sent, bytes);
        self.out.send(Ok(response)).await.map_err(|_| ())?;
        Ok(Some(nonce))
    }
}

/// A delta response's content from a shared diff: new and changed
/// resources (and forced ones) from `chosen`, and the removed names.
fn delta_from_diff<'c>(
    diff: &TypeDiff,
    chosen: &'c Resources,
    force: &Force,
) -> (Vec<&'c Arc<Entry>>, Vec<String>) {
    let mut names: BTreeSet<&String> = diff.added.iter().chain(&diff.changed).collect();
    if let Force::Names(forced) = force {
        names.extend(forced.iter().filter(|n| chosen.contains_key(*n)));
    }
    let changed = names.into_iter().filter_map(|n| chosen.get(n)).collect();
    (changed, diff.removed.clone())
}

/// A delta response's content by comparing `chosen` with what the client has.
fn delta_by_comparing<'c>(
    chosen: &'c Resources,
    has: &BTreeMap<String, String>,
    force: &Force,
) -> (Vec<&'c Arc<Entry>>, Vec<String>) {
    let (mut changed, mut removed) = (Vec::new(), Vec::new());
    join(chosen.iter(), has.iter(), |name, c, h| {
        match (c, h) {
            (Some(e), h) if h != Some(&e.version) || force.includes(name) => changed.push(e),
            (None, Some(_)) => removed.push(name.clone()),
            _ => {}
        }
        true
    });
    (changed, removed)
}

/// When the subscription took the whole previous set and the move to
/// `desired` added no names, it takes the whole of `desired` too: known
/// from the shared diff, without checking every name again.
fn still_covered(
    state: &TypeState,
    transition: Option<&Transition>,
    rtype: ResourceType,
    desired: &Resources,
    whole_version: &Option<String>,
) -> Option<(Resources, String)> {
    let previous = state.choice.as_ref()?;
    let took_all =
        previous.generation == state.generation && Arc::ptr_eq(&previous.chosen, &previous.from);
    let diff = transition?.diff(rtype, &previous.from, desired)?;
    (took_all && diff.added.is_empty()).then(|| {
        let version = whole_version
            .clone()
            .unwrap_or_else(|| set_version(desired));
        (Arc::clone(desired), version)
    })
}

/// What `state`'s subscription takes of `desired`, and its version (the
/// view's `whole_version` when it takes all of it).
fn choose(
    state: &TypeState,
    desired: &Resources,
    whole_version: Option<String>,
) -> (Resources, String) {
    let names = state.names.iter().map(|n| (n, ()));
    let covered =
        state.wildcard || join(desired.iter(), names, |_, d, n| d.is_none() || n.is_some());
    if covered {
        let version = whole_version.unwrap_or_else(|| set_version(desired));
        return (Arc::clone(desired), version);
    }
    let narrowed: BTreeMap<String, Arc<Entry>> = desired
        .iter()
        .filter(|(name, _)| state.names.contains(*name))
        .map(|(name, e)| (name.clone(), Arc::clone(e)))
        .collect();
    let version = set_version(&narrowed);
    (Arc::new(narrowed), version)
}

/// Walks two sequences sorted by name together, calling `f` with each
/// name and its item on either side; stops at the first `false`, which it returns.
/// One comparison per step, where looking each name up would take a dozen.
fn join<'l, 'r, A, B>(
    left: impl Iterator<Item = (&'l String, A)>,
    right: impl Iterator<Item = (&'r String, B)>,
    mut f: impl FnMut(&String, Option<A>, Option<B>) -> bool,
) -> bool {
    let (mut left, mut right) = (left.peekable(), right.peekable());
    loop {
        let order = match (left.peek(), right.peek()) {
            (None, None) => return true,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((l, _)), Some((r, _))) => l.cmp(r),
        };
        let step = match (
            order,
            left.next_if(|_| order.is_le()),
            right.next_if(|_| order.is_ge()),
        ) {
            (_, Some((name, a)), b) => f(name, Some(a), b.map(|(_, b)| b)),
            (_, None, Some((name, b))) => f(name, None, Some(b)),
            (_, None, None) => return true,
        };
        if !step {
            return false;
        }
    }
}

/// What [`Stream::respond`] sends although the client has it.
enum Force {
    /// Only what changed.
    Nothing,
    /// A response even when nothing changed (a new delta client's first answer).
    Answer,
    /// These resources again (endpoints of clusters being re-warmed).
    Names(Arc<BTreeSet<String>>),
}

impl Force {
    fn includes(&self, name: &str) -> bool {
        matches!(self, Force::Names(names) if names.contains(name))
    }

    /// Does it force any of `chosen`?
    fn any_of(&self, chosen: &BTreeMap<String, Arc<Entry>>) -> bool {
        matches!(self, Force::Names(names) if names.iter().any(|n| chosen.contains_key(n)))
    }
}

/// `base` with `top`'s entries put over it.
fn overlay(base: &BTreeMap<String, Arc<Entry>>, top: &BTreeMap<String, Arc<Entry>>) -> Resources {
    let mut merged = base.clone();
    merged.extend(top.iter().map(|(k, v)| (k.clone(), Arc::clone(v))));
    Arc::new(merged)
}

/// Applies a subscription change.
fn subscribe(state: &mut TypeState, subscription: Subscription) {
    let first = !state.subscribed;
    state.subscribed = true;
    match subscription {
        Subscription::Replace(names) => {
            // An empty list means "everything" only until the client names something.
            let wildcard = names.contains("*") || names.is_empty() && (first || state.wildcard);
            if wildcard != state.wildcard || names != state.names {
                state.generation += 1;
            }
            state.wildcard = wildcard;
            state.names = names;
        }
        Subscription::Delta {
            subscribe,
            unsubscribe,
            initial,
        } => {
            if !(subscribe.is_empty() && unsubscribe.is_empty() && initial.is_empty()) {
                state.generation += 1;
            }
            if first && subscribe.is_empty() || subscribe.contains("*") {
                state.wildcard = true;
            }
            if unsubscribe.contains("*") {
                state.wildcard = false;
            }
            state
                .names
                .extend(subscribe.into_iter().filter(|n| n != "*"));
            if !(unsubscribe.is_empty() && initial.is_empty()) {
                state.has_is_sent = false;
            }
            state.resumed |= first && !initial.is_empty();
            for name in &unsubscribe {
                state.names.remove(name);
                state.has.remove(name);
            }
            state.has.extend(initial);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_walks_both_sides_in_name_order() {
        let left: BTreeMap<String, u8> = [("a".into(), 1), ("c".into(), 3)].into();
        let right: BTreeMap<String, u8> = [("b".into(), 2), ("c".into(), 4)].into();
        let mut seen = Vec::new();
        let all = join(left.iter(), right.iter(), |name, l, r| {
            seen.push((name.clone(), l.copied(), r.copied()));
            true
        });
        assert!(all);
        assert_eq!(
            seen,
            [
                ("a".into(), Some(1), None),
                ("b".into(), None, Some(2)),
                ("c".into(), Some(3), Some(4))
            ]
        );
        assert!(!join(left.iter(), right.iter(), |_, l, _| l.is_none()));
    }
}

/// Property tests over request sequences (`bash bench/fuzz.sh` runs them
/// longer): whatever a client sends, in whatever order, with snapshots
/// changing in between, the engine never panics, and what it believes a
/// delta client holds stays consistent with what it sent.
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::xds::{Caller, Peer};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    const NAMES: [&str; 4] = ["a", "b", "c", "d"];

    /// One snapshot per subset of NAMES (EDS clusters with their
    /// assignments, half of them seen only by nodes of cluster `edge`).
    fn snapshots() -> &'static Vec<Arc<Snapshot>> {
        static ALL: OnceLock<Vec<Arc<Snapshot>>> = OnceLock::new();
        ALL.get_or_init(|| {
            (0u8..16)
                .map(|mask| {
                    let docs: Vec<String> = NAMES
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(i, n)| {
                            let nodes = if i % 2 == 0 { "" } else { "nodes: {cluster: [edge]}\n" };
                            format!(
                                "kind: Cluster\n{nodes}spec: {{name: {n}, type: EDS, connect_timeout: 1s, eds_cluster_config: {{eds_config: {{ads: {{}}}}}}}}\n---\nkind: ClusterLoadAssignment\n{nodes}spec: {{cluster_name: {n}}}\n"
                            )
                        })
                        .collect();
                    let loaded = crate::loader::load_str("fuzz.yaml", &docs.join("---\n"));
                    assert!(loaded.diagnostics.is_ok(), "{:?}", loaded.diagnostics.sorted());
                    Arc::new(Snapshot::build(&loaded.resources))
                })
                .collect()
        })
    }

    #[derive(Clone, Debug)]
    enum Op {
        Request {
            rtype: u8,
            node: Option<bool>,
            nonce: u8,
            names: Vec<u8>,
            unsubscribe: Vec<u8>,
            initial: Vec<u8>,
            nack: bool,
        },
        Change(u8),
        Timeout,
    }

    fn op() -> impl Strategy<Value = Op> {
        let name = 0u8..6;
        prop_oneof![
            6 => (0u8..6, proptest::option::of(any::<bool>()), 0u8..4,
                  proptest::collection::vec(name.clone(), 0..4),
                  proptest::collection::vec(name.clone(), 0..2),
                  proptest::collection::vec(name, 0..2), any::<bool>())
                .prop_map(|(rtype, node, nonce, names, unsubscribe, initial, nack)| Op::Request {
                    rtype, node, nonce, names, unsubscribe, initial, nack
                }),
            2 => (0u8..16).prop_map(Op::Change),
            1 => Just(Op::Timeout),
        ]
    }

    fn name(i: u8) -> String {
        match i {
            4 => "*".into(),
            5 => "nope".into(),
            i => NAMES[usize::from(i % 4)].into(),
        }
    }

    fn type_url(i: u8) -> String {
        match i {
            0 => ResourceType::Cluster.type_url(),
            1 => ResourceType::ClusterLoadAssignment.type_url(),
            2 => ResourceType::Listener.type_url(),
            3 => ResourceType::RouteConfiguration.type_url(),
            4 => "type.googleapis.com/no.such.Type".into(),
            _ => String::new(),
        }
    }

    fn incoming<W: Wire>(stream: &Stream<W>, op: &Op) -> Option<Incoming> {
        let Op::Request {
            rtype,
            node,
            nonce,
            names,
            unsubscribe,
            initial,
            nack,
        } = op
        else {
            return None;
        };
        let type_url = type_url(*rtype);
        let known = ResourceType::ALL
            .into_iter()
            .find(|t| t.type_url() == type_url);
        let state = known.and_then(|t| stream.types.get(&t));
        let nonce = match nonce {
            0 => String::new(),
            1 => state.map(|s| s.nonce.clone()).unwrap_or_default(),
            2 => "999".into(),
            _ => state.map(|s| s.nonce.clone()).unwrap_or_else(|| "1".into()),
        };
        let set = |v: &Vec<u8>| v.iter().map(|i| name(*i)).collect::<BTreeSet<String>>();
        let subscription = if W::INCREMENTAL {
            Subscription::Delta {
                subscribe: set(names),
                unsubscribe: set(unsubscribe),
                initial: initial
                    .iter()
                    .map(|i| (name(*i), "v0".to_string()))
                    .collect(),
            }
        } else {
            Subscription::Replace(set(names))
        };
        Some(Incoming {
            node: node.map(|edge| Node {
                id: "fuzz".into(),
                cluster: if edge { "edge".into() } else { "core".into() },
                ..Node::default()
            }),
            version: state.map(|s| s.sent_version.clone()).unwrap_or_default(),
            type_url,
            nonce,
            error: nack.then(|| "fuzz NACK".to_string()),
            subscription,
        })
    }

    /// What the engine believes about each type must hold after every step.
    fn check<W: Wire>(stream: &Stream<W>) {
        for (rtype, state) in &stream.types {
            if state.unanswered {
                assert!(
                    !state.nonce.is_empty(),
                    "{rtype:?}: unanswered without a nonce"
                );
            }
            if W::INCREMENTAL && state.has_is_sent {
                let sent: BTreeMap<String, String> = state
                    .sent
                    .iter()
                    .map(|(n, e)| (n.clone(), e.version.clone()))
                    .collect();
                assert_eq!(
                    state.has, sent,
                    "{rtype:?}: `has` drifted from what was sent"
                );
            }
        }
    }

    fn run<W: Wire>(ops: &[Op]) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (out, mut responses) = mpsc::channel(100_000);
            let mut stream = Stream::<W> {
                id: 1,
                caller: Caller {
                    peer: Peer {
                        addr: None,
                        identities: Vec::new(),
                    },
                    authorization: None,
                },
                node: None,
                snapshot: Arc::clone(&snapshots()[15]),
                view: Arc::new(View::default()),
                types: BTreeMap::new(),
                modes: BTreeMap::new(),
                stages: VecDeque::new(),
                waiting: None,
                only: None,
                peer_wait: None,
                last_stage: None,
                transition: None,
                holdover: None,
                next_nonce: 0,
                ledger: Arc::new(Ledger::default()),
                out,
            };
            for op in ops {
                let step = match op {
                    Op::Change(mask) => {
                        let snapshot = Arc::clone(&snapshots()[usize::from(*mask)]);
                        stream.on_snapshot(snapshot).await
                    }
                    Op::Timeout => {
                        stream.waiting = None;
                        stream.advance().await
                    }
                    Op::Request { .. } => match incoming(&stream, op) {
                        Some(request) => stream.on_request(request).await,
                        None => Ok(()),
                    },
                };
                assert!(step.is_ok(), "the stream ended on {op:?}");
                check(&stream);
                while responses.try_recv().is_ok() {}
            }
        });
    }

    proptest! {
        #[test]
        fn sotw_request_sequences(ops in proptest::collection::vec(op(), 1..48)) {
            run::<crate::xds::sotw::Sotw>(&ops);
        }

        #[test]
        fn delta_request_sequences(ops in proptest::collection::vec(op(), 1..48)) {
            run::<crate::xds::delta::Delta>(&ops);
        }
    }
}
