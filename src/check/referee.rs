//! The user's own Envoy as a referee (`xdsd lint --envoy`, `xdsd serve
//! --envoy-validate`): each distinct node view is rendered as a static
//! bootstrap and run through `envoy --mode validate`; a rejection is pinned
//! on the resource that causes it by bisection, and reported there with
//! Envoy's own words.
//!
//! Static validation differs from a dynamic update in known ways, handled
//! here so that the referee never reports what a dynamic Envoy accepts:
//! routes are inlined (`validate_clusters` then checks the route's clusters,
//! which the view holds), EDS clusters carry their endpoints, secrets over
//! xDS become static secrets, the clusters of `--known-cluster` are added as
//! empty static clusters, and the node is named. Unknown fields cannot occur
//! (xdsd's decoder refuses them first). The referee runs only on a set that
//! passed xdsd's own checks, so what it adds is what only Envoy knows.

use super::Rule;
use super::proxyless_grpc::is_for_proxyless_grpc;
use crate::config::diag::{Diagnostics, Location};
use crate::config::resource::Resource;
use crate::config::schema::ResourceType;
use crate::config::selector::NodeIdentity;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The rules this module reports.
pub static RULES: &[&Rule] = &[&ENVOY_REJECTS, &ENVOY_UNAVAILABLE];

/// What the referee Envoy rejected.
pub static ENVOY_REJECTS: Rule = Rule {
    id: "envoy-rejects",
    summary: "the Envoy given with --envoy rejects a resource",
    explanation: "With `--envoy PATH` (lint) or `--envoy-validate PATH` (serve), each node's view is rendered \
as a static bootstrap and validated by that Envoy (`envoy --mode validate`). Envoy refused it, and bisection \
found this resource responsible; the message is Envoy's own. Such a finding means a check xdsd's built-in \
rules do not have yet: please report it.",
    ..Rule::ERROR
};

/// The referee could not run.
pub static ENVOY_UNAVAILABLE: Rule = Rule {
    id: "envoy-unavailable",
    summary: "the Envoy given with --envoy could not be run",
    explanation: "The referee Envoy could not be started, or ended without a verdict (crashed, killed). The \
set is refused rather than served unchecked; fix the path or the Envoy installation.",
    allowable: false,
    ..Rule::ERROR
};

/// An Envoy to validate with, and what it already said.
pub struct Referee {
    envoy: PathBuf,
    version: String,
    /// Verdicts by bootstrap text hash: `None` accepted, `Some(message)` rejected.
    memo: Mutex<HashMap<u64, Option<String>>>,
    cache_dir: Option<PathBuf>,
}

/// What Envoy said of one bootstrap.
type Verdict = Result<Option<String>, String>;

impl Referee {
    /// A referee running `envoy`; its version is asked once. Verdicts are
    /// remembered in memory and, with `cache_dir`, on disk across runs.
    pub fn new(envoy: &Path, cache_dir: Option<PathBuf>) -> Result<Referee, String> {
        let out = std::process::Command::new(envoy)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", envoy.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
        let version = text
            .split_once("version:")
            .map_or("", |(_, v)| v)
            .split('/')
            .nth(1)
            .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .ok_or_else(|| format!("{} --version says no version: {text}", envoy.display()))?
            .to_string();
        Ok(Referee {
            envoy: envoy.to_path_buf(),
            version,
            memo: Mutex::new(HashMap::new()),
            cache_dir,
        })
    }

    /// The Envoy version, e.g. `1.40.0`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Validates every distinct node view of `resources` and reports each
    /// rejection at the resource responsible.
    pub fn check(&self, resources: &[Resource], known_clusters: &BTreeSet<String>) -> Diagnostics {
        let views = distinct_views(resources);
        let found = crate::config::parallel::map(&views, |(node, view)| {
            self.blame(node, view, known_clusters)
        });
        let mut diags = Diagnostics::default();
        let mut seen = BTreeSet::new();
        for (resource, message) in found.into_iter().flatten() {
            let location = match resource {
                Some(r) => r.location(),
                None => Location {
                    file: resources
                        .first()
                        .map_or_else(|| "".into(), |r| std::sync::Arc::clone(&r.file)),
                    mark: None,
                },
            };
            if seen.insert((location.clone(), message.clone())) {
                let rule = if resource.is_some() {
                    &ENVOY_REJECTS
                } else {
                    &ENVOY_UNAVAILABLE
                };
                diags.report(rule, location, message);
            }
        }
        diags
    }

