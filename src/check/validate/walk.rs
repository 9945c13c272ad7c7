//! The walk over one resource: every message, also inside an `Any`, is
//! visited once. On the way it runs the per-message checks
//! (`crate::check::message`) and collects what the whole-set checks need
//! afterwards (the names the resource references, the addresses its
//! listener binds), so that each resource is walked once, in parallel with
//! the others, however many checks look at it.

use super::duplicates::BoundAddress;
use super::references::{Reference, in_config_source, served_over_xds};
use super::{Path, with};
use crate::config::diag::Diagnostics;
use crate::config::reflect::{field, string_field, unpack_any};
use crate::config::resource::{PathStep, Resource};
use crate::config::schema::ResourceType;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

/// One resource being walked, and what the walk has collected so far.
pub(super) struct Walk<'a> {
    pub(super) resource: &'a Resource,
    pub(super) refs: Vec<Reference>,
    pub(super) diags: Diagnostics,
    pub(super) addresses: Vec<BoundAddress>,
    /// Inside a RouteConfiguration with `validate_clusters: false`.
    pub(super) unvalidated_routes: bool,
}

impl Walk<'_> {
    pub(super) fn message(&mut self, m: &DynamicMessage, path: &mut Path) {
        if let Some(inner) = unpack_any(m) {
            // An Any's fields are written inline in YAML, so the path does not grow.
            self.message(&inner, path);
            return;
        }
        self.visit(m, path);
        let mut findings = Vec::new();
        let place = crate::check::Place {
            resource: self.resource,
            path,
        };
        crate::check::message(m, &place, &mut findings);
        for finding in findings {
            let at = with(path, finding.path);
            let location = if finding.missing {
                self.resource.locate_body(&at)
            } else {
                self.resource.locate(&at)
            };
            self.diags.report(finding.rule, location, finding.message);
        }
        for (f, v) in m.fields() {
            match v {
                Value::Message(child) => {
                    path.push(PathStep::Field(f.clone()));
                    self.message(child, path);
                    path.pop();
                }
                Value::List(items) if matches!(items.first(), Some(Value::Message(_))) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Value::Message(child) = item {
                            path.push(PathStep::Field(f.clone()));
                            path.push(PathStep::Index(i));
                            self.message(child, path);
                            path.pop();
                            path.pop();
                        }
                    }
                }
                Value::Map(entries) => {
                    for (key, child) in entries {
                        let Value::Message(child) = child else {
                            continue;
                        };
                        path.push(PathStep::Field(f.clone()));
                        path.push(PathStep::key(key));
                        self.message(child, path);
                        path.pop();
                        path.pop();
                    }
                }
                _ => {}
            }
        }
    }

    fn visit(&mut self, m: &DynamicMessage, path: &Path) {
        match m.descriptor().full_name() {
            "envoy.config.route.v3.RouteAction" => {
                let before = self.refs.len();
                self.cluster_references(m, path);
                self.route_references_from(before);
            }
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy" => {
                self.cluster_references(m, path)
            }
            "envoy.config.core.v3.GrpcService.EnvoyGrpc" if !in_config_source(path) => {
                self.cluster_field(m, path, "cluster_name", "gRPC service cluster")
            }
            "envoy.config.core.v3.HttpUri" => {
                self.cluster_field(m, path, "cluster", "HTTP URI cluster")
            }
            "envoy.config.trace.v3.ZipkinConfig"
            | "envoy.config.trace.v3.DatadogConfig"
            | "envoy.config.trace.v3.LightstepConfig" => {
                self.cluster_field(m, path, "collector_cluster", "tracer collector cluster")
            }
            "envoy.extensions.clusters.aggregate.v3.ClusterConfig" => {
                self.aggregate_clusters(m, path)
            }
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" => {
                self.http_connection_manager(m, path)
            }
            "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig" => {
                if let Some((_, source)) = field(m, "sds_config")
                    && source.as_message().is_some_and(served_over_xds)
                    && let Some((f, name)) = string_field(m, "name")
                {
                    self.reference(
                        ResourceType::Secret,
                        name,
                        with(path, [PathStep::Field(f)]),
                        "secret",
                    );
                }
            }
            "envoy.config.route.v3.ScopedRouteConfiguration" => {
                if let Some((f, name)) = string_field(m, "route_configuration_name") {
                    self.reference(
                        ResourceType::RouteConfiguration,
                        name,
                        with(path, [PathStep::Field(f)]),
                        "route configuration",
                    );
                }
            }
            "envoy.config.route.v3.RouteConfiguration" => {
                // An explicit `validate_clusters: false` lets routes name clusters
                // that do not exist yet (the default is checked, as Envoy does
                // for a route_config inlined in the connection manager).
                self.unvalidated_routes = field(m, "validate_clusters")
                    .and_then(|(_, w)| w.as_message().and_then(|w| w.get_field_by_name("value")))
                    .is_some_and(|v| v.as_bool() == Some(false));
                self.duplicate_domains(m, path)
            }
            "envoy.config.route.v3.VirtualHost" => {
                let before = self.refs.len();
                self.mirror_references(m, path);
                self.route_references_from(before);
            }
            "envoy.config.listener.v3.Listener" => self.listener(m, path),
            _ => {}
        }
    }
}
