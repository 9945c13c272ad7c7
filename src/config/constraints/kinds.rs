use crate::config::diag::Diagnostics;
use std::collections::BTreeSet;

/// `kind`, message type, YAML of one message, and whether it must fail
/// (naming `field`) or pass.
const EXAMPLES: &[(&str, &str, &str, &str, bool)] = &[
    (
        "any.required",
        "envoy.config.core.v3.ExtensionConfigSource",
        "{type_urls: [a]}",
        "config_source",
        true,
    ),
    (
        "bool.const",
        "envoy.config.bootstrap.v3.Bootstrap",
        "{stats_flush_on_admin: false}",
        "stats_flush_on_admin",
        true,
    ),
    (
        "bytes.max_len",
        "envoy.config.core.v3.HeaderValue",
        "BIG_BYTES",
        "raw_value",
        true,
    ),
    (
        "bytes.min_len",
        "envoy.config.common.matcher.v3.HttpGenericBodyMatch.GenericTextMatch",
        "{binary_match: \"\"}",
        "binary_match",
        true,
    ),
    (
        "double.gt",
        "envoy.config.core.v3.RateLimitSettings",
        "{fill_rate: 0}",
        "fill_rate",
        true,
    ),
    (
        "double.gte",
        "envoy.config.cluster.v3.Cluster.PreconnectPolicy",
        "{per_upstream_preconnect_ratio: 0.5}",
        "per_upstream_preconnect_ratio",
        true,
    ),
    (
        "double.lt",
        "envoy.extensions.load_balancing_policies.load_aware_locality.v3.LoadAwareLocality",
        "{remote_probe_fraction: 1}",
        "remote_probe_fraction",
        true,
    ),
    (
        "double.lte",
        "envoy.config.cluster.v3.Cluster.PreconnectPolicy",
        "{per_upstream_preconnect_ratio: 4}",
        "per_upstream_preconnect_ratio",
        true,
    ),
    (
        "duration.gt",
        "envoy.config.cluster.v3.Cluster",
        "{name: a, connect_timeout: 0s}",
        "connect_timeout",
        true,
    ),
    (
        "duration.gte",
        "envoy.config.bootstrap.v3.Bootstrap",
        "{stats_flush_interval: 0.0001s}",
        "stats_flush_interval",
        true,
    ),
    (
        "duration.lt",
        "envoy.config.bootstrap.v3.Bootstrap",
        "{stats_flush_interval: 400s}",
        "stats_flush_interval",
        true,
    ),
    // 0s, or at least 1ms: an exclusive range.
    (
        "duration.lte",
        "envoy.config.core.v3.QuicKeepAliveSettings",
        "{initial_interval: 0.0005s}",
        "initial_interval",
        true,
    ),
    (
        "duration.required",
        "envoy.config.cluster.v3.Cluster.RefreshRate",
        "{}",
        "base_interval",
        true,
    ),
    (
        "enum.defined_only",
        "envoy.config.accesslog.v3.ComparisonFilter",
        "{op: 99, value: {default_value: 1, runtime_key: k}}",
        "op",
        true,
    ),
    (
        "enum.not_in",
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck",
        "{path: /, method: CONNECT}",
        "method",
        true,
    ),
    (
        "float.gte",
        "envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin",
        "{error_utilization_penalty: -1}",
        "error_utilization_penalty",
        true,
    ),
    (
        "int32.gt",
        "envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
        "{update_frequency: 0}",
        "update_frequency",
        true,
    ),
    (
        "int32.gte",
        "envoy.extensions.filters.http.thrift_to_metadata.v3.FieldSelector",
        "{name: a, id: -40000}",
        "id",
        true,
    ),
    (
        "int32.lte",
        "envoy.extensions.filters.http.thrift_to_metadata.v3.FieldSelector",
        "{name: a, id: 40000}",
        "id",
        true,
    ),
    (
        "int64.gt",
        "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
        "{max_active_downstream_connections: 0}",
        "max_active_downstream_connections",
        true,
    ),
    (
        "map.keys",
        "envoy.config.core.v3.Metadata",
        "{filter_metadata: {\"\": {}}}",
        "filter_metadata",
        true,
    ),
    (
        "map.min_pairs",
        "envoy.config.common.matcher.v3.Matcher.MatcherTree.MatchMap",
        "{map: {}}",
        "map",
        true,
    ),
    (
        "message.required",
        "envoy.config.accesslog.v3.ComparisonFilter",
        "{op: EQ}",
        "value",
        true,
    ),
    (
        "repeated.items",
        "envoy.config.accesslog.v3.GrpcStatusFilter",
        "{statuses: [99]}",
        "statuses",
        true,
    ),
    (
        "repeated.max_items",
        "envoy.config.core.v3.HealthCheck.GrpcHealthCheck",
        "MANY_ITEMS",
        "initial_metadata",
        true,
    ),
    (
        "repeated.min_items",
        "envoy.config.accesslog.v3.AndFilter",
        "{filters: [{not_health_check_filter: {}}]}",
        "filters",
        true,
    ),
    (
        "repeated.unique",
        "envoy.config.metrics.v3.HistogramBucketSettings",
        "{match: {exact: a}, buckets: [1, 1]}",
        "buckets",
        true,
    ),
    (
        "string.ignore_empty",
        "envoy.config.core.v3.AlternateProtocolsCacheOptions.AlternateProtocolsCacheEntry",
        "{hostname: \"\", port: 1}",
        "hostname",
        false,
    ),
    (
        "string.in",
        "envoy.config.core.v3.SchemeHeaderTransformation",
        "{scheme_to_overwrite: ftp}",
        "scheme_to_overwrite",
        true,
    ),
    (
        "string.max_bytes",
        "envoy.config.core.v3.GrpcService.EnvoyGrpc",
        "LONG_AUTHORITY",
        "authority",
        true,
    ),
    (
        "string.max_len",
        "envoy.config.core.v3.HeaderValue",
        "LONG_HEADER",
        "value",
        true,
    ),
    (
        "string.len",
        "source.extensions.tracers.xray.daemon.Segment",
        "{trace_id: short}",
        "trace_id",
        true,
    ),
    (
        "string.min_len",
        "envoy.config.accesslog.v3.RuntimeFilter",
        "{runtime_key: \"\"}",
        "runtime_key",
        true,
    ),
    (
        "string.pattern",
        "envoy.config.route.v3.RouteMatch",
        "{path_separated_prefix: /a/}",
        "path_separated_prefix",
        true,
    ),
    (
        "string.prefix",
        "envoy.config.route.v3.RateLimit.HitsAddend",
        "{format: \"x%\"}",
        "format",
        true,
    ),
    (
        "string.suffix",
        "envoy.config.route.v3.RateLimit.HitsAddend",
        "{format: \"%x\"}",
        "format",
        true,
    ),
    (
        "string.strict",
        "envoy.config.bootstrap.v3.CustomInlineHeader",
        "{inline_header_name: \"a b\"}",
        "inline_header_name",
        false,
    ),
    (
        "string.well_known_regex",
        "envoy.config.route.v3.HeaderMatcher",
        "{name: \"a\\rb\", present_match: true}",
        "name",
        true,
    ),
    (
        "uint32.gt",
        "envoy.config.core.v3.AlternateProtocolsCacheOptions",
        "{name: a, max_entries: 0}",
        "max_entries",
        true,
    ),
    (
        "uint32.gte",
        "envoy.config.cluster.v3.Cluster.CommonLbConfig.ConsistentHashingLbConfig",
        "{hash_balance_factor: 99}",
        "hash_balance_factor",
        true,
    ),
    (
        "uint32.ignore_empty",
        "envoy.extensions.filters.http.ext_authz.v3.ShadowDecision",
        "{status_code: 0}",
        "status_code",
        false,
    ),
    (
        "uint32.lt",
        "envoy.config.core.v3.AlternateProtocolsCacheOptions.AlternateProtocolsCacheEntry",
        "{hostname: a, port: 65535}",
        "port",
        true,
    ),
    (
        "uint32.lte",
        "envoy.config.cluster.v3.Cluster.OriginalDstLbConfig",
        "{upstream_port_override: 70000}",
        "upstream_port_override",
        true,
    ),
    (
        "uint64.gt",
        "envoy.config.core.v3.UdpSocketConfig",
        "{max_rx_datagram_size: 0}",
        "max_rx_datagram_size",
        true,
    ),
    (
        "uint64.gte",
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck",
        "{path: /, response_buffer_size: 0}",
        "response_buffer_size",
        false,
    ),
    (
        "uint64.lt",
        "envoy.config.core.v3.UdpSocketConfig",
        "{max_rx_datagram_size: 65536}",
        "max_rx_datagram_size",
        true,
    ),
    (
        "uint64.lte",
        "envoy.config.cluster.v3.Cluster.MaglevLbConfig",
        "{table_size: 6000000}",
        "table_size",
        true,
    ),
    (
        "map.values",
        "envoy.service.rate_limit_quota.v3.BucketId",
        "{bucket: {a: \"\"}}",
        "bucket",
        true,
    ),
    // The entry's own rule (key min_len 1) is skipped, as PGV does.
    (
        "message.skip",
        "envoy.config.core.v3.KeyValueAppend",
        "{entry: {key: \"\"}}",
        "key",
        false,
    ),
];

