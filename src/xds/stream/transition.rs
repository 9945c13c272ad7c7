//! Make-before-break: a transition moves a client from what it has to a new
//! snapshot in stages, each waiting (bounded) for the client's ACK of the
//! previous. The order is defined once, by two lists ([`WARMING`] and
//! [`USING`]): the warming types with old plus new, then the using types
//! moved to the new set, then the warming types without the stale ones.
//! Per-type streams keep the same order across a node's streams with the
//! same two lists ([`Stage::waits_for`]).

use crate::config::schema::ResourceType;
use crate::xds::snapshot::Transition;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a transition stage waits for the client's ACK (or a per-type
/// stream for its peers) before going on.
pub const STAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Types that must be in place before anything uses them: sent first with
/// old plus new, and without the stale ones only at the end. Endpoints are
/// re-sent for clusters that change, since Envoy warms such a cluster only
/// on a fresh assignment.
pub const WARMING: &[ResourceType] = &[ResourceType::Cluster, ResourceType::ClusterLoadAssignment];

/// Types that use the warming ones, moved to the new set in this order.
pub const USING: &[ResourceType] = &[
    ResourceType::Secret,
    ResourceType::Listener,
    ResourceType::RouteConfiguration,
    ResourceType::ScopedRouteConfiguration,
    ResourceType::VirtualHost,
    ResourceType::Runtime,
];

/// Which content a type is answered with during a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// What the client has, plus new resources for names it does not have.
    Hold,
    /// The new snapshot plus what the client has (new wins): nothing is removed yet.
    Union,
    /// The new snapshot.
    New,
}

/// One step of a transition: set the type's mode, then push it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// The type pushed.
    pub rtype: ResourceType,
    /// Its content from now on.
    pub mode: Mode,
    /// Re-send the endpoints of clusters that change ([`Transition::rewarm`]).
    pub rewarm: bool,
}

impl Stage {
    /// Every stage of a transition, in order.
    pub fn all() -> impl Iterator<Item = Stage> {
        let stage = |mode| {
            move |rtype: &ResourceType| Stage {
                rtype: *rtype,
                mode,
                rewarm: mode == Mode::Union && *rtype == ResourceType::ClusterLoadAssignment,
            }
        };
        let warm = WARMING.iter().map(stage(Mode::Union));
        let using = USING.iter().map(stage(Mode::New));
        let prune = WARMING.iter().map(stage(Mode::New));
        warm.chain(using).chain(prune)
    }

    /// On a per-type stream, the types whose streams (of the same node) must
    /// have this snapshot in place before the stage runs: new listeners and
    /// routes wait for the new clusters and endpoints, and those drop stale
    /// resources only once listeners and routes moved.
    pub fn waits_for(self) -> Option<&'static [ResourceType]> {
        if !WARMING.contains(&self.rtype) {
            Some(WARMING)
        } else if self.mode == Mode::New {
            Some(USING)
        } else {
            None
        }
    }

    /// Whether, once done, the stage has put this stream's part of the new
    /// snapshot in place for its peers (the point [`Stage::waits_for`] waits for).
    pub fn readies(self) -> bool {
        WARMING.contains(&self.rtype) == (self.mode == Mode::Union)
    }
}

/// The transition under way, if any.
#[derive(Default)]
pub struct Stages {
    /// Per type, its content while a transition is under way; empty otherwise.
    modes: BTreeMap<ResourceType, Mode>,
    /// Stages still to run.
    pending: VecDeque<Stage>,
    /// The type and nonce a stage waits on, and until when.
    pub(super) waiting: Option<(ResourceType, String, Instant)>,
    /// Until when a per-type stream waits for its peers.
    peer_wait: Option<Instant>,
    /// The stage last run, reported to peers once it is done.
    last: Option<Stage>,
    /// The move from the previous view to the current one, shared with every
    /// stream making it; its `rewarm` names the endpoints re-sent.
    pub(super) diff: Option<Arc<Transition>>,
    /// Endpoints of `diff.rewarm` the client was already sent, as they are
    /// now, after its clusters moved: Envoy asks for a new cluster's
    /// endpoints as soon as it has the cluster, and the answer warms it, so
    /// the rewarm stage does not send them a second time.
    rewarm_sent: BTreeSet<String>,
    /// The transition is the stream's arrival ([`Stages::start_arrival`]):
    /// until their stage, the using types are not answered at all.
    arriving: bool,
    /// Clusters were sent since the transition started.
    clusters_sent: bool,
}

impl Stages {
    /// Starts a transition along `diff`: every type holds what the client
    /// has until its stage. `only` limits it to a per-type stream's type. A
    /// response of the previous transition not ACKed yet is still waited for.
    pub fn start(&mut self, diff: Arc<Transition>, only: Option<ResourceType>) {
        self.diff = Some(diff);
        self.modes = ResourceType::ALL.iter().map(|t| (*t, Mode::Hold)).collect();
        self.pending = Stage::all()
            .filter(|s| only.is_none_or(|t| s.rtype == t))
            .collect();
        self.peer_wait = None;
        self.last = None;
        self.rewarm_sent.clear();
        self.clusters_sent = false;
    }

