use super::well_known::parse_rfc3339;
use super::*;
use crate::config::schema;
use crate::config::yaml::{NestingLimits, parse_documents};

fn decode(type_name: &str, text: &str) -> (DynamicMessage, Vec<String>) {
    let node = parse_documents(text, NestingLimits::default())
        .expect("yaml")
        .remove(0);
    let mut diags = Diagnostics::default();
    let mut rules = Rules::default();
    let desc = schema::pool().get_message_by_name(type_name).expect("type");
    let msg =
        Decoder::new(Arc::from("t.yaml"), &mut diags, &mut rules).message(&desc, &node, &["@type"]);
    let errors = diags
        .sorted()
        .iter()
        .filter(|d| d.severity == crate::config::diag::Severity::Error)
        .map(|d| d.to_string())
        .collect();
    (msg, errors)
}

#[test]
fn a_message_never_quotes_a_secret() {
    // An all-digit token written unquoted: the message would quote it.
    let text = "name: api\ngeneric_secret: {secret: {inline_string: 31415926}}\n";
    let (_, errors) = decode("envoy.extensions.transport_sockets.tls.v3.Secret", text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("[redacted]"), "{errors:?}");
    assert!(!errors[0].contains("31415926"), "{errors:?}");
    // The same mistake outside a secret is quoted, to be found.
    let (_, errors) = decode(
        "envoy.config.core.v3.DataSource",
        "inline_string: 31415926\n",
    );
    assert!(errors[0].contains("31415926"), "{errors:?}");
}

const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";

#[test]
fn a_valid_cluster_decodes_without_errors() {
    let (msg, errors) = decode(
        CLUSTER,
        "name: backend\nconnectTimeout: 0.25s\ntype: STRICT_DNS\nlb_policy: ROUND_ROBIN\nmetadata:\n  filter_metadata:\n    x: {a: [1, null, 'b'], c: {d: true}}\nload_assignment:\n  cluster_name: backend\n  endpoints:\n  - lb_endpoints:\n    - endpoint:\n        address:\n          socket_address: {address: 127.0.0.1, port_value: 8080}\n",
    );
    assert!(errors.is_empty(), "{errors:?}");
    let timeout = msg.get_field_by_name("connect_timeout").expect("set");
    let nanos = timeout
        .as_message()
        .and_then(|m| m.get_field_by_name("nanos"))
        .and_then(|v| v.as_i32());
    assert_eq!(nanos, Some(250_000_000));
}

#[test]
fn errors_point_at_the_offending_node() {
    let (_, errors) = decode(
        CLUSTER,
        "name: b\nconnect_timeout: 5 seconds\nlb_policy: ROUND_ROBINN\nbogus: 1\n",
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("t.yaml:2:18: error: `5 seconds` is not a duration"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("t.yaml:3:12: error: `lb_policy`: unknown"),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("t.yaml:4:1: error: unknown field `bogus`"),
        "{errors:?}"
    );
}

#[test]
fn plain_numbers_and_bools_are_not_strings() {
    let (_, errors) = decode(CLUSTER, "name: 123\n");
    assert!(errors[0].contains("quote it"), "{errors:?}");
    let (_, errors) = decode(CLUSTER, "name: on\n");
    assert!(errors[0].contains("as a bool"), "{errors:?}");
    let (_, errors) = decode(CLUSTER, "name: '123'\n");
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn any_is_decoded_by_type_and_located_inside() {
    let text = "name: l\naddress: {socket_address: {address: 0.0.0.0, port_value: 80}}\nfilter_chains:\n- filters:\n  - name: hcm\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n      stat_prefix: x\n      nope: 1\n";
    let (_, errors) = decode("envoy.config.listener.v3.Listener", text);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("t.yaml:9:7: error: unknown field `nope`")),
        "{errors:?}"
    );
    let (_, errors) = decode(
        "envoy.config.listener.v3.Listener",
        &text
            .replace("HttpConnectionManager", "Nope")
            .replace("      nope: 1\n", ""),
    );
    assert!(
        errors.iter().any(|e| e.contains("unknown type URL")),
        "{errors:?}"
    );
}

#[test]
fn typed_lb_policy_configs_are_not_constraint_checked() {
    // Envoy accepts choice_count 1 in a typed LeastRequest policy (also
    // as a Subset child) but refuses it in the legacy cluster field.
    let least_request = "{\"@type\": type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest, choice_count: 1}";
    let typed = format!(
        "name: b\nload_balancing_policy:\n  policies:\n  - typed_extension_config:\n      name: lr\n      typed_config: {least_request}\n"
    );
    let (_, errors) = decode(CLUSTER, &typed);
    assert!(errors.is_empty(), "{errors:?}");
    let subset = format!(
        "name: b\nload_balancing_policy:\n  policies:\n  - typed_extension_config:\n      name: subset\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.load_balancing_policies.subset.v3.Subset\n        subset_lb_policy:\n          policies:\n          - typed_extension_config: {{name: lr, typed_config: {least_request}}}\n"
    );
    let (_, errors) = decode(CLUSTER, &subset);
    assert!(errors.is_empty(), "{errors:?}");
    let (_, errors) = decode(
        CLUSTER,
        "name: b\nlb_policy: LEAST_REQUEST\nleast_request_lb_config: {choice_count: 1}\n",
    );
    assert!(
        errors.iter().any(|e| e.contains("choice_count")),
        "{errors:?}"
    );
    // The policy list itself is still checked: a policy needs a config.
    let (_, errors) = decode(
        CLUSTER,
        "name: b\nload_balancing_policy:\n  policies:\n  - typed_extension_config: {name: lr}\n",
    );
    assert!(
        errors.iter().any(|e| e.contains("typed_config")),
        "{errors:?}"
    );
}

#[test]
fn oneof_members_exclude_each_other() {
    let (_, errors) = decode("envoy.config.route.v3.RouteMatch", "prefix: /\npath: /x\n");
    assert!(
        errors[0].starts_with("t.yaml:2:1: error: `path` and `prefix` are both set"),
        "{errors:?}"
    );
}

#[test]
fn durations_and_timestamps_parse() {
    assert_eq!(parse_duration("1.5s"), Some((1, 500_000_000)));
    assert_eq!(parse_duration("-0.001s"), Some((0, -1_000_000)));
    assert_eq!(parse_duration("1m"), None);
    assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some((1, 0)));
    assert_eq!(
        parse_rfc3339("2024-02-29T12:00:00.25+01:00"),
        Some((1_709_204_400, 250_000_000))
    );
}
