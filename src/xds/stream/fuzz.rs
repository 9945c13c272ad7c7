//! Property tests over request sequences (`bash bench/fuzz.sh` runs them
//! longer): whatever a client sends, in whatever order, with snapshots
//! changing in between, the engine never panics, and what it believes a
//! delta client holds stays consistent with what it sent.

use super::{Barrier, Effect, Engine, Incoming, Peers, Subscription, Wire};
use crate::config::schema::ResourceType;
use crate::xds::snapshot::Snapshot;
use crate::xds::{Caller, Peer};
use envoy_types::pb::envoy::config::core::v3::Node;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::OnceLock;
use tokio::time::{Duration, Instant};

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
                let loaded = crate::config::loader::load_str("fuzz.yaml", &docs.join("---\n"));
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

fn incoming<W: Wire>(stream: &Engine<W>, op: &Op) -> Option<Incoming> {
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
        // Delta requests carry no version.
        version: state
            .filter(|_| !W::INCREMENTAL)
            .map(|s| s.sent_version().to_string())
            .unwrap_or_default(),
        type_url,
        nonce,
        error: nack.then(|| "fuzz NACK".to_string()),
        subscription,
    })
}

/// What the engine believes about each type must hold after every step.
fn check<W: Wire>(stream: &Engine<W>) {
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

/// Peers always ready (the fuzzed streams are ADS streams, which have none).
struct NoPeers;

impl Peers for NoPeers {
    fn ready(&self, _: &Barrier<'_>) -> bool {
        true
    }
}

fn run<W: Wire>(ops: &[Op]) {
    let caller = Caller {
        peer: Peer {
            addr: None,
            identities: Vec::new(),
        },
        authorization: None,
    };
    let mut stream = Engine::<W>::new(1, None, caller, Arc::clone(&snapshots()[15]));
    // A fake clock: a timeout moves it past every deadline.
    let mut now = Instant::now();
    for op in ops {
        let effects = match op {
            Op::Change(mask) => {
                let snapshot = Arc::clone(&snapshots()[usize::from(*mask)]);
                stream.on_snapshot(snapshot, now, &NoPeers)
            }
            Op::Timeout => {
                now += Duration::from_secs(5);
                stream.on_tick(now, &NoPeers)
            }
            Op::Request { .. } => match incoming(&stream, op) {
                Some(request) => stream.on_request(request, now, &NoPeers),
                None => Vec::new(),
            },
        };
        assert!(
            !effects.iter().any(|e| matches!(e, Effect::End(_))),
            "the stream ended on {op:?}"
        );
        check(&stream);
    }
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
