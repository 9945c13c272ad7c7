//! What Envoy rejects inside one resource that neither the schema nor
//! `validate.rules` express: listener and endpoint addresses, filter order,
//! TLS cipher suites, route rewrites, header removal, LOGICAL_DNS shape, regexes.
//!
//! Each check looks at one message (wherever it appears, also inside `Any`)
//! and reports a field path relative to it.

use crate::check::{Finding, Place, Rule};
use crate::config::reflect::{field as get, list};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

/// The rules this module reports.
pub static RULES: &[&Rule] = &[
    &EDS_WITHOUT_CONFIG,
    &MISSING_TYPED_CONFIG,
    &NOT_AN_IP,
    &LISTENER_ADDRESS,
    &LISTENER_FILTER_CHAINS,
    &ENDPOINT_ADDRESS,
    &LOGICAL_DNS_ENDPOINTS,
    &TERMINAL_NOT_LAST,
    &LAST_NOT_TERMINAL,
    &REWRITE_CONFLICT,
    &IMMUTABLE_HEADER,
    &UNKNOWN_CIPHER,
    &INVALID_REGEX,
];

/// An EDS cluster that does not say where its endpoints come from.
pub static EDS_WITHOUT_CONFIG: Rule = Rule {
    id: "cluster-eds-without-config",
    summary: "an EDS cluster has no eds_cluster_config",
    explanation: "A cluster of type EDS gets its endpoints over EDS, and `eds_cluster_config.eds_config` says \
from where (`ads: {}` for xdsd); without it Envoy refuses the cluster (\"cannot create an EDS cluster \
without an EDS config\"). A `load_assignment` is no substitute: for endpoints written in the cluster, use \
type STATIC.",
    envoy: "source/extensions/clusters/eds/eds.cc",
    ..Rule::ERROR
};

/// An extension named without its configuration.
pub static MISSING_TYPED_CONFIG: Rule = Rule {
    id: "extension-missing-typed-config",
    summary: "an extension (filter, transport socket, access logger, tracer...) has a name but no typed_config, or one of an empty type",
    explanation: "Envoy finds an extension's implementation by the type of its `typed_config`, not by its \
`name` (\"Didn't find a registered implementation for 'NAME' with type URL: ''\"). Give every HTTP, \
network and listener filter, transport socket, upstream network filter, access logger (and access log \
extension filter), tracing provider, custom health checker and retry extension a `typed_config` with its \
`@type` (an empty message is fine, e.g. the router's), or, for filters, a `config_discovery`; an HTTP \
filter marked `is_optional` may go without. A TypedStruct with an empty `type_url` names no type either. \
A cluster's `cluster_type` is the exception: Envoy finds it by name.",
    envoy: "source/common/config/utility.h",
    ..Rule::ERROR
};

/// An address that must be an IP is a hostname.
pub static NOT_AN_IP: Rule = Rule {
    id: "address-not-ip",
    summary: "a listener or static endpoint address is not an IP address",
    explanation: "Listener addresses and the endpoints of STATIC clusters and ClusterLoadAssignments are \
parsed as IP addresses; Envoy resolves no names there (\"malformed IP address\"). Use an IP, name a custom \
`resolver_name`, or make the cluster STRICT_DNS or LOGICAL_DNS so that Envoy resolves the hostname.",
    envoy: "source/common/network/utility.cc",
    ..Rule::ERROR
};

/// A listener without an address.
pub static LISTENER_ADDRESS: Rule = Rule {
    id: "listener-missing-address",
    summary: "a listener has no address",
    explanation: "Every listener that binds needs an `address` (\"address is necessary\"); only internal \
listeners and API listeners (for proxyless gRPC) go without one.",
    envoy: "source/common/listener_manager/listener_manager_impl.cc",
    ..Rule::ERROR
};

/// A TCP listener without filter chains.
pub static LISTENER_FILTER_CHAINS: Rule = Rule {
    id: "listener-no-filter-chains",
    summary: "a TCP or QUIC listener has no filter chain",
    explanation: "A TCP or QUIC listener needs at least one entry in `filter_chains`, or a \
`default_filter_chain` (\"no filter chains specified\"): without one it could not handle any connection. \
Only plain UDP listeners (no quic_options) go without, driven by listener filters such as udp_proxy.",
    envoy: "source/common/listener_manager/listener_impl.cc",
    ..Rule::ERROR
};

