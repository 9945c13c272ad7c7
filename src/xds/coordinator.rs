//! Per node, what its per-type streams have in place. Without ADS a
//! client's types arrive on separate streams (CDS, EDS, LDS, RDS, ...), and
//! make-before-break must hold across them: a listener or route stream
//! waits until the node's cluster and endpoint streams have the new set in
//! place, and those drop stale resources only once the listeners and routes
//! moved. Each node has a watch channel of its streams' readiness; a
//! waiting stream is woken when it changes, instead of polling.

use crate::config::schema::ResourceType;
use crate::sync::lock;
use crate::xds::Resources;
use crate::xds::stream::Barrier;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One per-type stream of a node, as its peers see it.
#[derive(Clone, Debug)]
struct Member {
    /// The type it serves.
    rtype: ResourceType,
    /// The snapshot version it has made ready for its peers.
    ready: String,
    /// The endpoints it holds (endpoint streams).
    endpoints: Option<Resources>,
}

/// The per-type streams of one node, by stream id.
#[derive(Clone, Debug, Default)]
pub struct Readiness(BTreeMap<u64, Member>);

impl Readiness {
    /// Are all streams (but `me`) serving one of `types` ready for `version`,
    /// and, if the node has endpoint streams, does one of them hold each of
    /// `endpoints`? (Envoy asks for a new cluster's endpoints on its own
    /// time, on an endpoint stream it has or one it opens for them.)
    pub fn ready(&self, me: u64, barrier: &Barrier<'_>) -> bool {
        let peers = || self.0.iter().filter(move |(id, _)| **id != me);
        let present = barrier
            .present
            .iter()
            .all(|t| peers().any(|(_, m)| m.rtype == *t));
        let ready = peers()
            .filter(|(_, m)| barrier.types.contains(&m.rtype))
            .all(|(_, m)| m.ready == barrier.version);
        let held: Vec<&Resources> = peers().filter_map(|(_, m)| m.endpoints.as_ref()).collect();
        let must_hold = barrier
            .present
            .contains(&ResourceType::ClusterLoadAssignment);
        let endpoints_held = (held.is_empty() && !must_hold)
            || barrier
                .endpoints
                .iter()
                .all(|name| held.iter().any(|e| e.contains_key(name)));
        present && ready && endpoints_held
    }
}

/// One watch channel per node id with per-type streams open.
#[derive(Debug, Default)]
pub struct Coordinators {
    nodes: Mutex<HashMap<String, Arc<watch::Sender<Readiness>>>>,
}

impl Coordinators {
    /// Stream `id`, serving `rtype` to node `node`, joins the node's
    /// coordinator, ready for nothing yet; it leaves when the membership is dropped.
    pub fn join(self: &Arc<Self>, id: u64, node: &str, rtype: ResourceType) -> Membership {
        let sender = Arc::clone(
            lock(&self.nodes)
                .entry(node.to_string())
                .or_insert_with(|| Arc::new(watch::Sender::new(Readiness::default()))),
        );
        let member = Member {
            rtype,
            ready: String::new(),
            endpoints: None,
        };
        sender.send_modify(|r| {
            r.0.insert(id, member);
        });
        Membership {
            id,
            node: node.to_string(),
            updates: sender.subscribe(),
            sender,
            coordinators: Arc::clone(self),
        }
    }

    /// Nodes with per-type streams open.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.nodes).len()
    }
}

/// A stream's place in its node's coordinator.
pub struct Membership {
    id: u64,
    node: String,
    sender: Arc<watch::Sender<Readiness>>,
    updates: watch::Receiver<Readiness>,
    coordinators: Arc<Coordinators>,
}