    /// The resources of one view that Envoy rejects, with its message.
    fn blame<'r>(
        &self,
        node: &NodeIdentity,
        view: &[&'r Resource],
        known: &BTreeSet<String>,
    ) -> Vec<(Option<&'r Resource>, String)> {
        let verdict = |part: &[&Resource]| self.verdict(&bootstrap(node, part, view, known));
        match verdict(view) {
            Ok(None) => return Vec::new(),
            Err(e) => return vec![(None, e)],
            Ok(Some(_)) => {}
        }
        let (listeners, clusters): (Vec<&Resource>, Vec<&Resource>) = view
            .iter()
            .filter(|r| matches!(r.rtype, ResourceType::Listener | ResourceType::Cluster))
            .partition(|r| r.rtype == ResourceType::Listener);
        // Clusters alone first; then each listener beside every cluster.
        let mut blamed = bisect(&clusters, &|part| verdict(part));
        let with_clusters = |part: &[&'r Resource]| {
            let mut all = clusters.clone();
            all.extend_from_slice(part);
            verdict(&all)
        };
        blamed.extend(bisect(&listeners, &with_clusters));
        if blamed.is_empty() {
            // Only the whole view fails: no single resource is to blame.
            if let Ok(Some(message)) = verdict(view) {
                let first = view.first().copied();
                blamed.push((first, message));
            }
        }
        blamed
            .into_iter()
            .map(|(r, message)| (r, format!("envoy {}: {message}", self.version)))
            .collect()
    }

    fn verdict(&self, bootstrap: &Value) -> Verdict {
        let text = bootstrap.to_string();
        let key = fnv(text.as_bytes()) ^ fnv(self.envoy.as_os_str().as_encoded_bytes());
        if let Some(v) = self
            .memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(v.clone());
        }
        let cached = self.cache_file(key);
        if let Some(file) = &cached
            && let Ok(saved) = std::fs::read_to_string(file)
        {
            let verdict = saved.strip_prefix("rejected\n").map(str::to_string);
            return Ok(self.remember(key, verdict));
        }
        let verdict = run_envoy(&self.envoy, &text)?;
        if let Some(file) = cached {
            // A cache that cannot be written only costs time.
            let saved = match &verdict {
                None => "accepted\n".to_string(),
                Some(m) => format!("rejected\n{m}"),
            };
            let _ = std::fs::create_dir_all(file.parent().unwrap_or(Path::new(".")))
                .and_then(|()| std::fs::write(&file, saved));
        }
        Ok(self.remember(key, verdict))
    }

    fn remember(&self, key: u64, verdict: Option<String>) -> Option<String> {
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, verdict.clone());
        verdict
    }

    /// The cache entry of a bootstrap, keyed also by the Envoy binary's
    /// size and modification time (a new Envoy gives new verdicts).
    fn cache_file(&self, key: u64) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let meta = std::fs::metadata(&self.envoy).ok()?;
        let stamp = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let binary = fnv(format!("{}-{}-{stamp}", self.version, meta.len()).as_bytes());
        Some(
            dir.join(format!("{binary:016x}"))
                .join(format!("{key:016x}")),
        )
    }
}

/// The default cache: `$XDG_CACHE_HOME/xdsd/envoy`, else `~/.cache/xdsd/envoy`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("xdsd").join("envoy"))
}

/// Runs `envoy --mode validate`: `None` when it accepts, Envoy's message
/// when it rejects; an error when it gives no verdict.
fn run_envoy(envoy: &Path, bootstrap: &str) -> Verdict {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("xdsd-referee-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join("bootstrap.json");
    let result = std::fs::write(&file, bootstrap)
        .map_err(|e| format!("{}: {e}", file.display()))
        .and_then(|()| {
            std::process::Command::new(envoy)
                .args([
                    "--mode",
                    "validate",
                    "--disable-hot-restart",
                    "--log-level",
                    "critical",
                    "-c",
                ])
                .arg(&file)
                .output()
                .map_err(|e| format!("cannot run {}: {e}", envoy.display()))
        });
    let _ = std::fs::remove_dir_all(&dir);
    let out = result?;
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => Ok(None),
        Some(1) => Ok(Some(envoy_message(&text))),
        _ => Err(format!(
            "{} ended without a verdict ({}): {}",
            envoy.display(),
            out.status,
            text.lines().last().unwrap_or_default()
        )),
    }
}

