use super::*;
use crate::config::loader::load_str;

const SET: &str = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: a\n---\nkind: Cluster\nnodes: {cluster: [edge]}\nspec: {name: b}\n";

/// A view's map of `rtype` (which it must have).
fn map_of(view: &View, rtype: ResourceType) -> Resources {
    Arc::clone(&view.of(rtype).expect("the type is in the view").resources)
}

/// Clusters a, b, c (EDS) with their assignments; `c_timeout` changes c.
fn eds_set(c_timeout: &str, with_b: bool) -> Snapshot {
    let cluster = |name: &str, timeout: &str| {
        format!(
            "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: {name}\ntype: EDS\neds_cluster_config: {{eds_config: {{ads: {{}}}}}}\nconnect_timeout: {timeout}\n"
        )
    };
    let cla = |name: &str| {
        format!(
            "\"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\ncluster_name: {name}\n"
        )
    };
    let mut docs = vec![
        cluster("a", "1s"),
        cla("a"),
        cluster("c", c_timeout),
        cla("c"),
    ];
    if with_b {
        docs.extend([cluster("b", "1s"), cla("b")]);
    }
    let loaded = load_str("x.yaml", &docs.join("---\n"));
    assert!(loaded.diagnostics.is_ok(), "{:?}", loaded.diagnostics);
    Snapshot::build(&loaded.resources)
}

#[test]
fn a_transition_is_shared_and_names_only_what_changed() {
    let node = NodeIdentity::default();
    let old = eds_set("1s", true);
    let mut new = eds_set("2s", false);
    new.reuse_maps_of(&old);
    let (from, to) = (old.view(&node), new.view(&node));
    let t = new.transition(&from, &to);
    assert!(
        Arc::ptr_eq(&t, &new.transition(&from, &to)),
        "computed once"
    );
    let maps = |v: &View, rtype| Arc::clone(&v.of(rtype).expect("type").resources);
    let clusters = t
        .diff(
            ResourceType::Cluster,
            &maps(&from, ResourceType::Cluster),
            &maps(&to, ResourceType::Cluster),
        )
        .expect("the move's own maps");
    assert_eq!(clusters.changed, vec!["c".to_string()]);
    assert_eq!(clusters.removed, vec!["b".to_string()]);
    assert!(clusters.added.is_empty());
    let endpoints = t
        .diff(
            ResourceType::ClusterLoadAssignment,
            &maps(&from, ResourceType::ClusterLoadAssignment),
            &maps(&to, ResourceType::ClusterLoadAssignment),
        )
        .expect("the move's own maps");
    assert_eq!(endpoints.removed, vec!["b".to_string()]);
    assert_eq!(
        *t.rewarm,
        BTreeSet::from(["c".to_string()]),
        "the changed cluster re-warms"
    );
    // Another map than the move's: the caller must compare for itself.
    let other = Resources::default();
    assert!(
        t.diff(
            ResourceType::Cluster,
            &other,
            &maps(&to, ResourceType::Cluster)
        )
        .is_none()
    );
}

#[test]
fn an_unchanged_type_keeps_the_very_same_map() {
    let node = NodeIdentity::default();
    let old = eds_set("1s", false);
    // Streams have built the served snapshot's views before a new one comes.
    let from = old.view(&node);
    let mut new = eds_set("2s", false);
    new.reuse_maps_of(&old);
    let to = new.view(&node);
    let endpoints = |v: &View| map_of(v, ResourceType::ClusterLoadAssignment);
    assert!(
        Arc::ptr_eq(&endpoints(&from), &endpoints(&to)),
        "same content, same map"
    );
    let clusters = |v: &View| map_of(v, ResourceType::Cluster);
    assert!(!Arc::ptr_eq(&clusters(&from), &clusters(&to)));
}

#[test]
fn changes_count_added_removed_and_changed_per_type() {
    let old = Snapshot::build(&load_str("x.yaml", SET).resources);
    let text = SET.replace("name: a", "name: c")
        + "---\nkind: Cluster\nnodes: {cluster: [edge]}\nspec: {name: b, connect_timeout: 2s}\n";
    let text = text.replacen(
        "kind: Cluster\nnodes: {cluster: [edge]}\nspec: {name: b}\n---\n",
        "",
        1,
    );
    let new = Snapshot::build(&load_str("x.yaml", &text).resources);
    let changes = new.changes_from(&old);
    assert_eq!(
        changes.get(&ResourceType::Cluster),
        Some(&Changes {
            added: 1,
            removed: 1,
            changed: 1
        })
    );
    assert!(new.changes_from(&new).is_empty());
}

