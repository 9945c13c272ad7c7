//! CSDS (`envoy.service.status.v3.ClientStatusDiscoveryService`) on the xDS
//! port: per client, every resource it was sent, with its version and
//! whether the client ACKed or NACKed it, read from the [`Ledger`]. A node
//! with several streams (per-type services) is one client.
//!
//! With `--authorize-node`, a caller sees only the nodes its certificate
//! proves (or every node, with an `--admin-identity`), whatever its node
//! matchers say. Resource contents are shown with their secrets redacted.

use super::{ClientStatus, Ledger, Sync};
use crate::config::selector::NodeIdentity;
use crate::daemon::xds_tls::NodeAuthorization;
use envoy_types::pb::envoy::admin::v3::{ClientResourceStatus, UpdateFailureState};
use envoy_types::pb::envoy::service::status::v3::client_config::GenericXdsConfig;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_server::{
    ClientStatusDiscoveryService, ClientStatusDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::status::v3::{
    ClientConfig, ClientStatusRequest, ClientStatusResponse, ConfigStatus,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{NodeMatcher, StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::{Any, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// The CSDS service.
pub struct Csds {
    ledger: Arc<Ledger>,
    authorization: Option<Arc<NodeAuthorization>>,
}

impl Csds {
    /// The gRPC service reading `ledger`, showing each caller what
    /// `authorization` lets it see (everything without one).
    pub fn service(
        ledger: Arc<Ledger>,
        authorization: Option<Arc<NodeAuthorization>>,
    ) -> ClientStatusDiscoveryServiceServer<Csds> {
        ClientStatusDiscoveryServiceServer::new(Csds {
            ledger,
            authorization,
        })
    }

    /// Which nodes the caller of `request` may see.
    fn visibility<T>(&self, request: &Request<T>) -> Visibility {
        match &self.authorization {
            None => Visibility::All,
            Some(authorization) => Visibility::Proven {
                authorization: Arc::clone(authorization),
                identities: super::grpc::peer(request).identities,
            },
        }
    }
}

/// The nodes one caller may see.
enum Visibility {
    /// No `--authorize-node`: every node, as anyone on the port could connect as any.
    All,
    /// Those the identities prove, or all for an admin identity.
    Proven {
        authorization: Arc<NodeAuthorization>,
        identities: Vec<String>,
    },
}

impl Visibility {
    fn may_see(&self, node: &NodeIdentity) -> bool {
        match self {
            Visibility::All => true,
            Visibility::Proven {
                authorization,
                identities,
            } => authorization.may_see(identities, node),
        }
    }
}

#[tonic::async_trait]
impl ClientStatusDiscoveryService for Csds {
    type StreamClientStatusStream = ReceiverStream<Result<ClientStatusResponse, Status>>;

    async fn stream_client_status(
        &self,
        request: Request<Streaming<ClientStatusRequest>>,
    ) -> Result<Response<Self::StreamClientStatusStream>, Status> {
        let visibility = self.visibility(&request);
        let mut requests = request.into_inner();
        let ledger = Arc::clone(&self.ledger);
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok(Some(request)) = requests.message().await {
                if tx
                    .send(answer(&ledger, &request, &visibility))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn fetch_client_status(
        &self,
        request: Request<ClientStatusRequest>,
    ) -> Result<Response<ClientStatusResponse>, Status> {
        let visibility = self.visibility(&request);
        answer(&self.ledger, request.get_ref(), &visibility).map(Response::new)
    }
}

/// The status of every client the caller may see that some matcher selects
/// (all it may see without matchers).
fn answer(
    ledger: &Ledger,
    request: &ClientStatusRequest,
    visibility: &Visibility,
) -> Result<ClientStatusResponse, Status> {
    if request
        .node_matchers
        .iter()
        .any(|m| !m.node_metadatas.is_empty())
    {
        return Err(Status::unimplemented(
            "xdsd's CSDS matches node ids only, not node metadata",
        ));
    }
    let mut by_node: BTreeMap<String, Vec<ClientStatus>> = BTreeMap::new();
    for client in ledger.clients().into_values() {
        if !visibility.may_see(&client.node) {
            continue;
        }
        let selected = request.node_matchers.is_empty()
            || request
                .node_matchers
                .iter()
                .any(|m| node_matches(m, &client.node.id));
        if selected {
            by_node
                .entry(client.node.id.clone())
                .or_default()
                .push(client);
        }
    }
    let mut contents = (!request.exclude_resource_contents).then(Contents::new);
    let config = by_node
        .into_values()
        .map(|streams| client_config(&streams, contents.as_mut()))
        .collect();
    Ok(ClientStatusResponse { config })
}

/// Resource contents as CSDS shows them: secrets redacted. Each distinct
/// resource (by version, a content hash) is redacted once per answer.
struct Contents {
    _pool: crate::config::schema::PoolLease,
    redacted: HashMap<String, Option<Vec<u8>>>,
}

impl Contents {
    fn new() -> Contents {
        Contents {
            _pool: crate::config::schema::PoolLease::take(),
            redacted: HashMap::new(),
        }
    }

    fn any(&mut self, entry: &crate::xds::snapshot::Entry) -> Any {
        let redacted = self
            .redacted
            .entry(entry.version.clone())
            .or_insert_with(|| {
                crate::config::redact::encoded(&entry.any.type_url, &entry.any.value)
            });
        Any {
            type_url: entry.any.type_url.clone(),
            value: redacted.clone().unwrap_or_else(|| entry.any.value.to_vec()),
        }
    }
}

fn node_matches(matcher: &NodeMatcher, id: &str) -> bool {
    matcher
        .node_id
        .as_ref()
        .is_none_or(|m| string_matches(m, id))
}

fn string_matches(matcher: &StringMatcher, value: &str) -> bool {
    use string_matcher::MatchPattern;
    let fold = |s: &str| {
        if matcher.ignore_case {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let value = fold(value);
    match &matcher.match_pattern {
        Some(MatchPattern::Exact(s)) => value == fold(s),
        Some(MatchPattern::Prefix(s)) => value.starts_with(&fold(s)),
        Some(MatchPattern::Suffix(s)) => value.ends_with(&fold(s)),
        Some(MatchPattern::Contains(s)) => value.contains(&fold(s)),
        Some(MatchPattern::SafeRegex(r)) => {
            regex::Regex::new(&format!("^(?:{})$", r.regex)).is_ok_and(|re| re.is_match(&value))
        }
        Some(MatchPattern::Custom(_)) | None => false,
    }
}

/// One node's streams as one client: every resource of every type, with
/// its contents unless they are excluded (`contents` is `None`).
fn client_config(streams: &[ClientStatus], mut contents: Option<&mut Contents>) -> ClientConfig {
    let mut configs = Vec::new();
    for stream in streams {
        for (rtype, status) in &stream.types {
            let sync = status.sync();
            let (config_status, client_status) = match sync {
                Sync::Synced => (ConfigStatus::Synced, ClientResourceStatus::Acked),
                Sync::Stale => (ConfigStatus::Stale, ClientResourceStatus::Requested),
                Sync::Nacked => (ConfigStatus::Error, ClientResourceStatus::Nacked),
            };
            let error_state = status
                .last_nack
                .as_ref()
                .filter(|_| sync == Sync::Nacked)
                .map(|n| UpdateFailureState {
                    failed_configuration: None,
                    last_update_attempt: Some(timestamp(n.at)),
                    details: n.error.clone(),
                    version_info: n.version.clone(),
                });
            for entry in status.resources.values() {
                configs.push(GenericXdsConfig {
                    type_url: rtype.type_url(),
                    name: entry.name.clone(),
                    version_info: status.sent_version.clone(),
                    xds_config: contents.as_mut().map(|c| c.any(entry)),
                    last_updated: None,
                    config_status: config_status as i32,
                    client_status: client_status as i32,
                    error_state: error_state.clone(),
                    is_static_resource: false,
                });
            }
        }
    }
    ClientConfig {
        node: streams.first().map(|s| s.details.clone()),
        generic_xds_configs: configs,
        ..ClientConfig::default()
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(pattern: string_matcher::MatchPattern, ignore_case: bool) -> StringMatcher {
        StringMatcher {
            ignore_case,
            match_pattern: Some(pattern),
        }
    }

    #[test]
    fn node_ids_match_as_envoy_string_matchers_do() {
        use string_matcher::MatchPattern::*;
        assert!(string_matches(&matcher(Exact("a".into()), false), "a"));
        assert!(!string_matches(&matcher(Exact("A".into()), false), "a"));
        assert!(string_matches(&matcher(Exact("A".into()), true), "a"));
        assert!(string_matches(
            &matcher(Prefix("edge-".into()), false),
            "edge-1"
        ));
        assert!(string_matches(
            &matcher(Suffix("-1".into()), false),
            "edge-1"
        ));
        assert!(string_matches(
            &matcher(Contains("dg".into()), false),
            "edge-1"
        ));
        let regex = |r: &str| {
            SafeRegex(envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher {
                regex: r.into(),
                engine_type: None,
            })
        };
        assert!(string_matches(
            &matcher(regex("edge-[0-9]+"), false),
            "edge-12"
        ));
        assert!(!string_matches(&matcher(regex("edge"), false), "edge-12"));
        assert!(!string_matches(&matcher(regex("("), false), "("));
    }

    #[test]
    fn metadata_matchers_are_refused() {
        let request = ClientStatusRequest {
            node_matchers: vec![NodeMatcher {
                node_id: None,
                node_metadatas: vec![Default::default()],
            }],
            ..Default::default()
        };
        let error =
            answer(&Ledger::default(), &request, &Visibility::All).expect_err("unimplemented");
        assert_eq!(error.code(), tonic::Code::Unimplemented);
    }
}
