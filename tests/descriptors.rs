//! The checked-in descriptor set must be exactly the one shipped by the
//! locked `envoy-types` package, minus source info. Run with
//! `XDSD_UPDATE_DESCRIPTORS=1 cargo test --test descriptors` to regenerate.

use prost::Message;
use std::path::PathBuf;

/// The unpacked source of the locked `envoy-types` package (cargo unpacks it
/// under `$CARGO_HOME/registry/src/<index>/` to build it).
fn envoy_types_dir() -> PathBuf {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
        .expect("Cargo.lock exists");
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"envoy-types\""))
        .and_then(|p| p.lines().find(|l| l.starts_with("version = ")))
        .map(|l| {
            l.trim_start_matches("version = ")
                .trim_matches('"')
                .to_string()
        })
        .expect("envoy-types is locked");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let registries =
        std::fs::read_dir(cargo_home.join("registry/src")).expect("cargo registry sources");
    registries
        .flatten()
        .map(|index| index.path().join(format!("envoy-types-{version}")))
        .find(|dir| dir.join("src/generated/types.bin").exists())
        .expect("the envoy-types package is unpacked in the cargo registry")
}

/// Drops `source_code_info` from every file. Decoding dynamically keeps
/// the custom options (`validate.rules`, ...) that `prost_types` would lose.
fn strip_source_info(set_bytes: &[u8]) -> Vec<u8> {
    let global = prost_reflect::DescriptorPool::global();
    let set_desc = global
        .get_message_by_name("google.protobuf.FileDescriptorSet")
        .expect("descriptor.proto is in the global pool");
    let mut set = prost_reflect::DynamicMessage::decode(set_desc, set_bytes).expect("set decodes");
    let files = set.get_field_by_name_mut("file").expect("file field");
    if let prost_reflect::Value::List(files) = files {
        for file in files {
            if let prost_reflect::Value::Message(file) = file {
                file.clear_field_by_name("source_code_info");
            }
        }
    }
    set.encode_to_vec()
}

#[test]
fn checked_in_descriptors_match_envoy_types() {
    let shipped = std::fs::read(envoy_types_dir().join("src/generated/types.bin"))
        .expect("envoy-types ships src/generated/types.bin");
    let stripped = strip_source_info(&shipped);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/envoy.binpb");
    if std::env::var_os("XDSD_UPDATE_DESCRIPTORS").is_some() {
        std::fs::write(path, &stripped).expect("write descriptors");
    }
    let checked_in = std::fs::read(path).unwrap_or_default();
    assert!(
        checked_in == stripped,
        "proto/envoy.binpb is stale; regenerate with XDSD_UPDATE_DESCRIPTORS=1 cargo test --test descriptors"
    );
}
