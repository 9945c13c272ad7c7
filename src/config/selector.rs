//! Node selectors: which nodes (by `node.id` and `node.cluster`) may see a resource.

/// The identity of a client, as it sends it in `node`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    /// `node.id`.
    pub id: String,
    /// `node.cluster`.
    pub cluster: String,
}

impl From<envoy_types::pb::envoy::config::core::v3::Node> for NodeIdentity {
    fn from(node: envoy_types::pb::envoy::config::core::v3::Node) -> Self {
        NodeIdentity {
            id: node.id,
            cluster: node.cluster,
        }
    }
}

/// An envelope's `nodes:` selector. An empty list means "any".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeSelector {
    /// Globs on `node.cluster`; any may match.
    pub cluster: Vec<String>,
    /// Globs on `node.id`; any may match.
    pub id: Vec<String>,
}

impl NodeSelector {
    /// True when the selector matches every node.
    pub fn is_everyone(&self) -> bool {
        self.cluster.is_empty() && self.id.is_empty()
    }

    /// True when `node` is selected. A node with no identity given (as in
    /// `render` without flags) matches only selector-free resources.
    pub fn matches(&self, node: &NodeIdentity) -> bool {
        any_glob(&self.cluster, &node.cluster) && any_glob(&self.id, &node.id)
    }

    /// Could one node be seen by both selectors? Conservative: true unless
    /// the globs provably cannot match a common string.
    pub fn overlaps(&self, other: &NodeSelector) -> bool {
        lists_overlap(&self.cluster, &other.cluster) && lists_overlap(&self.id, &other.id)
    }

    /// Does `self` select every node that `referrer` selects? Conservative:
    /// false unless each of the referrer's globs is contained in one of ours.
    pub fn covers(&self, referrer: &NodeSelector) -> bool {
        list_covers(&self.cluster, &referrer.cluster) && list_covers(&self.id, &referrer.id)
    }

    /// The selector split into one per pair of a `cluster` glob and an `id`
    /// glob (a dimension without globs stays unconstrained), so that
    /// coverage can be checked part by part: the nodes a selector picks are
    /// the union of its parts', and each part may be covered by a different
    /// target (targets split by `id` as well as by `cluster`).
    pub fn parts(&self) -> Vec<NodeSelector> {
        let each = |globs: &[String]| -> Vec<Vec<String>> {
            if globs.is_empty() {
                vec![Vec::new()]
            } else {
                globs.iter().map(|g| vec![g.clone()]).collect()
            }
        };
        let ids = each(&self.id);
        each(&self.cluster)
            .into_iter()
            .flat_map(|cluster| {
                ids.iter().map(move |id| NodeSelector {
                    cluster: cluster.clone(),
                    id: id.clone(),
                })
            })
            .collect()
    }

    /// A short text for messages: `cluster in [edge*]`, or `every node`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.cluster.is_empty() {
            parts.push(format!("cluster [{}]", self.cluster.join(", ")));
        }
        if !self.id.is_empty() {
            parts.push(format!("id [{}]", self.id.join(", ")));
        }
        if parts.is_empty() {
            "every node".into()
        } else {
            format!("nodes with {}", parts.join(" and "))
        }
    }
}

fn any_glob(globs: &[String], value: &str) -> bool {
    globs.is_empty() || globs.iter().any(|g| glob_match(g, value))
}

fn lists_overlap(a: &[String], b: &[String]) -> bool {
    a.is_empty() || b.is_empty() || a.iter().any(|x| b.iter().any(|y| globs_overlap(x, y)))
}

fn list_covers(outer: &[String], inner: &[String]) -> bool {
    outer.is_empty()
        || (!inner.is_empty()
            && inner
                .iter()
                .all(|i| outer.iter().any(|o| glob_contains(o, i))))
}

