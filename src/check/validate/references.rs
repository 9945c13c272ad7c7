//! References between resources, resolved per node view: the names a
//! resource uses to find another (clusters of routes, tcp_proxy, gRPC and
//! HTTP services, tracers and aggregate clusters; route configurations of
//! RDS and scoped routes; an EDS cluster's endpoints; secrets over SDS). A
//! target must exist and be served to every node that gets the referrer,
//! because Envoy resolves each name inside one node's view; what nothing
//! references is worth a warning.

use super::facts::Facts;
use super::walk::Walk;
use super::{Path, name_path, with};
use crate::check::Rule;
use crate::config::diag::Diagnostics;
use crate::config::reflect::{field, string_field, unpack_any};
use crate::config::resource::{PathStep, Resource};
use crate::config::schema::ResourceType;
use prost_reflect::{DynamicMessage, Value};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

/// A name that points at nothing.
pub static MISSING_REFERENCE: Rule = Rule {
    id: "missing-reference",
    summary: "a resource names a cluster, route configuration, endpoints or secret that does not exist",
    explanation: "Envoy resolves these names when it loads the resource: a route's cluster (also weighted \
clusters and mirrors), tcp_proxy clusters, gRPC services (ext_authz, ext_proc, rate limit, access log \
services), HTTP URIs (remote JWKS), tracer collectors and aggregate cluster lists name a Cluster; a \
listener's `rds` names a RouteConfiguration; an EDS cluster needs its ClusterLoadAssignment; an SDS config \
served over ADS names a Secret. A missing one is a NACK (\"unknown cluster\") or a listener or cluster that \
never finishes warming. Clusters defined in the proxies' own bootstrap are declared with \
`--known-cluster NAME`.",
    envoy: "source/common/router/config_impl.cc",
    ..Rule::ERROR
};

/// A reference some of the referrer's nodes cannot see.
pub static REFERENCE_NOT_VISIBLE: Rule = Rule {
    id: "reference-not-visible",
    summary: "a referenced resource is not served to every node that gets the referrer",
    explanation: "References are resolved per node: every node that is served the referring resource must \
also be served what it names. Widen the target's `nodes` selector, or narrow the referrer's.",
    ..Rule::ERROR
};

/// A resource nothing uses.
pub static UNREFERENCED: Rule = Rule {
    id: "unreferenced",
    summary: "a cluster or route configuration is not referenced by any resource",
    explanation: "Nothing in the directory names this cluster or route configuration, so it costs memory and \
health checks on every proxy without carrying traffic. A cluster's own ClusterLoadAssignment is not a use; \
an aggregate cluster's list is. Clusters are only reported when the directory has listeners.",
    ..Rule::WARNING
};

/// A name one resource uses to find another.
#[derive(Debug)]
pub(super) struct Reference {
    pub(super) target: ResourceType,
    pub(super) name: String,
    pub(super) path: Path,
    pub(super) what: &'static str,
    /// Named by a route table with `validate_clusters: false`: Envoy loads
    /// it whether or not the cluster exists (and answers 503 meanwhile).
    pub(super) unchecked: bool,
}

pub(super) fn check_reference(
    referrer: &Resource,
    r: &Reference,
    targets: &[&Resource],
    diags: &mut Diagnostics,
) {
    let location = referrer.locate(&r.path);
    if targets.is_empty() {
        let hint = if r.target == ResourceType::Cluster {
            " (a cluster from the proxies' bootstrap is declared with --known-cluster)"
        } else {
            ""
        };
        diags.report(
            &MISSING_REFERENCE,
            location,
            format!("{} `{}` does not exist{hint}", r.what, r.name),
        );
        return;
    }
    let parts = referrer.selector.parts();
    if !parts
        .iter()
        .all(|part| targets.iter().any(|t| t.selector.covers(part)))
    {
        let seen_by: Vec<String> = targets.iter().map(|t| t.selector.describe()).collect();
        diags.report(
            &REFERENCE_NOT_VISIBLE,
            location,
            format!(
                "{} `{}` is served to {}, but this {} is served to {}: some nodes would lack it",
                r.what,
                r.name,
                seen_by.join(" / "),
                referrer.rtype.kind_name(),
                referrer.selector.describe()
            ),
        );
    }
}

