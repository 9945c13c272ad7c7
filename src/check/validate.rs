//! Whole-set validation: what Envoy checks across resources or beyond the
//! schema. Runs after loading (which already checked syntax, schema and
//! `validate.rules`):
//!
//! * duplicate names of one type that one node could both see;
//! * references, per node view: route → cluster (also weighted clusters and
//!   mirrors), tcp_proxy → cluster, listener RDS → RouteConfiguration, EDS
//!   cluster → ClusterLoadAssignment, SDS over xDS → Secret, scoped route →
//!   RouteConfiguration; the target must be visible to every node that sees
//!   the referrer;
//! * route tables: duplicate virtual-host domains;
//! * listeners: duplicate addresses (filter-chain matches: check::listeners);
//! * HTTP filter chains: the router (a terminal filter) must come last.

use crate::check::Rule;
use crate::config::diag::Diagnostics;
use crate::config::reflect::{field, string_field, unpack_any};
use crate::config::resource::{PathStep, Resource};
use crate::config::schema::ResourceType;
use crate::config::selector::NodeSelector;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// The rules this module reports.
pub static RULES: &[&Rule] = &[
    &DUPLICATE_NAME,
    &MISSING_REFERENCE,
    &REFERENCE_NOT_VISIBLE,
    &DUPLICATE_DOMAIN,
    &DUPLICATE_ADDRESS,
    &UNREFERENCED,
    &RESPONSE_SIZE,
];

/// Two resources of one type and name that one node could both see.
pub static DUPLICATE_NAME: Rule = Rule {
    id: "duplicate-name",
    summary: "two resources of one type and name can be served to the same node",
    explanation: "A node is served at most one resource of each type and name. Two definitions that one node \
could both see (no `nodes` selectors, or overlapping ones) are ambiguous, and Envoy refuses duplicates \
(\"duplicate cluster\", \"duplicate listener\"). Rename one, or give them disjoint `nodes` selectors.",
    envoy: "source/common/upstream/cluster_manager_impl.cc",
    ..Rule::ERROR
};

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

/// A domain in two virtual hosts.
pub static DUPLICATE_DOMAIN: Rule = Rule {
    id: "route-duplicate-domain",
    summary: "a domain appears twice in one route configuration",
    explanation: "Each domain (and the wildcard `*`) may appear in only one virtual host of a route \
configuration, once (\"Only unique values for domains are permitted\").",
    envoy: "source/common/router/config_impl.cc",
    ..Rule::ERROR
};

/// Two listeners on one address.
pub static DUPLICATE_ADDRESS: Rule = Rule {
    id: "listener-duplicate-address",
    summary: "two listeners one node could get bind the same address",
    explanation: "Two listeners served to one node use the same address and port, through their main or \
additional addresses (\"has duplicate address ... as existing listener\"); listeners with \
`bind_to_port: false` count too, and IPs compare after parsing. Only port 0 (a fresh port per bind) and \
TCP against UDP are exempt. Change one port, merge the listeners, or serve them to different nodes.",
    envoy: "source/common/listener_manager/listener_manager_impl.cc",
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

/// One type's resources over gRPC's default message limit.
pub static RESPONSE_SIZE: Rule = Rule {
    id: "response-over-grpc-limit",
    summary: "a node's resources of one type exceed gRPC's default 4 MiB message size",
    explanation: "A state-of-the-world response (and a delta client's first one) carries every resource of \
the type: over 4 MiB, gRPC clients refuse it by default (GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH). Envoy accepts \
more.",
    ..Rule::WARNING
};

/// A field path inside a resource.
type Path = Vec<PathStep>;

/// A name one resource uses to find another.
#[derive(Debug)]
struct Reference {
    target: ResourceType,
    name: String,
    path: Path,
    what: &'static str,
    /// Named by a route table with `validate_clusters: false`: Envoy loads
    /// it whether or not the cluster exists (and answers 503 meanwhile).
    unchecked: bool,
}

/// What a check knows beyond the directory, and which rules it applies.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Clusters defined in the proxies' own bootstrap (`--known-cluster`):
    /// references to them need no Cluster in the directory.
    pub known_clusters: std::collections::BTreeSet<String>,
    /// `--allow` and `--deny`.
    pub policy: crate::check::policy::Policy,
    /// An Envoy that also validates every node view of a set that passed
    /// xdsd's own checks (`--envoy`, `--envoy-validate`).
    pub envoy: Option<std::path::PathBuf>,
}