/// Large values, built rather than written out.
fn expand(yaml: &str) -> String {
    match yaml {
        "BIG_BYTES" => format!("{{key: a, raw_value: \"{}\"}}", "QUFB".repeat(5462)),
        "MANY_ITEMS" => format!(
            "{{initial_metadata: [{}]}}",
            vec!["{header: {key: a, value: b}}"; 1001].join(", ")
        ),
        "LONG_AUTHORITY" => format!("{{cluster_name: a, authority: {}}}", "a".repeat(16385)),
        "LONG_HEADER" => format!("{{key: a, value: {}}}", "a".repeat(16385)),
        other => other.to_string(),
    }
}

/// The kinds used anywhere in the schema: `type.rule`, also inside
/// `repeated.items` and map `keys`/`values`.
fn kinds_in_schema() -> BTreeSet<String> {
    let pool = crate::config::schema::pool();
    let Some(ext) = pool.get_extension_by_name("validate.rules") else {
        return BTreeSet::new();
    };
    let mut kinds = BTreeSet::new();
    for message in pool.all_messages() {
        for field in message.fields() {
            let options = field.options();
            if !options.has_extension(&ext) {
                continue;
            }
            if let Some(rules) = options.get_extension(&ext).as_message() {
                collect(rules, &mut kinds);
            }
        }
    }
    kinds
}

