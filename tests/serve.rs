//! `xdsd serve` end to end with real Envoy processes: xdsd and Envoy run as
//! child processes on free loopback ports, backends are tiny HTTP servers in
//! this process, and every check is a request through Envoy or a look at
//! Envoy's own admin API (`/stats`, `/config_dump`).
//!
//! Every process is killed by a guard on drop (also when a test panics; its
//! log tail is printed then). Config directories are scratch folders; edits
//! are written to a dotfile (ignored by xdsd) and renamed into place unless a
//! test is about non-atomic writes.

mod common;

use common::{
    Backend, ChildGuard, Envoy, KeepAliveClient, ScratchDir, Xdsd, free_port, http_get, root,
    wait_for,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Config builders
// ---------------------------------------------------------------------------

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ENDPOINTS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// An EDS cluster fed over ADS (fields only, no `"@type"`).
fn cluster_spec(name: &str) -> String {
    format!(
        "name: {name}
connect_timeout: 1s
type: EDS
eds_cluster_config:
  eds_config:
    ads: {{}}
    resource_api_version: V3
"
    )
}

/// One endpoint `127.0.0.1:port` for cluster `name`.
fn endpoints_spec(name: &str, port: u16) -> String {
    format!(
        "cluster_name: {name}
endpoints:
- lb_endpoints:
  - endpoint:
      address:
        socket_address:
          address: 127.0.0.1
          port_value: {port}
"
    )
}

/// An HTTP listener on `127.0.0.1:port` taking its routes over RDS.
fn listener_spec(name: &str, port: u16, route: &str) -> String {
    format!(
        r#"name: {name}
address:
  socket_address:
    address: 127.0.0.1
    port_value: {port}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: ingress_http
      rds:
        route_config_name: {route}
        config_source:
          ads: {{}}
          resource_api_version: V3
      http_filters:
      - name: envoy.filters.http.router
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

/// A route configuration with one virtual host `*`: `(prefix, cluster)` in order.
fn route_spec(name: &str, routes: &[(&str, &str)]) -> String {
    let mut text = format!(
        "name: {name}
virtual_hosts:
- name: all
  domains: [\"*\"]
  routes:
"
    );
    for (prefix, cluster) in routes {
        text.push_str(&format!(
            "  - match:
      prefix: {prefix}
    route:
      cluster: {cluster}
"
        ));
    }
    text
}

/// A bare resource document: `"@type"` plus the fields.
fn bare(type_url: &str, spec: &str) -> String {
    format!("\"@type\": {type_url}\n{spec}")
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| format!("{pad}{l}\n"))
        .collect::<String>()
}

/// An envelope document; `nodes` is a YAML flow mapping such as `{cluster: ["edge*"]}`.
fn envelope(kind: &str, nodes: Option<&str>, spec: &str) -> String {
    let nodes = nodes.map(|n| format!("nodes: {n}\n")).unwrap_or_default();
    format!("kind: {kind}\n{nodes}spec:\n{}", indent(spec, 2))
}

/// A DiscoveryResponse document holding typed resources.
fn discovery_response(items: &[(&str, String)]) -> String {
    let mut text = String::from("version_info: \"1\"\nresources:\n");
    for (type_url, spec) in items {
        let item = indent(&bare(type_url, spec), 2);
        text.push_str("- ");
        text.push_str(&item[2..]);
    }
    text
}

/// Documents joined into one multi-document file.
fn documents(docs: &[String]) -> String {
    docs.join("---\n")
}

/// Cluster `name` and its endpoints (on `port`), as bare documents in one file.
fn service(name: &str, port: u16) -> String {
    documents(&[
        bare(CLUSTER, &cluster_spec(name)),
        bare(ENDPOINTS, &endpoints_spec(name, port)),
    ])
}

// ---------------------------------------------------------------------------
// The stack under test: a config dir, xdsd, and one Envoy
// ---------------------------------------------------------------------------

/// Writes `text` to `dir/name` atomically: to a dotfile first (xdsd skips
/// it), then renamed into place.
fn write_atomic(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, dir.join(name)).expect("rename into place");
}

/// xdsd serving a scratch config dir, and one Envoy fed by it. Fields drop
/// in order: Envoy, then xdsd, then the scratch dir.
struct Stack {
    envoy: Envoy,
    xdsd: Xdsd,
    /// The config directory (inside `work`).
    config: PathBuf,
    work: ScratchDir,
}

impl Stack {
    /// Writes `files` into a fresh config dir, starts xdsd (waiting for
    /// readiness) and an Envoy with node `tag`/`tag-cluster`.
    fn start(tag: &str, files: &[(&str, String)]) -> Stack {
        let work = ScratchDir::new(tag);
        let config = work.path().join("config");
        std::fs::create_dir_all(&config).expect("mkdir config");
        for (name, text) in files {
            std::fs::write(config.join(name), text).expect("write config file");
        }
        // The log lives outside the watched directory.
        let xdsd = Xdsd::start(&config, &work.path().join("xdsd.log"));
        let envoy = Envoy::start(work.path(), tag, &format!("{tag}-cluster"), xdsd.listen);
        Stack {
            envoy,
            xdsd,
            config,
            work,
        }
    }

    fn write(&self, name: &str, text: &str) {
        write_atomic(&self.config, name, text);
    }
}

/// The body of `GET path` through port, if it answered 200.
fn body_of(port: u16, path: &str) -> Result<String, String> {
    let r = http_get(port, path, Duration::from_secs(2))?;
    if r.status == 200 {
        Ok(r.body)
    } else {
        Err(format!("status {}: {}", r.status, r.body.trim()))
    }
}

/// Polls `GET path` on a fresh connection every 5 ms until the body is
/// `want`; returns how long that took. Panics after `timeout` with the last answer.
fn wait_body(port: u16, path: &str, want: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    let mut last = String::from("(no request yet)");
    let got = wait_for(timeout, Duration::from_millis(5), || {
        match body_of(port, path) {
            Ok(body) if body == want => Some(()),
            Ok(body) => {
                last = format!("200 {body}");
                None
            }
            Err(e) => {
                last = e;
                None
            }
        }
    });
    assert!(
        got.is_some(),
        "GET {path} on 127.0.0.1:{port} did not answer {want:?} within {timeout:?}; last answer: {last}"
    );
    start.elapsed()
}

/// Asserts that `n` requests in a row to `path` are answered by `want`.
fn assert_served_by(port: u16, path: &str, want: &str, n: usize) {
    for i in 0..n {
        match body_of(port, path) {
            Ok(body) => assert_eq!(body, want, "GET {path} request {i}: wrong backend"),
            Err(e) => panic!("GET {path} request {i} failed: {e}"),
        }
    }
}

/// The xDS-related stats of an Envoy: everything about CDS, LDS, RDS, EDS
/// subscriptions and the control-plane connection.
fn xds_stats(envoy: &Envoy) -> BTreeMap<String, String> {
    envoy
        .stats()
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with("cluster_manager.cds.")
                || k.starts_with("listener_manager.lds.")
                || k.contains(".rds.")
                || k.starts_with("control_plane.")
                || k.starts_with("cluster.")
                    && [".update_", ".version", ".init_fetch_timeout"]
                        .iter()
                        .any(|s| k.contains(s))
        })
        .collect()
}

