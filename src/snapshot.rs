//! Snapshots: an immutable, fully validated set of resources, each encoded
//! once, with content-derived versions, and per-node views computed once per
//! distinct set of visible resources and shared by every client that has it.

use crate::resource::Resource;
use crate::schema::ResourceType;
use crate::selector::{NodeIdentity, NodeSelector};
use crate::validate::canonical_json;
use crate::xds::messages::SharedAny;
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One resource, encoded for the wire.
#[derive(Debug)]
pub struct Entry {
    /// Its type.
    pub rtype: ResourceType,
    /// Its name.
    pub name: String,
    /// Content hash: the same content has the same version on every run and replica.
    pub version: String,
    /// Who sees it.
    pub selector: NodeSelector,
    /// The encoded resource, built once per snapshot and shared by every response.
    pub any: SharedAny,
    /// For an EDS Cluster: the ClusterLoadAssignment it waits for while it warms.
    pub warms_with: Option<String>,
}

/// How many resources of one type a new set adds, removes and changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// New names.
    pub added: usize,
    /// Names gone.
    pub removed: usize,
    /// Same name, other content.
    pub changed: usize,
}

impl Changes {
    /// Nothing added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.added + self.removed + self.changed == 0
    }
}

impl Entry {
    /// Encodes one validated resource.
    pub fn encode(r: &Resource) -> Entry {
        // Encoded bytes of maps vary in order, so the hash is over a canonical form.
        let version = content_hash(&[r.rtype.kind_name(), &r.name, &canonical_json(&r.message)]);
        Entry {
            rtype: r.rtype,
            name: r.name.clone(),
            version,
            selector: r.selector.clone(),
            any: SharedAny {
                type_url: r.rtype.type_url(),
                value: r.message.encode_to_vec().into(),
            },
            warms_with: eds_name(r),
        }
    }

    /// The resource decoded again from its wire bytes (for the admin API's views).
    pub fn decode(&self) -> Option<prost_reflect::DynamicMessage> {
        let descriptor = crate::schema::pool().get_message_by_name(self.rtype.message_name())?;
        prost_reflect::DynamicMessage::decode(descriptor, self.any.value.clone()).ok()
    }
}

/// Resources by name, shared: a view's map is handed to every client that
/// gets all of it, without copying.
pub type Resources = Arc<BTreeMap<String, Arc<Entry>>>;

/// The resources of one type that one node sees, by name.
#[derive(Debug, Default, Clone)]
pub struct TypeView {
    /// By name.
    pub resources: Resources,
    /// The version of all of them together ([`set_version`]), computed once per view.
    pub version: String,
}

/// Everything one node sees.
#[derive(Debug, Default)]
pub struct View {
    /// Per type; absent types have no resources.
    pub types: BTreeMap<ResourceType, TypeView>,
}

impl View {
    /// The resources of `rtype` (empty when there are none).
    pub fn of(&self, rtype: ResourceType) -> Option<&TypeView> {
        self.types.get(&rtype)
    }
}

/// An immutable set of resources as served.
#[derive(Debug)]
pub struct Snapshot {
    /// Content hash of the whole set.
    pub version: String,
    /// When it was built: where push latency (change → client ACK) is measured from.
    pub created: Instant,
    entries: Vec<Arc<Entry>>,
    views: Mutex<HashMap<Vec<usize>, Arc<View>>>,
}

impl Snapshot {
    /// Encodes a validated set. Callers pass only sets without errors.
    pub fn build(resources: &[Resource]) -> Snapshot {
        Snapshot::from_entries(crate::parallel::map(resources, |r| {
            Arc::new(Entry::encode(r))
        }))
    }

    /// A snapshot of entries encoded elsewhere (by the loader process).
    pub fn from_entries(entries: Vec<Arc<Entry>>) -> Snapshot {
        let mut parts: Vec<String> = entries
            .iter()
            .map(|e| {
                format!(
                    "{}/{}/{}/{:?}",
                    e.rtype.kind_name(),
                    e.name,
                    e.version,
                    e.selector
                )
            })
            .collect();
        parts.sort();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        Snapshot {
            version: content_hash(&refs),
            created: Instant::now(),
            entries,
            views: Mutex::new(HashMap::new()),
        }
    }