fn collect(rules: &prost_reflect::DynamicMessage, kinds: &mut BTreeSet<String>) {
    for (kind, typed) in rules.fields() {
        let Some(typed) = typed.as_message() else {
            continue;
        };
        for (rule, value) in typed.fields() {
            kinds.insert(format!("{}.{}", kind.name(), rule.name()));
            if let Some(inner) = value.as_message()
                && matches!(rule.name(), "items" | "keys" | "values")
            {
                collect(inner, kinds);
            }
        }
    }
}

fn findings(type_name: &str, yaml: &str) -> Vec<String> {
    let desc = crate::config::schema::pool()
        .get_message_by_name(type_name)
        .unwrap_or_else(|| panic!("{type_name} is not in the schema"));
    let docs =
        crate::config::yaml::parse_documents(yaml, Default::default()).expect("example parses");
    let mut diags = Diagnostics::default();
    let mut rules = super::Rules::default();
    crate::config::decode::Decoder::new("k.yaml".into(), &mut diags, &mut rules).message(
        &desc,
        &docs[0],
        &[],
    );
    diags
        .iter()
        .filter(|d| d.severity == crate::config::diag::Severity::Error)
        .map(|d| d.message.clone())
        .collect()
}

#[test]
fn every_kind_in_the_schema_has_an_example_and_is_enforced() {
    let shown: BTreeSet<String> = EXAMPLES.iter().map(|e| e.0.to_string()).collect();
    let missing: Vec<String> = kinds_in_schema().difference(&shown).cloned().collect();
    assert!(
        missing.is_empty(),
        "validate.rules kinds without an example: {missing:?}"
    );
    let mut wrong = Vec::new();
    for (kind, type_name, yaml, field, fails) in EXAMPLES {
        let found = findings(type_name, &expand(yaml));
        let names_field = found.iter().any(|f| f.contains(&format!("`{field}`")));
        if names_field != *fails {
            wrong.push(format!("{kind} on {type_name}: {found:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "kinds not enforced as Envoy does:\n{}",
        wrong.join("\n")
    );
}