pub(super) fn warn_unreferenced(
    resources: &[Resource],
    facts: &[Arc<Facts>],
    referenced: &HashSet<(ResourceType, &str)>,
    diags: &mut Diagnostics,
) {
    let any_listener = resources.iter().any(|r| r.rtype == ResourceType::Listener);
    // Computed only if some cluster is not referenced directly: it walks everything.
    let mentioned = std::cell::OnceCell::new();
    let mentions = || -> HashSet<&str> {
        resources
            .iter()
            .zip(facts)
            .flat_map(|(r, f)| f.cluster_mentions(r).iter().map(String::as_str))
            .collect()
    };
    for r in resources {
        let unused = match r.rtype {
            ResourceType::RouteConfiguration => !referenced.contains(&(r.rtype, r.name.as_str())),
            // Clusters may be used by things outside the directory (bootstrap, other
            // filters); only flag them when the directory has listeners that could.
            ResourceType::Cluster => {
                any_listener
                    && !referenced.contains(&(r.rtype, r.name.as_str()))
                    && !mentioned.get_or_init(mentions).contains(r.name.as_str())
            }
            _ => false,
        };
        if unused {
            diags.report(
                &UNREFERENCED,
                r.locate(&name_path(r)),
                format!(
                    "{} `{}` is not referenced by any resource",
                    r.rtype.kind_name(),
                    r.name
                ),
            );
        }
    }
}

