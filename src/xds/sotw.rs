//! One state-of-the-world ADS stream: subscriptions, nonces, ACK/NACK, and
//! make-before-break transitions between snapshots.
//!
//! A transition moves a client from what it was last sent to a new snapshot
//! in stages, each waiting (bounded) for the client's ACK of the previous:
//! clusters (new plus old), endpoints (re-sent, since Envoy warms a changed
//! cluster only on a fresh assignment), secrets, listeners, routes and the
//! rest, and only then clusters and endpoints without the stale ones.

use super::Ledger;
use crate::schema::ResourceType;
use crate::selector::NodeIdentity;
use crate::snapshot::{Entry, Snapshot, View, content_hash};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::{Status, Streaming};

/// How long a transition stage waits for the client's ACK before going on.
const STAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which content a type is answered with during a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// What was sent, plus new resources for names never sent.
    Hold,
    /// The new snapshot plus what was sent (new wins): nothing is removed yet.
    Union,
    /// The new snapshot.
    New,
}

#[derive(Default)]
struct TypeState {
    /// Subscribed with no names (or `*`): everything of the type.
    wildcard: bool,
    /// Names asked for.
    names: BTreeSet<String>,
    /// Whether the client ever asked for this type.
    subscribed: bool,
    /// Nonce of the last response.
    nonce: String,
    /// Version of the last response.
    sent_version: String,
    /// What the last response held.
    sent: BTreeMap<String, Arc<Entry>>,
}

/// One step of a transition: set modes, then push one type.
#[derive(Clone, Copy, Debug)]
struct Stage {
    rtype: ResourceType,
    mode: Mode,
    /// Send even if the content did not change.
    force: bool,
}

