//! Clusters, load balancers, health checks and outlier detection: what
//! Envoy refuses when it adds a cluster.
//!
//! * [`kind`]: cluster types and their endpoints (DNS, ORIGINAL_DST, EDS,
//!   extension clusters), circuit breakers and outlier detection;
//! * [`lb`]: load-balancing policies, legacy and typed, and subsets;
//! * [`health`]: health checks;
//! * [`protocol`]: upstream protocol options (HTTP/1, 2, 3, ALPN, filters).

mod health;
mod kind;
mod lb;
mod protocol;

use super::{Finding, Place, Rule};
use crate::config::diag::Diagnostics;
use crate::config::reflect::{field, list, unpack_any};
use crate::config::resource::{PathStep, Resource};
use prost_reflect::{DynamicMessage, FieldDescriptor, ReflectMessage, Value};
use std::borrow::Cow;

/// The rules this module reports.
pub static RULES: &[&Rule] = &[
    &kind::DNS_RESOLVER_NAME,
    &kind::UNKNOWN_CLUSTER_TYPE,
    &kind::EDS_CONFIG_NON_EDS,
    &kind::LEDS_STATIC,
    &kind::DROP_OVERLOADS,
    &kind::PER_HOST_THRESHOLDS,
    &kind::ORIGINAL_DST_LB_POLICY,
    &kind::ORIGINAL_DST_LOAD_ASSIGNMENT,
    &kind::ORIGINAL_DST_HEADER_NAME,
    &kind::DFP_AUTO_SNI,
    &kind::OUTLIER_MAX_EJECTION,
    &lb::CLUSTER_PROVIDED_UNSUPPORTED,
    &lb::CLUSTER_PROVIDED_REQUIRED,
    &lb::RING_HASH_MIN_ABOVE_MAX,
    &lb::MAGLEV_NOT_PRIME,
    &lb::HOSTNAME_HASHING,
    &lb::WITH_SUBSET_CONFIG,
    &lb::WITH_COMMON_LB_PARTIAL,
    &lb::NONE_SUPPORTED,
    &lb::SUBSET_FALLBACK_KEYS,
    &lb::SUBSET_LOCALITY_WEIGHT_AWARE,
    &lb::SUBSET_CLUSTER_PROVIDED,
    &lb::WRR_LOCALITY_ENDPOINT_POLICY,
    &health::GRPC_NEEDS_HTTP2,
    &health::HTTP_STATUS_RANGE,
    &health::HTTP_PAYLOAD_METHOD,
    &health::INVALID_HEX_PAYLOAD,
    &health::RESPONSE_BUFFER_TOO_SMALL,
    &health::MULTIPLE_NAMES,
    &protocol::UNKNOWN_KEY,
    &protocol::TYPE_MISMATCH,
    &protocol::LEGACY_HTTP1_HTTP2_BOTH,
    &protocol::MAX_REQUESTS_BOTH,
    &protocol::ALPN_NEEDS_TLS,
    &protocol::HTTP3_AUTO_CONFIG_CACHE,
    &protocol::HTTP3_NEEDS_QUIC,
    &protocol::CODEC_LAST,
];

/// Checks one message at `place`.
pub fn message(m: &DynamicMessage, _place: &Place<'_>, out: &mut Vec<Finding>) {
    match m.descriptor().full_name() {
        "envoy.config.cluster.v3.Cluster" => {
            let cluster = Cluster::new(m);
            kind::check(&cluster, out);
            lb::check(&cluster, out);
            health::check_cluster(&cluster, out);
            protocol::check(&cluster, out);
        }
        "envoy.config.core.v3.HealthCheck" => health::check(m, out),
        "envoy.config.endpoint.v3.ClusterLoadAssignment.Policy" => kind::drop_overloads(m, out),
        _ => {}
    }
}

/// Checks across resources.
pub fn set(_resources: &[Resource], _diags: &mut Diagnostics) {}

/// The canonical typed_extension_protocol_options key of HTTP options:
/// the only one a cluster reads them from.
const HPO_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// One Cluster, with what several checks derive from it.
struct Cluster<'m> {
    m: &'m DynamicMessage,
    name: String,
    /// The `type` enum (STATIC when unset).
    discovery: i32,
    /// The cluster extension selected by `cluster_type`, by name or typed_config type.
    extension: Option<Extension>,
    /// The typed HTTP options under the canonical key, with the path to them.
    hpo: Option<(Vec<PathStep>, DynamicMessage)>,
}

/// A `cluster_type`: its name, and the type of its typed_config when it has one.
struct Extension {
    name: String,
    config_type: Option<String>,
}

impl<'m> Cluster<'m> {
    fn new(m: &'m DynamicMessage) -> Self {
        let extension = sub(m, "cluster_type").map(|(_, ct)| Extension {
            name: string(ct, "name").unwrap_or_default(),
            config_type: sub(ct, "typed_config").and_then(|(_, any)| any_type(any)),
        });
        Cluster {
            m,
            name: string(m, "name").unwrap_or_default(),
            discovery: enum_number(m, "type").unwrap_or(STATIC),
            extension,
            hpo: typed_http_options(m),
        }
    }

    /// The cluster factory Envoy uses: `envoy.cluster.static`, `envoy.clusters.aggregate`, ...
    /// None for a cluster_type looked up by a typed_config type this module does not name.
    fn factory(&self) -> Option<&str> {
        let Some(ext) = &self.extension else {
            return Some(match self.discovery {
                STRICT_DNS => "envoy.cluster.strict_dns",
                LOGICAL_DNS => "envoy.cluster.logical_dns",
                EDS => "envoy.cluster.eds",
                ORIGINAL_DST => "envoy.cluster.original_dst",
                _ => "envoy.cluster.static",
            });
        };
        match ext.config_type.as_deref() {
            None | Some("google.protobuf.Struct") => Some(ext.name.as_str()),
            Some(t) => CLUSTER_CONFIG_TYPES
                .iter()
                .find(|(ty, _)| *ty == t)
                .map(|(_, name)| *name),
        }
    }