/// Envoy's xDS state: its full config dump (with endpoints) and xDS stats.
/// Nothing in it changes unless Envoy received an xDS response.
#[derive(Debug, PartialEq)]
struct EnvoyState {
    config_dump: serde_json::Value,
    stats: BTreeMap<String, String>,
}

fn envoy_state(envoy: &Envoy) -> EnvoyState {
    EnvoyState {
        config_dump: envoy.config_dump(),
        stats: xds_stats(envoy),
    }
}

/// Envoy's state once it stopped changing (two reads 300 ms apart agree).
fn settled_state(envoy: &Envoy) -> EnvoyState {
    let mut last = envoy_state(envoy);
    let settled = wait_for(Duration::from_secs(10), Duration::from_millis(300), || {
        let now = envoy_state(envoy);
        if now == last {
            return Some(());
        }
        last = now;
        None
    });
    assert!(settled.is_some(), "Envoy's xDS state keeps changing");
    last
}

/// Lines that differ between two states, for failure messages.
fn state_diff(before: &EnvoyState, after: &EnvoyState) -> String {
    let mut out = Vec::new();
    for (k, v) in &before.stats {
        match after.stats.get(k) {
            Some(w) if w == v => {}
            Some(w) => out.push(format!("stat {k}: {v} -> {w}")),
            None => out.push(format!("stat {k}: {v} -> (gone)")),
        }
    }
    for (k, w) in &after.stats {
        if !before.stats.contains_key(k) {
            out.push(format!("stat {k}: (new) {w}"));
        }
    }
    if before.config_dump != after.config_dump {
        let a = serde_json::to_string_pretty(&before.config_dump).unwrap_or_default();
        let b = serde_json::to_string_pretty(&after.config_dump).unwrap_or_default();
        let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
        out.push("config_dump differs:".into());
        for line in b.iter().filter(|l| !a.contains(l)).take(40) {
            out.push(format!("  + {}", line.trim()));
        }
        for line in a.iter().filter(|l| !b.contains(l)).take(40) {
            out.push(format!("  - {}", line.trim()));
        }
    }
    out.join("\n")
}

