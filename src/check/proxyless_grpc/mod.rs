//! What proxyless gRPC rejects or ignores in the resources it uses. Envoy
//! accepts all of it, so every finding is a warning that cites the gRFC
//! and the gRPC source it follows (C-core's `src/core/xds/grpc/`, and
//! grpc-js-xds's `src/xds-resource-type/`).
//!
//! * [`client`]: gRPC clients (gRFC A27, A28): listeners with an
//!   `api_listener`, the route configurations those name, and the clusters
//!   and endpoints those routes reach;
//! * [`server`]: xDS-enabled gRPC servers (gRFC A36): server listeners,
//!   their filter chains, TLS and routes.
//!
//! A gRPC server asks for the Listener its bootstrap's
//! `server_listener_resource_name_template` names, with `%s` replaced by
//! the `host:port` it listens on. The bootstraps xdsd prints use the
//! template `grpc/server?xds.resource.listening_address=%s`, so a listener
//! whose name starts with [`SERVER_LISTENER_PREFIX`] is a server listener,
//! for the server listening on the rest of its name.
//!
//! Both sides read an HttpConnectionManager the same way (C-core's
//! `HttpConnectionManagerParse`): `hcm_routes` checks what they share.

pub mod client;
pub mod server;

use crate::check::Rule;
use crate::config::diag::Diagnostics;
use crate::config::reflect::{field, list, string_field, unpack_any};
use crate::config::resource::field_step as step;
use crate::config::resource::{PathStep, Resource};
use crate::config::schema::ResourceType;
use prost_reflect::{DynamicMessage, FieldDescriptor, ReflectMessage, Value};
use std::borrow::Cow;

/// The start of a server listener's name: the template xdsd's gRPC
/// bootstraps give `server_listener_resource_name_template` is this
/// followed by `%s` (the server's listening `host:port`).
pub const SERVER_LISTENER_PREFIX: &str = "grpc/server?xds.resource.listening_address=";

/// The rules this module reports (all warnings: Envoy accepts these).
pub static RULES: &[&Rule] = &[
    &client::API_LISTENER_FOR_EVERYONE,
    &client::API_LISTENER_NOT_HCM,
    &ROUTER_NOT_LAST,
    &RDS_CONFIG_SOURCE,
    &client::ROUTE_ACTION,
    &client::IGNORED_FIELD,
    &client::CLUSTER_TYPE,
    &client::LB_POLICY,
    &client::LOCALITY_WEIGHT,
    &server::SERVER_LISTENER_FOR_ENVOY,
    &server::SERVER_ADDRESS,
    &server::SERVER_UNSUPPORTED_FIELD,
    &server::SERVER_FILTER_CHAIN,
    &server::SERVER_ROUTE_ACTION,
    &server::SERVER_TLS,
    &server::SERVER_CHAIN_NEVER_MATCHED,
];

/// A gRPC HCM whose filters do not end with the router.
pub static ROUTER_NOT_LAST: Rule = Rule {
    id: "grpc-router-not-last",
    summary: "a gRPC listener's http_filters do not end with the router",
    explanation: "gRPC clients and servers NACK an HttpConnectionManager whose `http_filters` do not end \
with the router filter (gRFC A39), whether it is a client's `api_listener` or a server's filter chain. \
Mirrors `HttpConnectionManagerParse` in gRPC C-core's `src/core/xds/grpc/xds_listener_parser.cc` and \
`validateHttpConnectionManager` in grpc-js-xds's `src/xds-resource-type/listener-resource-type.ts`.",
    ..Rule::WARNING
};