    /// Starts a stream's arrival along `diff` (from nothing to its view).
    /// What a new or reconnecting client holds is unknown (a SotW client
    /// says a version, not content): its listeners and routes are withheld
    /// until the clusters and endpoints they may name are ACKed, as in any
    /// transition, so that a reconnect after a change never gets a route
    /// before its cluster. A later snapshot during the arrival keeps it an
    /// arrival.
    pub fn start_arrival(&mut self, diff: Arc<Transition>, only: Option<ResourceType>) {
        self.start(diff, only);
        self.arriving = true;
    }

    /// The transition under way is the stream's arrival.
    pub fn arriving(&self) -> bool {
        self.arriving
    }

    /// During an arrival, `rtype` is a using type whose stage has not run:
    /// it is not answered yet.
    pub fn withholds(&self, rtype: ResourceType) -> bool {
        self.arriving && USING.contains(&rtype) && self.mode(rtype) == Mode::Hold
    }

    /// The clusters' first stage of this transition has run: a response of
    /// endpoints sent from now on reaches the client after the new clusters.
    fn clusters_moved(&self) -> bool {
        self.modes
            .get(&ResourceType::Cluster)
            .is_some_and(|m| *m != Mode::Hold)
    }

    /// The endpoints the rewarm stage must still send: those of new or
    /// changed clusters the client was not sent since its clusters moved.
    pub fn rewarm_left(&self) -> Arc<BTreeSet<String>> {
        // A client that arrived holding the current clusters re-warms none.
        if self.arriving && !self.clusters_sent {
            return Arc::default();
        }
        let all = self
            .diff
            .as_ref()
            .map_or_else(Default::default, |d| Arc::clone(&d.rewarm));
        if self.rewarm_sent.is_empty() {
            return all;
        }
        Arc::new(all.difference(&self.rewarm_sent).cloned().collect())
    }

    /// The endpoints a response sent now can spare the rewarm stage: those
    /// it must still send, once the clusters moved (an earlier response
    /// reaches the client before the new clusters). Empty outside that window.
    pub fn rewarm_awaited(&self) -> Arc<BTreeSet<String>> {
        if self.clusters_moved() {
            self.rewarm_left()
        } else {
            Arc::default()
        }
    }

    /// The client was sent endpoints `name` (one of [`Stages::rewarm_awaited`])
    /// as they are now.
    pub fn note_rewarm_sent(&mut self, name: &str) {
        self.rewarm_sent.insert(name.to_string());
    }

    /// The content `rtype` is answered with now.
    pub fn mode(&self, rtype: ResourceType) -> Mode {
        self.modes.get(&rtype).copied().unwrap_or(Mode::New)
    }

    /// A change is under way: its pushes are timed (an arrival's are a
    /// client's first fetch, not a change).
    pub fn times_pushes(&self) -> bool {
        !self.modes.is_empty() && !self.arriving
    }

    /// Clusters were sent: an arrival that sent some re-sends the endpoints
    /// of EDS clusters, since the client re-warms any cluster that changed
    /// for it (which, on arrival, are unknown).
    pub fn note_clusters_sent(&mut self) {
        self.clusters_sent = true;
    }

    /// No stage left and none waiting.
    pub fn idle(&self) -> bool {
        self.pending.is_empty() && self.waiting.is_none()
    }

    /// The client answered `nonce` of `rtype`: true if a stage waited on it.
    pub fn answered(&mut self, rtype: ResourceType, nonce: &str) -> bool {
        let answered = matches!(&self.waiting, Some((t, n, _)) if *t == rtype && n == nonce);
        if answered {
            self.waiting = None;
        }
        answered
    }

    /// Gives up waiting for an ACK due by `now`; returns the type waited on.
    pub fn expire(&mut self, now: Instant) -> Option<ResourceType> {
        let (rtype, _, deadline) = self.waiting.as_ref()?;
        let rtype = *rtype;
        (now >= *deadline).then(|| {
            self.waiting = None;
            rtype
        })
    }

    /// When the stream must look again: an ACK's deadline, or, while waiting
    /// for peers, the bound on that wait.
    pub fn deadline(&self) -> Option<Instant> {
        self.waiting.as_ref().map(|(_, _, d)| *d).or(self.peer_wait)
    }

    /// Waiting for peers (not for an ACK).
    pub fn waits_for_peers(&self) -> bool {
        self.waiting.is_none() && self.peer_wait.is_some()
    }

    /// The stage last run, now done, if it readies this stream for its peers.
    pub fn take_done(&mut self) -> Option<Stage> {
        self.last.take().filter(|s| s.readies())
    }

    /// The next stage, or `None` (and the transition over) when none is left.
    pub fn next(&mut self) -> Option<Stage> {
        let next = self.pending.front().copied();
        if next.is_none() {
            self.modes.clear();
            self.arriving = false;
        }
        next
    }