/// An endpoint without an address.
pub static ENDPOINT_ADDRESS: Rule = Rule {
    id: "endpoint-missing-address",
    summary: "an endpoint has no address",
    explanation: "Every `lb_endpoints[].endpoint` needs an `address` (\"Address must be set\").",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// A LOGICAL_DNS cluster with several endpoints.
pub static LOGICAL_DNS_ENDPOINTS: Rule = Rule {
    id: "cluster-logical-dns-endpoints",
    summary: "a LOGICAL_DNS cluster does not have exactly one locality with one endpoint",
    explanation: "A LOGICAL_DNS cluster resolves one hostname and connects to whichever address comes back, \
so it takes exactly one locality with one endpoint. For several hostnames use STRICT_DNS.",
    envoy: "source/extensions/clusters/logical_dns/logical_dns_cluster.cc",
    ..Rule::ERROR
};

/// A terminal filter followed by another.
pub static TERMINAL_NOT_LAST: Rule = Rule {
    id: "filter-terminal-not-last",
    summary: "a terminal filter is not the last of its chain",
    explanation: "Terminal filters (the HTTP router and mcp_router; the upstream codec among upstream HTTP \
filters, a cluster's or a router's; network filters such as http_connection_manager and tcp_proxy) end the \
chain: nothing after them would ever run, and Envoy refuses the chain (\"must be the last filter in a ... \
filter chain\"), also when the terminal filter is repeated. Move the terminal filter to the end, once. A \
filter configured by a TypedStruct counts as the type it describes.",
    envoy: "source/common/config/utility.h",
    ..Rule::ERROR
};

/// An HTTP filter chain that does not end with a terminal filter.
pub static LAST_NOT_TERMINAL: Rule = Rule {
    id: "filter-last-not-terminal",
    summary: "the last HTTP filter (or router upstream HTTP filter) is not a terminal filter",
    explanation: "An HTTP filter chain must end with a terminal filter, normally the router: otherwise no \
filter would answer the request (\"non-terminal filter ... is the last filter\"). A router's \
`upstream_http_filters`, when set, must end with the upstream codec filter \
(`envoy.filters.http.upstream_codec`, UpstreamCodec), which sends the request upstream.",
    envoy: "source/common/config/utility.h",
    ..Rule::ERROR
};

/// Two path rewrites on one route.
pub static REWRITE_CONFLICT: Rule = Rule {
    id: "route-rewrite-conflict",
    summary: "a route sets more than one of prefix_rewrite, regex_rewrite, path_rewrite and path_rewrite_policy",
    explanation: "A route rewrites the path in one way only: prefix_rewrite, regex_rewrite, path_rewrite (a \
format string) or a path_rewrite_policy extension (\"Specify only one of prefix_rewrite, regex_rewrite or \
path_rewrite_policy\"). Keep the one that does what you need.",
    envoy: "source/common/router/config_impl.cc",
    ..Rule::ERROR
};

/// Adding or removing a pseudo-header or host.
pub static IMMUTABLE_HEADER: Rule = Rule {
    id: "header-immutable",
    summary: "a `:`-prefixed or host header is added or removed",
    explanation: "Envoy refuses header rules that add, set or remove pseudo-headers (`:path`, `:authority`, \
...) or `host`: they would break the request. Use the route's rewrite options (prefix_rewrite, \
host_rewrite_literal, ...) instead.",
    envoy: "source/common/router/header_parser.cc",
    ..Rule::ERROR
};

/// A cipher suite BoringSSL does not know.
pub static UNKNOWN_CIPHER: Rule = Rule {
    id: "tls-unknown-cipher",
    summary: "a cipher suite name is not known to BoringSSL",
    explanation: "Each `cipher_suites` entry that is spelled like a cipher name must name one BoringSSL knows; \
Envoy tries the list and refuses the context when one is rejected (\"Failed to initialize cipher suites\").",
    envoy: "source/common/tls/context_impl.cc",
    ..Rule::ERROR
};

/// A regex RE2 does not accept.
pub static INVALID_REGEX: Rule = Rule {
    id: "invalid-regex",
    summary: "a regular expression is not valid RE2",
    explanation: "Envoy compiles `safe_regex` patterns with Google RE2, which has no look-around and no \
backreferences. A pattern that does not compile makes Envoy refuse the resource.",
    envoy: "source/common/common/regex.cc",
    ..Rule::ERROR
};

fn wrong(rule: &'static Rule, path: Vec<PathStep>, message: String) -> Finding {
    Finding::at(rule, path, message)
}

fn missing(rule: &'static Rule, path: Vec<PathStep>, message: &str) -> Finding {
    Finding::missing_in(rule, path, message)
}

/// Runs the checks that apply to `m`'s type; `top_level` is true for a
/// resource itself (as opposed to a message nested in one).
pub fn check(m: &DynamicMessage, top_level: bool, out: &mut Vec<Finding>) {
    match m.descriptor().full_name() {
        "envoy.config.listener.v3.Listener" => listener(m, out),
        "envoy.config.listener.v3.FilterChain" => filter_order(m, &NETWORK_CHAIN, out),
        "envoy.config.cluster.v3.Cluster" => cluster(m, out),
        "envoy.config.endpoint.v3.ClusterLoadAssignment" if top_level => {
            // EDS endpoints are never resolved by DNS.
            endpoint_ips(m, &[], out);
        }
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" => {
            filter_order(m, &HTTP_CHAIN, out)
        }
        "envoy.extensions.filters.http.router.v3.Router" => {
            filter_order(m, &ROUTER_UPSTREAM_CHAIN, out)
        }
        "envoy.config.route.v3.RouteAction" => rewrites(m, out),
        "envoy.config.route.v3.RouteConfiguration"
        | "envoy.config.route.v3.VirtualHost"
        | "envoy.config.route.v3.Route"
        | "envoy.config.route.v3.WeightedCluster.ClusterWeight" => removed_headers(m, out),
        "envoy.extensions.transport_sockets.tls.v3.TlsParameters" => cipher_suites(m, out),
        "envoy.config.core.v3.HeaderValueOption" => modified_header(m, out),
        "envoy.type.matcher.v3.RegexMatcher" => {
            if let Some((f, Value::String(re))) = get(m, "regex")
                && let Err(e) = crate::config::constraints::check_re2(re)
            {
                out.push(wrong(
                    &INVALID_REGEX,
                    vec![PathStep::Field(f)],
                    format!("invalid regex `{re}`: {e}"),
                ));
            }
        }
        _ => {}
    }
}

