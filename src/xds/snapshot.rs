//! Snapshots: an immutable, fully validated set of resources, each encoded
//! once, with content-derived versions, and per-node views computed once per
//! distinct set of visible resources and shared by every client that has it.
//! A view is the shared base (what every node sees, built once) plus the
//! node's own resources, found through an index of the selectors
//! (`index.rs`): a type the node has nothing of its own in is the base's
//! very map.

mod index;

use crate::check::validate::canonical_json;
use crate::config::resource::Resource;
use crate::config::schema::ResourceType;
use crate::config::selector::{NodeIdentity, NodeSelector};
use crate::sync::lock;
use crate::xds::messages::SharedAny;
use index::SelectorIndex;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
        let descriptor =
            crate::config::schema::pool().get_message_by_name(self.rtype.message_name())?;
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
    /// The entries by what selects them.
    index: SelectorIndex,
    /// What every node sees, per type (built on first use).
    base: OnceLock<BTreeMap<ResourceType, TypeView>>,
    /// Views by the content of the node's own entries (beyond the base):
    /// [`own_signature`].
    views: Mutex<HashMap<String, Arc<View>>>,
    /// The previous snapshot's views, when its base is the same as this
    /// one's: a node whose own resources did not change either keeps its
    /// very view, so a change to one node's resources builds that node's
    /// view only.
    inherited_views: HashMap<String, Arc<View>>,
    /// The view of nodes with nothing of their own (most often all of
    /// them): found without a lock.
    base_view: OnceLock<Arc<View>>,
    /// The view of a client xdsd knows nothing of (see [`Snapshot::arrival`]).
    nothing: OnceLock<Arc<View>>,
    /// Selectors tested and resources compared so far (the cost the index
    /// and the shared diffs keep proportional to nodes + resources).
    pub(crate) work: Work,
    /// Per type and set version, the maps this snapshot's views hold.
    maps: Mutex<HashMap<(ResourceType, String), Resources>>,
    /// The previous snapshot's maps: a view whose type content did not
    /// change gets the very same map, so streams see "unchanged" by
    /// pointer instead of comparing every resource.
    inherited: HashMap<(ResourceType, String), Resources>,
    /// Moves from a previous snapshot's views to this one's, by the two views' addresses.
    transitions: Mutex<HashMap<(usize, usize), Arc<Transition>>>,
    /// Per pair of maps (old, new), their diff: views that share a type's
    /// map share its diff, so a change to shared resources is diffed once.
    type_diffs: Mutex<HashMap<(usize, usize), SharedDiff>>,
    /// The set served before this one: what a client that reconnects in the
    /// middle of a change may still hold (one generation; see [`Snapshot::follow`]).
    predecessor: Mutex<Option<Arc<Snapshot>>>,
}

/// Counters of the work views and transitions cost.
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// Selectors tested against a node.
    pub selector_tests: AtomicUsize,
    /// Resources compared by diffs.
    pub compared: AtomicUsize,
    /// Views built (not found in this snapshot or kept from the previous one).
    pub views_built: AtomicUsize,
    /// Resources put into the maps of built views.
    pub view_entries: AtomicUsize,
}

/// A diff, with the two maps it was computed from (held so that their
/// addresses, the cache's key, cannot be reused meanwhile).
#[derive(Debug)]
struct SharedDiff {
    _maps: (Resources, Resources),
    diff: Arc<TypeDiff>,
}

/// How one type's resources differ between two maps, by name.
#[derive(Debug, Default)]
pub struct TypeDiff {
    /// Only in the new map.
    pub added: Vec<String>,
    /// In both, with another version.
    pub changed: Vec<String>,
    /// Only in the old map.
    pub removed: Vec<String>,
}

/// A move from one view to another: per type, how the new maps differ
/// from the old, and which endpoints must be re-sent so that new or changed
/// clusters can warm. Computed once per pair of views and shared by every
/// stream making that move, so a stream's part of a change is proportional
/// to what changed, not to the size of the set.
#[derive(Debug)]
pub struct Transition {
    from: Arc<View>,
    to: Arc<View>,
    diffs: BTreeMap<ResourceType, Arc<TypeDiff>>,
    /// The ClusterLoadAssignments of clusters that are new or changed.
    pub rewarm: Arc<BTreeSet<String>>,
}

