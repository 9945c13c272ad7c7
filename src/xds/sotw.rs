//! The state-of-the-world wire format.

use super::messages::DiscoveryResponse;
use super::stream::{Incoming, Outgoing, Subscription, Wire};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;

/// `StreamAggregatedResources` and the per-type `Stream*` methods.
pub struct Sotw;

impl Wire for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const INCREMENTAL: bool = false;

    fn incoming(r: DiscoveryRequest) -> Incoming {
        Incoming {
            node: r.node,
            nonce: r.response_nonce,
            error: r.error_detail.map(|e| e.message),
            version: r.version_info,
            subscription: Subscription::Replace(r.resource_names.into_iter().collect()),
            type_url: r.type_url,
        }
    }

    fn outgoing(out: Outgoing<'_>) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: out.version.to_string(),
            resources: out.all.values().map(|e| e.any.clone()).collect(),
            type_url: out.type_url,
            nonce: out.nonce.to_string(),
        }
    }
}