/// A loaded and fully validated directory.
#[derive(Debug)]
pub struct Checked {
    /// Every resource read (also when there are errors).
    pub resources: Vec<Resource>,
    /// Every finding of loading and validation.
    pub diagnostics: Diagnostics,
    /// Rules allowed by comments, per document (they apply to later findings too).
    pub allowances: Vec<crate::check::policy::Allowance>,
}

impl Checked {
    /// Has `referee` validate every node view, when nothing else is wrong;
    /// its findings are allowed and denied like every other.
    pub fn referee(&mut self, referee: &crate::check::referee::Referee, settings: &Settings) {
        if !self.diagnostics.is_ok() {
            return;
        }
        let mut found = referee.check(&self.resources, &settings.known_clusters);
        crate::check::policy::apply_inline(&self.allowances, &mut found);
        settings.policy.apply(&mut found);
        self.diagnostics.extend(found);
    }
}

/// Loads `dir` and runs every check: what `lint`, `render`, `diff` and `serve` share.
pub fn check_dir(dir: &std::path::Path) -> Result<Checked, crate::config::loader::LoadError> {
    check_dir_with(
        dir,
        crate::config::loader::ReadLimits::default(),
        &Settings::default(),
    )
}

/// [`check_dir`] with other limits and settings.
pub fn check_dir_with(
    dir: &std::path::Path,
    limits: crate::config::loader::ReadLimits,
    settings: &Settings,
) -> Result<Checked, crate::config::loader::LoadError> {
    check_dir_cached(
        dir,
        limits,
        settings,
        &mut crate::config::loader::DocumentCache::default(),
    )
}

/// [`check_dir`] for a long-lived loader: unchanged documents come from
/// `cache`; every cross-resource check runs on the whole set. Inline
/// `# xdsd: allow(ID)` comments and the settings' policy apply last.
pub fn check_dir_cached(
    dir: &std::path::Path,
    limits: crate::config::loader::ReadLimits,
    settings: &Settings,
    cache: &mut crate::config::loader::DocumentCache,
) -> Result<Checked, crate::config::loader::LoadError> {
    let loaded = crate::config::loader::load_dir_cached(dir, limits, cache)?;
    let mut diagnostics = loaded.diagnostics;
    validate(&loaded.resources, settings, &mut diagnostics);
    crate::check::policy::apply_inline(&loaded.allowances, &mut diagnostics);
    settings.policy.apply(&mut diagnostics);
    scrub_secrets(&loaded.resources, &mut diagnostics);
    Ok(Checked {
        resources: loaded.resources,
        diagnostics,
        allowances: loaded.allowances,
    })
}

/// No finding quotes a secret of its file: whatever a check echoes, the
/// sensitive values of the resources in the same file are redacted from it
/// (the decoder already does this for what it reports inside a secret).
fn scrub_secrets(resources: &[Resource], diags: &mut Diagnostics) {
    // Walking every message costs time on large sets; a clean one needs none.
    if diags.iter().next().is_none() {
        return;
    }
    let mut by_file: HashMap<&str, Vec<String>> = HashMap::new();
    for r in resources {
        let secrets = crate::config::redact::secrets(&r.message);
        if !secrets.is_empty() {
            by_file.entry(&r.file).or_default().extend(secrets);
        }
    }
    if by_file.is_empty() {
        return;
    }
    diags.adjust(|d| {
        if let Some(secrets) = by_file.get(&*d.location.file) {
            d.message = crate::config::redact::scrub(&d.message, secrets);
        }
    });
}