/// Waits until the xdsd log written after byte `from` reports an error located
/// in `file` (`file:LINE:`); returns that log text.
fn wait_for_located_error(xdsd: &Xdsd, from: usize, file: &str) -> String {
    let needle = format!("{file}:");
    let found = wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
        let log = xdsd.log();
        let new = log.get(from..)?.to_string();
        let located = new.match_indices(&needle).any(|(i, _)| {
            new[i + needle.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        });
        located.then_some(new)
    });
    found.unwrap_or_else(|| {
        panic!(
            "xdsd logged no error located in {file} (`{file}:LINE:`) within 5 s; log since the edit:\n{}",
            xdsd.log().get(from..).unwrap_or("")
        )
    })
}

/// Requests `path` every `every` on fresh connections until stopped;
/// collects the failures (anything but 200 from `want`).
struct Traffic {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl Traffic {
    fn start(port: u16, path: &'static str, want: &'static str, every: Duration) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let (mut n, mut failures) = (0, Vec::new());
            let start = Instant::now();
            while !flag.load(Ordering::SeqCst) {
                n += 1;
                match body_of(port, path) {
                    Ok(body) if body == want => {}
                    Ok(body) => failures.push(format!("{:?}: answered by {body}", start.elapsed())),
                    Err(e) => failures.push(format!("{:?}: {e}", start.elapsed())),
                }
                std::thread::sleep(every);
            }
            (n, failures)
        });
        Traffic { stop, handle }
    }

    /// Stops; returns (requests, failures).
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("traffic thread")
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn quickstart_request_reaches_backend() {
    let backend = Backend::start("backend-a");
    let port = free_port();
    // The quickstart example itself, with free ports substituted.
    let example = root().join("config-examples/quickstart");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&example)
        .expect("read quickstart")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).expect("read example file");
        let text = text
            .replace("port_value: 10000", &format!("port_value: {port}"))
            .replace("port_value: 8080", &format!("port_value: {}", backend.port));
        files.push((name, text));
    }
    assert_eq!(files.len(), 4, "quickstart has four files");
    let files: Vec<(&str, String)> = files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let stack = Stack::start("quickstart", &files);

    let took = wait_body(port, "/", "backend-a", Duration::from_secs(10));
    eprintln!("quickstart: first request answered {took:?} after Envoy started");
    assert_served_by(port, "/anything/else", "backend-a", 5);
    let stats = stack.envoy.stats();
    assert_eq!(
        stats
            .get("control_plane.connected_state")
            .map(String::as_str),
        Some("1"),
        "Envoy is connected to xdsd"
    );
}

#[test]
fn three_document_forms_are_served() {
    let backend = Backend::start("backend-a");
    let port = free_port();
    let files = [
        // An envelope.
        (
            "cluster.yaml",
            envelope("Cluster", None, &cluster_spec("backend")),
        ),
        // An Envoy file-subscription document.
        (
            "endpoints.yaml",
            discovery_response(&[(ENDPOINTS, endpoints_spec("backend", backend.port))]),
        ),
        // Bare resources.
        (
            "listener.yaml",
            bare(
                LISTENER,
                &listener_spec("listener_http", port, "local_route"),
            ),
        ),
        (
            "routes.yaml",
            bare(ROUTE, &route_spec("local_route", &[("/", "backend")])),
        ),
    ];
    let stack = Stack::start("forms", &files);
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    assert_served_by(port, "/x", "backend-a", 3);

    let dump = stack.envoy.config_dump().to_string();
    for name in ["\"backend\"", "\"listener_http\"", "\"local_route\""] {
        assert!(dump.contains(name), "Envoy's config has {name}");
    }
}

