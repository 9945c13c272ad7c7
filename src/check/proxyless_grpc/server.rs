//! What xDS-enabled gRPC servers (gRFC A36) reject or ignore in their
//! listener (one whose name starts with [`SERVER_LISTENER_PREFIX`]): its
//! address, filter chains, HttpConnectionManager, TLS, and the routes it
//! holds inline or names over RDS.

use super::{
    HCM, Routes, SERVER_LISTENER_PREFIX, Side, any_field, bool_value, each_route, find, hcm_routes,
    is_server_listener, is_type, route_action, with,
};
use crate::check::Rule;
use crate::config::diag::Diagnostics;
use crate::config::reflect::{field, list, string_field};
use crate::config::resource::field_step as step;
use crate::config::resource::{PathStep, Resource};
use crate::config::schema::ResourceType;
use prost_reflect::DynamicMessage;
use std::collections::BTreeSet;

/// A server listener served to Envoys too.
pub static SERVER_LISTENER_FOR_ENVOY: Rule = Rule {
    id: "grpc-server-listener-for-envoy",
    summary: "a gRPC server listener is served to every node, Envoys included",
    explanation: "A listener whose name starts with `grpc/server?xds.resource.listening_address=` is the one \
an xDS-enabled gRPC server asks for (gRFC A36): its bootstrap's `server_listener_resource_name_template` \
with `%s` replaced by the address it listens on (`ListenerResourceName` in gRPC C-core's \
`src/core/server/xds_server_config_fetcher.cc`). Served to every node, it reaches Envoys too, which bind \
its address. Serve it to the gRPC servers only, with a `nodes:` selector in an envelope.",
    ..Rule::WARNING
};

/// A server listener's address gRPC rejects, or that is not the one in its name.
pub static SERVER_ADDRESS: Rule = Rule {
    id: "grpc-server-address",
    summary: "a gRPC server listener's address is not the TCP socket address its name gives",
    explanation: "gRPC servers NACK a listener without an `address.socket_address`, or whose `protocol` is \
not TCP (`AddressParse` in gRPC C-core's `src/core/xds/grpc/xds_listener_parser.cc`). A server asks for \
the listener named after the `host:port` it listens on, and stops serving when the listener's \
`socket_address` (`address` and `port_value`) is another one (gRFC A36; `OnResourceChanged` in C-core's \
`src/core/server/xds_server_config_fetcher.cc`, grpc-js-xds's `src/server.ts`). Keep the two the same, \
an IPv6 address in brackets in the name (`[::]:50051`).",
    ..Rule::WARNING
};

/// A listener field gRPC servers reject.
pub static SERVER_UNSUPPORTED_FIELD: Rule = Rule {
    id: "grpc-server-unsupported-field",
    summary: "a gRPC server listener sets a field gRPC servers reject",
    explanation: "gRPC servers NACK a listener with `use_original_dst: true` (`LdsResourceParseServer` in \
gRPC C-core's `src/core/xds/grpc/xds_listener_parser.cc`), and grpc-js servers one with \
`listener_filters` (grpc-js-xds's `src/xds-resource-type/listener-resource-type.ts`). gRPC reads a \
listener with an `api_listener` as a client's (`LdsResourceParse`), and a server given one stops serving \
(\"LDS resource is not a TCP listener\", C-core's `src/core/server/xds_server_config_fetcher.cc`).",
    ..Rule::WARNING
};

/// A filter chain that is not exactly one HttpConnectionManager.
pub static SERVER_FILTER_CHAIN: Rule = Rule {
    id: "grpc-server-filter-chain",
    summary: "a gRPC server listener's filter chain does not hold exactly one HttpConnectionManager",
    explanation: "gRPC servers need a filter chain (in `filter_chains` or the `default_filter_chain`), and \
every one to hold exactly one network filter, an HttpConnectionManager; they NACK the listener otherwise \
(gRFC A36). Network filters such as `tcp_proxy` or the network RBAC filter are Envoy's. Mirrors \
`FilterChainParse`, `HttpConnectionManagerParse` and `LdsResourceParseServer` in gRPC C-core's \
`src/core/xds/grpc/xds_listener_parser.cc`, and `validateFilterChain` in grpc-js-xds's \
`src/xds-resource-type/listener-resource-type.ts`.",
    ..Rule::WARNING
};