/// Every string in a field named like a cluster reference, anywhere in `m`
/// (ext_authz services, JWKS fetchers, tracers, ...): each counts as a use.
/// Clusters are scanned too (an extension may list others).
pub(super) fn cluster_mentions_of(m: &DynamicMessage) -> Vec<String> {
    fn collect(m: &DynamicMessage, out: &mut Vec<String>) {
        let m = unpack_any(m).unwrap_or(Cow::Borrowed(m));
        for (f, v) in m.fields() {
            match v {
                Value::String(s) if f.name().contains("cluster") => {
                    out.push(s.clone());
                }
                Value::List(items) if f.name().contains("cluster") => {
                    out.extend(items.iter().filter_map(|i| i.as_str().map(str::to_string)));
                    items
                        .iter()
                        .filter_map(Value::as_message)
                        .for_each(|i| collect(i, out));
                }
                Value::Message(inner) => collect(inner, out),
                Value::List(items) => items
                    .iter()
                    .filter_map(Value::as_message)
                    .for_each(|i| collect(i, out)),
                Value::Map(entries) => entries
                    .values()
                    .filter_map(Value::as_message)
                    .for_each(|i| collect(i, out)),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    collect(m, &mut out);
    out
}

/// Is the message at `path` inside an ApiConfigSource? Its gRPC services
/// name the management server's cluster, which lives in the bootstrap.
pub(super) fn in_config_source(path: &Path) -> bool {
    path.iter().any(|step| {
        matches!(step, PathStep::Field(f) if f.parent_message().full_name() == "envoy.config.core.v3.ApiConfigSource")
    })
}

/// Is a ConfigSource one that xdsd serves (ADS or a gRPC API), as opposed to a file on the proxy?
pub(super) fn served_over_xds(config_source: &DynamicMessage) -> bool {
    !config_source.has_field_by_name("path")
        && !config_source.has_field_by_name("path_config_source")
}

impl Walk<'_> {
    pub(super) fn reference(
        &mut self,
        target: ResourceType,
        name: String,
        path: Path,
        what: &'static str,
    ) {
        if !name.is_empty() {
            self.refs.push(Reference {
                target,
                name,
                path,
                what,
                unchecked: false,
            });
        }
    }

    pub(super) fn cluster_references(&mut self, m: &DynamicMessage, path: &Path) {
        // A tcp_proxy naming an unknown cluster loads, but every connection
        // through it fails: an error too.
        self.cluster_field(m, path, "cluster", "cluster");
        self.more_cluster_references(m, path);
    }

    /// A string field of `m` naming a cluster.
    pub(super) fn cluster_field(
        &mut self,
        m: &DynamicMessage,
        path: &Path,
        name: &str,
        what: &'static str,
    ) {
        if let Some((f, cluster)) = string_field(m, name) {
            self.reference(
                ResourceType::Cluster,
                cluster,
                with(path, [PathStep::Field(f)]),
                what,
            );
        }
    }

    /// An aggregate cluster's list of clusters, tried in order.
    pub(super) fn aggregate_clusters(&mut self, m: &DynamicMessage, path: &Path) {
        let Some((f, Value::List(names))) = field(m, "clusters") else {
            return;
        };
        for (i, name) in names.iter().enumerate() {
            if let Some(name) = name.as_str() {
                let p = with(path, [PathStep::Field(f.clone()), PathStep::Index(i)]);
                self.reference(
                    ResourceType::Cluster,
                    name.to_string(),
                    p,
                    "aggregate cluster member",
                );
            }
        }
    }

    fn more_cluster_references(&mut self, m: &DynamicMessage, path: &Path) {
        if let Some((wf, weighted)) = field(m, "weighted_clusters")
            && let Some((cf, Value::List(clusters))) =
                weighted.as_message().and_then(|w| field(w, "clusters"))
        {
            for (i, c) in clusters.iter().enumerate() {
                if let Some((nf, name)) = c.as_message().and_then(|c| string_field(c, "name")) {
                    let p = with(
                        path,
                        [
                            PathStep::Field(wf.clone()),
                            PathStep::Field(cf.clone()),
                            PathStep::Index(i),
                            PathStep::Field(nf),
                        ],
                    );
                    self.reference(ResourceType::Cluster, name, p, "weighted cluster");
                }
            }
        }
        self.mirror_references(m, path);
    }

    /// Marks the references made since `before` as a route table's, which
    /// `validate_clusters: false` exempts.
    pub(super) fn route_references_from(&mut self, before: usize) {
        let unchecked = self.unvalidated_routes;
        for r in self.refs.iter_mut().skip(before) {
            r.unchecked = unchecked;
        }
    }

    /// Request mirror policies (of a route action or a virtual host).
    pub(super) fn mirror_references(&mut self, m: &DynamicMessage, path: &Path) {
        if let Some((mf, Value::List(mirrors))) = field(m, "request_mirror_policies") {
            for (i, mirror) in mirrors.iter().enumerate() {
                if let Some((cf, name)) =
                    mirror.as_message().and_then(|m| string_field(m, "cluster"))
                {
                    let p = with(
                        path,
                        [
                            PathStep::Field(mf.clone()),
                            PathStep::Index(i),
                            PathStep::Field(cf),
                        ],
                    );
                    self.reference(ResourceType::Cluster, name, p, "mirror cluster");
                }
            }
        }
    }

    pub(super) fn http_connection_manager(&mut self, m: &DynamicMessage, path: &Path) {
        if let Some((rf, rds)) = field(m, "rds")
            && let Some(rds) = rds.as_message()
        {
            let ours = field(rds, "config_source")
                .is_some_and(|(_, s)| s.as_message().is_some_and(served_over_xds));
            match (ours, string_field(rds, "route_config_name")) {
                (true, Some((nf, name))) => self.reference(
                    ResourceType::RouteConfiguration,
                    name,
                    with(path, [PathStep::Field(rf), PathStep::Field(nf)]),
                    "route configuration",
                ),
                // Envoy would ask for a route configuration named "", which
                // no resource is: the listener would never become ready.
                (true, None) => self.diags.report(
                    &MISSING_REFERENCE,
                    self.resource.locate(&with(path, [PathStep::Field(rf)])),
                    "rds has no route_config_name: Envoy asks for a route configuration named \"\", \
                     which no resource can be, and the listener never becomes ready"
                        .to_string(),
                ),
                _ => {}
            }
        }
    }

    pub(super) fn eds_reference(&mut self) {
        let m = &self.resource.message;
        const EDS: i32 = 3;
        if field(m, "type").and_then(|(_, v)| v.as_enum_number()) != Some(EDS) {
            return;
        }
        let Some((ef, eds)) = field(m, "eds_cluster_config") else {
            return;
        };
        let Some(eds) = eds.as_message() else { return };
        if field(eds, "eds_config")
            .is_some_and(|(_, s)| s.as_message().is_some_and(|s| !served_over_xds(s)))
        {
            return;
        }
        let (name, path) = match string_field(eds, "service_name") {
            Some((sf, service)) if !service.is_empty() => {
                (service, vec![PathStep::Field(ef), PathStep::Field(sf)])
            }
            _ => (self.resource.name.clone(), name_path(self.resource)),
        };
        self.reference(
            ResourceType::ClusterLoadAssignment,
            name,
            path,
            "endpoints (ClusterLoadAssignment)",
        );
    }
}