#[test]
fn live_update_new_cluster_and_route() {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let stack = Stack::start(
        "live",
        &[
            (
                "listener.yaml",
                bare(
                    LISTENER,
                    &listener_spec("listener_http", port, "local_route"),
                ),
            ),
            ("a.yaml", service("a", a.port)),
            (
                "routes.yaml",
                bare(ROUTE, &route_spec("local_route", &[("/", "a")])),
            ),
        ],
    );
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    assert_served_by(port, "/b", "backend-a", 3);

    // Both new files ready as dotfiles, then renamed into place back to back.
    let dir = &stack.config;
    std::fs::write(dir.join(".b.yaml.tmp"), service("b", b.port)).expect("write");
    let routes = route_spec("local_route", &[("/b", "b"), ("/", "a")]);
    std::fs::write(dir.join(".routes.yaml.tmp"), bare(ROUTE, &routes)).expect("write");
    // Let xdsd's (no-op) reload for the dotfile events pass first.
    std::thread::sleep(Duration::from_millis(500));
    let renamed = Instant::now();
    std::fs::rename(dir.join(".b.yaml.tmp"), dir.join("b.yaml")).expect("rename");
    std::fs::rename(dir.join(".routes.yaml.tmp"), dir.join("routes.yaml")).expect("rename");
    wait_body(port, "/b", "backend-b", Duration::from_secs(10));
    let latency = renamed.elapsed();
    eprintln!("live update: rename -> first /b answered by backend-b in {latency:?}");
    assert!(
        latency < Duration::from_secs(1),
        "live update took {latency:?} (want < 1 s)"
    );
    assert_served_by(port, "/b/x", "backend-b", 3);
    assert_served_by(port, "/", "backend-a", 3);
}

