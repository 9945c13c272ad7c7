//! Extensions that Envoy finds by the type of their `typed_config` (filters,
//! transport sockets, access loggers, tracers, ...): written with a name
//! alone, they cannot be built, whatever the name says.

use super::{get, missing};
use crate::check::{Finding, Place, Rule};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, ReflectMessage};

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