/// The extension messages whose factory Envoy 1.40 looks up only by the
/// type of `typed_config` (`Config::Utility::getAndCheckFactory`), with no
/// fallback to the name. Left out on purpose: a cluster's `cluster_type`
/// (cluster_factory_impl.cc falls back to the name) and the HCM's
/// `request_id_extension` (config.cc uses the UUID default without one);
/// TypedExtensionConfig requires its typed_config in the schema already.
const FOUND_BY_TYPE: &[&str] = &[
    // HCM config.cc / listener_impl.cc / filter_chain_manager: filters.
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
    "envoy.config.listener.v3.Filter",
    "envoy.config.listener.v3.ListenerFilter",
    // upstream_impl.cc: transport sockets and upstream network filters.
    "envoy.config.core.v3.TransportSocket",
    "envoy.config.cluster.v3.Filter",
    // access_log_impl.cc: access loggers and their extension filters.
    "envoy.config.accesslog.v3.AccessLog",
    "envoy.config.accesslog.v3.ExtensionFilter",
    // tracer_manager_impl.cc: an HCM's tracing provider.
    "envoy.config.trace.v3.Tracing.Http",
    // health_checker_impl.cc: a custom health checker.
    "envoy.config.core.v3.HealthCheck.CustomHealthCheck",
    // retry_policy_impl.cc: retry extensions of a route.
    "envoy.config.route.v3.RetryPolicy.RetryPriority",
    "envoy.config.route.v3.RetryPolicy.RetryHostPredicate",
];