/// Matches `*` (any run) and `?` (one character).
pub fn glob_match(glob: &str, text: &str) -> bool {
    let (g, t): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    let (mut gi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == t[ti]) {
            gi += 1;
            ti += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = ti;
            gi += 1;
        } else if let Some(s) = star {
            gi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

/// `g` has a `*` or `?`: it is a pattern, not a literal name.
pub fn has_wildcard(g: &str) -> bool {
    g.contains(['*', '?'])
}

fn literal_prefix(g: &str) -> &str {
    &g[..g.find(['*', '?']).unwrap_or(g.len())]
}

fn literal_suffix(g: &str) -> &str {
    &g[g.rfind(['*', '?']).map_or(0, |i| i + 1)..]
}

fn globs_overlap(a: &str, b: &str) -> bool {
    match (has_wildcard(a), has_wildcard(b)) {
        (false, false) => a == b,
        (false, true) => glob_match(b, a),
        (true, false) => glob_match(a, b),
        (true, true) => {
            let (pa, pb) = (literal_prefix(a), literal_prefix(b));
            let (sa, sb) = (literal_suffix(a), literal_suffix(b));
            (pa.starts_with(pb) || pb.starts_with(pa)) && (sa.ends_with(sb) || sb.ends_with(sa))
        }
    }
}

/// Does every string matched by `inner` match `outer`? Exact for literals and
/// for `prefix*`/`*suffix` shapes; otherwise only when the globs are equal.
fn glob_contains(outer: &str, inner: &str) -> bool {
    if outer == inner || outer == "*" || !has_wildcard(inner) && glob_match(outer, inner) {
        return true;
    }
    let (po, so) = (literal_prefix(outer), literal_suffix(outer));
    let simple_outer = outer.matches('*').count() == 1 && !outer.contains('?');
    simple_outer
        && literal_prefix(inner).starts_with(po)
        && literal_suffix(inner).ends_with(so)
        && !inner.contains('?')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(cluster: &[&str], id: &[&str]) -> NodeSelector {
        NodeSelector {
            cluster: cluster.iter().map(|s| s.to_string()).collect(),
            id: id.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("edge*", "edge-eu"));
        assert!(glob_match("e?ge", "edge"));
        assert!(!glob_match("edge*", "internal"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn matching_requires_both_lists() {
        let s = sel(&["edge*"], &["edge-1"]);
        assert!(s.matches(&NodeIdentity {
            id: "edge-1".into(),
            cluster: "edge-eu".into()
        }));
        assert!(!s.matches(&NodeIdentity {
            id: "edge-2".into(),
            cluster: "edge-eu".into()
        }));
        assert!(!s.matches(&NodeIdentity::default()));
        assert!(NodeSelector::default().matches(&NodeIdentity::default()));
    }

    #[test]
    fn overlap_and_cover() {
        assert!(!sel(&["edge*"], &[]).overlaps(&sel(&["internal*"], &[])));
        assert!(sel(&["edge*"], &[]).overlaps(&sel(&["edge-eu"], &[])));
        assert!(NodeSelector::default().overlaps(&sel(&["x"], &[])));
        assert!(NodeSelector::default().covers(&sel(&["x"], &[])));
        assert!(!sel(&["x"], &[]).covers(&NodeSelector::default()));
        assert!(sel(&["edge*"], &[]).covers(&sel(&["edge-eu*"], &["a"])));
        assert!(!sel(&["edge-eu*"], &[]).covers(&sel(&["edge*"], &[])));
        // Targets split by id cover a referrer selecting both ids, part by part.
        let referrer = sel(&["edge"], &["a-*", "b-*"]);
        let targets = [sel(&[], &["a-*"]), sel(&[], &["b-*"])];
        assert!(
            !targets.iter().any(|t| t.covers(&referrer)),
            "no single target covers it"
        );
        assert!(
            referrer
                .parts()
                .iter()
                .all(|part| targets.iter().any(|t| t.covers(part)))
        );
        assert_eq!(sel(&["a", "b"], &["x", "y"]).parts().len(), 4);
        assert_eq!(
            NodeSelector::default().parts(),
            vec![NodeSelector::default()]
        );
    }
}
