//! Filter order: terminal filters (the router, http_connection_manager,
//! tcp_proxy, the upstream codec, ...) end their chain, and an HTTP chain
//! must end with one. Envoy checks every chain it builds, network, HTTP and
//! upstream HTTP alike, so the chains are described once here and the
//! cluster checks reuse the upstream one.

use super::wrong;
use crate::check::{Finding, Rule};
use crate::config::reflect::{field as get, list};
use crate::config::resource::PathStep;
use prost_reflect::DynamicMessage;

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

pub(super) const NETWORK_CHAIN: Chain = Chain {
    field: "filters",
    terminal: &TERMINAL_NETWORK_FILTERS,
    // Many more network filters are terminal than listed, so only the
    // order of known ones is checked.
    last_must_be_terminal: false,
    kind: "network",
    expected_last: "",
};

pub(super) const HTTP_CHAIN: Chain = Chain {
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
pub(super) const ROUTER_UPSTREAM_CHAIN: Chain = Chain {
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