/// Runs every cross-resource check, adding findings to `diags`.
pub fn validate(resources: &[Resource], settings: &Settings, diags: &mut Diagnostics) {
    check_duplicate_names(resources, diags);
    check_response_sizes(resources, diags);
    let mut by_name: HashMap<(ResourceType, &str), Vec<&Resource>> = HashMap::new();
    for r in resources {
        by_name
            .entry((r.rtype, r.name.as_str()))
            .or_default()
            .push(r);
    }
    let mut referenced: HashSet<(ResourceType, String)> = HashSet::new();
    let mut listener_addresses: Vec<(usize, BoundAddress)> = Vec::new();
    // Each resource is walked on its own (in parallel); findings are merged in order.
    let walks = crate::config::parallel::map(resources, |resource| {
        let mut walk = Walk {
            resource,
            refs: Vec::new(),
            diags: Diagnostics::default(),
            addresses: Vec::new(),
            unvalidated_routes: false,
        };
        walk.message(&resource.message, &mut Vec::new());
        if resource.rtype == ResourceType::Cluster {
            walk.eds_reference();
        }
        (walk.refs, walk.addresses, walk.diags)
    });
    for (index, (resource, (refs, addresses, found))) in resources.iter().zip(walks).enumerate() {
        diags.extend(found);
        for address in addresses {
            listener_addresses.push((index, address));
        }
        for r in refs {
            let targets = by_name
                .get(&(r.target, r.name.as_str()))
                .map_or(&[][..], Vec::as_slice);
            let known =
                r.target == ResourceType::Cluster && settings.known_clusters.contains(&r.name);
            if !(r.unchecked || known) {
                check_reference(resource, &r, targets, diags);
            }
            referenced.insert((r.target, r.name));
        }
    }
    check_duplicate_addresses(resources, &listener_addresses, diags);
    crate::check::set(resources, diags);
    crate::check::grpc::check(resources, diags);
    warn_unreferenced(resources, &referenced, diags);
}

/// What gRPC clients accept in one message by default (Envoy's own limit is higher).
pub const CLIENT_MESSAGE_LIMIT: usize = 4 * 1024 * 1024;

/// Warns when one type's resources, as one node sees them, would make a
/// response over [`CLIENT_MESSAGE_LIMIT`]: a SotW response carries them
/// all, and so does a client's first delta response. A node is estimated
/// to see the resources for everyone plus those of one selector.
fn check_response_sizes(resources: &[Resource], diags: &mut Diagnostics) {
    use prost::Message;
    let mut shared: HashMap<ResourceType, usize> = HashMap::new();
    let mut targeted: HashMap<(ResourceType, &NodeSelector), (usize, &Resource)> = HashMap::new();
    for r in resources {
        let size = r.message.encoded_len();
        if r.selector.is_everyone() {
            *shared.entry(r.rtype).or_default() += size;
        }
        let slot = targeted.entry((r.rtype, &r.selector)).or_insert((0, r));
        if !r.selector.is_everyone() {
            slot.0 += size;
        }
    }
    let mut warned: HashSet<ResourceType> = HashSet::new();
    let mut groups: Vec<_> = targeted.into_iter().collect();
    groups.sort_by_key(|((t, selector), _)| (*t, (*selector).clone()));
    for ((rtype, selector), (own, first)) in groups {
        let total = own + shared.get(&rtype).copied().unwrap_or(0);
        if total > CLIENT_MESSAGE_LIMIT && warned.insert(rtype) {
            diags.report(
                &RESPONSE_SIZE,
                first.location(),
                format!(
                    "a node matching {} gets {:.1} MiB of {} resources in one response; gRPC clients refuse messages over 4 MiB by default (GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH), Envoy accepts more",
                    selector.describe(),
                    total as f64 / (1024.0 * 1024.0),
                    rtype.kind_name()
                ),
            );
        }
    }
}