    /// Whether `stage` may run on a per-type stream (`only`): no barrier,
    /// `ready(types)` says the peers are, or they were waited for long
    /// enough ([`STAGE_TIMEOUT`] from the first look). `id` names the
    /// stream in the log.
    pub fn peers_allow(
        &mut self,
        id: u64,
        stage: Stage,
        only: Option<ResourceType>,
        now: Instant,
        ready: impl FnOnce(&[ResourceType]) -> bool,
    ) -> bool {
        let Some(types) = only.and(stage.waits_for()) else {
            return true;
        };
        let deadline = *self.peer_wait.get_or_insert(now + STAGE_TIMEOUT);
        let ready = ready(types);
        if ready || now >= deadline {
            if !ready {
                tracing::warn!(
                    stream = id,
                    "peer streams not ready in time; continuing the transition"
                );
            }
            self.peer_wait = None;
            return true;
        }
        false
    }

    /// Runs `stage`: its type takes the stage's mode from now on.
    pub fn begin(&mut self, stage: Stage) {
        self.pending.pop_front();
        self.last = Some(stage);
        self.modes.insert(stage.rtype, stage.mode);
    }

    /// The stage just begun waits for the ACK of `nonce` until `now` + [`STAGE_TIMEOUT`].
    pub fn wait(&mut self, rtype: ResourceType, nonce: String, now: Instant) {
        self.waiting = Some((rtype, nonce, now + STAGE_TIMEOUT));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResourceType::*;

    #[test]
    fn clusters_and_endpoints_come_first_with_old_plus_new_and_last_without_stale() {
        let order: Vec<(ResourceType, Mode, bool)> =
            Stage::all().map(|s| (s.rtype, s.mode, s.rewarm)).collect();
        assert_eq!(
            order,
            [
                (Cluster, Mode::Union, false),
                (ClusterLoadAssignment, Mode::Union, true),
                (Secret, Mode::New, false),
                (Listener, Mode::New, false),
                (RouteConfiguration, Mode::New, false),
                (ScopedRouteConfiguration, Mode::New, false),
                (VirtualHost, Mode::New, false),
                (Runtime, Mode::New, false),
                (Cluster, Mode::New, false),
                (ClusterLoadAssignment, Mode::New, false),
            ]
        );
    }

    #[test]
    fn every_served_type_has_a_stage() {
        for rtype in ResourceType::ALL {
            assert!(Stage::all().any(|s| s.rtype == rtype), "{rtype:?}");
        }
    }

    #[test]
    fn per_type_barriers_follow_the_same_order() {
        let stages: Vec<Stage> = Stage::all().collect();
        // Using types wait for warming ones; pruning waits for using ones.
        assert_eq!(stages[0].waits_for(), None);
        assert_eq!(stages[3].waits_for(), Some(WARMING));
        assert_eq!(stages[8].waits_for(), Some(USING));
        let readies: Vec<bool> = stages.iter().map(|s| s.readies()).collect();
        assert_eq!(
            readies,
            [true, true, true, true, true, true, true, true, false, false]
        );
    }

    #[test]
    fn a_stage_waits_for_its_ack_until_the_timeout() {
        let t0 = Instant::now();
        let mut stages = Stages::default();
        stages.wait(Listener, "3".into(), t0);
        assert_eq!(stages.deadline(), Some(t0 + STAGE_TIMEOUT));
        assert!(
            !stages.answered(Listener, "2"),
            "another nonce answers nothing"
        );
        assert_eq!(stages.expire(t0 + Duration::from_millis(4999)), None);
        assert_eq!(stages.expire(t0 + STAGE_TIMEOUT), Some(Listener));
        assert!(stages.idle());
        stages.wait(Listener, "4".into(), t0);
        assert!(stages.answered(Listener, "4"));
        assert!(stages.idle());
    }

    #[test]
    fn a_per_type_stage_waits_for_peers_at_most_the_timeout() {
        let t0 = Instant::now();
        let mut stages = Stages::default();
        let listeners = Stage::all().find(|s| s.rtype == Listener).expect("stage");
        // ADS streams have no peers to wait for.
        assert!(stages.peers_allow(1, listeners, None, t0, |_| false));
        let only = Some(Listener);
        assert!(!stages.peers_allow(1, listeners, only, t0, |types| {
            assert_eq!(types, WARMING);
            false
        }));
        assert!(stages.waits_for_peers());
        assert_eq!(stages.deadline(), Some(t0 + STAGE_TIMEOUT));
        let later = t0 + Duration::from_secs(1);
        assert!(!stages.peers_allow(1, listeners, only, later, |_| false));
        assert!(stages.peers_allow(1, listeners, only, later, |_| true));
        assert!(!stages.waits_for_peers());
        assert!(!stages.peers_allow(1, listeners, only, later, |_| false));
        assert!(stages.peers_allow(1, listeners, only, later + STAGE_TIMEOUT, |_| false));
    }
}