/// A route action gRPC servers do not take.
pub static SERVER_ROUTE_ACTION: Rule = Rule {
    id: "grpc-server-route-action",
    summary: "a route used by gRPC servers has an action other than `non_forwarding_action`",
    explanation: "gRPC servers handle the RPCs themselves: a route they match must have \
`non_forwarding_action: {}`, and RPCs matching a route with `route`, `redirect`, `direct_response` or \
`filter_action` fail with UNAVAILABLE (gRFC A36). Mirrors `XdsServerConfigSelector` in gRPC C-core's \
`src/core/server/xds_server_config_fetcher.cc` and grpc-js-xds's `src/server.ts`.",
    ..Rule::WARNING
};

/// TLS gRPC servers reject.
pub static SERVER_TLS: Rule = Rule {
    id: "grpc-server-tls",
    summary: "a gRPC server listener's transport socket is not TLS gRPC servers accept",
    explanation: "gRPC servers take TLS only from a DownstreamTlsContext whose \
`common_tls_context.tls_certificate_provider_instance` names a certificate provider of their bootstrap \
(gRFC A29). They NACK other transport sockets, a context without one (they do not read certificates \
inline or over SDS), `require_sni: true`, an `ocsp_staple_policy` other than LENIENT_STAPLING, and \
`match_subject_alt_names` (a server does not check its clients' SANs). grpc-js servers also NACK a \
transport socket not named `envoy.transport_sockets.tls`. Mirrors `DownstreamTlsContextParse` in gRPC \
C-core's `src/core/xds/grpc/xds_listener_parser.cc` and `validateTransportSocket` in grpc-js-xds's \
`src/xds-resource-type/listener-resource-type.ts`.",
    ..Rule::WARNING
};

/// A filter chain gRPC servers never use.
pub static SERVER_CHAIN_NEVER_MATCHED: Rule = Rule {
    id: "grpc-server-chain-never-matched",
    summary: "a filter chain of a gRPC server listener is never used by gRPC servers",
    explanation: "gRPC servers drop the filter chains whose `filter_chain_match` sets `destination_port`, \
`server_names`, `application_protocols`, or a `transport_protocol` other than `raw_buffer` (such as \
`tls`): a connection never gets them, and falls to another chain or to the `default_filter_chain` \
(gRFC A36). They still NACK the listener if such a chain is invalid. Mirrors `BuildFilterChainMap` in gRPC \
C-core's `src/core/xds/grpc/xds_listener_parser.cc` and `normalizeFilterChainMatch` in grpc-js-xds's \
`src/server.ts`.",
    ..Rule::WARNING
};

const DOWNSTREAM_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";

/// Warns about what gRPC servers would NACK or ignore in their listeners
/// and the route configurations those name.
pub(super) fn check(resources: &[Resource], diags: &mut Diagnostics) {
    let mut rds = BTreeSet::new();
    for listener in resources.iter().filter(|r| is_server_listener(r)) {
        server_listener(listener, &mut rds, diags);
    }
    for name in &rds {
        for route in find(resources, ResourceType::RouteConfiguration, name) {
            route_actions(route, &route.message, &[], diags);
        }
    }
}

