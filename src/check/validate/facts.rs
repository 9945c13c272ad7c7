//! What validation learns from one resource alone, kept between loads.
//!
//! Every whole-set check starts from a walk over each resource (names it
//! references, addresses it binds, per-message findings, DNS cache configs,
//! cluster mentions, its encoded size): ~20 µs a resource, 200 ms for
//! 10,000. None of it depends on the other resources, so a long-lived
//! loader (the daemon's loader process) keeps it per resource, and a reload
//! walks only the resources of documents that changed; the whole-set checks
//! then combine the facts with hash lookups. An unchanged document hands
//! back the same decoded message and YAML (`config::loader::DocumentCache`),
//! which is how its facts are found again.

use super::duplicates::BoundAddress;
use super::references::{Reference, cluster_mentions_of};
use super::walk::Walk;
use crate::check::dns_cache::DnsCacheConfig;
use crate::config::diag::Diagnostics;
use crate::config::resource::Resource;
use crate::config::schema::ResourceType;
use crate::config::yaml::Node;
use prost_reflect::DynamicMessage;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// What the checks derive from one resource, without looking at any other.
#[derive(Debug)]
pub(super) struct Facts {
    /// The names it uses to find other resources.
    pub(super) refs: Vec<Reference>,
    /// The addresses its listener binds.
    pub(super) addresses: Vec<BoundAddress>,
    /// Findings of the per-message checks.
    pub(super) diags: Diagnostics,
    /// Its `dns_cache_config`s.
    pub(super) dns_caches: Vec<DnsCacheConfig>,
    /// Strings in fields named like a cluster reference (computed when first
    /// needed: only when some cluster is not referenced directly).
    cluster_mentions: OnceLock<Vec<String>>,
    /// The size of its encoding.
    pub(super) encoded_len: usize,
}

impl Facts {
    fn of(resource: &Resource) -> Facts {
        use prost::Message;
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
        Facts {
            refs: walk.refs,
            addresses: walk.addresses,
            diags: walk.diags,
            dns_caches: crate::check::dns_cache::configs_in(&resource.message),
            cluster_mentions: OnceLock::new(),
            encoded_len: resource.message.encoded_len(),
        }
    }

    /// Strings in fields named like a cluster reference, anywhere in the
    /// resource (a ClusterLoadAssignment mentions none: it is no use of its cluster).
    pub(super) fn cluster_mentions(&self, resource: &Resource) -> &[String] {
        self.cluster_mentions.get_or_init(|| {
            if resource.rtype == ResourceType::ClusterLoadAssignment {
                Vec::new()
            } else {
                cluster_mentions_of(&resource.message)
            }
        })
    }
}

/// [`Facts`] of the resources of the last load, found again by their
/// decoded message and YAML (both shared, unchanged, by an unchanged
/// document). Holding both keeps their addresses from being reused.
#[derive(Default)]
pub struct FactsCache {
    by_message: HashMap<usize, Kept>,
}

struct Kept {
    message: Arc<DynamicMessage>,
    source: Arc<Node>,
    facts: Arc<Facts>,
}

/// How many resources a [`FactsCache::facts_of`] call walked (for tests
/// that hold a reload to the resources that changed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Walked {
    /// Resources walked.
    pub walked: usize,
    /// Resources whose facts were kept from the last load.
    pub kept: usize,
}

impl FactsCache {
    /// The facts of each resource, in order: kept ones as they were, the
    /// others walked (in parallel). Afterwards the cache holds exactly these.
    pub(super) fn facts_of(&mut self, resources: &[Resource]) -> (Vec<Arc<Facts>>, Walked) {
        let kept = |r: &Resource| {
            self.by_message
                .get(&key(r))
                .filter(|k| {
                    Arc::ptr_eq(&k.message, &r.message) && Arc::ptr_eq(&k.source, &r.source)
                })
                .map(|k| Arc::clone(&k.facts))
        };
        let facts = crate::config::parallel::map(resources, |r| match kept(r) {
            Some(facts) => (facts, true),
            None => (Arc::new(Facts::of(r)), false),
        });
        let reused = facts.iter().filter(|(_, kept)| *kept).count();
        let walked = Walked {
            walked: facts.len() - reused,
            kept: reused,
        };
        let facts: Vec<Arc<Facts>> = facts.into_iter().map(|(f, _)| f).collect();
        self.by_message = resources
            .iter()
            .zip(&facts)
            .map(|(r, f)| {
                let kept = Kept {
                    message: Arc::clone(&r.message),
                    source: Arc::clone(&r.source),
                    facts: Arc::clone(f),
                };
                (key(r), kept)
            })
            .collect();
        (facts, walked)
    }
}

fn key(r: &Resource) -> usize {
    Arc::as_ptr(&r.message) as usize
}