#[test]
fn bad_edit_keeps_serving_and_fix_applies() {
    let (a, n) = (Backend::start("backend-a"), Backend::start("backend-new"));
    let port = free_port();
    let stack = Stack::start(
        "bad-edit",
        &[
            (
                "listener.yaml",
                bare(
                    LISTENER,
                    &listener_spec("listener_http", port, "local_route"),
                ),
            ),
            ("a.yaml", service("a", a.port)),
            (
                "routes.yaml",
                bare(ROUTE, &route_spec("local_route", &[("/", "a")])),
            ),
        ],
    );
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    let before = settled_state(&stack.envoy);

    // (a) A YAML syntax error (an unclosed flow sequence on line 5).
    let broken = "\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
name: local_route
virtual_hosts:
- name: all
  domains: [\"*\"
  routes:
  - match: {prefix: /}
    route: {cluster: a}
";
    let from = stack.xdsd.log().len();
    stack.write("routes.yaml", broken);
    let log = wait_for_located_error(&stack.xdsd, from, "routes.yaml");
    eprintln!("(a) xdsd logged:\n{}", common::tail(&log, 10));
    std::thread::sleep(Duration::from_millis(500));
    assert_served_by(port, "/", "backend-a", 10);
    let after = envoy_state(&stack.envoy);
    assert!(
        before == after,
        "a YAML syntax error changed Envoy's config:\n{}",
        state_diff(&before, &after)
    );

    // (b) Valid YAML, but a route to a cluster that does not exist.
    let dangling = bare(
        ROUTE,
        &route_spec("local_route", &[("/new", "newsvc"), ("/", "a")]),
    );
    let from = stack.xdsd.log().len();
    stack.write("routes.yaml", &dangling);
    let log = wait_for_located_error(&stack.xdsd, from, "routes.yaml");
    eprintln!("(b) xdsd logged:\n{}", common::tail(&log, 10));
    assert!(
        log.contains("newsvc"),
        "the error names the missing cluster `newsvc`:\n{log}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_served_by(port, "/", "backend-a", 5);
    assert_served_by(port, "/new", "backend-a", 5);
    let after = envoy_state(&stack.envoy);
    assert!(
        before == after,
        "a route to a missing cluster changed Envoy's config:\n{}",
        state_diff(&before, &after)
    );

    // The fix: the missing cluster appears; the new route applies.
    stack.write("newsvc.yaml", &service("newsvc", n.port));
    let took = wait_body(port, "/new", "backend-new", Duration::from_secs(5));
    eprintln!("fix applied in {took:?}");
    assert_served_by(port, "/", "backend-a", 3);
    let rejected: Vec<_> = xds_stats(&stack.envoy)
        .into_iter()
        .filter(|(k, v)| k.ends_with("update_rejected") && v != "0")
        .collect();
    assert!(rejected.is_empty(), "Envoy rejected updates: {rejected:?}");
}

#[test]
fn half_written_file_never_reaches_envoy() {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let stack = Stack::start(
        "half-written",
        &[
            (
                "listener.yaml",
                bare(
                    LISTENER,
                    &listener_spec("listener_http", port, "local_route"),
                ),
            ),
            ("a.yaml", service("a", a.port)),
            ("b.yaml", service("b", b.port)),
            (
                "routes.yaml",
                bare(ROUTE, &route_spec("local_route", &[("/", "a")])),
            ),
        ],
    );
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    let before = settled_state(&stack.envoy);

    // routes.yaml rewritten in place: truncated, a first chunk that is cut in
    // the middle of a mapping (invalid on its own), a pause, then the rest.
    let full = bare(
        ROUTE,
        &route_spec("local_route", &[("/b", "b"), ("/", "a")]),
    );
    let cut = full.rfind("cluster: a").expect("cut point") + "clu".len();
    let (first, second) = full.split_at(cut);
    let traffic = Traffic::start(port, "/", "backend-a", Duration::from_millis(10));
    let from = stack.xdsd.log().len();
    let mut file = std::fs::File::create(stack.config.join("routes.yaml")).expect("open");
    file.write_all(first.as_bytes()).expect("write first chunk");
    file.sync_data().expect("sync");
    // Envoy's state, sampled through the pause, must stay as it was.
    let pause = Instant::now();
    let mut changed = None;
    while pause.elapsed() < Duration::from_millis(300) {
        let during = envoy_state(&stack.envoy);
        if changed.is_none() && during != before {
            changed = Some((pause.elapsed(), state_diff(&before, &during)));
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    file.write_all(second.as_bytes())
        .expect("write second chunk");
    drop(file);
    let took = wait_body(port, "/b", "backend-b", Duration::from_secs(5));
    let (requests, failures) = traffic.finish();
    let log = stack.xdsd.log();
    let rejected_half = log.get(from..).unwrap_or("").contains("routes.yaml:");
    eprintln!(
        "half-written: {requests} requests during the write; complete file applied {took:?} after the second chunk; \
         xdsd {} the half-written file",
        if rejected_half {
            "read and rejected"
        } else {
            "never reported"
        }
    );

    if let Some((at, diff)) = changed {
        panic!("Envoy's config changed {at:?} into the pause, the file half written:\n{diff}");
    }
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed during the write: {:?}",
        failures.len(),
        failures
    );
    let rejected: Vec<_> = xds_stats(&stack.envoy)
        .into_iter()
        .filter(|(k, v)| k.ends_with("update_rejected") && v != "0")
        .collect();
    assert!(rejected.is_empty(), "Envoy rejected updates: {rejected:?}");
    assert_served_by(port, "/", "backend-a", 3);
    assert_served_by(port, "/b", "backend-b", 3);
}

/// One request's outcome in a load run.
struct Outcome {
    at: Duration,
    keepalive: bool,
    result: Result<String, String>,
}

/// Runs ~200 requests/s on `/` for `total` (100/s on fresh connections, 100/s
/// on one keep-alive connection), calling `change` after `change_at`.
/// Returns the outcomes in time order and when the change was made.
fn load_with_change(
    port: u16,
    total: Duration,
    change_at: Duration,
    change: impl FnOnce(),
) -> (Vec<Outcome>, Duration) {
    let start = Instant::now();
    let worker = |keepalive: bool| {
        std::thread::spawn(move || {
            let mut client = KeepAliveClient::new(port, Duration::from_secs(2));
            let mut out = Vec::new();
            let mut i = 0u32;
            while start.elapsed() < total {
                let due = Duration::from_millis(10) * i;
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
                i += 1;
                let at = start.elapsed();
                let response = if keepalive {
                    client.get("/")
                } else {
                    http_get(port, "/", Duration::from_secs(2))
                };
                let result = match response {
                    Ok(r) if r.status == 200 => Ok(r.body),
                    Ok(r) => Err(format!("status {}: {}", r.status, r.body.trim())),
                    Err(e) => Err(e),
                };
                out.push(Outcome {
                    at,
                    keepalive,
                    result,
                });
            }
            (out, client.connections)
        })
    };
    let (fresh, kept) = (worker(false), worker(true));
    std::thread::sleep(change_at.saturating_sub(start.elapsed()));
    let changed = start.elapsed();
    change();
    let (mut all, _) = fresh.join().expect("load thread");
    let (kept, connections) = kept.join().expect("load thread");
    eprintln!("keep-alive client used {connections} connection(s)");
    all.extend(kept);
    all.sort_by_key(|o| o.at);
    (all, changed)
}

/// Checks a load run: no failures, both backends seen, the last requests of
/// each kind answered by `to`. Prints the counts.
fn check_load(label: &str, outcomes: &[Outcome], changed: Duration, from: &str, to: &str) {
    let mut counts: BTreeMap<(bool, String), usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for o in outcomes {
        match &o.result {
            Ok(body) => *counts.entry((o.keepalive, body.clone())).or_default() += 1,
            Err(e) => failures.push(format!(
                "{:?} ({}): {e}",
                o.at,
                if o.keepalive { "keep-alive" } else { "fresh" }
            )),
        }
    }
    let first_new = outcomes
        .iter()
        .find(|o| o.result.as_deref() == Ok(to))
        .map(|o| o.at.saturating_sub(changed));
    eprintln!(
        "{label}: {} requests, {} failed; by (keep-alive, backend): {counts:?}; change at {changed:?}, first {to} {first_new:?} later",
        outcomes.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{label}: {} of {} requests failed:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
    assert!(
        counts.keys().any(|(_, b)| b == from),
        "{label}: no request reached {from} before the change"
    );
    for keepalive in [false, true] {
        let last: Vec<&str> = outcomes
            .iter()
            .filter(|o| o.keepalive == keepalive)
            .rev()
            .take(20)
            .map(|o| o.result.as_deref().unwrap_or("error"))
            .collect();
        assert!(
            last.len() == 20 && last.iter().all(|b| *b == to),
            "{label}: the last requests ({}) were not all answered by {to}: {last:?}",
            if keepalive { "keep-alive" } else { "fresh" }
        );
    }
}

#[test]
fn make_before_break_moves_route_with_zero_failures() {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    // Everything in one file, so one rename is one change.
    let all = |cluster: &str, backend: &Backend| {
        documents(&[
            bare(
                LISTENER,
                &listener_spec("listener_http", port, "local_route"),
            ),
            bare(ROUTE, &route_spec("local_route", &[("/", cluster)])),
            service(cluster, backend.port),
        ])
    };
    let stack = Stack::start("mbb", &[("all.yaml", all("a", &a))]);
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    settled_state(&stack.envoy);

    // A -> B: route to new cluster b, cluster a and its endpoints removed.
    let (outcomes, changed) = load_with_change(
        port,
        Duration::from_secs(4),
        Duration::from_millis(1500),
        || stack.write("all.yaml", &all("b", &b)),
    );
    check_load("a -> b", &outcomes, changed, "backend-a", "backend-b");
    let clusters = stack.envoy.admin_get("/clusters");
    assert!(
        !clusters.lines().any(|l| l.starts_with("a::")),
        "cluster a is removed from Envoy after the move:\n{clusters}"
    );

    // B -> A2: route to new cluster a2 (backend A again), b removed.
    let (outcomes, changed) = load_with_change(
        port,
        Duration::from_secs(4),
        Duration::from_millis(1500),
        || stack.write("all.yaml", &all("a2", &a)),
    );
    check_load("b -> a2", &outcomes, changed, "backend-b", "backend-a");
    let clusters = stack.envoy.admin_get("/clusters");
    assert!(
        !clusters.lines().any(|l| l.starts_with("b::")),
        "cluster b is removed from Envoy after the move:\n{clusters}"
    );
    let rejected: Vec<_> = xds_stats(&stack.envoy)
        .into_iter()
        .filter(|(k, v)| k.ends_with("update_rejected") && v != "0")
        .collect();
    assert!(rejected.is_empty(), "Envoy rejected updates: {rejected:?}");
}

/// A quickstart-like set: listener on `port`, `/` -> cluster a -> backend `a`.
fn simple_set(port: u16, a: &Backend) -> Vec<(&'static str, String)> {
    vec![
        (
            "listener.yaml",
            bare(
                LISTENER,
                &listener_spec("listener_http", port, "local_route"),
            ),
        ),
        ("a.yaml", service("a", a.port)),
        (
            "routes.yaml",
            bare(ROUTE, &route_spec("local_route", &[("/", "a")])),
        ),
    ]
}

/// Stops xdsd with SIGTERM (asserting exit 0 within 5 s) while traffic flows,
/// starts it again on the same ports, and waits for Envoy to reconnect.
/// Returns Envoy's settled state before the stop and after the reconnect.
fn restart_xdsd(stack: &mut Stack, port: u16) -> (EnvoyState, EnvoyState) {
    let before = settled_state(&stack.envoy);
    let traffic = Traffic::start(port, "/", "backend-a", Duration::from_millis(20));

    let stopping = Instant::now();
    stack.xdsd.guard.signal("TERM");
    let status = stack.xdsd.guard.wait_exit(Duration::from_secs(5));
    let status = status.unwrap_or_else(|| panic!("xdsd did not exit within 5 s of SIGTERM"));
    eprintln!(
        "xdsd exited {status} {:?} after SIGTERM",
        stopping.elapsed()
    );
    assert!(status.success(), "xdsd exit status after SIGTERM: {status}");
    let disconnected = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        (stack.envoy.stat("control_plane.connected_state").as_deref() == Some("0")).then_some(())
    });
    assert!(
        disconnected.is_some(),
        "Envoy still reports a connection to the stopped xdsd"
    );
    assert_served_by(port, "/", "backend-a", 5);

    let (listen, admin) = (stack.xdsd.listen, stack.xdsd.admin);
    let log = stack.work.path().join("xdsd-2.log");
    let mut second = Xdsd::spawn(&stack.config, listen, admin, &[], &log);
    second.wait_ready();
    stack.xdsd = second;
    let restarted = Instant::now();
    let reconnected = wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        (stack.envoy.stat("control_plane.connected_state").as_deref() == Some("1")).then_some(())
    });
    assert!(
        reconnected.is_some(),
        "Envoy did not reconnect to the restarted xdsd within 15 s"
    );
    eprintln!(
        "Envoy reconnected {:?} after xdsd restarted",
        restarted.elapsed()
    );
    // Time for whatever xdsd sends on the new stream to arrive and be ACKed.
    std::thread::sleep(Duration::from_secs(1));
    let after = settled_state(&stack.envoy);
    let (requests, failures) = traffic.finish();
    eprintln!("restart: {requests} requests while xdsd restarted");
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed during the restart: {failures:?}",
        failures.len()
    );
    assert_served_by(port, "/", "backend-a", 3);
    (before, after)
}