/// A gRPC HCM whose routes come neither inline nor by RDS over ADS.
pub static RDS_CONFIG_SOURCE: Rule = Rule {
    id: "grpc-rds-config-source",
    summary: "a gRPC HttpConnectionManager's routes come neither inline nor by RDS over ADS",
    explanation: "gRPC clients and servers take an HttpConnectionManager's routes from an inline \
`route_config`, or from `rds` whose `config_source` is `ads: {}` or `self: {}` (the xDS stream they \
already have). They NACK `scoped_routes` and any other config source, such as a `path` or an \
`api_config_source`. Mirrors `HttpConnectionManagerParse` in gRPC C-core's \
`src/core/xds/grpc/xds_listener_parser.cc` and `validateHttpConnectionManager` in grpc-js-xds's \
`src/xds-resource-type/listener-resource-type.ts`.",
    ..Rule::WARNING
};

/// Warns about what gRPC clients and servers would NACK or ignore in the
/// resources they use.
pub fn check(resources: &[Resource], diags: &mut Diagnostics) {
    client::check(resources, diags);
    server::check(resources, diags);
}

/// Which side of gRPC reads a resource, for the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

impl Side {
    fn who(self) -> &'static str {
        match self {
            Side::Client => "gRPC clients",
            Side::Server => "gRPC servers",
        }
    }
}

/// Where an HttpConnectionManager's routes come from.
enum Routes {
    /// Its inline `route_config`, and the path to it in the resource.
    Inline(DynamicMessage, Vec<PathStep>),
    /// The RouteConfiguration named by its `rds`.
    Rds(String),
    /// None that gRPC takes (reported).
    Unusable,
}

/// Is `r` the listener of a gRPC server (see the module documentation)?
pub fn is_server_listener(r: &Resource) -> bool {
    r.rtype == ResourceType::Listener && r.name.starts_with(SERVER_LISTENER_PREFIX)
}

/// Is `r` a Listener only proxyless gRPC reads: a client's `api_listener`
/// or a server's listener? No Envoy is meant to get one (the
/// `grpc-*-listener-for-envoy` warnings say so when one is served to every
/// node), so the Envoy referee does not see them and Envoy's rules that
/// gRPC does not share (a server certificate inline or over SDS) do not
/// judge them; this module's rules do.
pub fn is_for_proxyless_grpc(r: &Resource) -> bool {
    is_server_listener(r)
        || (r.rtype == ResourceType::Listener && r.message.has_field_by_name("api_listener"))
}

/// The resources of type `t` named `name`.
fn find<'r>(resources: &'r [Resource], t: ResourceType, name: &str) -> Vec<&'r Resource> {
    resources
        .iter()
        .filter(|r| r.rtype == t && r.name == name)
        .collect()
}

/// `path` followed by `steps`.
fn with(path: &[PathStep], steps: impl IntoIterator<Item = PathStep>) -> Vec<PathStep> {
    let mut p = path.to_vec();
    p.extend(steps);
    p
}

/// The `Any` in field `name` of `m`: the field, its type URL, and the
/// message it holds (when the schema knows its type).
fn any_field<'m>(
    m: &'m DynamicMessage,
    name: &str,
) -> Option<(FieldDescriptor, String, Option<Cow<'m, DynamicMessage>>)> {
    let (f, v) = field(m, name)?;
    let any = v.as_message()?;
    let url = string_field(any, "type_url")
        .map(|(_, u)| u)
        .unwrap_or_default();
    Some((f, url, unpack_any(any)))
}

/// Is `m` a message of type `full_name`?
fn is_type(m: &DynamicMessage, full_name: &str) -> bool {
    m.descriptor().full_name() == full_name
}

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// The value of a `google.protobuf.BoolValue` field, when set.
fn bool_value(m: &DynamicMessage, name: &str) -> Option<(FieldDescriptor, bool)> {
    let (f, v) = field(m, name)?;
    let value = v.as_message()?.get_field_by_name("value")?.as_bool()?;
    Some((f, value))
}