    /// Every resource, in load order.
    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    /// An empty snapshot (before the first valid load).
    pub fn empty() -> Snapshot {
        Snapshot {
            version: content_hash(&[]),
            created: Instant::now(),
            entries: Vec::new(),
            views: Mutex::new(HashMap::new()),
        }
    }

    /// Number of resources per type.
    pub fn counts(&self) -> BTreeMap<ResourceType, usize> {
        let mut counts = BTreeMap::new();
        for e in &self.entries {
            *counts.entry(e.rtype).or_insert(0) += 1;
        }
        counts
    }

    /// What changed from `old` to this set, per type. A resource is
    /// identified by its type, name and who sees it.
    pub fn changes_from(&self, old: &Snapshot) -> BTreeMap<ResourceType, Changes> {
        let old_versions: HashMap<(ResourceType, &str, &NodeSelector), &str> = old
            .entries
            .iter()
            .map(|e| ((e.rtype, e.name.as_str(), &e.selector), e.version.as_str()))
            .collect();
        let mut changes: BTreeMap<ResourceType, Changes> = BTreeMap::new();
        let mut kept = 0;
        for e in &self.entries {
            let key = (e.rtype, e.name.as_str(), &e.selector);
            let slot = changes.entry(e.rtype).or_default();
            match old_versions.get(&key) {
                None => slot.added += 1,
                Some(v) => {
                    kept += 1;
                    if *v != e.version {
                        slot.changed += 1;
                    }
                }
            }
        }
        let new_keys: std::collections::HashSet<_> = self
            .entries
            .iter()
            .map(|e| (e.rtype, e.name.as_str(), &e.selector))
            .collect();
        if kept < old.entries.len() {
            for e in &old.entries {
                if !new_keys.contains(&(e.rtype, e.name.as_str(), &e.selector)) {
                    changes.entry(e.rtype).or_default().removed += 1;
                }
            }
        }
        changes.retain(|_, c| !c.is_empty());
        changes
    }

    /// What `node` sees; computed once per distinct visible set.
    pub fn view(&self, node: &NodeIdentity) -> Arc<View> {
        let visible: Vec<usize> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.selector.matches(node))
            .map(|(i, _)| i)
            .collect();
        let mut views = match self.views.lock() {
            Ok(views) => views,
            Err(poisoned) => poisoned.into_inner(),
        };
        let entries = &self.entries;
        Arc::clone(views.entry(visible).or_insert_with_key(|visible| {
            let mut by_type: BTreeMap<ResourceType, BTreeMap<String, Arc<Entry>>> = BTreeMap::new();
            for &i in visible {
                let e = &entries[i];
                by_type
                    .entry(e.rtype)
                    .or_default()
                    .insert(e.name.clone(), Arc::clone(e));
            }
            let types = by_type
                .into_iter()
                .map(|(rtype, resources)| {
                    let version = set_version(&resources);
                    let resources = Arc::new(resources);
                    (rtype, TypeView { resources, version })
                })
                .collect();
            Arc::new(View { types })
        }))
    }
}

/// The ClusterLoadAssignment an EDS cluster is served: its
/// `eds_cluster_config.service_name`, or its name.
fn eds_name(resource: &Resource) -> Option<String> {
    use crate::reflect;
    if resource.rtype != ResourceType::Cluster {
        return None;
    }
    let (_, kind) = reflect::field(&resource.message, "type")?;
    if kind.as_enum_number() != Some(3) {
        return None;
    }
    let service = reflect::field(&resource.message, "eds_cluster_config")
        .and_then(|(_, v)| reflect::string_field(v.as_message()?, "service_name"))
        .map(|(_, name)| name)
        .filter(|name| !name.is_empty());
    Some(service.unwrap_or_else(|| resource.name.clone()))
}

