//! Which resources select a node, found without testing every selector.
//!
//! A fleet where each node has resources of its own (`nodes: {id: [...]}`)
//! has as many selectors as nodes; testing each against each node made
//! building the views of N nodes cost N × resources. Selectors are indexed
//! instead by what they name: literal node ids in one hash map, literal node
//! clusters in another, and only selectors with globs on both are tested
//! against every node. Finding a node's resources costs the candidates its
//! id and cluster name (each still tested, for the other dimension) plus the
//! glob selectors.

use super::Entry;
use crate::config::selector::{NodeIdentity, NodeSelector, has_wildcard};
use std::collections::HashMap;
use std::sync::Arc;

/// The entries of a snapshot by what selects them (indices into its entries).
#[derive(Debug, Default)]
pub struct SelectorIndex {
    /// Seen by every node: the shared base of every view.
    pub everyone: Vec<usize>,
    /// Selectors whose `id` globs are all literal, under each id.
    by_id: HashMap<String, Vec<usize>>,
    /// Otherwise, selectors whose `cluster` globs are all literal, under each cluster.
    by_cluster: HashMap<String, Vec<usize>>,
    /// Globs on both: tested against every node.
    globs: Vec<usize>,
}

fn all_literal(globs: &[String]) -> bool {
    !globs.is_empty() && !globs.iter().any(|g| has_wildcard(g))
}

impl SelectorIndex {
    /// Indexes `entries` by their selectors.
    pub fn new(entries: &[Arc<Entry>]) -> SelectorIndex {
        let mut index = SelectorIndex::default();
        for (i, entry) in entries.iter().enumerate() {
            index.add(i, &entry.selector);
        }
        index
    }

    fn add(&mut self, i: usize, selector: &NodeSelector) {
        if selector.is_everyone() {
            self.everyone.push(i);
        } else if all_literal(&selector.id) {
            for id in &selector.id {
                self.by_id.entry(id.clone()).or_default().push(i);
            }
        } else if all_literal(&selector.cluster) {
            for cluster in &selector.cluster {
                self.by_cluster.entry(cluster.clone()).or_default().push(i);
            }
        } else {
            self.globs.push(i);
        }
    }

    /// The entries `node` sees besides [`SelectorIndex::everyone`], in load
    /// order, and how many selectors were tested to find them.
    pub fn own(&self, entries: &[Arc<Entry>], node: &NodeIdentity) -> (Vec<usize>, usize) {
        let none = Vec::new();
        let candidates = [
            self.by_id.get(&node.id).unwrap_or(&none),
            self.by_cluster.get(&node.cluster).unwrap_or(&none),
            &self.globs,
        ];
        let tested = candidates.iter().map(|c| c.len()).sum();
        let mut own: Vec<usize> = candidates
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| entries.get(i).is_some_and(|e| e.selector.matches(node)))
            .collect();
        // A selector listing a node's id twice is one resource, once.
        own.sort_unstable();
        own.dedup();
        (own, tested)
    }
}
