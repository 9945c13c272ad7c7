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
//!
//! This file holds the entry points (`check_dir`, `validate`) and what the
//! checks share; the checks live beside it: `walk.rs` visits every message of
//! a resource once, `references.rs` resolves names per node view,
//! `duplicates.rs` finds what one node would be served twice, and
//! `response_size.rs` estimates the responses one node gets.

mod duplicates;
mod facts;
mod references;
mod response_size;
mod walk;

use crate::check::Rule;
use crate::config::diag::Diagnostics;
use crate::config::resource::{PathStep, Resource};
use crate::config::schema::ResourceType;
use duplicates::{BoundAddress, check_duplicate_addresses, check_duplicate_names};
pub use facts::{FactsCache, Walked};
use prost_reflect::{DynamicMessage, ReflectMessage};
use references::{check_reference, warn_unreferenced};
use response_size::check_response_sizes;
use std::collections::{HashMap, HashSet};

pub use duplicates::{DUPLICATE_ADDRESS, DUPLICATE_DOMAIN, DUPLICATE_NAME};
pub use references::{MISSING_REFERENCE, REFERENCE_NOT_VISIBLE, UNREFERENCED};
pub use response_size::{CLIENT_MESSAGE_LIMIT, RESPONSE_SIZE};

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

/// A field path inside a resource.
type Path = Vec<PathStep>;

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
    /// How many resources were walked, and how many had their facts kept.
    pub walked: Walked,
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
    check_dir_cached(dir, limits, settings, &mut LoadCaches::default())
}

/// What a long-lived loader keeps from one load to the next: each document
/// as loaded, and what validation found in each resource alone.
#[derive(Default)]
pub struct LoadCaches {
    /// Documents, by file, position and text.
    pub documents: crate::config::loader::DocumentCache,
    /// Per-resource facts, by decoded message.
    pub facts: FactsCache,
}

/// [`check_dir`] for a long-lived loader: unchanged documents, and what
/// each of their resources alone was found to hold, come from `caches`;
/// the checks across resources run on the whole set. Inline
/// `# xdsd: allow(ID)` comments and the settings' policy apply last.
pub fn check_dir_cached(
    dir: &std::path::Path,
    limits: crate::config::loader::ReadLimits,
    settings: &Settings,
    caches: &mut LoadCaches,
) -> Result<Checked, crate::config::loader::LoadError> {
    let loaded = crate::config::loader::load_dir_cached(dir, limits, &mut caches.documents)?;
    let mut diagnostics = loaded.diagnostics;
    let walked = validate_cached(
        &loaded.resources,
        settings,
        &mut diagnostics,
        &mut caches.facts,
    );
    crate::check::policy::apply_inline(&loaded.allowances, &mut diagnostics);
    settings.policy.apply(&mut diagnostics);
    scrub_secrets(&loaded.resources, &mut diagnostics);
    Ok(Checked {
        resources: loaded.resources,
        diagnostics,
        allowances: loaded.allowances,
        walked,
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
    let reported: HashSet<&str> = diags.iter().map(|d| &*d.location.file).collect();
    let mut by_file: HashMap<&str, Vec<String>> = HashMap::new();
    for r in resources.iter().filter(|r| reported.contains(&*r.file)) {
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
    validate_cached(resources, settings, diags, &mut FactsCache::default());
}

/// [`validate`] for a long-lived loader: the facts of resources that did
/// not change since the last call come from `cache` (see [`facts`]), the
/// rest are walked; the checks across resources run on the whole set.
pub fn validate_cached(
    resources: &[Resource],
    settings: &Settings,
    diags: &mut Diagnostics,
    cache: &mut FactsCache,
) -> Walked {
    let (facts, walked) = cache.facts_of(resources);
    check_duplicate_names(resources, diags);
    check_response_sizes(resources, &facts, diags);
    let mut by_name: HashMap<(ResourceType, &str), Vec<&Resource>> = HashMap::new();
    for r in resources {
        by_name
            .entry((r.rtype, r.name.as_str()))
            .or_default()
            .push(r);
    }
    let mut referenced: HashSet<(ResourceType, &str)> = HashSet::new();
    let mut listener_addresses: Vec<(usize, &BoundAddress)> = Vec::new();
    for (index, (resource, found)) in resources.iter().zip(&facts).enumerate() {
        diags.extend(found.diags.clone());
        for address in &found.addresses {
            listener_addresses.push((index, address));
        }
        for r in &found.refs {
            let targets = by_name
                .get(&(r.target, r.name.as_str()))
                .map_or(&[][..], Vec::as_slice);
            let known =
                r.target == ResourceType::Cluster && settings.known_clusters.contains(&r.name);
            if !(r.unchecked || known) {
                check_reference(resource, r, targets, diags);
            }
            referenced.insert((r.target, r.name.as_str()));
        }
    }
    check_duplicate_addresses(resources, &listener_addresses, diags);
    let dns_caches: Vec<&[_]> = facts.iter().map(|f| f.dns_caches.as_slice()).collect();
    crate::check::dns_cache::check(resources, &dns_caches, diags);
    crate::check::set(resources, diags);
    crate::check::proxyless_grpc::check(resources, diags);
    warn_unreferenced(resources, &facts, &referenced, diags);
    walked
}

fn name_path(r: &Resource) -> Path {
    let field = r
        .message
        .descriptor()
        .get_field_by_name(r.rtype.name_field());
    field.map(|f| vec![PathStep::Field(f)]).unwrap_or_default()
}

fn with(path: &Path, steps: impl IntoIterator<Item = PathStep>) -> Path {
    let mut p = path.clone();
    p.extend(steps);
    p
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
