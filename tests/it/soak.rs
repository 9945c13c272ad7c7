//! Soak: 500 random valid changes (clusters added, removed and modified,
//! endpoints moved, routes re-pointed, added and removed), applied in quick
//! succession while two Envoys (different nodes, different listeners) take
//! traffic on three routes that exist throughout. No request on those
//! routes fails, and at the end each Envoy's config is what `xdsd render`
//! prints for its node.
//!
//! `XDSD_SOAK_CHANGES` and `XDSD_SOAK_SEED` change the run (longer runs:
//! `XDSD_SOAK_CHANGES=5000 cargo test --release --test it soak`).

use crate::common;

use crate::common::config::{ROUTE, bare, envelope, listener_spec};
use crate::common::stack::{Traffic, write_atomic};
use crate::common::{Backend, Envoy, WorkDir, Xdsd, wait_for};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

const PERMANENT: [&str; 3] = ["/p0", "/p1", "/p2"];
const CLUSTER_NAMES: usize = 8;

/// xorshift64*: a fixed seed gives the same run everywhere.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// What the config directory says.
struct World {
    /// Live clusters: name → (backend index, connect timeout in seconds).
    clusters: BTreeMap<String, (usize, u32)>,
    /// The cluster of each permanent route.
    permanent: [String; 3],
    /// Routes that come and go: path → cluster.
    ephemeral: BTreeMap<String, String>,
}

impl World {
    fn referenced(&self) -> BTreeSet<&String> {
        self.permanent
            .iter()
            .chain(self.ephemeral.values())
            .collect()
    }
}

fn cluster_file(name: &str, backend_port: u16, timeout: u32) -> String {
    let cluster = format!(
        "name: {name}\nconnect_timeout: {timeout}s\ntype: EDS\neds_cluster_config:\n  eds_config: {{ads: {{}}}}\n"
    );
    let endpoints = format!(
        "cluster_name: {name}\nendpoints:\n- lb_endpoints:\n  - endpoint:\n      address:\n        socket_address: {{address: 127.0.0.1, port_value: {backend_port}}}\n"
    );
    format!(
        "{}---\n{}",
        bare(
            "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            &cluster
        ),
        bare(
            "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            &endpoints
        )
    )
}

fn routes_file(world: &World) -> String {
    let mut routes: Vec<(String, String)> = PERMANENT
        .iter()
        .zip(&world.permanent)
        .map(|(p, c)| (p.to_string(), c.clone()))
        .collect();
    routes.extend(world.ephemeral.iter().map(|(p, c)| (p.clone(), c.clone())));
    let list: Vec<(&str, &str)> = routes
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    bare(ROUTE, &common::config::route_spec("routes", &list))
}

struct Soak<'a> {
    dir: &'a Path,
    backends: &'a [Backend],
    world: World,
    rng: Rng,
}