#[test]
fn set_versions_hash_names_and_versions() {
    let snap = Snapshot::build(&load_str("x.yaml", SET).resources);
    let view = snap.view(&NodeIdentity::default());
    let clusters = view.of(ResourceType::Cluster).expect("clusters");
    let a = &clusters.resources["a"];
    assert_eq!(
        clusters.version,
        content_hash(&[&format!("a={}", a.version)])
    );
}

#[test]
fn versions_come_from_content() {
    let one = Snapshot::build(&load_str("x.yaml", SET).resources);
    let two = Snapshot::build(&load_str("y.yaml", SET).resources);
    assert_eq!(one.version, two.version);
    let other = Snapshot::build(&load_str("x.yaml", &SET.replace("name: a", "name: c")).resources);
    assert_ne!(one.version, other.version);
}

#[test]
fn every_view_and_response_shares_one_encoding() {
    let snap = Snapshot::build(&load_str("x.yaml", SET).resources);
    let edge = snap.view(&NodeIdentity {
        id: "1".into(),
        cluster: "edge".into(),
    });
    let plain = snap.view(&NodeIdentity::default());
    let a_edge = &edge.of(ResourceType::Cluster).expect("clusters").resources["a"];
    let a_plain = &plain.of(ResourceType::Cluster).expect("clusters").resources["a"];
    assert!(Arc::ptr_eq(a_edge, a_plain), "one entry for both views");
    // A response holds a clone of the entry's Any: the bytes are shared, not copied.
    let in_response = a_edge.any.clone();
    assert_eq!(in_response.value.as_ptr(), a_plain.any.value.as_ptr());
}

#[test]
fn views_follow_selectors_and_are_shared() {
    let snap = Snapshot::build(&load_str("x.yaml", SET).resources);
    let edge = NodeIdentity {
        id: "1".into(),
        cluster: "edge".into(),
    };
    let edge2 = NodeIdentity {
        id: "2".into(),
        cluster: "edge".into(),
    };
    let v = snap.view(&edge);
    assert_eq!(
        v.of(ResourceType::Cluster).map(|t| t.resources.len()),
        Some(2)
    );
    assert!(Arc::ptr_eq(&v, &snap.view(&edge2)));
    let plain = snap.view(&NodeIdentity::default());
    assert_eq!(
        plain.of(ResourceType::Cluster).map(|t| t.resources.len()),
        Some(1)
    );
}

/// A resource with a made-up version, seen by the nodes named (all when none).
fn entry(rtype: ResourceType, name: &str, version: &str, ids: &[&str]) -> Arc<Entry> {
    Arc::new(Entry {
        rtype,
        name: name.into(),
        version: version.into(),
        selector: NodeSelector {
            cluster: Vec::new(),
            id: ids.iter().map(|id| id.to_string()).collect(),
        },
        any: SharedAny {
            type_url: rtype.type_url(),
            value: bytes::Bytes::new(),
        },
        warms_with: None,
    })
}

const NODES: usize = 2_000;
const SHARED: usize = 10;

fn node(i: usize) -> NodeIdentity {
    NodeIdentity {
        id: format!("node-{i}"),
        cluster: "fleet".into(),
    }
}

/// NODES nodes with a cluster of their own each, SHARED shared clusters and
/// their assignments; `shared_v` is the shared assignments' version and
/// `node0_v` node 0's own cluster's.
fn fleet(shared_v: &str, node0_v: &str) -> Snapshot {
    let mut entries = Vec::new();
    for i in 0..SHARED {
        entries.push(entry(
            ResourceType::Cluster,
            &format!("shared-{i}"),
            "1",
            &[],
        ));
        entries.push(entry(
            ResourceType::ClusterLoadAssignment,
            &format!("shared-{i}"),
            shared_v,
            &[],
        ));
    }
    for i in 0..NODES {
        let version = if i == 0 { node0_v } else { "1" };
        entries.push(entry(
            ResourceType::Cluster,
            &format!("own-{i}"),
            version,
            &[&node(i).id],
        ));
    }
    Snapshot::from_entries(entries)
}