/// One server listener; the RDS names its chains use go to `rds`.
fn server_listener(listener: &Resource, rds: &mut BTreeSet<String>, diags: &mut Diagnostics) {
    let m = &listener.message;
    let listening = &listener.name[SERVER_LISTENER_PREFIX.len()..];
    if listener.selector.is_everyone() {
        diags.report(
            &SERVER_LISTENER_FOR_ENVOY,
            listener.locate(&step(m, "name")),
            format!("served to every node, but only gRPC servers ask for a listener named `{SERVER_LISTENER_PREFIX}...` (an Envoy would bind {listening} too): select gRPC nodes with `nodes`"),
        );
    }
    if let Some((af, _)) = field(m, "api_listener") {
        diags.report(
            &SERVER_UNSUPPORTED_FIELD,
            listener.locate(&[PathStep::Field(af)]),
            format!("gRPC reads a listener with an api_listener as a client's: the gRPC server listening on {listening} stops serving (\"LDS resource is not a TCP listener\")"),
        );
        return;
    }
    address(listener, listening, diags);
    if let Some((f, true)) = bool_value(m, "use_original_dst") {
        diags.report(
            &SERVER_UNSUPPORTED_FIELD,
            listener.locate(&[PathStep::Field(f)]),
            "gRPC servers NACK a listener with `use_original_dst: true`",
        );
    }
    if let Some((f, _)) = list(m, "listener_filters") {
        diags.report(
            &SERVER_UNSUPPORTED_FIELD,
            listener.locate(&[PathStep::Field(f)]),
            "grpc-js servers NACK a listener with `listener_filters`",
        );
    }
    let chains = list(m, "filter_chains");
    if let Some((cf, items)) = &chains {
        for (i, chain) in items.iter().enumerate() {
            if let Some(chain) = chain.as_message() {
                let path = vec![PathStep::Field(cf.clone()), PathStep::Index(i)];
                filter_chain(listener, chain, &path, true, rds, diags);
            }
        }
    }
    match field(m, "default_filter_chain") {
        Some((df, chain)) => {
            if let Some(chain) = chain.as_message() {
                filter_chain(listener, chain, &[PathStep::Field(df)], false, rds, diags);
            }
        }
        None if chains.is_none() => diags.report(
            &SERVER_FILTER_CHAIN,
            listener.location(),
            "gRPC servers NACK a listener with neither `filter_chains` nor a `default_filter_chain`",
        ),
        None => {}
    }
}