fn check_duplicate_names(resources: &[Resource], diags: &mut Diagnostics) {
    let mut by_name: HashMap<(ResourceType, &str), Vec<&Resource>> = HashMap::new();
    for r in resources {
        if r.name.is_empty() {
            continue;
        }
        let earlier = by_name.entry((r.rtype, r.name.as_str())).or_default();
        if let Some(first) = earlier.iter().find(|e| e.selector.overlaps(&r.selector)) {
            diags.report(
                &DUPLICATE_NAME,
                r.locate(&name_path(r)),
                format!(
                    "duplicate {} `{}`: also defined at {} for {}",
                    r.rtype.kind_name(),
                    r.name,
                    first.locate(&name_path(first)),
                    if first.selector == r.selector {
                        "the same nodes".to_string()
                    } else {
                        "overlapping nodes".to_string()
                    }
                ),
            );
        }
        earlier.push(r);
    }
}

fn name_path(r: &Resource) -> Path {
    let field = r
        .message
        .descriptor()
        .get_field_by_name(r.rtype.name_field());
    field.map(|f| vec![PathStep::Field(f)]).unwrap_or_default()
}

fn check_reference(
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

/// One listen address of a listener, for the duplicate-address check.
#[derive(Debug)]
struct BoundAddress {
    /// `ip:port` (the IP in canonical form) or a pipe path, with `/udp`
    /// for datagram listeners: equal texts are equal addresses to Envoy.
    text: String,
    /// Where to report it (its port).
    path: Path,
    /// Does its listener bind (`bind_to_port` not false)?
    binds: bool,
    /// Port 0 (any free port).
    port_zero: bool,
}

/// Envoy's ListenerImpl::hasDuplicatedAddress: a later listener may not
/// use an address of an earlier one of the same socket type, except that
/// port 0 (a fresh port each time) only clashes with a non-binding listener.
fn check_duplicate_addresses(
    resources: &[Resource],
    addresses: &[(usize, BoundAddress)],
    diags: &mut Diagnostics,
) {
    for (i, (index, address)) in addresses.iter().enumerate() {
        let resource = &resources[*index];
        let clash = addresses[..i].iter().find(|(other, a)| {
            a.text == address.text
                && other != index
                && !(address.port_zero && a.binds)
                && resources[*other].name != resource.name
                && resources[*other].selector.overlaps(&resource.selector)
        });
        if let Some((other, earlier)) = clash {
            diags.report(
                &DUPLICATE_ADDRESS,
                resource.locate(&address.path),
                format!(
                    "listener `{}` binds {}, already used by listener `{}` ({})",
                    resource.name,
                    address.text,
                    resources[*other].name,
                    resources[*other].locate(&earlier.path)
                ),
            );
        }
    }
}

fn warn_unreferenced(
    resources: &[Resource],
    referenced: &HashSet<(ResourceType, String)>,
    diags: &mut Diagnostics,
) {
    let any_listener = resources.iter().any(|r| r.rtype == ResourceType::Listener);
    // Computed only if some cluster is not referenced directly: it walks everything.
    let mentioned = std::cell::OnceCell::new();
    for r in resources {
        let unused = match r.rtype {
            ResourceType::RouteConfiguration => !referenced.contains(&(r.rtype, r.name.clone())),
            // Clusters may be used by things outside the directory (bootstrap, other
            // filters); only flag them when the directory has listeners that could.
            ResourceType::Cluster => {
                any_listener
                    && !referenced.contains(&(r.rtype, r.name.clone()))
                    && !mentioned
                        .get_or_init(|| cluster_mentions(resources))
                        .contains(r.name.as_str())
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

/// Every string in a field named like a cluster reference, anywhere outside
/// clusters (ext_authz services, JWKS fetchers, tracers, ...): each counts as a use.
fn cluster_mentions(resources: &[Resource]) -> HashSet<String> {
    fn collect(m: &DynamicMessage, out: &mut HashSet<String>) {
        let m = unpack_any(m).unwrap_or(Cow::Borrowed(m));
        for (f, v) in m.fields() {
            match v {
                Value::String(s) if f.name().contains("cluster") => {
                    out.insert(s.clone());
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
    let mut out = HashSet::new();
    // A ClusterLoadAssignment is no use of its cluster; clusters are
    // scanned too (an extension may list others), all but their own names.
    resources
        .iter()
        .filter(|r| r.rtype != ResourceType::ClusterLoadAssignment)
        .for_each(|r| collect(&r.message, &mut out));
    out
}

fn with(path: &Path, steps: impl IntoIterator<Item = PathStep>) -> Path {
    let mut p = path.clone();
    p.extend(steps);
    p
}

/// Is the message at `path` inside an ApiConfigSource? Its gRPC services
/// name the management server's cluster, which lives in the bootstrap.
fn in_config_source(path: &Path) -> bool {
    path.iter().any(|step| {
        matches!(step, PathStep::Field(f) if f.parent_message().full_name() == "envoy.config.core.v3.ApiConfigSource")
    })
}

/// Is a ConfigSource one that xdsd serves (ADS or a gRPC API), as opposed to a file on the proxy?
fn served_over_xds(config_source: &DynamicMessage) -> bool {
    !config_source.has_field_by_name("path")
        && !config_source.has_field_by_name("path_config_source")
}

struct Walk<'a> {
    resource: &'a Resource,
    refs: Vec<Reference>,
    diags: Diagnostics,
    addresses: Vec<BoundAddress>,
    /// Inside a RouteConfiguration with `validate_clusters: false`.
    unvalidated_routes: bool,
}

impl Walk<'_> {
    fn message(&mut self, m: &DynamicMessage, path: &mut Path) {
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

    fn reference(&mut self, target: ResourceType, name: String, path: Path, what: &'static str) {
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

    fn cluster_references(&mut self, m: &DynamicMessage, path: &Path) {
        // A tcp_proxy naming an unknown cluster loads, but every connection
        // through it fails: an error too.
        self.cluster_field(m, path, "cluster", "cluster");
        self.more_cluster_references(m, path);
    }

    /// A string field of `m` naming a cluster.
    fn cluster_field(&mut self, m: &DynamicMessage, path: &Path, name: &str, what: &'static str) {
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
    fn aggregate_clusters(&mut self, m: &DynamicMessage, path: &Path) {
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
    fn route_references_from(&mut self, before: usize) {
        let unchecked = self.unvalidated_routes;
        for r in self.refs.iter_mut().skip(before) {
            r.unchecked = unchecked;
        }
    }

    /// Request mirror policies (of a route action or a virtual host).
    fn mirror_references(&mut self, m: &DynamicMessage, path: &Path) {
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

    fn http_connection_manager(&mut self, m: &DynamicMessage, path: &Path) {
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

    fn duplicate_domains(&mut self, m: &DynamicMessage, path: &Path) {
        let Some((vf, Value::List(vhosts))) = field(m, "virtual_hosts") else {
            return;
        };
        let mut seen: HashMap<String, String> = HashMap::new();
        for (i, vhost) in vhosts.iter().enumerate() {
            let Some(vhost) = vhost.as_message() else {
                continue;
            };
            let vhost_name = string_field(vhost, "name")
                .map(|(_, n)| n)
                .unwrap_or_default();
            let Some((df, Value::List(domains))) = field(vhost, "domains") else {
                continue;
            };
            for (j, domain) in domains.iter().enumerate() {
                let Some(domain) = domain.as_str() else {
                    continue;
                };
                let key = domain.to_ascii_lowercase();
                if let Some(first) = seen.insert(key, vhost_name.clone()) {
                    let p = with(
                        path,
                        [
                            PathStep::Field(vf.clone()),
                            PathStep::Index(i),
                            PathStep::Field(df.clone()),
                            PathStep::Index(j),
                        ],
                    );
                    self.diags.report(
                        &DUPLICATE_DOMAIN,
                        self.resource.locate(&p),
                        format!("domain `{domain}` appears in virtual hosts `{first}` and `{vhost_name}`; Envoy requires domains to be unique in a route configuration"),
                    );
                }
            }
        }
    }

    fn listener(&mut self, m: &DynamicMessage, path: &Path) {
        let binds = field(m, "bind_to_port").is_none_or(|(_, v)| {
            v.as_message()
                .and_then(|w| w.get_field_by_name("value"))
                .and_then(|v| v.as_bool())
                != Some(false)
        });
        // The listener's socket type comes from its main address.
        let udp = crate::check::listeners::is_udp(m);
        let mut addresses = Vec::new();
        if let Some((af, Value::Message(address))) = field(m, "address") {
            addresses.push((with(path, [PathStep::Field(af)]), address));
        }
        if let Some((lf, Value::List(items))) = field(m, "additional_addresses") {
            for (i, item) in items.iter().enumerate() {
                if let Some((af, Value::Message(address))) =
                    item.as_message().and_then(|a| field(a, "address"))
                {
                    let p = with(
                        path,
                        [
                            PathStep::Field(lf.clone()),
                            PathStep::Index(i),
                            PathStep::Field(af),
                        ],
                    );
                    addresses.push((p, address));
                }
            }
        }
        for (mut p, address) in addresses {
            if let Some((text, port_zero, steps)) = socket_address_text(address) {
                p.extend(steps);
                self.addresses.push(BoundAddress {
                    text: format!("{text}{}", if udp { "/udp" } else { "" }),
                    path: p,
                    binds,
                    port_zero,
                });
            }
        }
    }

    fn eds_reference(&mut self) {
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

/// `ip:port` (or a pipe's path) of an Address, whether the port is 0, and
/// the path to the port. IPs are compared as Envoy does, after parsing.
fn socket_address_text(address: &DynamicMessage) -> Option<(String, bool, Path)> {
    if let Some((pf, Value::Message(pipe))) = field(address, "pipe") {
        let path = string_field(pipe, "path")
            .map(|(_, p)| p)
            .unwrap_or_default();
        return Some((format!("pipe:{path}"), false, vec![PathStep::Field(pf)]));
    }
    let (sf, Value::Message(sa)) = field(address, "socket_address")? else {
        return None;
    };
    let host = string_field(sa, "address")
        .map(|(_, h)| h)
        .unwrap_or_default();
    // Scoped IPv6 addresses keep their text: the scope tells them apart.
    let port = field(sa, "port_value")
        .and_then(|(_, v)| v.as_u32())
        .unwrap_or(0);
    let text = match crate::check::listeners::filter_chains::parse_ip(&host) {
        Some(ip) if !host.contains('%') => {
            std::net::SocketAddr::new(ip, u16::try_from(port).unwrap_or(0)).to_string()
        }
        _ => format!("{host}:{port}"),
    };
    let port_field = sa.descriptor().get_field_by_name("port_value")?;
    Some((
        text,
        port == 0,
        vec![PathStep::Field(sf), PathStep::Field(port_field)],
    ))
}

/// A canonical text form of a message, independent of map order.
pub fn canonical_json(m: &DynamicMessage) -> String {
    let options = prost_reflect::SerializeOptions::new().use_proto_field_name(true);
    let mut serializer = serde_json::Serializer::new(Vec::new());
    match m.serialize_with_options(&mut serializer, &options) {
        Ok(()) => {
            // serde_json's Map is ordered by key, so re-parsing sorts every object.
            let value: serde_json::Value =
                serde_json::from_slice(&serializer.into_inner()).unwrap_or_default();
            value.to_string()
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests;