/// Extensions are found by their config's type: one without a config (or,
/// for filters, a discovery source) cannot be built. A config that is
/// written but failed to decode was reported already.
pub fn typed_config_present(m: &DynamicMessage, place: &Place<'_>, out: &mut Vec<Finding>) {
    if !FOUND_BY_TYPE.contains(&m.descriptor().full_name()) {
        return;
    }
    let optional = get(m, "is_optional").and_then(|(_, v)| v.as_bool()) == Some(true);
    let written = |name: &str| {
        m.descriptor().get_field_by_name(name).is_some_and(|f| {
            let mut path = place.path.to_vec();
            path.push(PathStep::Field(f));
            crate::config::resource::written(&place.resource.source, &path)
        })
    };
    if m.has_field_by_name("typed_config")
        || m.has_field_by_name("config_discovery")
        || optional
        || written("typed_config")
    {
        return;
    }
    let name = get(m, "name")
        .and_then(|(_, v)| v.as_str().map(str::to_string))
        .unwrap_or_default();
    out.push(missing(
        &MISSING_TYPED_CONFIG,
        Vec::new(),
        &format!("`{name}` has no typed_config: Envoy finds extensions by the type of their config, not by name"),
    ));
}

/// A field's descriptor and value, when it is set.
fn step(m: &DynamicMessage, name: &str) -> Option<PathStep> {
    m.descriptor().get_field_by_name(name).map(PathStep::Field)
}

fn listener(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let api = m.has_field_by_name("api_listener");
    let internal = m.has_field_by_name("internal_listener");
    match get(m, "address") {
        Some((f, Value::Message(address))) => {
            socket_ip(address, vec![PathStep::Field(f)], "listener", out)
        }
        _ if !api && !internal => out.push(missing(
            &LISTENER_ADDRESS,
            Vec::new(),
            "a listener needs an `address` (unless it is an internal or API listener)",
        )),
        _ => {}
    }
    let chains = list(m, "filter_chains").is_some_and(|(_, c)| !c.is_empty());
    // Plain UDP listeners are driven by listener filters (udp_proxy); QUIC
    // listeners are connection oriented and need chains like TCP ones.
    if !api
        && !chains
        && !crate::check::listeners::is_connectionless_udp(m)
        && !m.has_field_by_name("default_filter_chain")
    {
        // At `filter_chains:` when it is written (empty), else at the listener.
        out.push(wrong(
            &LISTENER_FILTER_CHAINS,
            step(m, "filter_chains").into_iter().collect(),
            "a listener needs at least one filter chain (or a default_filter_chain)".into(),
        ));
    }
}

/// Reports a socket address whose `address` is not an IP, unless a custom resolver is named.
fn socket_ip(
    address: &DynamicMessage,
    mut path: Vec<PathStep>,
    what: &str,
    out: &mut Vec<Finding>,
) {
    let Some((sf, Value::Message(sa))) = get(address, "socket_address") else {
        return;
    };
    if sa.has_field_by_name("resolver_name") {
        return;
    }
    let Some((af, Value::String(host))) = get(sa, "address") else {
        return;
    };
    if host.parse::<std::net::IpAddr>().is_err() {
        path.extend([PathStep::Field(sf), PathStep::Field(af)]);
        out.push(wrong(&NOT_AN_IP, path, format!("{what} address `{host}` is not an IP address (set resolver_name, or use a STRICT_DNS or LOGICAL_DNS cluster)")));
    }
}

const STATIC: i32 = 0;
const LOGICAL_DNS: i32 = 2;
const EDS: i32 = 3;