impl Soak<'_> {
    fn write_cluster(&mut self, name: &str) {
        let (backend, timeout) = self.world.clusters[name];
        write_atomic(
            self.dir,
            &format!("{name}.yaml"),
            &cluster_file(name, self.backends[backend].port, timeout),
        );
    }

    fn write_routes(&self) {
        write_atomic(self.dir, "routes.yaml", &routes_file(&self.world));
    }

    fn remove_cluster(&mut self, name: &str) {
        self.world.clusters.remove(name);
        std::fs::remove_file(self.dir.join(format!("{name}.yaml"))).expect("remove cluster file");
    }

    fn pick_live(&mut self) -> String {
        let live: Vec<String> = self.world.clusters.keys().cloned().collect();
        live[self.rng.below(live.len())].clone()
    }

    fn free_name(&mut self) -> Option<String> {
        let free: Vec<String> = (0..CLUSTER_NAMES)
            .map(|i| format!("c{i}"))
            .filter(|n| !self.world.clusters.contains_key(n))
            .collect();
        (!free.is_empty()).then(|| free[self.rng.below(free.len())].clone())
    }

    fn add_cluster(&mut self) -> Option<String> {
        let name = self.free_name()?;
        let backend = self.rng.below(self.backends.len());
        self.world.clusters.insert(name.clone(), (backend, 1));
        self.write_cluster(&name);
        Some(name)
    }

    /// One random change; every file written on the way leaves a valid set
    /// (clusters appear before routes use them and go after routes stop).
    fn change(&mut self) -> &'static str {
        match self.rng.below(7) {
            0 => self
                .add_cluster()
                .map_or("add (none free)", |_| "add cluster"),
            1 => {
                let referenced: BTreeSet<String> =
                    self.world.referenced().into_iter().cloned().collect();
                let idle: Vec<String> = self
                    .world
                    .clusters
                    .keys()
                    .filter(|c| !referenced.contains(*c))
                    .cloned()
                    .collect();
                if idle.is_empty() {
                    return "remove (none idle)";
                }
                let name = idle[self.rng.below(idle.len())].clone();
                self.remove_cluster(&name);
                "remove cluster"
            }
            2 => {
                let name = self.pick_live();
                if let Some(entry) = self.world.clusters.get_mut(&name) {
                    entry.0 = (entry.0 + 1) % 3;
                    entry.1 = entry.1 % 5 + 1;
                }
                self.write_cluster(&name);
                "modify cluster and endpoints"
            }
            3 => {
                let i = self.rng.below(PERMANENT.len());
                self.world.permanent[i] = self.pick_live();
                self.write_routes();
                "re-point route"
            }
            4 => {
                let path = format!("/e{}", self.rng.below(4));
                let cluster = self.pick_live();
                self.world.ephemeral.insert(path, cluster);
                self.write_routes();
                "add route"
            }
            5 => {
                let paths: Vec<String> = self.world.ephemeral.keys().cloned().collect();
                if paths.is_empty() {
                    return "remove route (none)";
                }
                let path = paths[self.rng.below(paths.len())].clone();
                self.world.ephemeral.remove(&path);
                self.write_routes();
                "remove route"
            }
            _ => {
                // The make-before-break case: a route moves to a new cluster
                // and its old cluster goes, in quick succession.
                let Some(new) = self.add_cluster() else {
                    return "move (none free)";
                };
                let i = self.rng.below(PERMANENT.len());
                let old = std::mem::replace(&mut self.world.permanent[i], new);
                self.write_routes();
                if !self.world.referenced().contains(&old) {
                    self.remove_cluster(&old);
                }
                "move route to a new cluster, old one removed"
            }
        }
    }
}

/// An assignment's endpoint addresses only: Envoy's dump of a
/// ClusterLoadAssignment adds what it computed (health, weights, policy).
fn comparable(type_url: &str, resource: &Value) -> Value {
    if !type_url.ends_with("ClusterLoadAssignment") {
        return resource.clone();
    }
    let addresses: BTreeSet<String> = resource["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["lb_endpoints"].as_array().into_iter().flatten())
        .map(|e| e["endpoint"]["address"]["socket_address"].to_string())
        .collect();
    serde_json::json!(addresses)
}

/// Envoy's dynamic resources, by (type URL, name), as JSON.
fn envoy_resources(envoy: &Envoy) -> BTreeMap<(String, String), Value> {
    let dump: Value =
        serde_json::from_str(&envoy.admin_get("/config_dump?include_eds")).expect("config dump");
    let mut out = BTreeMap::new();
    let mut put = |resource: &Value| {
        let type_url = resource["@type"].as_str().unwrap_or_default().to_string();
        let name = resource["name"]
            .as_str()
            .or_else(|| resource["cluster_name"].as_str())
            .unwrap_or_default()
            .to_string();
        out.insert((type_url.clone(), name), comparable(&type_url, resource));
    };
    for config in dump["configs"].as_array().into_iter().flatten() {
        let lists = [
            ("dynamic_active_clusters", "cluster"),
            ("dynamic_endpoint_configs", "endpoint_config"),
            ("dynamic_route_configs", "route_config"),
        ];
        for (list, field) in lists {
            for item in config[list].as_array().into_iter().flatten() {
                put(&item[field]);
            }
        }
        for listener in config["dynamic_listeners"].as_array().into_iter().flatten() {
            put(&listener["active_state"]["listener"]);
        }
    }
    out
}

/// What `xdsd render` prints for the node, by (type URL, name).
fn rendered(dir: &Path, id: &str, cluster: &str) -> BTreeMap<(String, String), Value> {
    let output = common::xdsd(&[
        "render",
        "--dir",
        &dir.display().to_string(),
        "--node-id",
        id,
        "--node-cluster",
        cluster,
        "--format",
        "json",
    ]);
    assert!(output.status.success(), "render: {output:?}");
    let all: Value = serde_json::from_slice(&output.stdout).expect("render JSON");
    all["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let type_url = r["@type"].as_str().unwrap_or_default().to_string();
            let name = r["name"]
                .as_str()
                .or_else(|| r["cluster_name"].as_str())
                .unwrap_or_default()
                .to_string();
            let value = comparable(&type_url, r);
            ((type_url, name), value)
        })
        .collect()
}