/// `host:port` as gRPC writes a listening address (IPv6 in brackets).
fn host_port(host: &str, port: u32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The listener's address: a TCP socket address, the one in its name.
fn address(listener: &Resource, listening: &str, diags: &mut Diagnostics) {
    let m = &listener.message;
    let Some((af, address)) = field(m, "address") else {
        diags.report(
            &SERVER_ADDRESS,
            listener.location(),
            format!("gRPC servers NACK a listener without an address (give `address: {{socket_address: ...}}` for {listening})"),
        );
        return;
    };
    let Some(address) = address.as_message() else {
        return;
    };
    let Some((sf, socket)) = field(address, "socket_address") else {
        diags.report(
            &SERVER_ADDRESS,
            listener.locate(&[PathStep::Field(af)]),
            "gRPC servers NACK a listener whose address is not a `socket_address`",
        );
        return;
    };
    let Some(socket) = socket.as_message() else {
        return;
    };
    let path = [PathStep::Field(af), PathStep::Field(sf)];
    if let Some((pf, protocol)) = field(socket, "protocol")
        && protocol.as_enum_number() != Some(0)
    {
        diags.report(
            &SERVER_ADDRESS,
            listener.locate(&with(&path, [PathStep::Field(pf)])),
            "gRPC servers NACK a listener whose socket address is not TCP",
        );
    }
    let host = string_field(socket, "address")
        .map(|(_, h)| h)
        .unwrap_or_default();
    let port = field(socket, "port_value")
        .and_then(|(_, p)| p.as_u32())
        .unwrap_or(0);
    let served = host_port(&host, port);
    if served != listening {
        // Point at the part that differs: the host, else the port.
        let named_host = listening.rsplit_once(':').map_or(listening, |(h, _)| h);
        let named_host = named_host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(named_host);
        let part = if named_host == host {
            "port_value"
        } else {
            "address"
        };
        diags.report(
            &SERVER_ADDRESS,
            listener.locate(&with(&path, step(socket, part))),
            format!("the listener's address is {served}, but its name is asked for by the gRPC server listening on {listening}, which stops serving on getting another address than its own (gRFC A36); a server listening on {served} never gets it"),
        );
    }
}

/// One filter chain (at `path`); `matched` for those of `filter_chains`
/// (the default chain has no match).
fn filter_chain(
    listener: &Resource,
    chain: &DynamicMessage,
    path: &[PathStep],
    matched: bool,
    rds: &mut BTreeSet<String>,
    diags: &mut Diagnostics,
) {
    if matched {
        never_matched(listener, chain, path, diags);
    }
    match list(chain, "filters") {
        None => diags.report(
            &SERVER_FILTER_CHAIN,
            listener.locate_body(path),
            "gRPC servers NACK a filter chain without filters: they need exactly one, an HttpConnectionManager",
        ),
        Some((ff, filters)) => {
            if filters.len() != 1 {
                diags.report(
                    &SERVER_FILTER_CHAIN,
                    listener.locate(&with(path, [PathStep::Field(ff.clone())])),
                    format!("gRPC servers NACK a filter chain with {} network filters: they need exactly one, an HttpConnectionManager", filters.len()),
                );
            }
            for (i, filter) in filters.iter().enumerate() {
                if let Some(filter) = filter.as_message() {
                    let at = with(path, [PathStep::Field(ff.clone()), PathStep::Index(i)]);
                    network_filter(listener, filter, &at, rds, diags);
                }
            }
        }
    }
    transport_socket(listener, chain, path, diags);
}

/// A network filter (at `path`): an HttpConnectionManager, checked as gRPC
/// servers read it.
fn network_filter(
    listener: &Resource,
    filter: &DynamicMessage,
    path: &[PathStep],
    rds: &mut BTreeSet<String>,
    diags: &mut Diagnostics,
) {
    match any_field(filter, "typed_config") {
        Some((tf, _, Some(hcm))) if is_type(&hcm, HCM) => {
            let at = with(path, [PathStep::Field(tf)]);
            match hcm_routes(listener, &hcm, &at, Side::Server, diags) {
                Routes::Inline(config, config_path) => {
                    route_actions(listener, &config, &config_path, diags);
                }
                Routes::Rds(name) => {
                    rds.insert(name);
                }
                Routes::Unusable => {}
            }
        }
        Some((tf, url, _)) => diags.report(
            &SERVER_FILTER_CHAIN,
            listener.locate(&with(path, [PathStep::Field(tf)])),
            format!(
                "gRPC servers NACK a network filter other than an HttpConnectionManager (this one is `{}`)",
                url.rsplit('/').next().unwrap_or(&url)
            ),
        ),
        None => diags.report(
            &SERVER_FILTER_CHAIN,
            listener.locate(path),
            "gRPC servers NACK a network filter without a `typed_config` (they take only an HttpConnectionManager)",
        ),
    }
}

/// Filter chain matches gRPC servers never select.
fn never_matched(
    listener: &Resource,
    chain: &DynamicMessage,
    path: &[PathStep],
    diags: &mut Diagnostics,
) {
    let Some((mf, matcher)) = field(chain, "filter_chain_match") else {
        return;
    };
    let Some(matcher) = matcher.as_message() else {
        return;
    };
    let at = with(path, [PathStep::Field(mf)]);
    let mut never = |name: &str, why: String| {
        diags.report(
            &SERVER_CHAIN_NEVER_MATCHED,
            listener.locate(&with(&at, step(matcher, name))),
            format!("gRPC servers never use a filter chain {why} (gRFC A36)"),
        );
    };
    if matcher.has_field_by_name("destination_port") {
        never(
            "destination_port",
            "that matches on `destination_port`".into(),
        );
    }
    for name in ["server_names", "application_protocols"] {
        if list(matcher, name).is_some() {
            never(name, format!("that matches on `{name}`"));
        }
    }
    if let Some((_, protocol)) = string_field(matcher, "transport_protocol")
        && !protocol.is_empty()
        && protocol != "raw_buffer"
    {
        never(
            "transport_protocol",
            format!("whose transport_protocol is `{protocol}` (only `raw_buffer` or none)"),
        );
    }
}

/// A filter chain's TLS, as gRPC servers read it (gRFC A29).
fn transport_socket(
    listener: &Resource,
    chain: &DynamicMessage,
    path: &[PathStep],
    diags: &mut Diagnostics,
) {
    let Some((tf, socket)) = field(chain, "transport_socket") else {
        return;
    };
    let Some(socket) = socket.as_message() else {
        return;
    };
    let at = with(path, [PathStep::Field(tf)]);
    let mut report = |to: Vec<PathStep>, message: String| {
        diags.report(&SERVER_TLS, listener.locate(&to), message);
    };
    if let Some((nf, name)) = string_field(socket, "name")
        && name != "envoy.transport_sockets.tls"
    {
        report(
            with(&at, [PathStep::Field(nf)]),
            format!(
                "grpc-js servers NACK a transport socket named `{name}` (only `envoy.transport_sockets.tls`)"
            ),
        );
    }
    let (cf, context) = match any_field(socket, "typed_config") {
        Some((cf, _, Some(context))) if is_type(&context, DOWNSTREAM_TLS) => (cf, context),
        Some((cf, url, _)) => {
            report(
                with(&at, [PathStep::Field(cf)]),
                format!(
                    "gRPC servers NACK a transport socket other than a DownstreamTlsContext (this one is `{}`)",
                    url.rsplit('/').next().unwrap_or(&url)
                ),
            );
            return;
        }
        None => {
            report(
                at,
                "gRPC servers NACK a transport socket without a `typed_config` (a DownstreamTlsContext)"
                    .into(),
            );
            return;
        }
    };
    let at = with(&at, [PathStep::Field(cf)]);
    match field(&context, "common_tls_context") {
        None => report(
            at.clone(),
            "gRPC servers NACK a DownstreamTlsContext without `common_tls_context.tls_certificate_provider_instance`: they take certificates only from their bootstrap's certificate providers".into(),
        ),
        Some((ccf, common)) => {
            if let Some(common) = common.as_message() {
                let at = with(&at, [PathStep::Field(ccf)]);
                for (to, message) in common_tls_context(common, &at) {
                    report(to, message);
                }
            }
        }
    }
    if let Some((rf, true)) = bool_value(&context, "require_sni") {
        report(
            with(&at, [PathStep::Field(rf)]),
            "gRPC servers NACK `require_sni: true`".into(),
        );
    }
    if let Some((of, policy)) = field(&context, "ocsp_staple_policy")
        && policy.as_enum_number() != Some(0)
    {
        report(
            with(&at, [PathStep::Field(of)]),
            "gRPC servers NACK an `ocsp_staple_policy` other than LENIENT_STAPLING".into(),
        );
    }
}

/// What gRPC servers reject in a CommonTlsContext (at `path`): where, and why.
fn common_tls_context(common: &DynamicMessage, path: &[PathStep]) -> Vec<(Vec<PathStep>, String)> {
    let mut found = Vec::new();
    match field(common, "tls_certificate_provider_instance") {
        Some((pf, provider)) => {
            let named = provider
                .as_message()
                .and_then(|p| string_field(p, "instance_name"))
                .is_some_and(|(_, n)| !n.is_empty());
            if !named {
                found.push((
                    with(path, [PathStep::Field(pf)]),
                    "gRPC servers NACK a `tls_certificate_provider_instance` without an `instance_name` (a certificate provider of their bootstrap)".to_string(),
                ));
            }
        }
        None => {
            let why = if field(common, "tls_certificate_certificate_provider_instance").is_some() {
                "grpc-js servers NACK a DownstreamTlsContext without `tls_certificate_provider_instance` (C-core still reads the deprecated `tls_certificate_certificate_provider_instance`)"
            } else {
                "gRPC servers NACK a DownstreamTlsContext without `tls_certificate_provider_instance`: they take certificates only from their bootstrap's certificate providers"
            };
            found.push((path.to_vec(), why.to_string()));
        }
    }
    let validation = field(common, "validation_context")
        .map(|(f, v)| (vec![PathStep::Field(f)], v))
        .or_else(|| {
            let (cf, combined) = field(common, "combined_validation_context")?;
            let (df, default) = field(combined.as_message()?, "default_validation_context")?;
            Some((vec![PathStep::Field(cf), PathStep::Field(df)], default))
        });
    if let Some((steps, validation)) = validation
        && let Some(validation) = validation.as_message()
        && let Some((sf, _)) = list(validation, "match_subject_alt_names")
    {
        let mut to = with(path, steps);
        to.push(PathStep::Field(sf));
        found.push((
            to,
            "gRPC servers NACK `match_subject_alt_names` (they do not check their clients' SANs)"
                .to_string(),
        ));
    }
    found
}

/// Routes gRPC servers fail RPCs on, in the route configuration `config`
/// (at `base` in `resource`).
fn route_actions(
    resource: &Resource,
    config: &DynamicMessage,
    base: &[PathStep],
    diags: &mut Diagnostics,
) {
    each_route(config, base, |route, path| {
        if let Some((af, _)) = route_action(route)
            && af.name() != "non_forwarding_action"
        {
            let name = af.name().to_string();
            diags.report(
                &SERVER_ROUTE_ACTION,
                resource.locate(&with(&path, [PathStep::Field(af)])),
                format!("gRPC servers fail RPCs matching a route with `{name}`: they take only `non_forwarding_action` (gRFC A36)"),
            );
        }
    });
}

#[cfg(test)]
mod tests;