/// Envoy's reason, without its log prefix and the bootstrap's file name.
fn envoy_message(output: &str) -> String {
    let line = output
        .lines()
        .find(|l| l.contains("error initializing configuration"))
        .or_else(|| output.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or_default();
    let reason = line
        .split_once("': ")
        .map_or(line, |(_, reason)| reason)
        .trim();
    if reason.is_empty() {
        "rejected without a message".into()
    } else {
        reason.to_string()
    }
}

/// The members of `items` that `verdict` rejects on their own (each found
/// by halving, so k bad ones of n cost about 2·k·log n runs).
fn bisect<'r>(
    items: &[&'r Resource],
    verdict: &dyn Fn(&[&'r Resource]) -> Verdict,
) -> Vec<(Option<&'r Resource>, String)> {
    let message = match verdict(items) {
        Ok(Some(message)) => message,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![(None, e)],
    };
    if let [only] = items {
        return vec![(Some(*only), message)];
    }
    if items.is_empty() {
        return Vec::new();
    }
    let (left, right) = items.split_at(items.len() / 2);
    let mut found = bisect(left, verdict);
    found.extend(bisect(right, verdict));
    if found.is_empty() {
        // The halves pass alone but fail together: blame the first.
        found.push((items.first().copied(), message));
    }
    found
}

/// The static bootstrap of `part` of a view: its clusters and listeners,
/// with the endpoints, routes and secrets of the whole view to resolve
/// them, the known clusters, and the node.
fn bootstrap(
    node: &NodeIdentity,
    part: &[&Resource],
    view: &[&Resource],
    known: &BTreeSet<String>,
) -> Value {
    let supporting = [
        ResourceType::ClusterLoadAssignment,
        ResourceType::RouteConfiguration,
        ResourceType::Secret,
    ];
    let typed: Vec<(ResourceType, Value)> = part
        .iter()
        .filter(|r| !supporting.contains(&r.rtype))
        .chain(view.iter().filter(|r| supporting.contains(&r.rtype)))
        .map(|r| (r.rtype, crate::config::render::to_json(r)))
        .collect();
    let mut bootstrap = crate::config::render::envoy_static(&typed);
    let defined: BTreeSet<String> = view
        .iter()
        .filter(|r| r.rtype == ResourceType::Cluster)
        .map(|r| r.name.clone())
        .collect();
    if let Some(Value::Array(clusters)) = bootstrap.pointer_mut("/static_resources/clusters") {
        for name in known.difference(&defined) {
            clusters
                .push(serde_json::json!({"name": name, "type": "STATIC", "connect_timeout": "1s"}));
        }
    }
    let name = |s: &str| {
        if s.is_empty() {
            "xdsd-referee".to_string()
        } else {
            s.to_string()
        }
    };
    bootstrap["node"] = serde_json::json!({"id": name(&node.id), "cluster": name(&node.cluster)});
    bootstrap
}

/// One node per distinct visible set: a node matching no selector, and one
/// matching each selector (its first id and cluster globs, `*` and `?` read
/// as `x`). A view that arises only from two selectors' overlap is not tried.
fn distinct_views(resources: &[Resource]) -> Vec<(NodeIdentity, Vec<&Resource>)> {
    let instance = |globs: &[String]| {
        globs
            .first()
            .map(|g| g.replace(['*', '?'], "x"))
            .unwrap_or_default()
    };
    let mut nodes = vec![NodeIdentity::default()];
    for r in resources.iter().filter(|r| !r.selector.is_everyone()) {
        nodes.push(NodeIdentity {
            id: instance(&r.selector.id),
            cluster: instance(&r.selector.cluster),
        });
    }
    let mut seen = BTreeSet::new();
    let mut views = Vec::new();
    for node in nodes {
        let mut view = crate::config::resource::view(resources, &node);
        // Envoy refuses a client's API listener ("missing the API listener
        // extension") and a TLS server listener with gRPC's certificate
        // provider, but none is meant for an Envoy.
        view.retain(|r| !is_for_proxyless_grpc(r));
        let key: Vec<*const Resource> = view.iter().map(|r| *r as *const Resource).collect();
        if !view.is_empty() && seen.insert(key) {
            views.push((node, view));
        }
    }
    views
}

/// FNV-1a, as for versions: stable across runs and machines.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_message_keeps_only_the_reason() {
        let output = "[2026-12-04 16:45:55.446][8248][critical][main] [source/server/config_validation/server.cc:76] error initializing configuration '/tmp/x/bootstrap.json': route: unknown cluster 'b'\n";
        assert_eq!(envoy_message(output), "route: unknown cluster 'b'");
    }

    #[test]
    fn views_are_one_per_distinct_visible_set() {
        let text = "kind: Cluster\nnodes: {cluster: [edge*]}\nspec: {name: a, connect_timeout: 1s}\n---\nkind: Cluster\nnodes: {cluster: [edge*]}\nspec: {name: b, connect_timeout: 1s}\n---\nkind: Cluster\nspec: {name: c, connect_timeout: 1s}\n";
        let loaded = crate::config::loader::load_str("v.yaml", text);
        assert!(loaded.diagnostics.is_ok(), "{:?}", loaded.diagnostics);
        let views = distinct_views(&loaded.resources);
        let names: Vec<Vec<&str>> = views
            .iter()
            .map(|(_, v)| v.iter().map(|r| r.name.as_str()).collect())
            .collect();
        assert_eq!(names, vec![vec!["c"], vec!["a", "b", "c"]]);
    }

    #[test]
    fn listeners_for_proxyless_grpc_are_not_shown_to_envoy() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples/grpc-proxyless");
        let loaded = crate::config::loader::load_dir(&dir).expect("the example loads");
        assert!(loaded.diagnostics.is_ok(), "{:?}", loaded.diagnostics);
        let for_grpc: Vec<&str> = loaded
            .resources
            .iter()
            .filter(|r| is_for_proxyless_grpc(r))
            .map(|r| r.name.as_str())
            .collect();
        assert!(
            for_grpc.iter().any(|n| n.starts_with("grpc/server?")) && for_grpc.len() >= 2,
            "the example has a client and a server listener: {for_grpc:?}"
        );
        for (_, view) in distinct_views(&loaded.resources) {
            assert!(view.iter().all(|r| !is_for_proxyless_grpc(r)));
        }
    }
}