fn cluster(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let kind = match get(m, "cluster_type") {
        // The static cluster named as a custom type is built as `type: STATIC`;
        // other custom types have checks of their own.
        Some((_, Value::Message(custom))) if is_static_by_name(custom) => STATIC,
        Some(_) => return,
        None => get(m, "type")
            .and_then(|(_, v)| v.as_enum_number())
            .unwrap_or(STATIC),
    };
    if kind == EDS && !m.has_field_by_name("eds_cluster_config") {
        out.push(wrong(
            &EDS_WITHOUT_CONFIG,
            step(m, "type").into_iter().collect(),
            "an EDS cluster needs `eds_cluster_config` (e.g. `eds_config: {ads: {}}`)".into(),
        ));
    }
    let Some((af, Value::Message(assignment))) = get(m, "load_assignment") else {
        if kind == LOGICAL_DNS {
            out.push(missing(
                &LOGICAL_DNS_ENDPOINTS,
                Vec::new(),
                "a LOGICAL_DNS cluster needs a load_assignment with its single host",
            ));
        }
        return;
    };
    let base = vec![PathStep::Field(af)];
    if kind == STATIC {
        endpoint_ips(assignment, &base, out);
    }
    let localities = list(assignment, "endpoints").map_or(0, |(_, l)| l.len());
    if kind == LOGICAL_DNS && (localities != 1 || lb_endpoints(assignment, &base).len() != 1) {
        out.push(wrong(
            &LOGICAL_DNS_ENDPOINTS,
            base,
            "a LOGICAL_DNS cluster must have exactly one locality with exactly one endpoint".into(),
        ));
    }
}

/// A `cluster_type` that Envoy resolves by its name to the static cluster
/// factory: cluster_factory_impl.cc looks a custom type up by name when it
/// has no typed_config (or a Struct one).
fn is_static_by_name(custom: &DynamicMessage) -> bool {
    let name = get(custom, "name").and_then(|(_, v)| v.as_str().map(str::to_string));
    let by_name = match get(custom, "typed_config") {
        None => true,
        Some((_, Value::Message(any))) => {
            crate::check::extensions::config_type(any) == "google.protobuf.Struct"
        }
        Some(_) => false,
    };
    by_name && name.as_deref() == Some("envoy.cluster.static")
}

/// Every `lb_endpoints` entry of an assignment, with its path.
fn lb_endpoints(
    assignment: &DynamicMessage,
    base: &[PathStep],
) -> Vec<(Vec<PathStep>, DynamicMessage)> {
    let mut found = Vec::new();
    let Some((ef, localities)) = list(assignment, "endpoints") else {
        return found;
    };
    for (i, locality) in localities.iter().enumerate() {
        let Some(locality) = locality.as_message() else {
            continue;
        };
        let Some((lf, items)) = list(locality, "lb_endpoints") else {
            continue;
        };
        for (j, item) in items.iter().enumerate() {
            if let Some(item) = item.as_message() {
                let mut path = base.to_vec();
                path.extend([
                    PathStep::Field(ef.clone()),
                    PathStep::Index(i),
                    PathStep::Field(lf.clone()),
                    PathStep::Index(j),
                ]);
                found.push((path, item.clone()));
            }
        }
    }
    found
}

/// The addresses of a STATIC cluster's or a ClusterLoadAssignment's
/// endpoints, which Envoy resolves as they are written: each must be there
/// ("Address must be set") and be an IP. DNS clusters resolve names later
/// and accept what is missing here.
fn endpoint_ips(assignment: &DynamicMessage, base: &[PathStep], out: &mut Vec<Finding>) {
    for (mut path, lb) in lb_endpoints(assignment, base) {
        if lb.has_field_by_name("endpoint_name") {
            continue;
        }
        let Some((ef, Value::Message(endpoint))) = get(&lb, "endpoint") else {
            out.push(missing(
                &ENDPOINT_ADDRESS,
                path,
                "an lb_endpoint needs an `endpoint` with an `address`",
            ));
            continue;
        };
        path.push(PathStep::Field(ef));
        match get(endpoint, "address") {
            Some((af, Value::Message(address))) => {
                let mut at = path.clone();
                at.push(PathStep::Field(af));
                // An empty address breaks its required oneof (reported as such).
                socket_ip(address, at, "endpoint", out);
            }
            _ => out.push(missing(
                &ENDPOINT_ADDRESS,
                path.clone(),
                "an endpoint needs an `address`",
            )),
        }
        // Additional addresses are resolved the same way (and must be IPs too).
        let Some((xf, extra)) = list(endpoint, "additional_addresses") else {
            continue;
        };
        for (i, item) in extra.iter().enumerate() {
            if let Some((af, Value::Message(address))) =
                item.as_message().and_then(|m| get(m, "address"))
            {
                let mut at = path.clone();
                at.extend([
                    PathStep::Field(xf.clone()),
                    PathStep::Index(i),
                    PathStep::Field(af),
                ]);
                socket_ip(address, at, "endpoint additional", out);
            }
        }
    }
}