/// The checks gRPC clients and servers share on an HttpConnectionManager
/// (at `path` in `resource`): the router ends the filters, and the routes
/// come inline or by RDS over ADS. Returns where the routes come from.
fn hcm_routes(
    resource: &Resource,
    hcm: &DynamicMessage,
    path: &[PathStep],
    side: Side,
    diags: &mut Diagnostics,
) -> Routes {
    router_last(resource, hcm, path, side, diags);
    let who = side.who();
    if let Some((rf, config)) = field(hcm, "route_config") {
        return match config.as_message() {
            Some(config) => Routes::Inline(config.clone(), with(path, [PathStep::Field(rf)])),
            None => Routes::Unusable,
        };
    }
    let Some((rf, rds)) = field(hcm, "rds") else {
        // Envoy requires one of the route specifiers: this is `scoped_routes`.
        diags.report(
            &RDS_CONFIG_SOURCE,
            resource.locate(&with(path, step(hcm, "scoped_routes"))),
            format!("{who} NACK an HttpConnectionManager without `route_config` or `rds` (scoped routes are not supported)"),
        );
        return Routes::Unusable;
    };
    let Some(rds) = rds.as_message() else {
        return Routes::Unusable;
    };
    // Envoy requires the config source.
    if let Some((cf, source)) = field(rds, "config_source")
        && !source
            .as_message()
            .is_some_and(|s| s.has_field_by_name("ads") || s.has_field_by_name("self"))
    {
        diags.report(
            &RDS_CONFIG_SOURCE,
            resource.locate(&with(path, [PathStep::Field(rf), PathStep::Field(cf)])),
            format!("{who} NACK an RDS config_source other than `ads` or `self`: they fetch routes over the xDS stream they have"),
        );
    }
    match string_field(rds, "route_config_name") {
        Some((_, name)) => Routes::Rds(name),
        None => Routes::Unusable,
    }
}

/// gRPC NACKs an HttpConnectionManager whose filters do not end with the
/// router (located at the last filter, or at the HCM when it has none).
fn router_last(
    resource: &Resource,
    hcm: &DynamicMessage,
    path: &[PathStep],
    side: Side,
    diags: &mut Diagnostics,
) {
    let filters = list(hcm, "http_filters");
    let last = filters.as_ref().and_then(|(f, items)| {
        let last = items.last()?.as_message()?;
        Some((f.clone(), items.len() - 1, last))
    });
    let router_last = last.as_ref().is_some_and(|(_, _, last)| {
        any_field(last, "typed_config").is_some_and(|(_, url, _)| url.ends_with(".Router"))
    });
    if router_last {
        return;
    }
    let location = match &last {
        Some((f, i, _)) => resource.locate(&with(
            path,
            [PathStep::Field(f.clone()), PathStep::Index(*i)],
        )),
        None => resource.locate(path),
    };
    diags.report(
        &ROUTER_NOT_LAST,
        location,
        format!(
            "{} NACK an HttpConnectionManager whose http_filters do not end with the router (gRFC A39)",
            side.who()
        ),
    );
}

/// Calls `each` with every route of the route configuration `config` (at
/// `base` in its resource) and the route's path.
fn each_route(
    config: &DynamicMessage,
    base: &[PathStep],
    mut each: impl FnMut(&DynamicMessage, Vec<PathStep>),
) {
    let Some((vf, vhosts)) = list(config, "virtual_hosts") else {
        return;
    };
    for (i, vhost) in vhosts.iter().enumerate() {
        let Some(vhost) = vhost.as_message() else {
            continue;
        };
        let Some((rf, routes)) = list(vhost, "routes") else {
            continue;
        };
        for (j, route) in routes.iter().enumerate() {
            if let Some(route) = route.as_message() {
                let path = with(
                    base,
                    [
                        PathStep::Field(vf.clone()),
                        PathStep::Index(i),
                        PathStep::Field(rf.clone()),
                        PathStep::Index(j),
                    ],
                );
                each(route, path);
            }
        }
    }
}

/// The field of a route's `action` oneof that is set (`route`,
/// `non_forwarding_action`, `redirect`, ...).
fn route_action(route: &DynamicMessage) -> Option<(FieldDescriptor, &Value)> {
    let oneof = route.descriptor().oneofs().find(|o| o.name() == "action")?;
    oneof
        .fields()
        .find(|f| route.has_field(f))
        .and_then(|f| field(route, f.name()))
}
