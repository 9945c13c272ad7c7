//! The per-type discovery services (CDS, EDS, LDS, RDS, SDS), for Envoys not
//! configured for ADS. Each is the same engine as ADS, limited to one type.

use super::{Ads, ResponseStream, delta::Delta, sotw::Sotw};
use crate::schema::ResourceType;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tonic::{Request, Response, Status, Streaming};

/// Implements one per-type service trait by delegating to [`Ads`].
macro_rules! per_type_service {
    ($module:ident, $server:ident, $service:ident, $rtype:expr,
     $stream:ident / $stream_ty:ident, $delta:ident / $delta_ty:ident, $fetch:ident) => {
        #[tonic::async_trait]
        impl envoy_types::pb::envoy::service::$module::v3::$server::$service for Ads {
            type $stream_ty = ResponseStream<DiscoveryResponse>;
            type $delta_ty = ResponseStream<DeltaDiscoveryResponse>;

            async fn $stream(
                &self,
                request: Request<Streaming<DiscoveryRequest>>,
            ) -> Result<Response<Self::$stream_ty>, Status> {
                Ok(Response::new(
                    self.start::<Sotw>(Some($rtype), request.into_inner()),
                ))
            }

            async fn $delta(
                &self,
                request: Request<Streaming<DeltaDiscoveryRequest>>,
            ) -> Result<Response<Self::$delta_ty>, Status> {
                Ok(Response::new(
                    self.start::<Delta>(Some($rtype), request.into_inner()),
                ))
            }

            async fn $fetch(
                &self,
                request: Request<DiscoveryRequest>,
            ) -> Result<Response<DiscoveryResponse>, Status> {
                Ok(Response::new(self.fetch(request.into_inner(), $rtype)))
            }
        }
    };
}

per_type_service!(
    cluster,
    cluster_discovery_service_server,
    ClusterDiscoveryService,
    ResourceType::Cluster,
    stream_clusters / StreamClustersStream,
    delta_clusters / DeltaClustersStream,
    fetch_clusters
);
per_type_service!(
    endpoint,
    endpoint_discovery_service_server,
    EndpointDiscoveryService,
    ResourceType::ClusterLoadAssignment,
    stream_endpoints / StreamEndpointsStream,
    delta_endpoints / DeltaEndpointsStream,
    fetch_endpoints
);
per_type_service!(
    listener,
    listener_discovery_service_server,
    ListenerDiscoveryService,
    ResourceType::Listener,
    stream_listeners / StreamListenersStream,
    delta_listeners / DeltaListenersStream,
    fetch_listeners
);
per_type_service!(
    route,
    route_discovery_service_server,
    RouteDiscoveryService,
    ResourceType::RouteConfiguration,
    stream_routes / StreamRoutesStream,
    delta_routes / DeltaRoutesStream,
    fetch_routes
);
per_type_service!(
    secret,
    secret_discovery_service_server,
    SecretDiscoveryService,
    ResourceType::Secret,
    stream_secrets / StreamSecretsStream,
    delta_secrets / DeltaSecretsStream,
    fetch_secrets
);

/// Adds the five per-type services to a router.
pub fn add_services(builder: &mut tonic::service::RoutesBuilder, ads: &Ads) {
    use envoy_types::pb::envoy::service as svc;
    builder
        .add_service(svc::cluster::v3::cluster_discovery_service_server::ClusterDiscoveryServiceServer::new(ads.clone()))
        .add_service(svc::endpoint::v3::endpoint_discovery_service_server::EndpointDiscoveryServiceServer::new(ads.clone()))
        .add_service(svc::listener::v3::listener_discovery_service_server::ListenerDiscoveryServiceServer::new(ads.clone()))
        .add_service(svc::route::v3::route_discovery_service_server::RouteDiscoveryServiceServer::new(ads.clone()))
        .add_service(svc::secret::v3::secret_discovery_service_server::SecretDiscoveryServiceServer::new(ads.clone()));
}