/// The message type a filter's `typed_config` configures, if any: for a
/// TypedStruct the type it describes, which is the one Envoy picks the
/// factory by (getFactoryType in source/common/config/utility.cc).
fn typed_config_type(filter: &DynamicMessage) -> Option<String> {
    let (_, any) = get(filter, "typed_config")?;
    Some(crate::check::extensions::config_type(any.as_message()?))
}

const TERMINAL_NETWORK_FILTERS: [&str; 8] = [
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    "envoy.extensions.filters.network.redis_proxy.v3.RedisProxy",
    "envoy.extensions.filters.network.thrift_proxy.v3.ThriftProxy",
    "envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy",
    "envoy.extensions.filters.network.echo.v3.Echo",
    "envoy.extensions.filters.network.direct_response.v3.Config",
    "envoy.extensions.filters.network.generic_proxy.v3.GenericProxy",
];

/// The HTTP filters whose factories say they are terminal
/// (isTerminalFilterByProtoTyped in their config.h). Dynamic module filters
/// are terminal only by their own `terminal_filter` and are not judged.
const TERMINAL_HTTP_FILTERS: [&str; 2] = [
    "envoy.extensions.filters.http.router.v3.Router",
    "envoy.extensions.filters.http.mcp_router.v3.McpRouter",
];

/// The one terminal upstream HTTP filter (source/common/router/upstream_codec_filter.h).
const TERMINAL_UPSTREAM_HTTP_FILTERS: [&str; 1] =
    ["envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"];

/// One kind of filter chain, as Envoy's FilterChainHelper and listener
/// manager walk it, calling validateTerminalFilters for every filter.
pub struct Chain {
    /// The repeated field holding the filters.
    field: &'static str,
    /// The config types whose filters are terminal.
    terminal: &'static [&'static str],
    /// Whether the last filter must be terminal (as in HTTP chains).
    last_must_be_terminal: bool,
    /// The chain's name in messages.
    kind: &'static str,
    /// What the last filter should be, for the message.
    expected_last: &'static str,
}

const NETWORK_CHAIN: Chain = Chain {
    field: "filters",
    terminal: &TERMINAL_NETWORK_FILTERS,
    // Many more network filters are terminal than listed, so only the
    // order of known ones is checked.
    last_must_be_terminal: false,
    kind: "network",
    expected_last: "",
};

const HTTP_CHAIN: Chain = Chain {
    field: "http_filters",
    terminal: &TERMINAL_HTTP_FILTERS,
    last_must_be_terminal: true,
    kind: "HTTP",
    expected_last: "such as the router",
};

/// A cluster's upstream HTTP filters, checked by the cluster checks: only
/// the options under the current key build filters (upstream_impl.cc), and
/// that the last is the codec is checked before, by
/// cluster-upstream-http-filters-codec-last (checkUpstreamHttpFiltersList
/// in source/common/http/filter_chain_helper.cc).
pub const CLUSTER_UPSTREAM_CHAIN: Chain = Chain {
    field: "http_filters",
    terminal: &TERMINAL_UPSTREAM_HTTP_FILTERS,
    last_must_be_terminal: false,
    kind: "upstream HTTP",
    expected_last: "",
};

/// A router's upstream HTTP filters (source/common/router/router.cc).
const ROUTER_UPSTREAM_CHAIN: Chain = Chain {
    field: "upstream_http_filters",
    terminal: &TERMINAL_UPSTREAM_HTTP_FILTERS,
    last_must_be_terminal: true,
    kind: "router upstream HTTP",
    expected_last: "envoy.filters.http.upstream_codec",
};

