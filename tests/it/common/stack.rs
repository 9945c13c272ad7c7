//! The stack under test: a scratch config dir, `xdsd serve` on it, and one
//! real Envoy fed by it; requests through Envoy, looks at Envoy's admin API,
//! traffic under load, and the end-to-end flows several test files share
//! (parameterised by how Envoy talks xDS).

use super::config::{LISTENER, ROUTE, bare, documents, listener_spec_via, route_spec, service_via};
use super::{
    Backend, Envoy, KeepAliveClient, ScratchDir, XdsSource, Xdsd, free_port, http_get, root,
    wait_for,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Writes `text` to `dir/name` atomically: to a dotfile first (xdsd skips
/// it), then renamed into place.
pub fn write_atomic(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, dir.join(name)).expect("rename into place");
}

/// xdsd serving a scratch config dir, and one Envoy fed by it. Fields drop
/// in order: Envoy, then xdsd, then the scratch dir.
pub struct Stack {
    pub envoy: Envoy,
    pub xdsd: Xdsd,
    /// The config directory (inside `work`).
    pub config: PathBuf,
    pub work: ScratchDir,
}

impl Stack {
    /// Writes `files` into a fresh config dir, starts xdsd (waiting for
    /// readiness) and an Envoy with node `tag`/`tag-cluster`, fed over ADS
    /// (state of the world).
    pub fn start(tag: &str, files: &[(&str, String)]) -> Stack {
        Stack::start_via(tag, XdsSource::SOTW, files)
    }

    /// [`Stack::start`] with an Envoy getting its resources as `source` says.
    pub fn start_via(tag: &str, source: XdsSource, files: &[(&str, String)]) -> Stack {
        Stack::launch(tag, source, &[], |config| {
            for (name, text) in files {
                std::fs::write(config.join(name), text).expect("write config file");
            }
        })
    }

    /// The general form: `layout` fills the (empty, existing) config dir,
    /// then xdsd starts with `xdsd_args` added and waits for readiness, then
    /// an Envoy with node `tag`/`tag-cluster` fed as `source` says.
    pub fn launch(
        tag: &str,
        source: XdsSource,
        xdsd_args: &[&str],
        layout: impl FnOnce(&Path),
    ) -> Stack {
        let work = ScratchDir::new(tag);
        let config = work.path().join("config");
        std::fs::create_dir_all(&config).expect("mkdir config");
        layout(&config);
        // The log lives outside the watched directory.
        let xdsd = Xdsd::start_with(&config, &work.path().join("xdsd.log"), xdsd_args);
        let envoy = Envoy::start_with(
            work.path(),
            tag,
            &format!("{tag}-cluster"),
            xdsd.listen,
            source,
        );
        Stack {
            envoy,
            xdsd,
            config,
            work,
        }
    }

    /// Writes `text` to `name` in the config dir atomically (dotfile + rename).
    pub fn write(&self, name: &str, text: &str) {
        write_atomic(&self.config, name, text);
    }
}

/// The body of `GET path` through port, if it answered 200.
pub fn body_of(port: u16, path: &str) -> Result<String, String> {
    let r = http_get(port, path, Duration::from_secs(2))?;
    if r.status == 200 {
        Ok(r.body)
    } else {
        Err(format!("status {}: {}", r.status, r.body.trim()))
    }
}

/// Polls `GET path` on a fresh connection every 5 ms until the body is
/// `want`; returns how long that took. Panics after `timeout` with the last answer.
pub fn wait_body(port: u16, path: &str, want: &str, timeout: Duration) -> Duration {
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
pub fn assert_served_by(port: u16, path: &str, want: &str, n: usize) {
    for i in 0..n {
        match body_of(port, path) {
            Ok(body) => assert_eq!(body, want, "GET {path} request {i}: wrong backend"),
            Err(e) => panic!("GET {path} request {i} failed: {e}"),
        }
    }
}

/// The xDS-related stats of an Envoy: everything about CDS, LDS, RDS, EDS
/// subscriptions and the control-plane connection.
pub fn xds_stats(envoy: &Envoy) -> BTreeMap<String, String> {
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
pub struct EnvoyState {
    pub config_dump: serde_json::Value,
    pub stats: BTreeMap<String, String>,
}

pub fn envoy_state(envoy: &Envoy) -> EnvoyState {
    EnvoyState {
        config_dump: envoy.config_dump(),
        stats: xds_stats(envoy),
    }
}

/// Envoy's state once it stopped changing (two reads 300 ms apart agree).
pub fn settled_state(envoy: &Envoy) -> EnvoyState {
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
pub fn state_diff(before: &EnvoyState, after: &EnvoyState) -> String {
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
pub fn wait_for_located_error(xdsd: &Xdsd, from: usize, file: &str) -> String {
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

/// One file with everything: a listener on `port`, its route `/` to
/// `cluster`, and `cluster` with its endpoint at `backend`; so one rename
/// is one change.
pub fn routed_to(port: u16, cluster: &str, backend: &Backend, source: XdsSource) -> String {
    documents(&[
        bare(
            LISTENER,
            &listener_spec_via("listener_http", port, "local_route", source),
        ),
        bare(ROUTE, &route_spec("local_route", &[("/", cluster)])),
        service_via(cluster, backend.port, source),
    ])
}

/// Waits until `GET path` through `port` answers 200 (from any backend).
pub fn wait_body_any(port: u16, path: &str, timeout: Duration) {
    let answered = wait_for(timeout, Duration::from_millis(25), || {
        body_of(port, path).ok()
    });
    assert!(
        answered.is_some(),
        "{path} on port {port} did not answer within {timeout:?}"
    );
}

/// Requests `path` every `every` on fresh connections until stopped;
/// collects the failures (anything but 200 from `want`).
pub struct Traffic {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl Traffic {
    pub fn start(port: u16, path: &'static str, want: &'static str, every: Duration) -> Traffic {
        Traffic::start_checking(port, path, every, move |body| body == want)
    }

    /// Like [`Traffic::start`], but any 200 answer (from any backend) is a success.
    pub fn start_any(port: u16, path: &'static str, every: Duration) -> Traffic {
        Traffic::start_checking(port, path, every, |_| true)
    }

    fn start_checking(
        port: u16,
        path: &'static str,
        every: Duration,
        accept: impl Fn(&str) -> bool + Send + 'static,
    ) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let (mut n, mut failures) = (0, Vec::new());
            let start = Instant::now();
            while !flag.load(Ordering::SeqCst) {
                n += 1;
                match body_of(port, path) {
                    Ok(body) if accept(&body) => {}
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
    pub fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("traffic thread")
    }
}

/// One request's outcome in a load run.
pub struct Outcome {
    pub at: Duration,
    pub keepalive: bool,
    pub result: Result<String, String>,
}

/// Runs ~200 requests/s on `/` for `total` (100/s on fresh connections, 100/s
/// on one keep-alive connection), calling `change` after `change_at`.
/// Returns the outcomes in time order and when the change was made.
pub fn load_with_change(
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
pub fn check_load(label: &str, outcomes: &[Outcome], changed: Duration, from: &str, to: &str) {
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

/// Envoy's `*.update_success` and `*.update_rejected` counters: they move
/// on every response Envoy accepts or refuses, also one that changes nothing.
pub fn update_counters(state: &EnvoyState) -> BTreeMap<String, String> {
    state
        .stats
        .iter()
        .filter(|(k, _)| k.ends_with(".update_success") || k.ends_with(".update_rejected"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Envoy's `*update_rejected` stats that are not 0.
pub fn rejected_updates(envoy: &Envoy) -> Vec<(String, String)> {
    xds_stats(envoy)
        .into_iter()
        .filter(|(k, v)| k.ends_with("update_rejected") && v != "0")
        .collect()
}

// ---------------------------------------------------------------------------
// End-to-end flows, shared by the SotW tests (serve.rs) and their variants
// (serve_variants.rs), parameterised by how Envoy gets its resources.
// ---------------------------------------------------------------------------

/// The quickstart example (`config-examples/quickstart`, free ports
/// substituted) served to an Envoy fed as `source` says: a request through
/// Envoy reaches the backend. Returns the stack for further checks.
pub fn quickstart_flow(tag: &str, source: XdsSource) -> Stack {
    let backend = Backend::start("backend-a");
    let port = free_port();
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
    let stack = Stack::start_via(tag, source, &files);

    let took = wait_body(port, "/", "backend-a", Duration::from_secs(10));
    eprintln!("{tag} ({source:?}): first request answered {took:?} after Envoy started");
    assert_served_by(port, "/anything/else", "backend-a", 5);
    let stats = stack.envoy.stats();
    assert_eq!(
        stats
            .get("control_plane.connected_state")
            .map(String::as_str),
        Some("1"),
        "Envoy is connected to xdsd"
    );
    stack
}

/// A live update: a new cluster (with endpoints) and a route to it, both
/// files renamed into place back to back, reach Envoy in under 1 s.
pub fn live_update_flow(tag: &str, source: XdsSource) {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let stack = Stack::start_via(
        tag,
        source,
        &[
            (
                "listener.yaml",
                bare(
                    LISTENER,
                    &listener_spec_via("listener_http", port, "local_route", source),
                ),
            ),
            ("a.yaml", service_via("a", a.port, source)),
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
    std::fs::write(dir.join(".b.yaml.tmp"), service_via("b", b.port, source)).expect("write");
    let routes = route_spec("local_route", &[("/b", "b"), ("/", "a")]);
    std::fs::write(dir.join(".routes.yaml.tmp"), bare(ROUTE, &routes)).expect("write");
    // Let xdsd's (no-op) reload for the dotfile events pass first.
    std::thread::sleep(Duration::from_millis(500));
    let renamed = Instant::now();
    std::fs::rename(dir.join(".b.yaml.tmp"), dir.join("b.yaml")).expect("rename");
    std::fs::rename(dir.join(".routes.yaml.tmp"), dir.join("routes.yaml")).expect("rename");
    wait_body(port, "/b", "backend-b", Duration::from_secs(10));
    let latency = renamed.elapsed();
    eprintln!(
        "{tag} ({source:?}): live update: rename -> first /b answered by backend-b in {latency:?}"
    );
    assert!(
        latency < Duration::from_secs(1),
        "live update took {latency:?} (want < 1 s)"
    );
    assert_served_by(port, "/b/x", "backend-b", 3);
    assert_served_by(port, "/", "backend-a", 3);
    let rejected = rejected_updates(&stack.envoy);
    assert!(rejected.is_empty(), "Envoy rejected updates: {rejected:?}");
}

/// Make-before-break under ~200 requests/s: the route moves from cluster a
/// to a new cluster b while a is removed in the same change (one file,
/// replaced by rename), then on to a2; no request fails and the old cluster
/// is gone from Envoy afterwards.
pub fn make_before_break_flow(tag: &str, source: XdsSource) {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    // Everything in one file, so one rename is one change.
    let all = |cluster: &str, backend: &Backend| routed_to(port, cluster, backend, source);
    let stack = Stack::start_via(tag, source, &[("all.yaml", all("a", &a))]);
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    settled_state(&stack.envoy);

    // A -> B: route to new cluster b, cluster a and its endpoints removed.
    let (outcomes, changed) = load_with_change(
        port,
        Duration::from_secs(4),
        Duration::from_millis(1500),
        || stack.write("all.yaml", &all("b", &b)),
    );
    check_load(
        &format!("{tag} ({source:?}) a -> b"),
        &outcomes,
        changed,
        "backend-a",
        "backend-b",
    );
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
    check_load(
        &format!("{tag} ({source:?}) b -> a2"),
        &outcomes,
        changed,
        "backend-b",
        "backend-a",
    );
    let clusters = stack.envoy.admin_get("/clusters");
    assert!(
        !clusters.lines().any(|l| l.starts_with("b::")),
        "cluster b is removed from Envoy after the move:\n{clusters}"
    );
    let rejected = rejected_updates(&stack.envoy);
    assert!(rejected.is_empty(), "Envoy rejected updates: {rejected:?}");
}