#[test]
fn five_hundred_changes_under_traffic() {
    let changes: usize = std::env::var("XDSD_SOAK_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let seed: u64 = std::env::var("XDSD_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234);
    eprintln!("soak: {changes} changes, seed {seed}");
    let backends = [
        Backend::start("b0"),
        Backend::start("b1"),
        Backend::start("b2"),
    ];
    let work = WorkDir::new("soak");
    let dir = work.config();
    let nodes = [("soak-edge", "edge"), ("soak-internal", "internal")];
    let ports = [common::free_port(), common::free_port()];
    let listeners: Vec<String> = nodes
        .iter()
        .zip(ports)
        .map(|((_, cluster), port)| {
            envelope(
                "Listener",
                Some(&format!("{{cluster: [{cluster}]}}")),
                &listener_spec(&format!("http-{cluster}"), port, "routes"),
            )
        })
        .collect();
    write_atomic(
        &dir,
        "listeners.yaml",
        &common::config::documents(&listeners),
    );
    let mut soak = Soak {
        dir: &dir,
        backends: &backends,
        world: World {
            clusters: (0..3).map(|i| (format!("c{i}"), (i, 1))).collect(),
            permanent: ["c0".into(), "c1".into(), "c2".into()],
            ephemeral: BTreeMap::new(),
        },
        rng: Rng(seed | 1),
    };
    for i in 0..3 {
        soak.write_cluster(&format!("c{i}"));
    }
    soak.write_routes();
    let xdsd = Xdsd::start_with(&dir, &work.beside("xdsd.log"), &["--debounce-ms", "10"]);
    let envoys: Vec<Envoy> = nodes
        .iter()
        .map(|(id, cluster)| {
            Envoy::start_with(
                &work.beside(""),
                id,
                cluster,
                xdsd.listen,
                common::XdsSource::SOTW,
            )
        })
        .collect();
    for port in ports {
        for path in PERMANENT {
            common::stack::wait_body_any(port, path, Duration::from_secs(20));
        }
    }

    let traffic: Vec<Traffic> = ports
        .iter()
        .flat_map(|&port| {
            PERMANENT
                .iter()
                .map(move |&path| Traffic::start_any(port, path, Duration::from_millis(15)))
        })
        .collect();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..changes {
        *kinds.entry(soak.change()).or_default() += 1;
        std::thread::sleep(Duration::from_millis(30));
    }
    // The last change reaches both Envoys while traffic still flows: each
    // ends with what `xdsd render` prints for its node.
    let mismatches: Vec<String> = envoys
        .iter()
        .zip(nodes)
        .filter_map(|(envoy, (id, cluster))| converged(envoy, &dir, id, cluster).err())
        .collect();
    let mut requests = 0;
    let mut failures = Vec::new();
    for t in traffic {
        let (n, failed) = t.finish();
        requests += n;
        failures.extend(failed);
    }
    eprintln!(
        "soak: {requests} requests, {} failed; changes by kind: {kinds:?}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    drop(xdsd);
}

/// Waits (15 s at most) until `envoy` holds what `xdsd render` prints for
/// node `id`; otherwise says how they differ.
fn converged(envoy: &Envoy, dir: &Path, id: &str, cluster: &str) -> Result<(), String> {
    let want = rendered(dir, id, cluster);
    let mut have = BTreeMap::new();
    let same = wait_for(Duration::from_secs(15), Duration::from_millis(200), || {
        have = envoy_resources(envoy);
        (have == want).then_some(())
    });
    if same.is_some() {
        return Ok(());
    }
    let names = |m: &BTreeMap<(String, String), Value>| m.keys().cloned().collect::<Vec<_>>();
    let differing: Vec<_> = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    Err(format!(
        "{id}: Envoy's config is not what render prints.\nEnvoy: {:?}\nrender: {:?}\ndiffering: {differing:?}\n{}",
        names(&have),
        names(&want),
        differing
            .first()
            .map(|k| format!(
                "Envoy {:#}\nrender {:#}",
                have.get(*k).cloned().unwrap_or_default(),
                want[*k]
            ))
            .unwrap_or_default()
    ))
}