/// Terminal filters must come last, wherever they are; with
/// `last_must_be_terminal`, the last filter must be terminal too. Only
/// filters whose config type the schema knows are judged.
pub fn filter_order(m: &DynamicMessage, chain: &Chain, out: &mut Vec<Finding>) {
    let Some((ff, filters)) = list(m, chain.field) else {
        return;
    };
    let last = filters.len().saturating_sub(1);
    for (i, filter) in filters.iter().enumerate() {
        let Some(type_name) = filter.as_message().and_then(typed_config_type) else {
            continue;
        };
        if crate::config::schema::pool()
            .get_message_by_name(&type_name)
            .is_none()
        {
            continue;
        }
        let is_terminal = chain.terminal.contains(&type_name.as_str());
        let path = vec![PathStep::Field(ff.clone()), PathStep::Index(i)];
        let kind = chain.kind;
        if is_terminal && i != last {
            out.push(wrong(
                &TERMINAL_NOT_LAST,
                path,
                format!("`{type_name}` is a terminal filter and must be the last {kind} filter"),
            ));
        } else if chain.last_must_be_terminal && !is_terminal && i == last {
            let expected = chain.expected_last;
            out.push(wrong(&LAST_NOT_TERMINAL, path, format!("the last {kind} filter must be a terminal one ({expected}); `{type_name}` is not")));
        }
    }
}

fn rewrites(m: &DynamicMessage, out: &mut Vec<Finding>) {
    // path_rewrite (a format string) counts too (config_impl.cc).
    let set: Vec<&str> = [
        "prefix_rewrite",
        "regex_rewrite",
        "path_rewrite",
        "path_rewrite_policy",
    ]
    .into_iter()
    .filter(|n| match get(m, n) {
        Some((_, Value::String(s))) => !s.is_empty(),
        Some(_) => true,
        None => false,
    })
    .collect();
    if set.len() > 1 {
        let path = step(m, set[1]).into_iter().collect();
        out.push(wrong(&REWRITE_CONFLICT, path, format!("only one of prefix_rewrite, regex_rewrite, path_rewrite and path_rewrite_policy may be set; found {}", set.join(" and "))));
    }
}

fn removed_headers(m: &DynamicMessage, out: &mut Vec<Finding>) {
    for field in ["request_headers_to_remove", "response_headers_to_remove"] {
        let Some((f, items)) = list(m, field) else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let Some(name) = item.as_str() else { continue };
            if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                out.push(wrong(&IMMUTABLE_HEADER, vec![PathStep::Field(f.clone()), PathStep::Index(i)], format!("header `{name}` may not be removed: Envoy refuses `:`-prefixed and host headers here")));
            }
        }
    }
}

fn modified_header(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((hf, Value::Message(header))) = get(m, "header") else {
        return;
    };
    let Some((kf, Value::String(key))) = get(header, "key") else {
        return;
    };
    if key.starts_with(':') || key.eq_ignore_ascii_case("host") {
        out.push(wrong(&IMMUTABLE_HEADER, vec![PathStep::Field(hf), PathStep::Field(kf)], format!("header `{key}` may not be modified: Envoy refuses `:`-prefixed and host headers here")));
    }
}

/// Cipher suites BoringSSL knows, by their OpenSSL names (TLS 1.2 and below).
const KNOWN_CIPHERS: [&str; 22] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-PSK-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-PSK-AES128-CBC-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "ECDHE-PSK-AES256-CBC-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "PSK-AES128-CBC-SHA",
    "AES256-SHA",
    "PSK-AES256-CBC-SHA",
    "DES-CBC3-SHA",
    "ECDHE-ECDSA-CHACHA20-POLY1305-OLD",
    "ECDHE-RSA-CHACHA20-POLY1305-OLD",
];

/// Flags entries that are spelled like a full cipher name but name none.
/// Rule keywords (`ALL`, `HIGH`, `-kRSA`, ...) and `[A|B]` groups pass.
fn cipher_suites(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((f, items)) = list(m, "cipher_suites") else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let Some(entry) = item.as_str() else { continue };
        let names = entry
            .trim_start_matches(['[', '!', '-', '+'])
            .trim_end_matches(']');
        for name in names.split('|') {
            let full_name_shape = name.matches('-').count() >= 2
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
            if full_name_shape && !KNOWN_CIPHERS.contains(&name) {
                out.push(wrong(
                    &UNKNOWN_CIPHER,
                    vec![PathStep::Field(f.clone()), PathStep::Index(i)],
                    format!("unknown cipher suite `{name}`"),
                ));
            }
        }
    }
}
