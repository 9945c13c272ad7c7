//! The Envoy v3 schema: the descriptor pool every YAML document is typed
//! against, and the resource types xdsd serves.

use prost_reflect::{DescriptorPool, MessageDescriptor};
use std::sync::Mutex;

/// Descriptors of every message Envoy 1.40 links (its API, the cncf/xds
/// and udpa types, `validate.rules`, TypedStruct), read out of the Envoy
/// 1.40 executable itself, plus the CSDS messages `status --xds` decodes
/// (see `proto/README.md`; `tests/it/descriptors.rs` keeps it in sync with the
/// Envoy the tests run).
static DESCRIPTORS: &[u8] = include_bytes!("../../proto/envoy.binpb");

/// The descriptor pool, decoded on first use.
///
/// The decoded pool is most of an idle daemon's memory (~17 MB) while a
/// served snapshot holds only wire bytes, so a long-running process takes a
/// [`PoolLease`] around each use and the pool is dropped when the last lease
/// ends. Without leases (the one-shot commands) it stays for the process.
pub fn pool() -> DescriptorPool {
    lock_cache().pool.get_or_insert_with(decode_pool).clone()
}

/// Keeps the cached pool alive while it exists; the last lease to end drops
/// the cache (every message decoded meanwhile keeps its own reference).
///
/// Leases rather than an explicit "release" so that a load and an admin view
/// running at the same time never see two different pools: descriptors from
/// different pools do not compare equal.
#[must_use = "the pool is released when the lease is dropped"]
pub struct PoolLease(());

impl PoolLease {
    /// Takes a lease; the pool itself is decoded lazily by [`pool`].
    pub fn take() -> PoolLease {
        lock_cache().leases += 1;
        PoolLease(())
    }
}

impl Drop for PoolLease {
    fn drop(&mut self) {
        let mut cache = lock_cache();
        cache.leases -= 1;
        if cache.leases == 0 {
            cache.pool = None;
        }
    }
}

struct PoolCache {
    pool: Option<DescriptorPool>,
    leases: usize,
}

static CACHE: Mutex<PoolCache> = Mutex::new(PoolCache {
    pool: None,
    leases: 0,
});

fn lock_cache() -> std::sync::MutexGuard<'static, PoolCache> {
    crate::sync::lock(&CACHE)
}

fn decode_pool() -> DescriptorPool {
    match DescriptorPool::decode(DESCRIPTORS) {
        Ok(pool) => pool,
        // The bytes are compiled in and checked by tests; failing here is a build defect.
        Err(e) => panic!("embedded Envoy descriptors are corrupt: {e}"),
    }
}

/// The TypedStruct message xdsd uses to carry extensions its schema lacks.
pub const TYPED_STRUCT: &str = "xds.type.v3.TypedStruct";

/// True when the message's file is marked work-in-progress (its API may
/// change between Envoy releases).
pub fn is_work_in_progress(desc: &MessageDescriptor) -> bool {
    let options = desc.parent_file().options();
    [
        "xds.annotations.v3.file_status",
        "udpa.annotations.file_status",
    ]
    .iter()
    .any(|name| {
        desc.parent_pool()
            .get_extension_by_name(name)
            .is_some_and(|ext| {
                options.has_extension(&ext)
                    && options
                        .get_extension(&ext)
                        .as_message()
                        .and_then(|status| status.get_field_by_name("work_in_progress"))
                        .and_then(|v| v.as_bool())
                        == Some(true)
            })
    })
}

/// The prefix of every type URL xdsd writes.
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// Looks up a message by type URL (anything up to the last `/` is the host part).
pub fn message_by_type_url(url: &str) -> Option<MessageDescriptor> {
    let name = url.rsplit_once('/').map_or(url, |(_, n)| n);
    pool().get_message_by_name(name)
}

/// The xDS resource types xdsd serves, in make-before-break order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    /// CDS.
    Cluster,
    /// EDS.
    ClusterLoadAssignment,
    /// LDS.
    Listener,
    /// RDS.
    RouteConfiguration,
    /// SRDS.
    ScopedRouteConfiguration,
    /// VHDS.
    VirtualHost,
    /// SDS.
    Secret,
    /// RTDS.
    Runtime,
}

impl ResourceType {
    /// Every type, in make-before-break order.
    pub const ALL: [ResourceType; 8] = [
        ResourceType::Cluster,
        ResourceType::ClusterLoadAssignment,
        ResourceType::Listener,
        ResourceType::RouteConfiguration,
        ResourceType::ScopedRouteConfiguration,
        ResourceType::VirtualHost,
        ResourceType::Secret,
        ResourceType::Runtime,
    ];

