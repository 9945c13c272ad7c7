//! The response messages as xdsd sends them: the wire format of
//! `DiscoveryResponse` and `DeltaDiscoveryResponse`, but holding each
//! resource's encoded bytes as shared `Bytes`, so a response to any number
//! of clients references the bytes encoded once per snapshot instead of
//! copying them. Field tags are those of `envoy.service.discovery.v3`.

use bytes::Bytes;

/// `google.protobuf.Any` with shared bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SharedAny {
    /// The type URL.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The encoded resource, shared.
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// `envoy.service.discovery.v3.DiscoveryResponse` (the fields xdsd sets).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DiscoveryResponse {
    /// Version of the set.
    #[prost(string, tag = "1")]
    pub version_info: String,
    /// The resources.
    #[prost(message, repeated, tag = "2")]
    pub resources: Vec<SharedAny>,
    /// The type.
    #[prost(string, tag = "4")]
    pub type_url: String,
    /// The nonce.
    #[prost(string, tag = "5")]
    pub nonce: String,
}

/// `envoy.service.discovery.v3.Resource` (the fields xdsd sets).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// The resource's version.
    #[prost(string, tag = "1")]
    pub version: String,
    /// The resource.
    #[prost(message, optional, tag = "2")]
    pub resource: Option<SharedAny>,
    /// Its name.
    #[prost(string, tag = "3")]
    pub name: String,
}

/// `envoy.service.discovery.v3.DeltaDiscoveryResponse` (the fields xdsd sets).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeltaDiscoveryResponse {
    /// Version of the whole set, for debugging.
    #[prost(string, tag = "1")]
    pub system_version_info: String,
    /// Resources added or changed.
    #[prost(message, repeated, tag = "2")]
    pub resources: Vec<Resource>,
    /// The type.
    #[prost(string, tag = "4")]
    pub type_url: String,
    /// The nonce.
    #[prost(string, tag = "5")]
    pub nonce: String,
    /// Names removed.
    #[prost(string, repeated, tag = "6")]
    pub removed_resources: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn decodes_as_the_envoy_messages() {
        let shared = DiscoveryResponse {
            version_info: "v".into(),
            resources: vec![SharedAny {
                type_url: "t".into(),
                value: Bytes::from_static(b"\x0a\x01a"),
            }],
            type_url: "t".into(),
            nonce: "1".into(),
        };
        let envoy = envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse::decode(
            shared.encode_to_vec().as_slice(),
        )
        .expect("decodes");
        assert_eq!(
            (envoy.version_info.as_str(), envoy.nonce.as_str()),
            ("v", "1")
        );
        assert_eq!(envoy.resources[0].value, b"\x0a\x01a");
        let delta = DeltaDiscoveryResponse {
            resources: vec![Resource {
                name: "a".into(),
                version: "1".into(),
                resource: None,
            }],
            removed_resources: vec!["b".into()],
            ..Default::default()
        };
        let envoy = envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse::decode(
            delta.encode_to_vec().as_slice(),
        )
        .expect("decodes");
        assert_eq!(envoy.resources[0].name, "a");
        assert_eq!(envoy.removed_resources, ["b"]);
    }
}
