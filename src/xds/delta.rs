//! The incremental (delta) wire format.

use super::messages::{DeltaDiscoveryResponse, Resource};
use super::stream::{Incoming, Outgoing, Subscription, Wire};
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

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
                .changed
                .iter()
                .map(|e| Resource {
                    name: e.name.clone(),
                    version: e.version.clone(),
                    resource: Some(e.any.clone()),
                })
                .collect(),
            removed_resources: out.removed,
            type_url: out.type_url,
            nonce: out.nonce.to_string(),
        }
    }
}