fn transition_stages() -> VecDeque<Stage> {
    use ResourceType::*;
    let stage = |rtype, mode, force| Stage { rtype, mode, force };
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

/// The state of one stream.
pub struct SotwStream {
    id: u64,
    node: Option<NodeIdentity>,
    snapshot: Arc<Snapshot>,
    view: Arc<View>,
    types: BTreeMap<ResourceType, TypeState>,
    modes: BTreeMap<ResourceType, Mode>,
    stages: VecDeque<Stage>,
    /// The type and nonce a stage waits on, and until when.
    waiting: Option<(ResourceType, String, Instant)>,
    next_nonce: u64,
    ledger: Arc<Ledger>,
    out: mpsc::Sender<Result<DiscoveryResponse, Status>>,
}

impl SotwStream {
    /// Serves one stream until the client goes away.
    pub async fn run(
        id: u64,
        mut requests: Streaming<DiscoveryRequest>,
        mut snapshots: watch::Receiver<Arc<Snapshot>>,
        ledger: Arc<Ledger>,
        out: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    ) {
        let snapshot = Arc::clone(&snapshots.borrow_and_update());
        let mut stream = SotwStream {
            id,
            node: None,
            view: Arc::new(View::default()),
            snapshot,
            types: BTreeMap::new(),
            modes: BTreeMap::new(),
            stages: VecDeque::new(),
            waiting: None,
            next_nonce: 0,
            ledger,
            out,
        };
        loop {
            let deadline = stream.waiting.as_ref().map(|(_, _, d)| *d);
            tokio::select! {
                message = requests.message() => match message {
                    Ok(Some(request)) => {
                        if stream.on_request(request).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) | Err(_) => break,
                },
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let snapshot = Arc::clone(&snapshots.borrow_and_update());
                    if stream.on_snapshot(snapshot).await.is_err() {
                        break;
                    }
                }
                _ = sleep_until(deadline) => {
                    if let Some((rtype, _, _)) = stream.waiting.take() {
                        tracing::warn!(stream = id, type_url = %rtype.type_url(), "no ACK in time; continuing the transition");
                    }
                    if stream.advance().await.is_err() {
                        break;
                    }
                }
            }
        }
        stream.ledger.remove(id);
    }

    async fn on_request(&mut self, request: DiscoveryRequest) -> Result<(), ()> {
        if self.node.is_none() {
            let node = request.node.as_ref().map(|n| NodeIdentity {
                id: n.id.clone(),
                cluster: n.cluster.clone(),
            });
            let node = node.unwrap_or_default();
            self.ledger.connect(self.id, &node);
            self.view = self.snapshot.view(&node);
            self.node = Some(node);
        }
        let Some(rtype) = ResourceType::parse_loose(&request.type_url)
            .filter(|t| t.type_url() == request.type_url)
        else {
            tracing::debug!(stream = self.id, type_url = %request.type_url, "request for a type xdsd does not serve");
            return Ok(());
        };
        let state = self.types.entry(rtype).or_default();
        if !request.response_nonce.is_empty() && request.response_nonce != state.nonce {
            // A response to an older nonce: superseded, ignored (xDS protocol).
            return Ok(());
        }
        if !request.response_nonce.is_empty() {
            match &request.error_detail {
                Some(error) => {
                    tracing::warn!(stream = self.id, type_url = %request.type_url, version = %state.sent_version, error = %error.message, "NACK");
                    self.ledger
                        .nack(self.id, rtype, &state.sent_version, &error.message);
                }
                None => self.ledger.ack(self.id, rtype, &request.version_info),
            }
        }
        let names: BTreeSet<String> = request.resource_names.iter().cloned().collect();
        // An empty list means "everything" only until the client names something.
        let wildcard =
            names.contains("*") || names.is_empty() && (!state.subscribed || state.wildcard);
        let new_names: bool = names.iter().any(|n| !state.names.contains(n));
        state.wildcard = wildcard;
        state.names = names;
        state.subscribed = true;
        let acked_wait =
            matches!(&self.waiting, Some((t, n, _)) if *t == rtype && *n == request.response_nonce);
        if acked_wait {
            self.waiting = None;
        }
        self.respond(rtype, new_names).await?;
        if acked_wait {
            self.advance().await?;
        }
        Ok(())
    }

    async fn on_snapshot(&mut self, snapshot: Arc<Snapshot>) -> Result<(), ()> {
        if snapshot.version == self.snapshot.version {
            return Ok(());
        }
        self.snapshot = snapshot;
        let Some(node) = &self.node else {
            return Ok(());
        };
        self.view = self.snapshot.view(node);
        self.modes = ResourceType::ALL.iter().map(|t| (*t, Mode::Hold)).collect();
        self.stages = transition_stages();
        self.waiting = None;
        self.advance().await
    }

    /// Runs stages until one has to wait for an ACK.
    async fn advance(&mut self) -> Result<(), ()> {
        while self.waiting.is_none() {
            let Some(stage) = self.stages.pop_front() else {
                self.modes.clear();
                return Ok(());
            };
            self.modes.insert(stage.rtype, stage.mode);
            if let Some(nonce) = self.respond(stage.rtype, stage.force).await? {
                self.waiting = Some((stage.rtype, nonce, Instant::now() + STAGE_TIMEOUT));
            }
        }
        Ok(())
    }

    /// What the client should have for `rtype` now.
    fn desired(&self, rtype: ResourceType) -> BTreeMap<String, Arc<Entry>> {
        let new = self
            .view
            .of(rtype)
            .map(|t| t.resources.clone())
            .unwrap_or_default();
        let sent = self
            .types
            .get(&rtype)
            .map(|s| s.sent.clone())
            .unwrap_or_default();
        match self.modes.get(&rtype).copied().unwrap_or(Mode::New) {
            Mode::New => new,
            Mode::Union => {
                let mut all = sent;
                all.extend(new);
                all
            }
            Mode::Hold => {
                let mut all = new;
                all.extend(sent);
                all
            }
        }
    }

    /// Sends `rtype` if the client is subscribed and its content changed (or
    /// `force`). Returns the nonce when something was sent.
    async fn respond(&mut self, rtype: ResourceType, force: bool) -> Result<Option<String>, ()> {
        let desired = self.desired(rtype);
        let Some(state) = self.types.get_mut(&rtype) else {
            return Ok(None);
        };
        if !state.subscribed {
            return Ok(None);
        }
        let chosen: BTreeMap<String, Arc<Entry>> = if state.wildcard {
            desired
        } else {
            desired
                .into_iter()
                .filter(|(name, _)| state.names.contains(name))
                .collect()
        };
        let parts: Vec<String> = chosen
            .iter()
            .map(|(n, e)| format!("{n}={}", e.version))
            .collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let version = content_hash(&refs);
        if version == state.sent_version && !force {
            return Ok(None);
        }
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let response = DiscoveryResponse {
            version_info: version.clone(),
            resources: chosen.values().map(|e| e.any.clone()).collect(),
            type_url: rtype.type_url(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        state.nonce = nonce.clone();
        state.sent_version = version.clone();
        state.sent = chosen;
        self.ledger.sent(self.id, rtype, &version);
        tracing::debug!(stream = self.id, type_url = %response.type_url, version = %version, resources = response.resources.len(), "sent");
        self.out.send(Ok(response)).await.map_err(|_| ())?;
        Ok(Some(nonce))
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
