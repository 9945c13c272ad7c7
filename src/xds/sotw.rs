//! The state-of-the-world wire format: every response carries all the
//! client should have, so the client holds exactly what it was last sent.

use super::Resources;
use super::messages::DiscoveryResponse;
use super::stream::{Changes, Force, Incoming, Outgoing, Subscription, TypeState, Wire};
use crate::config::schema::ResourceType;
use crate::xds::snapshot::Transition;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use std::collections::BTreeMap;

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

    fn acked_version(request: &Incoming, _: &TypeState) -> String {
        request.version.clone()
    }

    fn answers_first_request(_: &TypeState) -> bool {
        false
    }

    fn told_holdings(_: &TypeState) -> Option<&BTreeMap<String, String>> {
        None
    }

    /// A response whenever the version differs or a forced resource is chosen.
    fn changes<'c>(
        state: &TypeState,
        _: Option<&Transition>,
        _: ResourceType,
        chosen: &'c Resources,
        version: &str,
        force: &Force,
    ) -> Option<Changes<'c>> {
        (version != state.sent_version() || force.any_of(chosen)).then(Changes::default)
    }

    fn now_holds(_: &mut TypeState, _: Option<&Changes<'_>>) {}
}