/// Restarting xdsd (SIGTERM, exit 0, start again) leaves Envoy's config as
/// it was: traffic flows throughout, Envoy reconnects, and its config dump
/// (versions, `last_updated` times, content) and every xDS version stat are
/// the same, since versions derive from content.
#[test]
fn restart_keeps_envoy_config() {
    let a = Backend::start("backend-a");
    let port = free_port();
    let mut stack = Stack::start("restart", &simple_set(port, &a));
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    let (before, after) = restart_xdsd(&mut stack, port);

    let versions = |s: &EnvoyState| -> BTreeMap<String, String> {
        s.stats
            .iter()
            .filter(|(k, _)| k.ends_with(".version") || k.ends_with(".version_text"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert!(
        !versions(&before).is_empty(),
        "Envoy has xDS version stats: {:?}",
        before.stats
    );
    assert_eq!(
        versions(&before),
        versions(&after),
        "xDS versions changed across an xdsd restart with the same files"
    );
    assert!(
        before.config_dump == after.config_dump,
        "Envoy's config changed across an xdsd restart:\n{}",
        state_diff(&before, &after)
    );
}

/// The strict reading of "a client is never sent a response that changes
/// nothing for it": after an xdsd restart, Envoy reconnects and re-requests
/// with the versions it has; xdsd must answer nothing, so Envoy's
/// `*.update_success` counters (which count every accepted response, also
/// no-op ones) do not move.
#[test]
fn restart_sends_nothing_new() {
    let a = Backend::start("backend-a");
    let port = free_port();
    let mut stack = Stack::start("restart-strict", &simple_set(port, &a));
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    let (before, after) = restart_xdsd(&mut stack, port);
    let counters = |s: &EnvoyState| -> BTreeMap<String, String> {
        s.stats
            .iter()
            .filter(|(k, _)| k.ends_with(".update_success") || k.ends_with(".update_rejected"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(
        counters(&before),
        counters(&after),
        "Envoy accepted xDS responses after reconnecting, though nothing changed for it; \
         xdsd log after the restart:\n{}",
        common::tail(&stack.xdsd.log(), 40)
    );
}

#[test]
fn node_targeting() {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let (edge_port, internal_port) = (free_port(), free_port());
    let edge = Some(r#"{cluster: ["edge*"]}"#);
    let internal = Some(r#"{cluster: ["internal*"]}"#);
    let work = ScratchDir::new("targeting");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    let write = |name: &str, docs: &[String]| {
        std::fs::write(config.join(name), documents(docs)).expect("write");
    };
    write("a.yaml", &[service("a", a.port)]);
    write("b.yaml", &[service("b", b.port)]);
    // Each group gets its own listener port (Envoy listeners use
    // SO_REUSEPORT: two proxies on one port would share its traffic).
    write(
        "listeners.yaml",
        &[
            envelope(
                "Listener",
                edge,
                &listener_spec("listener_http", edge_port, "local_route"),
            ),
            envelope(
                "Listener",
                internal,
                &listener_spec("listener_http", internal_port, "local_route"),
            ),
        ],
    );
    write(
        "routes.yaml",
        &[
            envelope(
                "RouteConfiguration",
                edge,
                &route_spec("local_route", &[("/", "a")]),
            ),
            envelope(
                "RouteConfiguration",
                internal,
                &route_spec("local_route", &[("/", "b")]),
            ),
        ],
    );
    let xdsd = Xdsd::start(&config, &work.path().join("xdsd.log"));
    let edge_envoy = Envoy::start(work.path(), "edge-proxy", "edge-1", xdsd.listen);
    let internal_envoy = Envoy::start(work.path(), "internal-proxy", "internal-1", xdsd.listen);

    wait_body(edge_port, "/", "backend-a", Duration::from_secs(10));
    wait_body(internal_port, "/", "backend-b", Duration::from_secs(10));
    assert_served_by(edge_port, "/x", "backend-a", 10);
    assert_served_by(internal_port, "/x", "backend-b", 10);
    // Each proxy has only its own listener address and route.
    let edge_dump = edge_envoy.config_dump().to_string();
    let internal_dump = internal_envoy.config_dump().to_string();
    assert!(
        !edge_dump.contains(&format!("\"port_value\":{internal_port}")),
        "the edge proxy got the internal listener"
    );
    assert!(
        !internal_dump.contains(&format!("\"port_value\":{edge_port}")),
        "the internal proxy got the edge listener"
    );
    drop((edge_envoy, internal_envoy, xdsd));
}

/// Runs `xdsd serve` expecting it to fail at once: returns its exit code and
/// stderr, panicking if it is still running after 5 s or exits 0.
fn serve_must_fail(work: &Path, name: &str, dir: &Path, listen: u16, admin: u16) -> (i32, String) {
    let command = Xdsd::command(dir, listen, admin, &[]);
    let (stdout, stderr) = (
        work.join(format!("{name}.stdout")),
        work.join(format!("{name}.stderr")),
    );
    let mut xdsd = ChildGuard::spawn_split("xdsd", command, &stdout, &stderr);
    let started = Instant::now();
    let status = xdsd.wait_exit(Duration::from_secs(5));
    let errors = xdsd.log();
    let status = status.unwrap_or_else(|| {
        panic!("xdsd serve ({name}) still runs 5 s after start; stderr:\n{errors}")
    });
    eprintln!("{name}: {status} after {:?}", started.elapsed());
    let code = status
        .code()
        .unwrap_or_else(|| panic!("xdsd ({name}) killed by a signal: {status}"));
    assert_ne!(code, 0, "xdsd serve ({name}) exited 0; stderr:\n{errors}");
    (code, errors)
}

#[test]
fn serve_refuses_to_start() {
    let work = ScratchDir::new("refuse");

    // An invalid initial set: an unknown field on line 3.
    let bad = work.path().join("bad");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(
        bad.join("bad.yaml"),
        "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: backend\nconnect_timeoutt: 1s\n",
    )
    .expect("write");
    let (_, output) = serve_must_fail(work.path(), "invalid", &bad, free_port(), free_port());
    assert!(
        output.contains("bad.yaml:3:"),
        "the error is reported at bad.yaml:3:COL on stderr; stderr:\n{output}"
    );
    assert!(
        output.contains("connect_timeoutt"),
        "the error names the unknown field; stderr:\n{output}"
    );

    // A directory that does not exist.
    let missing = work.path().join("no-such-dir");
    let (_, output) = serve_must_fail(work.path(), "missing", &missing, free_port(), free_port());
    assert!(
        output.contains("no-such-dir"),
        "the error names the directory; stderr:\n{output}"
    );

    // A valid set, but the xDS port (then the admin port) is taken.
    let good = work.path().join("good");
    std::fs::create_dir_all(&good).expect("mkdir");
    let unused = Backend::start("unused");
    for (name, text) in simple_set(free_port(), &unused) {
        std::fs::write(good.join(name), text).expect("write");
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("addr").port();
    let (_, output) = serve_must_fail(work.path(), "listen-in-use", &good, taken_port, free_port());
    assert!(
        output.contains(&taken_port.to_string()),
        "the error names the busy address 127.0.0.1:{taken_port}; stderr:\n{output}"
    );
    let (_, output) = serve_must_fail(work.path(), "admin-in-use", &good, free_port(), taken_port);
    assert!(
        output.contains(&taken_port.to_string()),
        "the error names the busy admin address 127.0.0.1:{taken_port}; stderr:\n{output}"
    );
    drop(taken);

    // Sanity: the same valid set does start on free ports.
    let mut ok = Xdsd::spawn(
        &good,
        free_port(),
        free_port(),
        &[],
        &work.path().join("ok.log"),
    );
    ok.wait_ready();
}