    /// The full protobuf message name.
    pub fn message_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "envoy.config.cluster.v3.Cluster",
            ResourceType::ClusterLoadAssignment => "envoy.config.endpoint.v3.ClusterLoadAssignment",
            ResourceType::Listener => "envoy.config.listener.v3.Listener",
            ResourceType::RouteConfiguration => "envoy.config.route.v3.RouteConfiguration",
            ResourceType::ScopedRouteConfiguration => {
                "envoy.config.route.v3.ScopedRouteConfiguration"
            }
            ResourceType::VirtualHost => "envoy.config.route.v3.VirtualHost",
            ResourceType::Secret => "envoy.extensions.transport_sockets.tls.v3.Secret",
            ResourceType::Runtime => "envoy.service.runtime.v3.Runtime",
        }
    }

    /// The type URL used on the wire.
    pub fn type_url(self) -> String {
        format!("{TYPE_URL_PREFIX}{}", self.message_name())
    }

    /// The discovery service's abbreviation: CDS, EDS, LDS, ...
    pub fn service_abbreviation(self) -> &'static str {
        match self {
            ResourceType::Cluster => "CDS",
            ResourceType::ClusterLoadAssignment => "EDS",
            ResourceType::Listener => "LDS",
            ResourceType::RouteConfiguration => "RDS",
            ResourceType::ScopedRouteConfiguration => "SRDS",
            ResourceType::VirtualHost => "VHDS",
            ResourceType::Secret => "SDS",
            ResourceType::Runtime => "RTDS",
        }
    }

    /// The short message name, as used in envelopes' `kind`.
    pub fn kind_name(self) -> &'static str {
        let full = self.message_name();
        full.rsplit('.').next().unwrap_or(full)
    }

    /// The field that holds the resource's name.
    pub fn name_field(self) -> &'static str {
        match self {
            ResourceType::ClusterLoadAssignment => "cluster_name",
            _ => "name",
        }
    }

    /// Parses an envelope `kind` (message name or alias).
    pub fn from_kind(kind: &str) -> Option<ResourceType> {
        match kind {
            "Endpoints" => Some(ResourceType::ClusterLoadAssignment),
            "Route" => Some(ResourceType::RouteConfiguration),
            _ => ResourceType::ALL
                .into_iter()
                .find(|t| t.kind_name() == kind),
        }
    }

    /// Matches a full message name.
    pub fn from_message_name(name: &str) -> Option<ResourceType> {
        ResourceType::ALL
            .into_iter()
            .find(|t| t.message_name() == name)
    }

    /// Parses a `--type` argument: kind name or alias in any case, full name, or type URL.
    pub fn parse_loose(s: &str) -> Option<ResourceType> {
        let name = s.rsplit_once('/').map_or(s, |(_, n)| n);
        ResourceType::from_message_name(name).or_else(|| {
            let kind = ResourceType::KIND_NAMES
                .iter()
                .find(|k| k.eq_ignore_ascii_case(name))?;
            ResourceType::from_kind(kind)
        })
    }

    /// Every name `kind:` and `--type` accept: the message names and the aliases.
    pub const KIND_NAMES: [&'static str; 10] = [
        "Cluster",
        "ClusterLoadAssignment",
        "Endpoints",
        "Listener",
        "RouteConfiguration",
        "Route",
        "ScopedRouteConfiguration",
        "VirtualHost",
        "Secret",
        "Runtime",
    ];

    /// The descriptor of the resource message.
    pub fn descriptor(self) -> MessageDescriptor {
        match pool().get_message_by_name(self.message_name()) {
            Some(d) => d,
            None => panic!("descriptor pool lacks {}", self.message_name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_type_is_in_the_pool() {
        for t in ResourceType::ALL {
            assert_eq!(t.descriptor().full_name(), t.message_name());
        }
    }

    #[test]
    fn common_extensions_are_in_the_pool() {
        for name in [
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "envoy.extensions.filters.http.router.v3.Router",
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "envoy.extensions.filters.http.cors.v3.Cors",
            "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "xds.type.v3.TypedStruct",
            "udpa.type.v1.TypedStruct",
        ] {
            assert!(pool().get_message_by_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn kinds_and_aliases_parse() {
        assert_eq!(
            ResourceType::from_kind("Endpoints"),
            Some(ResourceType::ClusterLoadAssignment)
        );
        assert_eq!(
            ResourceType::from_kind("Route"),
            Some(ResourceType::RouteConfiguration)
        );
        assert_eq!(
            ResourceType::from_kind("Secret"),
            Some(ResourceType::Secret)
        );
        assert_eq!(
            ResourceType::parse_loose("cluster"),
            Some(ResourceType::Cluster)
        );
        assert_eq!(
            ResourceType::parse_loose("type.googleapis.com/envoy.config.listener.v3.Listener"),
            Some(ResourceType::Listener)
        );
    }
}