static NO_DIFF: TypeDiff = TypeDiff {
    added: Vec::new(),
    changed: Vec::new(),
    removed: Vec::new(),
};

impl Transition {
    fn between(snapshot: &Snapshot, from: Arc<View>, to: Arc<View>) -> Transition {
        let empty = Resources::default();
        let map = |view: &View, rtype| {
            view.of(rtype)
                .map_or_else(|| Arc::clone(&empty), |t| Arc::clone(&t.resources))
        };
        let mut diffs = BTreeMap::new();
        let mut rewarm = BTreeSet::new();
        for rtype in ResourceType::ALL {
            let (old, new) = (map(&from, rtype), map(&to, rtype));
            if Arc::ptr_eq(&old, &new) {
                continue;
            }
            let diff = snapshot.type_diff(&old, &new);
            if rtype == ResourceType::Cluster {
                let touched = diff.added.iter().chain(&diff.changed);
                rewarm.extend(touched.filter_map(|name| new.get(name)?.warms_with.clone()));
            }
            diffs.insert(rtype, diff);
        }
        Transition {
            from,
            to,
            diffs,
            rewarm: Arc::new(rewarm),
        }
    }

    /// How `to_map` differs from `from_map`, when they are exactly this
    /// move's old and new maps of `rtype` (otherwise the caller compares).
    pub fn diff(
        &self,
        rtype: ResourceType,
        from_map: &Resources,
        to_map: &Resources,
    ) -> Option<&TypeDiff> {
        let is = |view: &View, map: &Resources| {
            view.of(rtype)
                .is_some_and(|t| Arc::ptr_eq(&t.resources, map))
        };
        if !(is(&self.from, from_map) && is(&self.to, to_map)) {
            return None;
        }
        Some(self.diffs.get(&rtype).map_or(&NO_DIFF, |d| d))
    }
}

impl TypeDiff {
    fn between(old: &BTreeMap<String, Arc<Entry>>, new: &BTreeMap<String, Arc<Entry>>) -> TypeDiff {
        let mut diff = TypeDiff::default();
        let (mut old, mut new) = (old.iter().peekable(), new.iter().peekable());
        loop {
            match (old.peek(), new.peek()) {
                (None, None) => return diff,
                (Some((name, _)), None) => {
                    diff.removed.push((*name).clone());
                    old.next();
                }
                (None, Some((name, _))) => {
                    diff.added.push((*name).clone());
                    new.next();
                }
                (Some((o, oe)), Some((n, ne))) => match o.cmp(n) {
                    std::cmp::Ordering::Less => {
                        diff.removed.push((*o).clone());
                        old.next();
                    }
                    std::cmp::Ordering::Greater => {
                        diff.added.push((*n).clone());
                        new.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if oe.version != ne.version {
                            diff.changed.push((*n).clone());
                        }
                        old.next();
                        new.next();
                    }
                },
            }
        }
    }
}

