//! The gRPC services, written against tonic's server API directly rather
//! than the generated traits, so that responses are xdsd's own messages
//! (shared resource bytes, see [`super::messages`]). One engine serves ADS and
//! the per-type services (CDS, EDS, LDS, RDS, SDS); a per-type stream is an
//! ADS stream limited to one type.

use super::messages;
use super::stream::Wire;
use super::{Ads, delta::Delta, sotw::Sotw};
use crate::config::schema::ResourceType;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::task::{Context, Poll};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{BoxFuture, http};
use tonic::server::{Grpc, NamedService, StreamingService, UnaryService};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// What a gRPC method does.
#[derive(Clone, Copy, Debug)]
pub enum Method {
    /// A state-of-the-world stream (all types, or one).
    Sotw(Option<ResourceType>),
    /// An incremental stream (all types, or one).
    Delta(Option<ResourceType>),
    /// A one-shot fetch of one type.
    Fetch(ResourceType),
}

/// A gRPC service name and its methods.
pub trait Named: Send + Sync + 'static {
    /// The full service name.
    const NAME: &'static str;
    /// The method called `name`, if the service has it.
    fn method(name: &str) -> Option<Method>;
}

/// `envoy.service.discovery.v3.AggregatedDiscoveryService`.
pub struct Aggregated;

impl Named for Aggregated {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
    fn method(name: &str) -> Option<Method> {
        match name {
            "StreamAggregatedResources" => Some(Method::Sotw(None)),
            "DeltaAggregatedResources" => Some(Method::Delta(None)),
            _ => None,
        }
    }
}

/// Declares a per-type service: `Stream<Plural>`, `Delta<Plural>`, `Fetch<Plural>`.
macro_rules! per_type {
    ($name:ident, $service:literal, $plural:literal, $rtype:expr) => {
        #[doc = concat!("`", $service, "`.")]
        pub struct $name;

        impl Named for $name {
            const NAME: &'static str = $service;
            fn method(name: &str) -> Option<Method> {
                match name.strip_suffix($plural)? {
                    "Stream" => Some(Method::Sotw(Some($rtype))),
                    "Delta" => Some(Method::Delta(Some($rtype))),
                    "Fetch" => Some(Method::Fetch($rtype)),
                    _ => None,
                }
            }
        }
    };
}

per_type!(
    Clusters,
    "envoy.service.cluster.v3.ClusterDiscoveryService",
    "Clusters",
    ResourceType::Cluster
);
per_type!(
    Endpoints,
    "envoy.service.endpoint.v3.EndpointDiscoveryService",
    "Endpoints",
    ResourceType::ClusterLoadAssignment
);
per_type!(
    Listeners,
    "envoy.service.listener.v3.ListenerDiscoveryService",
    "Listeners",
    ResourceType::Listener
);
per_type!(
    Routes,
    "envoy.service.route.v3.RouteDiscoveryService",
    "Routes",
    ResourceType::RouteConfiguration
);
per_type!(
    Secrets,
    "envoy.service.secret.v3.SecretDiscoveryService",
    "Secrets",
    ResourceType::Secret
);

/// One gRPC service (by name) backed by the shared engine.
pub struct Service<N> {
    ads: Ads,
    name: PhantomData<fn() -> N>,
}

impl<N> Clone for Service<N> {
    fn clone(&self) -> Self {
        Service {
            ads: self.ads.clone(),
            name: PhantomData,
        }
    }
}

impl<N: Named> Service<N> {
    /// The service `N`, served by `ads`.
    pub fn new(ads: Ads) -> Self {
        Service {
            ads,
            name: PhantomData,
        }
    }
}

impl<N: Named> NamedService for Service<N> {
    const NAME: &'static str = N::NAME;
}

/// A streaming method of wire format `W`.
struct StreamMethod<W> {
    ads: Ads,
    only: Option<ResourceType>,
    wire: PhantomData<fn() -> W>,
}

impl<W: Wire> StreamingService<W::Request> for StreamMethod<W>
where
    W::Request: prost::Message + Default,
{
    type Response = W::Response;
    type ResponseStream = ReceiverStream<Result<W::Response, Status>>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<W::Request>>) -> Self::Future {
        let peer = peer(&request);
        let stream = self.ads.start::<W>(self.only, peer, request.into_inner());
        Box::pin(async move { stream.map(Response::new) })
    }
}

/// The unary `Fetch*` method of one type.
struct FetchMethod {
    ads: Ads,
    rtype: ResourceType,
}

impl UnaryService<DiscoveryRequest> for FetchMethod {
    type Response = messages::DiscoveryResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<DiscoveryRequest>) -> Self::Future {
        let peer = peer(&request);
        let response = self.ads.fetch(peer, request.into_inner(), self.rtype);
        Box::pin(async move { response.map(Response::new) })
    }
}

/// The client's address and the identities in its TLS certificate, if any.
pub(super) fn peer<T>(request: &Request<T>) -> super::Peer {
    let identities = request
        .peer_certs()
        .and_then(|chain| {
            chain
                .first()
                .map(|leaf| crate::daemon::xds_tls::certificate_identities(leaf))
        })
        .unwrap_or_default();
    super::Peer {
        addr: request.remote_addr(),
        identities,
    }
}

async fn stream<W: Wire>(
    ads: Ads,
    only: Option<ResourceType>,
    request: http::Request<tonic::body::Body>,
) -> http::Response<tonic::body::Body>
where
    W::Request: prost::Message + Default,
    W::Response: prost::Message,
{
    let method = StreamMethod::<W> {
        ads,
        only,
        wire: PhantomData,
    };
    let max_request = method.ads.limits().max_request_bytes;
    Grpc::new(SmallBuffers::<W::Response, W::Request>(PhantomData))
        .max_decoding_message_size(max_request)
        .streaming(method, request)
        .await
}

/// Protobuf over gRPC, like `ProstCodec`, but starting each stream's encode
/// and decode buffers at 1 KiB instead of 8 KiB: a fleet holds one stream per
/// client, most xDS requests are far smaller than 8 KiB, and a buffer grows
/// when a message needs it.
struct SmallBuffers<T, U>(PhantomData<(T, U)>);

fn stream_buffers() -> tonic::codec::BufferSettings {
    tonic::codec::BufferSettings::new(1024, 32 * 1024)
}

impl<T, U> tonic::codec::Codec for SmallBuffers<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(stream_buffers())
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(stream_buffers())
    }
}

impl<N: Named> tonic::codegen::Service<http::Request<tonic::body::Body>> for Service<N> {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let method = request.uri().path().rsplit('/').next().and_then(N::method);
        let ads = self.ads.clone();
        Box::pin(async move {
            Ok(match method {
                Some(Method::Sotw(only)) => stream::<Sotw>(ads, only, request).await,
                Some(Method::Delta(only)) => stream::<Delta>(ads, only, request).await,
                Some(Method::Fetch(rtype)) => {
                    let codec =
                        ProstCodec::<messages::DiscoveryResponse, DiscoveryRequest>::default();
                    let max_request = ads.limits().max_request_bytes;
                    Grpc::new(codec)
                        .max_decoding_message_size(max_request)
                        .unary(FetchMethod { ads, rtype }, request)
                        .await
                }
                None => {
                    Status::unimplemented(format!("{} has no such method", N::NAME)).into_http()
                }
            })
        })
    }
}
