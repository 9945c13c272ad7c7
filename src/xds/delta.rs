//! The incremental (delta) wire format: a response carries only what
//! changed, so xdsd keeps what the client holds, per resource.

use super::Resources;
use super::messages::{DeltaDiscoveryResponse, Resource};
use super::stream::{Changes, Force, Incoming, Outgoing, Subscription, TypeState, Wire, join};
use crate::config::schema::ResourceType;
use crate::xds::snapshot::{Transition, TypeDiff};
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use std::collections::{BTreeMap, BTreeSet};

/// `DeltaAggregatedResources` and the per-type `Delta*` methods.
pub struct Delta;

impl Wire for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const INCREMENTAL: bool = true;

    fn incoming(r: DeltaDiscoveryRequest) -> Incoming {
        Incoming {
            node: r.node,
            nonce: r.response_nonce,
            error: r.error_detail.map(|e| e.message),
            version: String::new(),
            subscription: Subscription::Delta {
                subscribe: r.resource_names_subscribe.into_iter().collect(),
                unsubscribe: r.resource_names_unsubscribe.into_iter().collect(),
                initial: r.initial_resource_versions.into_iter().collect(),
            },
            type_url: r.type_url,
        }
    }

    fn outgoing(out: Outgoing<'_>) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            system_version_info: out.version.to_string(),
            resources: out
                .changes
                .changed
                .iter()
                .map(|e| Resource {
                    name: e.name.clone(),
                    version: e.version.clone(),
                    resource: Some(e.any.clone()),
                })
                .collect(),
            removed_resources: out.changes.removed,
            type_url: out.type_url,
            nonce: out.nonce.to_string(),
        }
    }

    /// An ACK accepts the response it answers by nonce.
    fn acked_version(_: &Incoming, state: &TypeState) -> String {
        state.sent_version().to_string()
    }

    /// A new client is answered even when it gets nothing, so it can finish starting.
    fn answers_first_request(state: &TypeState) -> bool {
        state.has.is_empty()
    }

    fn told_holdings(state: &TypeState) -> Option<&BTreeMap<String, String>> {
        Some(&state.has)
    }

    fn changes<'c>(
        state: &TypeState,
        transition: Option<&Transition>,
        rtype: ResourceType,
        chosen: &'c Resources,
        _: &str,
        force: &Force,
    ) -> Option<Changes<'c>> {
        let shared = transition
            .filter(|_| state.has_is_sent)
            .and_then(|t| t.diff(rtype, &state.sent, chosen));
        let changes = match shared {
            Some(diff) => from_diff(diff, chosen, force),
            None => by_comparing(chosen, &state.has, force),
        };
        let unchanged = changes.changed.is_empty()
            && changes.removed.is_empty()
            && !matches!(force, Force::Answer);
        (!unchanged).then_some(changes)
    }

    /// What the client holds becomes what was chosen: only the difference
    /// is applied.
    fn now_holds(state: &mut TypeState, changes: Option<&Changes<'_>>) {
        if let Some(changes) = changes {
            for entry in &changes.changed {
                state.has.insert(entry.name.clone(), entry.version.clone());
            }
            for name in &changes.removed {
                state.has.remove(name);
            }
        }
        state.has_is_sent = true;
    }
}

/// A response's content from a shared diff: new and changed resources (and
/// forced ones) from `chosen`, and the removed names.
fn from_diff<'c>(diff: &TypeDiff, chosen: &'c Resources, force: &Force) -> Changes<'c> {
    let mut names: BTreeSet<&String> = diff.added.iter().chain(&diff.changed).collect();
    if let Force::Names(forced) = force {
        names.extend(forced.iter().filter(|n| chosen.contains_key(*n)));
    }
    Changes {
        changed: names.into_iter().filter_map(|n| chosen.get(n)).collect(),
        removed: diff.removed.clone(),
    }
}

/// A response's content by comparing `chosen` with what the client has.
fn by_comparing<'c>(
    chosen: &'c Resources,
    has: &BTreeMap<String, String>,
    force: &Force,
) -> Changes<'c> {
    let mut changes = Changes::default();
    join(chosen.iter(), has.iter(), |name, c, h| {
        match (c, h) {
            (Some(e), h) if h != Some(&e.version) || force.includes(name) => {
                changes.changed.push(e)
            }
            (None, Some(_)) => changes.removed.push(name.clone()),
            _ => {}
        }
        true
    });
    changes
}