impl Snapshot {
    /// Encodes a validated set. Callers pass only sets without errors.
    pub fn build(resources: &[Resource]) -> Snapshot {
        Snapshot::from_entries(crate::config::parallel::map(resources, |r| {
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
            index: SelectorIndex::new(&entries),
            entries,
            base: OnceLock::new(),
            views: Mutex::new(HashMap::new()),
            inherited_views: HashMap::new(),
            base_view: OnceLock::new(),
            nothing: OnceLock::new(),
            work: Work::default(),
            type_diffs: Mutex::new(HashMap::new()),
            maps: Mutex::new(HashMap::new()),
            inherited: HashMap::new(),
            transitions: Mutex::new(HashMap::new()),
            predecessor: Mutex::new(None),
        }
    }

    /// Makes this snapshot the successor of `previous`: its views reuse
    /// `previous`'s maps, and `previous` is remembered as what clients may
    /// still hold (while `previous` forgets its own predecessor, so that no
    /// chain of old sets builds up).
    pub fn follow(&mut self, previous: &Arc<Snapshot>) {
        self.reuse_maps_of(previous);
        lock(&previous.predecessor).take();
        *lock(&self.predecessor) = Some(Arc::clone(previous));
    }

    /// The set served before this one, if known.
    pub fn predecessor(&self) -> Option<Arc<Snapshot>> {
        lock(&self.predecessor).clone()
    }

    /// Lets this snapshot's views reuse `previous`'s per-type maps where
    /// their content is the same (only one generation back, so nothing
    /// accumulates).
    pub fn reuse_maps_of(&mut self, previous: &Snapshot) {
        self.inherited = lock(&previous.maps).clone();
        if base_versions(self.base()) == base_versions(previous.base()) {
            self.inherited_views = lock(&previous.views).clone();
        }
    }

    /// Every resource, in load order.
    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    /// An empty snapshot (before the first valid load).
    pub fn empty() -> Snapshot {
        Snapshot::from_entries(Vec::new())
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

    /// What `node` sees; computed once per distinct visible set, or kept
    /// from the previous snapshot when neither the base nor the node's own
    /// resources changed.
    pub fn view(&self, node: &NodeIdentity) -> Arc<View> {
        // Without selectors the index is empty: one view for all, nothing tested.
        let (own, tested) = self.index.own(&self.entries, node);
        self.work
            .selector_tests
            .fetch_add(tested, Ordering::Relaxed);
        if own.is_empty()
            && let Some(view) = self.base_view.get()
        {
            return Arc::clone(view);
        }
        let signature = self.own_signature(&own);
        if let Some(view) = lock(&self.views).get(&signature) {
            return Arc::clone(view);
        }
        let view = match self.inherited_views.get(&signature) {
            Some(kept) => {
                self.register_maps(kept);
                Arc::clone(kept)
            }
            None => Arc::new(self.build_view(&own)),
        };
        // Another stream may have made it meanwhile: the first one stays.
        let view = Arc::clone(lock(&self.views).entry(signature).or_insert(view));
        if own.is_empty() {
            let _ = self.base_view.set(Arc::clone(&view));
        }
        view
    }

    /// What a node's own entries hold, as one string (empty for none):
    /// nodes whose own resources have the same names and versions see the
    /// same view.
    fn own_signature(&self, own: &[usize]) -> String {
        if own.is_empty() {
            return String::new();
        }
        let mut hash = Fnv::new();
        for e in own.iter().filter_map(|&i| self.entries.get(i)) {
            hash.write(e.rtype.kind_name().as_bytes());
            hash.write(b"/");
            hash.write(e.name.as_bytes());
            hash.write(b"=");
            hash.write(e.version.as_bytes());
            hash.write(&[0xff]);
        }
        hash.hex()
    }

    /// Makes a view kept from the previous snapshot's maps this snapshot's
    /// too, so that the next snapshot finds them again.
    fn register_maps(&self, view: &View) {
        let mut maps = lock(&self.maps);
        for (rtype, t) in &view.types {
            maps.entry((*rtype, t.version.clone()))
                .or_insert_with(|| Arc::clone(&t.resources));
        }
    }

    /// Builds the views of `nodes` now (each distinct view once), so that
    /// streams find them ready when the snapshot is published; returns how
    /// many distinct views there are.
    pub fn prepare_views<'n>(&self, nodes: impl Iterator<Item = &'n NodeIdentity>) -> usize {
        for node in nodes {
            self.view(node);
        }
        lock(&self.views).len()
    }

    /// The move from `from` (a view of an earlier snapshot) to `to` (one of
    /// this snapshot's), computed on first use.
    pub fn transition(&self, from: &Arc<View>, to: &Arc<View>) -> Arc<Transition> {
        let key = (Arc::as_ptr(from) as usize, Arc::as_ptr(to) as usize);
        if let Some(known) = lock(&self.transitions).get(&key) {
            return Arc::clone(known);
        }
        // Built outside the lock: it takes the diffs' lock.
        let built = Arc::new(Transition::between(self, Arc::clone(from), Arc::clone(to)));
        // The cached transition holds both views: their addresses cannot be reused meanwhile.
        Arc::clone(lock(&self.transitions).entry(key).or_insert(built))
    }

    /// The move of a client that arrives (a new stream, or one reconnecting
    /// to a restarted xdsd) to `to`, from nothing xdsd knows of: every
    /// resource is new to it, so its clusters and endpoints come before the
    /// listeners and routes that use them. Computed once per view.
    pub fn arrival(&self, to: &Arc<View>) -> Arc<Transition> {
        let nothing = self.nothing.get_or_init(|| Arc::new(View::default()));
        self.transition(nothing, to)
    }

    /// How `new` differs from `old`, computed once per pair of maps.
    fn type_diff(&self, old: &Resources, new: &Resources) -> Arc<TypeDiff> {
        let key = (Arc::as_ptr(old) as usize, Arc::as_ptr(new) as usize);
        let mut diffs = lock(&self.type_diffs);
        let shared = diffs.entry(key).or_insert_with(|| {
            self.work
                .compared
                .fetch_add(old.len() + new.len(), Ordering::Relaxed);
            SharedDiff {
                _maps: (Arc::clone(old), Arc::clone(new)),
                diff: Arc::new(TypeDiff::between(old, new)),
            }
        });
        Arc::clone(&shared.diff)
    }

    /// What every node sees, per type.
    fn base(&self) -> &BTreeMap<ResourceType, TypeView> {
        self.base.get_or_init(|| {
            let mut by_type: BTreeMap<ResourceType, BTreeMap<String, Arc<Entry>>> = BTreeMap::new();
            for e in self
                .index
                .everyone
                .iter()
                .filter_map(|&i| self.entries.get(i))
            {
                by_type
                    .entry(e.rtype)
                    .or_default()
                    .insert(e.name.clone(), Arc::clone(e));
            }
            by_type
                .into_iter()
                .map(|(rtype, resources)| (rtype, self.type_view(rtype, resources)))
                .collect()
        })
    }

    /// The base plus `own`: a type without own resources is the base's map
    /// itself; a type with some is the base's copied, plus them.
    fn build_view(&self, own: &[usize]) -> View {
        self.work.views_built.fetch_add(1, Ordering::Relaxed);
        let base = self.base();
        let mut own_by_type: BTreeMap<ResourceType, Vec<&Arc<Entry>>> = BTreeMap::new();
        for e in own.iter().filter_map(|&i| self.entries.get(i)) {
            own_by_type.entry(e.rtype).or_default().push(e);
        }
        let mut types = base.clone();
        for (rtype, extra) in own_by_type {
            let mut resources: BTreeMap<String, Arc<Entry>> = base
                .get(&rtype)
                .map(|t| (*t.resources).clone())
                .unwrap_or_default();
            for e in extra {
                resources.insert(e.name.clone(), Arc::clone(e));
            }
            self.work
                .view_entries
                .fetch_add(resources.len(), Ordering::Relaxed);
            types.insert(rtype, self.type_view(rtype, resources));
        }
        View { types }
    }

    /// A type's view of `resources`: the map of the same content already
    /// held by one of this snapshot's views, or by the previous snapshot's,
    /// when there is one (so unchanged maps are the same by pointer).
    fn type_view(&self, rtype: ResourceType, resources: BTreeMap<String, Arc<Entry>>) -> TypeView {
        let version = set_version(&resources);
        let key = (rtype, version);
        let mut maps = lock(&self.maps);
        let shared = maps
            .get(&key)
            .or_else(|| self.inherited.get(&key))
            .cloned()
            .unwrap_or_else(|| Arc::new(resources));
        maps.insert(key.clone(), Arc::clone(&shared));
        let (_, version) = key;
        TypeView {
            resources: shared,
            version,
        }
    }
}

/// Each type's version in a base: equal bases are equal by these.
fn base_versions(base: &BTreeMap<ResourceType, TypeView>) -> BTreeMap<ResourceType, &str> {
    base.iter()
        .map(|(rtype, t)| (*rtype, t.version.as_str()))
        .collect()
}

/// The ClusterLoadAssignment an EDS cluster is served: its
/// `eds_cluster_config.service_name`, or its name.
fn eds_name(resource: &Resource) -> Option<String> {
    use crate::config::reflect;
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
mod tests;