/// Views of N nodes, each with resources of its own, cost O(N) selector
/// tests (the index finds each node's own), not O(N × resources) (every
/// selector tested against every node: 4,000,000 here).
#[test]
fn views_of_nodes_with_their_own_resources_cost_what_they_hold() {
    let snap = fleet("1", "1");
    let views: Vec<Arc<View>> = (0..NODES).map(|i| snap.view(&node(i))).collect();
    assert_eq!(
        snap.work.selector_tests.load(Ordering::Relaxed),
        NODES,
        "one selector tested per node: its own"
    );
    for (i, view) in views.iter().enumerate() {
        let clusters = &view.of(ResourceType::Cluster).expect("clusters").resources;
        assert_eq!(clusters.len(), SHARED + 1);
        assert!(clusters.contains_key(&format!("own-{i}")));
    }
    // A type with nothing of a node's own is the base's very map.
    let endpoints = |v: &View| map_of(v, ResourceType::ClusterLoadAssignment);
    assert!(
        views
            .iter()
            .all(|v| Arc::ptr_eq(&endpoints(v), &endpoints(&views[0])))
    );
    // A node without resources of its own gets the base view, tested against nothing.
    let stranger = snap.view(&NodeIdentity {
        id: "stranger".into(),
        cluster: "elsewhere".into(),
    });
    assert_eq!(
        stranger
            .of(ResourceType::Cluster)
            .map(|t| t.resources.len()),
        Some(SHARED)
    );
    assert_eq!(snap.work.selector_tests.load(Ordering::Relaxed), NODES);
}

/// Moving every node to a snapshot where shared resources changed diffs
/// the shared map once (not once per node), and a change to one node's own
/// resources is diffed for that node only: the resources compared stay
/// O(what changed), not O(nodes × resources).
#[test]
fn transitions_diff_what_changed_once() {
    let old = fleet("1", "1");
    // The old views exist (clients hold them) before a new snapshot follows.
    let held: Vec<Arc<View>> = (0..NODES).map(|i| old.view(&node(i))).collect();
    let moves = |new: &Snapshot| {
        for (i, from) in held.iter().enumerate() {
            new.transition(from, &new.view(&node(i)));
        }
        new.work.compared.load(Ordering::Relaxed)
    };
    let mut shared_change = fleet("2", "1");
    shared_change.reuse_maps_of(&old);
    assert_eq!(
        moves(&shared_change),
        2 * SHARED,
        "the shared assignments' map, old and new, compared once for all nodes"
    );
    let mut one_node_change = fleet("1", "2");
    one_node_change.reuse_maps_of(&old);
    assert_eq!(
        moves(&one_node_change),
        2 * (SHARED + 1),
        "node 0's clusters, old and new; nobody else's"
    );
}

/// A change to one node's own resources builds that node's view only: the
/// others keep their very views (their base and own resources are the
/// same), so the change costs O(that node), not O(nodes × shared
/// resources). A shared change builds every view anew.
#[test]
fn a_change_to_one_node_builds_only_its_view() {
    let old = fleet("1", "1");
    let held: Vec<Arc<View>> = (0..NODES).map(|i| old.view(&node(i))).collect();
    let mut one_node_change = fleet("1", "2");
    one_node_change.follow(&Arc::new(old));
    let now: Vec<Arc<View>> = (0..NODES).map(|i| one_node_change.view(&node(i))).collect();
    let work = &one_node_change.work;
    assert_eq!(
        work.views_built.load(Ordering::Relaxed),
        1,
        "node 0's view only"
    );
    assert_eq!(
        work.view_entries.load(Ordering::Relaxed),
        SHARED + 1,
        "node 0's clusters: the shared ones and its own"
    );
    assert!(!Arc::ptr_eq(&held[0], &now[0]));
    assert!(
        held.iter()
            .zip(&now)
            .skip(1)
            .all(|(a, b)| Arc::ptr_eq(a, b)),
        "every other node keeps its view"
    );
    // Moves: only node 0 has anything to be sent.
    for (i, from) in held.iter().enumerate() {
        let t = one_node_change.transition(from, &now[i]);
        let changed = t
            .diff(
                ResourceType::Cluster,
                &map_of(from, ResourceType::Cluster),
                &map_of(&now[i], ResourceType::Cluster),
            )
            .map(|d| d.changed.clone());
        let want = if i == 0 {
            vec!["own-0".to_string()]
        } else {
            Vec::new()
        };
        assert_eq!(changed, Some(want), "node {i}");
    }

    let mut shared_change = fleet("2", "2");
    shared_change.follow(&Arc::new(one_node_change));
    for i in 0..NODES {
        shared_change.view(&node(i));
    }
    assert_eq!(
        shared_change.work.views_built.load(Ordering::Relaxed),
        NODES,
        "a shared change builds every view"
    );
}