    fn is_original_dst(&self) -> bool {
        self.factory() == Some("envoy.cluster.original_dst")
    }

    /// The cluster's typed config of the given cluster extension type, decoded.
    fn extension_config(&self, type_name: &str) -> Option<(Vec<PathStep>, DynamicMessage)> {
        let (cf, ct) = sub(self.m, "cluster_type")?;
        let (tf, any) = sub(ct, "typed_config")?;
        if any_type(any).as_deref() != Some(type_name) {
            return None;
        }
        let config = unpack_any(any)?.into_owned();
        Some((vec![PathStep::Field(cf), PathStep::Field(tf)], config))
    }
}

/// `type` enum values.
const STATIC: i32 = 0;
const STRICT_DNS: i32 = 1;
const LOGICAL_DNS: i32 = 2;
const EDS: i32 = 3;
const ORIGINAL_DST: i32 = 4;

/// Cluster extensions looked up by their typed_config type, and their names.
const CLUSTER_CONFIG_TYPES: [(&str, &str); 5] = [
    (
        "envoy.extensions.clusters.aggregate.v3.ClusterConfig",
        "envoy.clusters.aggregate",
    ),
    (
        "envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig",
        "envoy.clusters.dynamic_forward_proxy",
    ),
    (
        "envoy.extensions.clusters.redis.v3.RedisClusterConfig",
        "envoy.clusters.redis",
    ),
    (
        "envoy.extensions.clusters.dns.v3.DnsCluster",
        "envoy.cluster.dns",
    ),
    (
        "envoy.extensions.clusters.original_dst.v3.OriginalDstCluster",
        "envoy.cluster.original_dst",
    ),
];

/// The typed HttpProtocolOptions under the canonical key, decoded.
fn typed_http_options(m: &DynamicMessage) -> Option<(Vec<PathStep>, DynamicMessage)> {
    typed_options(m, HPO_KEY)
}

/// The HttpProtocolOptions under typed_extension_protocol_options key `key`, decoded.
fn typed_options(m: &DynamicMessage, key: &str) -> Option<(Vec<PathStep>, DynamicMessage)> {
    let (f, Value::Map(entries)) = field(m, "typed_extension_protocol_options")? else {
        return None;
    };
    let any = entries
        .get(&prost_reflect::MapKey::String(key.to_string()))?
        .as_message()?;
    if any_type(any).as_deref() != Some(HPO_KEY) {
        return None;
    }
    let options = unpack_any(any)?.into_owned();
    Some((
        vec![PathStep::Field(f), PathStep::Key(key.to_string())],
        options,
    ))
}

/// A set message field.
fn sub<'m>(m: &'m DynamicMessage, name: &str) -> Option<(FieldDescriptor, &'m DynamicMessage)> {
    match field(m, name)? {
        (f, Value::Message(inner)) => Some((f, inner)),
        _ => None,
    }
}

/// A set string field's value.
fn string(m: &DynamicMessage, name: &str) -> Option<String> {
    field(m, name).and_then(|(_, v)| v.as_str().map(str::to_string))
}

/// A set enum field's number.
fn enum_number(m: &DynamicMessage, name: &str) -> Option<i32> {
    field(m, name).and_then(|(_, v)| v.as_enum_number())
}

/// A set bool field's value (false when unset).
fn flag(m: &DynamicMessage, name: &str) -> bool {
    field(m, name).and_then(|(_, v)| v.as_bool()) == Some(true)
}

/// The value of a set wrapper (`google.protobuf.UInt64Value`, ...) field, as u64.
fn wrapped_u64(m: &DynamicMessage, name: &str) -> Option<(FieldDescriptor, u64)> {
    let (f, inner) = sub(m, name)?;
    let v = inner.get_field_by_name("value")?;
    let n = v
        .as_u64()
        .or_else(|| v.as_u32().map(u64::from))
        .or_else(|| v.as_i64().and_then(|n| u64::try_from(n).ok()))?;
    Some((f, n))
}

/// A list field's messages, with their indexes.
fn messages<'m>(
    m: &'m DynamicMessage,
    name: &str,
) -> Option<(FieldDescriptor, Vec<(usize, &'m DynamicMessage)>)> {
    let (f, items) = list(m, name)?;
    let items = items
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.as_message().map(|m| (i, m)))
        .collect();
    Some((f, items))
}

/// The message type an `Any` holds (the inner type of a TypedStruct).
fn any_type(any: &DynamicMessage) -> Option<String> {
    let url = any.get_field_by_name("type_url")?;
    let name = type_name(url.as_str()?).to_string();
    if name == "xds.type.v3.TypedStruct" || name == "udpa.type.v1.TypedStruct" {
        let inner = unpack_any(any)?;
        let inner_url = inner.get_field_by_name("type_url")?;
        return Some(type_name(inner_url.as_str()?).to_string());
    }
    Some(name)
}

/// The message name of a type URL.
fn type_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// Appends steps to a path.
fn with(path: &[PathStep], steps: impl IntoIterator<Item = PathStep>) -> Vec<PathStep> {
    let mut p = path.to_vec();
    p.extend(steps);
    p
}

/// The decoded message of an `Any` that holds exactly `type_name`.
fn unpacked(any: &DynamicMessage, type_name: &str) -> Option<DynamicMessage> {
    let url = any.get_field_by_name("type_url")?;
    if self::type_name(url.as_str()?) != type_name {
        return None;
    }
    unpack_any(any).map(Cow::into_owned)
}
