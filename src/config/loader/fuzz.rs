use super::*;
use crate::config::yaml::Node;
use proptest::prelude::*;

const KEYS: &[&str] = &[
    "\"@type\"",
    "kind",
    "spec",
    "nodes",
    "cluster",
    "id",
    "resources",
    "name",
    "connect_timeout",
    "type",
    "load_assignment",
    "cluster_name",
    "endpoints",
    "lb_endpoints",
    "endpoint",
    "address",
    "socket_address",
    "port_value",
    "eds_cluster_config",
    "eds_config",
    "ads",
    "filter_chains",
    "filters",
    "typed_config",
    "route_config",
    "virtual_hosts",
    "domains",
    "routes",
    "match",
    "prefix",
    "route",
    "stat_prefix",
    "http_filters",
    "value",
    "version_info",
];
const SCALARS: &[&str] = &[
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.listener.v3.Listener",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "Cluster",
    "Listener",
    "EDS",
    "STATIC",
    "1s",
    "-1s",
    "0.25s",
    "127.0.0.1",
    "::1",
    "80",
    "65536",
    "-3",
    "1e400",
    "yes",
    "~",
    "null",
    "\"\"",
    "'x'",
    "[]",
    "{}",
    "*a",
    "&a x",
    "!!binary aGk=",
    "|",
    ">-",
    "\"\\u0000\"",
    "9999999999999999999999",
];

fn line() -> impl Strategy<Value = String> {
    let indent = 0usize..8;
    let key = proptest::sample::select(KEYS);
    let scalar = proptest::option::of(proptest::sample::select(SCALARS));
    let shape = 0u8..8;
    (indent, key, scalar, shape).prop_map(|(indent, key, scalar, shape)| {
        let pad = " ".repeat(indent);
        let value = scalar.unwrap_or("");
        match shape {
            0 => "---".to_string(),
            1 => format!("{pad}- {key}: {value}"),
            2 => format!("{pad}{key}: [{value}, {value}]"),
            3 => format!("{pad}{key}: {{{key}: {value}}}"),
            4 => format!("{pad}- {value}"),
            _ => format!("{pad}{key}: {value}"),
        }
    })
}

fn yaml_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(line(), 0..40).prop_map(|lines| lines.join("\n"))
}

fn load_and_validate(text: &str) {
    let mut loaded = load_str("fuzz.yaml", text);
    crate::check::validate::validate(
        &loaded.resources,
        &Default::default(),
        &mut loaded.diagnostics,
    );
    let parts: Vec<Result<Vec<Node>, String>> = yaml::split_documents(text)
        .into_iter()
        .map(|(line, part)| {
            yaml::parse_documents_at(part, yaml::NestingLimits::default(), line)
                .map_err(|e| e.mark.to_string())
        })
        .collect();
    let whole = yaml::parse_documents(text, yaml::NestingLimits::default());
    if let Ok(whole) = whole {
        let split: Vec<Node> = parts
            .into_iter()
            .flat_map(|p| p.unwrap_or_default())
            .collect();
        assert!(
            yaml::same_documents(&whole, &split),
            "split parse differs from whole parse"
        );
    }
}

proptest! {
    #[test]
    fn any_text_loads_without_panic(text in ".{0,400}") {
        load_and_validate(&text);
    }

    #[test]
    fn envoy_shaped_yaml_loads_without_panic(text in yaml_like()) {
        load_and_validate(&text);
    }
}