impl Membership {
    /// This stream has snapshot `version`'s content in place for its
    /// peers, holding `endpoints` (endpoint streams). Wakes the node's
    /// waiting streams only when that is news.
    pub fn ready_for(&self, version: &str, endpoints: Option<&Resources>) {
        let id = self.id;
        self.sender.send_if_modified(|r| {
            let Some(member) = r.0.get_mut(&id) else {
                return false;
            };
            let same_endpoints = match (&member.endpoints, endpoints) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (a, b) => a.is_none() && b.is_none(),
            };
            if member.ready == version && same_endpoints {
                return false;
            }
            member.ready = version.to_string();
            member.endpoints = endpoints.cloned();
            true
        });
    }

    /// Have the node's other streams passed `barrier` (see [`Readiness::ready`])?
    pub fn peers_ready(&self, barrier: &Barrier<'_>) -> bool {
        self.updates.borrow().ready(self.id, barrier)
    }

    /// Waits until any stream of the node changes its readiness (or, with
    /// the channel gone, forever).
    pub async fn changed(&mut self) {
        if self.updates.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        // Under the map's lock, so that a stream joining meanwhile finds
        // either the old channel with members or a new one.
        let mut nodes = lock(&self.coordinators.nodes);
        let id = self.id;
        self.sender.send_modify(|r| {
            r.0.remove(&id);
        });
        if self.sender.borrow().0.is_empty() {
            nodes.remove(&self.node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResourceType::*;

    /// [`Membership::peers_ready`] without types that must be present.
    fn ready(m: &Membership, types: &[ResourceType], version: &str, endpoints: &[String]) -> bool {
        m.peers_ready(&Barrier {
            types,
            version,
            endpoints,
            present: &[],
        })
    }

    #[test]
    fn a_stream_sees_its_peers_of_the_types_it_waits_for() {
        let coordinators = Arc::new(Coordinators::default());
        let routes = coordinators.join(1, "n", RouteConfiguration);
        let clusters = coordinators.join(2, "n", Cluster);
        let elsewhere = coordinators.join(3, "other", ClusterLoadAssignment);
        let warming = [Cluster, ClusterLoadAssignment];
        assert!(!ready(&routes, &warming, "v2", &[]));
        clusters.ready_for("v2", None);
        assert!(
            ready(&routes, &warming, "v2", &[]),
            "another node's streams do not count"
        );
        assert!(
            ready(&elsewhere, &warming, "v2", &[]),
            "alone on its node, it waits for nobody"
        );
        assert!(ready(&clusters, &[RouteConfiguration], "", &[]));
        assert!(!ready(&clusters, &[RouteConfiguration], "v2", &[]));
        drop(routes);
        assert!(
            ready(&clusters, &[RouteConfiguration], "v2", &[]),
            "gone streams do not count"
        );
        assert_eq!(coordinators.len(), 2);
        drop((clusters, elsewhere));
        assert_eq!(coordinators.len(), 0, "nodes without streams are forgotten");
    }

    /// On arrival, a route stream that reconnected first waits for the
    /// node's cluster and endpoint streams to exist, not only to be ready.
    #[test]
    fn an_arriving_stream_waits_for_peers_that_have_not_connected_yet() {
        let coordinators = Arc::new(Coordinators::default());
        let routes = coordinators.join(1, "n", RouteConfiguration);
        let warming = [Cluster, ClusterLoadAssignment];
        let barrier = |present| Barrier {
            types: &warming,
            version: "v1",
            endpoints: &[],
            present,
        };
        assert!(routes.peers_ready(&barrier(&[])), "vacuously ready");
        assert!(!routes.peers_ready(&barrier(&[Cluster])));
        let clusters = coordinators.join(2, "n", Cluster);
        assert!(
            !routes.peers_ready(&barrier(&[Cluster])),
            "present, not ready"
        );
        clusters.ready_for("v1", None);
        assert!(routes.peers_ready(&barrier(&[Cluster])));
        assert!(
            !routes.peers_ready(&barrier(&[Cluster, ClusterLoadAssignment])),
            "no endpoint stream yet"
        );
    }

    #[test]
    fn new_endpoints_must_be_held_by_one_of_the_nodes_endpoint_streams() {
        let coordinators = Arc::new(Coordinators::default());
        let routes = coordinators.join(1, "n", RouteConfiguration);
        let old = coordinators.join(2, "n", ClusterLoadAssignment);
        let text = format!(
            "\"@type\": {eds}\ncluster_name: a\n---\n\"@type\": {eds}\ncluster_name: b\n",
            eds = ClusterLoadAssignment.type_url()
        );
        let loaded = crate::config::loader::load_str("t.yaml", &text);
        let snapshot = crate::xds::snapshot::Snapshot::build(&loaded.resources);
        let held = |names: &[&str]| -> Resources {
            let entries = snapshot
                .entries()
                .iter()
                .filter(|e| names.contains(&e.name.as_str()));
            Arc::new(entries.map(|e| (e.name.clone(), Arc::clone(e))).collect())
        };
        let warming = [Cluster, ClusterLoadAssignment];
        let b = ["b".to_string()];
        old.ready_for("v2", Some(&held(&["a"])));
        assert!(ready(&routes, &warming, "v2", &[]));
        assert!(!ready(&routes, &warming, "v2", &b), "nobody holds b yet");
        // Envoy opens a stream for b's endpoints: not ready until it holds them.
        let new = coordinators.join(3, "n", ClusterLoadAssignment);
        assert!(!ready(&routes, &warming, "v2", &b));
        new.ready_for("v2", Some(&held(&["b"])));
        assert!(ready(&routes, &warming, "v2", &b));
    }

    #[tokio::test]
    async fn a_waiting_stream_is_woken_when_a_peer_becomes_ready() {
        let coordinators = Arc::new(Coordinators::default());
        let mut routes = coordinators.join(1, "n", RouteConfiguration);
        let clusters = coordinators.join(2, "n", Cluster);
        // As the driver waits: look, and wait for a change while not ready.
        let woken = tokio::spawn(async move {
            while !ready(&routes, &[Cluster], "v2", &[]) {
                routes.changed().await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!woken.is_finished());
        clusters.ready_for("v2", None);
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), woken).await;
        assert!(matches!(done, Ok(Ok(()))), "woken by the change");
    }
}
