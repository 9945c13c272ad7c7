//! What a resource makes a client ask for next, read with minimal message
//! types that hold only the fields needed (prost skips the rest unread):
//! EDS names of clusters, RDS names of listeners, clusters of routes. This
//! keeps the load generator cheap, so it is never the bottleneck.

use prost::Message;
use std::collections::BTreeSet;

const EDS: i32 = 3;
const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct Cluster {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, tag = "2")]
    discovery_type: i32,
    #[prost(message, optional, tag = "3")]
    eds_cluster_config: Option<EdsClusterConfig>,
}

#[derive(Clone, PartialEq, Message)]
struct EdsClusterConfig {
    #[prost(string, tag = "2")]
    service_name: String,
}

#[derive(Clone, PartialEq, Message)]
struct Listener {
    #[prost(message, repeated, tag = "3")]
    filter_chains: Vec<FilterChain>,
    #[prost(message, optional, tag = "19")]
    api_listener: Option<ApiListener>,
}

#[derive(Clone, PartialEq, Message)]
struct ApiListener {
    #[prost(message, optional, tag = "1")]
    api_listener: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
struct FilterChain {
    #[prost(message, repeated, tag = "3")]
    filters: Vec<Filter>,
}

#[derive(Clone, PartialEq, Message)]
struct Filter {
    #[prost(message, optional, tag = "4")]
    typed_config: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
struct HttpConnectionManager {
    #[prost(message, optional, tag = "3")]
    rds: Option<Rds>,
    #[prost(message, optional, tag = "4")]
    route_config: Option<RouteConfiguration>,
}

#[derive(Clone, PartialEq, Message)]
struct Rds {
    #[prost(string, tag = "2")]
    route_config_name: String,
}

#[derive(Clone, PartialEq, Message)]
struct RouteConfiguration {
    #[prost(message, repeated, tag = "2")]
    virtual_hosts: Vec<VirtualHost>,
}

#[derive(Clone, PartialEq, Message)]
struct VirtualHost {
    #[prost(message, repeated, tag = "3")]
    routes: Vec<Route>,
}

#[derive(Clone, PartialEq, Message)]
struct Route {
    #[prost(message, optional, tag = "2")]
    route: Option<RouteAction>,
}

#[derive(Clone, PartialEq, Message)]
struct RouteAction {
    #[prost(string, tag = "1")]
    cluster: String,
    #[prost(message, optional, tag = "3")]
    weighted_clusters: Option<WeightedCluster>,
}

#[derive(Clone, PartialEq, Message)]
struct WeightedCluster {
    #[prost(message, repeated, tag = "1")]
    clusters: Vec<ClusterWeight>,
}

#[derive(Clone, PartialEq, Message)]
struct ClusterWeight {
    #[prost(string, tag = "1")]
    name: String,
}

/// The resources one resource refers to, by type.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refs {
    /// ClusterLoadAssignment names (EDS clusters).
    pub endpoints: BTreeSet<String>,
    /// RouteConfiguration names (HCMs using RDS).
    pub routes: BTreeSet<String>,
    /// Cluster names (route actions).
    pub clusters: BTreeSet<String>,
}

impl Refs {
    /// Adds what `other` refers to.
    pub fn extend(&mut self, other: Refs) {
        self.endpoints.extend(other.endpoints);
        self.routes.extend(other.routes);
        self.clusters.extend(other.clusters);
    }
}

/// What a Cluster refers to: its EDS service name. `Err` when it does not decode.
pub fn of_cluster(bytes: &[u8]) -> Result<Refs, prost::DecodeError> {
    let cluster = Cluster::decode(bytes)?;
    let mut refs = Refs::default();
    if cluster.discovery_type == EDS {
        let service = cluster
            .eds_cluster_config
            .map(|c| c.service_name)
            .filter(|s| !s.is_empty());
        refs.endpoints.insert(service.unwrap_or(cluster.name));
    }
    Ok(refs)
}

/// What a Listener refers to: route configurations by RDS, clusters of
/// inline route configurations (HTTP connection managers only).
pub fn of_listener(bytes: &[u8]) -> Result<Refs, prost::DecodeError> {
    let listener = Listener::decode(bytes)?;
    let managers = listener
        .filter_chains
        .iter()
        .flat_map(|c| &c.filters)
        .filter_map(|f| f.typed_config.as_ref())
        .chain(
            listener
                .api_listener
                .as_ref()
                .and_then(|a| a.api_listener.as_ref()),
        )
        .filter(|any| any.type_url == HCM);
    let mut refs = Refs::default();
    for any in managers {
        let hcm = HttpConnectionManager::decode(any.value.as_slice())?;
        if let Some(rds) = hcm.rds {
            refs.routes.insert(rds.route_config_name);
        }
        if let Some(inline) = hcm.route_config {
            refs.clusters.extend(route_clusters(&inline));
        }
    }
    Ok(refs)
}

/// What a RouteConfiguration refers to: the clusters its routes send to.
pub fn of_route(bytes: &[u8]) -> Result<Refs, prost::DecodeError> {
    let config = RouteConfiguration::decode(bytes)?;
    Ok(Refs {
        clusters: route_clusters(&config),
        ..Refs::default()
    })
}

fn route_clusters(config: &RouteConfiguration) -> BTreeSet<String> {
    let actions = config
        .virtual_hosts
        .iter()
        .flat_map(|v| &v.routes)
        .filter_map(|r| r.route.as_ref());
    let mut clusters = BTreeSet::new();
    for action in actions {
        if !action.cluster.is_empty() {
            clusters.insert(action.cluster.clone());
        }
        if let Some(weighted) = &action.weighted_clusters {
            clusters.extend(weighted.clusters.iter().map(|c| c.name.clone()));
        }
    }
    clusters
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use xdsd::config::schema::ResourceType;

    /// The quickstart example, encoded as xdsd serves it.
    fn quickstart(rtype: ResourceType) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples/quickstart");
        let checked = xdsd::check::validate::check_dir(&dir).expect("loads");
        checked
            .resources
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.message.encode_to_vec())
            .collect()
    }

    #[test]
    fn references_are_read_from_real_resources() {
        let cluster = &quickstart(ResourceType::Cluster)[0];
        assert_eq!(
            of_cluster(cluster).expect("decodes").endpoints,
            BTreeSet::from(["backend".to_string()])
        );
        let listener = &quickstart(ResourceType::Listener)[0];
        assert_eq!(
            of_listener(listener).expect("decodes").routes,
            BTreeSet::from(["local_route".to_string()])
        );
        let route = &quickstart(ResourceType::RouteConfiguration)[0];
        assert_eq!(
            of_route(route).expect("decodes").clusters,
            BTreeSet::from(["backend".to_string()])
        );
        assert!(of_cluster(b"\xff\xff").is_err());
    }
}