/// The version of a set of resources of one type: [`content_hash`] of
/// `name=version` for each, without building those strings.
pub fn set_version(resources: &BTreeMap<String, Arc<Entry>>) -> String {
    let mut hash = Fnv::new();
    for (name, entry) in resources {
        hash.write(name.as_bytes());
        hash.write(b"=");
        hash.write(entry.version.as_bytes());
        hash.write(&[0xff]);
    }
    hash.hex()
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The 64-bit FNV-1a hash of raw bytes, as 16 hex digits (a checksum).
pub fn bytes_hash(bytes: &[u8]) -> String {
    let mut hash = Fnv::new();
    hash.write(bytes);
    hash.hex()
}

/// A stable 64-bit FNV-1a hash of the parts, as 16 hex digits. Stable across
/// builds and machines (unlike std's hasher), which versions need.
pub fn content_hash(parts: &[&str]) -> String {
    let mut hash = Fnv::new();
    for part in parts {
        hash.write(part.as_bytes());
        hash.write(&[0xff]);
    }
    hash.hex()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::load_str;

    const SET: &str = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: a\n---\nkind: Cluster\nnodes: {cluster: [edge]}\nspec: {name: b}\n";

    #[test]
    fn changes_count_added_removed_and_changed_per_type() {
        let old = Snapshot::build(&load_str("x.yaml", SET).resources);
        let text = SET.replace("name: a", "name: c")
            + "---\nkind: Cluster\nnodes: {cluster: [edge]}\nspec: {name: b, connect_timeout: 2s}\n";
        let text = text.replacen(
            "kind: Cluster\nnodes: {cluster: [edge]}\nspec: {name: b}\n---\n",
            "",
            1,
        );
        let new = Snapshot::build(&load_str("x.yaml", &text).resources);
        let changes = new.changes_from(&old);
        assert_eq!(
            changes.get(&ResourceType::Cluster),
            Some(&Changes {
                added: 1,
                removed: 1,
                changed: 1
            })
        );
        assert!(new.changes_from(&new).is_empty());
    }

    #[test]
    fn set_versions_hash_names_and_versions() {
        let snap = Snapshot::build(&load_str("x.yaml", SET).resources);
        let view = snap.view(&NodeIdentity::default());
        let clusters = view.of(ResourceType::Cluster).expect("clusters");
        let a = &clusters.resources["a"];
        assert_eq!(
            clusters.version,
            content_hash(&[&format!("a={}", a.version)])
        );
    }

    #[test]
    fn versions_come_from_content() {
        let one = Snapshot::build(&load_str("x.yaml", SET).resources);
        let two = Snapshot::build(&load_str("y.yaml", SET).resources);
        assert_eq!(one.version, two.version);
        let other =
            Snapshot::build(&load_str("x.yaml", &SET.replace("name: a", "name: c")).resources);
        assert_ne!(one.version, other.version);
    }

    #[test]
    fn every_view_and_response_shares_one_encoding() {
        let snap = Snapshot::build(&load_str("x.yaml", SET).resources);
        let edge = snap.view(&NodeIdentity {
            id: "1".into(),
            cluster: "edge".into(),
        });
        let plain = snap.view(&NodeIdentity::default());
        let a_edge = &edge.of(ResourceType::Cluster).expect("clusters").resources["a"];
        let a_plain = &plain.of(ResourceType::Cluster).expect("clusters").resources["a"];
        assert!(Arc::ptr_eq(a_edge, a_plain), "one entry for both views");
        // A response holds a clone of the entry's Any: the bytes are shared, not copied.
        let in_response = a_edge.any.clone();
        assert_eq!(in_response.value.as_ptr(), a_plain.any.value.as_ptr());
    }

    #[test]
    fn views_follow_selectors_and_are_shared() {
        let snap = Snapshot::build(&load_str("x.yaml", SET).resources);
        let edge = NodeIdentity {
            id: "1".into(),
            cluster: "edge".into(),
        };
        let edge2 = NodeIdentity {
            id: "2".into(),
            cluster: "edge".into(),
        };
        let v = snap.view(&edge);
        assert_eq!(
            v.of(ResourceType::Cluster).map(|t| t.resources.len()),
            Some(2)
        );
        assert!(Arc::ptr_eq(&v, &snap.view(&edge2)));
        let plain = snap.view(&NodeIdentity::default());
        assert_eq!(
            plain.of(ResourceType::Cluster).map(|t| t.resources.len()),
            Some(1)
        );
    }
}
