//! `xdsd serve` end to end with real Envoy processes, beyond the basic SotW
//! ADS setup of `serve.rs`: incremental (delta) ADS, per-type (non-ADS)
//! config sources, a Kubernetes ConfigMap mount swapped by symlink, a config
//! directory that disappears and comes back, SIGHUP, and the admin API
//! (including a configuration xdsd accepts but Envoy NACKs).
//!
//! Same ground rules as `serve.rs`: 127.0.0.1 only, free ports, every
//! process killed by a guard on drop, scratch directories, bounded waits.

use crate::common;

use crate::common::admin::{clients_of, served_version, status, wait_all_acked};
use crate::common::config::{CLUSTER, ENDPOINTS, LISTENER, ROUTE, XDS_TYPES, bare, documents};
use crate::common::config::{endpoints_spec, route_spec, service_via, simple_set_via};
use crate::common::config::{tls_cluster_spec_via, two_service_set};
use crate::common::stack::{
    EnvoyState, Stack, Traffic, assert_served_by, check_load, envoy_state, live_update_flow,
    load_with_change, make_before_break_flow, quickstart_flow, rejected_updates, settled_state,
    state_diff, wait_body,
};
use crate::common::{ApiType, Backend, XdsSource, Xdsd, free_port, wait_for, xdsd};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `xdsd lint --dir dir`: asserts exit 0 and no duplicate-resource error;
/// returns the output.
fn lint_clean(dir: &Path) -> String {
    let out = xdsd(&["lint", "--dir", &dir.to_string_lossy()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "xdsd lint {} failed ({}):\n{text}",
        dir.display(),
        out.status
    );
    assert!(
        !text.to_lowercase().contains("duplicate"),
        "xdsd lint reports duplicates:\n{text}"
    );
    text
}

/// Samples Envoy's xDS state every 100 ms for `period`; panics with the
/// difference if it ever differs from `before`.
fn assert_state_unchanged(
    envoy: &common::Envoy,
    before: &EnvoyState,
    period: Duration,
    what: &str,
) {
    let start = Instant::now();
    while start.elapsed() < period {
        let now = envoy_state(envoy);
        assert!(
            *before == now,
            "{what}: Envoy's xDS state changed {:?} in:\n{}",
            start.elapsed(),
            state_diff(before, &now)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `last_load.time` in `/status`.
fn last_load_time(status: &Value) -> f64 {
    status["last_load"]["time"]
        .as_f64()
        .unwrap_or_else(|| panic!("/status has no numeric last_load.time: {status:#}"))
}

/// xdsd's debug log lines recording a response sent for `type_url` at `version`.
fn sent_lines(xdsd: &Xdsd, type_url: &str, version: &str) -> Vec<String> {
    xdsd.log()
        .lines()
        .filter(|l| {
            l.contains(" sent ")
                && l.contains(&format!("type_url={type_url}"))
                && l.contains(&format!("version={version}"))
        })
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// Delta ADS
// ---------------------------------------------------------------------------

/// Envoy on `DeltaAggregatedResources` (`ads_config.api_type: DELTA_GRPC`):
/// the quickstart, a live update and make-before-break under load, the same
/// flows as the SotW tests.
#[test]
fn delta_quickstart_live_update_and_make_before_break() {
    let stack = quickstart_flow("delta-quickstart", XdsSource::DELTA);
    let bootstrap = stack.envoy.config_dump().to_string();
    assert!(
        bootstrap.contains("DELTA_GRPC"),
        "Envoy's bootstrap uses DELTA_GRPC"
    );
    drop(stack);
    live_update_flow("delta-live", XdsSource::DELTA);
    make_before_break_flow("delta-mbb", XdsSource::DELTA);
}

// ---------------------------------------------------------------------------
// Per-type config sources (no ADS)
// ---------------------------------------------------------------------------

/// An Envoy without ADS: CDS and LDS from the bootstrap, EDS and RDS from
/// the served cluster and listener, each its own gRPC stream of `api`.
fn per_type_flow(tag: &str, api: ApiType) {
    let source = XdsSource::PerType(api);
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let stack = Stack::start_via(tag, source, &simple_set_via(port, &a, source));
    let took = wait_body(port, "/", "backend-a", Duration::from_secs(10));
    eprintln!("{tag}: first request answered {took:?} after Envoy started");
    assert_served_by(port, "/x", "backend-a", 5);

    // One stream per type, each with only its type.
    let clients = clients_of(&stack.xdsd, tag);
    let mut types: Vec<String> = Vec::new();
    for c in &clients {
        let t: Vec<&String> = c["types"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(t.len(), 1, "a per-type stream carries one type: {c:#}");
        types.push(t[0].clone());
    }
    types.sort();
    let mut want = vec![CLUSTER, ENDPOINTS, LISTENER, ROUTE];
    want.sort();
    assert_eq!(types, want, "one stream per type; /clients: {clients:#?}");

    // A live endpoint change: cluster a now points at backend B's port.
    let before = Instant::now();
    stack.write("a.yaml", &service_via("a", b.port, source));
    wait_body(port, "/", "backend-b", Duration::from_secs(5));
    let latency = before.elapsed();
    eprintln!("{tag}: endpoint change applied in {latency:?}");
    assert!(
        latency < Duration::from_secs(1),
        "endpoint change took {latency:?} (want < 1 s)"
    );
    assert_served_by(port, "/y", "backend-b", 5);
    let rejected = rejected_updates(&stack.envoy);
    assert!(rejected.is_empty(), "Envoy rejected updates: {rejected:?}");
}

#[test]
fn per_type_grpc_config_sources() {
    per_type_flow("per-type-sotw", ApiType::Grpc);
}

#[test]
fn per_type_delta_grpc_config_sources() {
    per_type_flow("per-type-delta", ApiType::DeltaGrpc);
}

// ---------------------------------------------------------------------------
// The config directory
// ---------------------------------------------------------------------------

/// A Kubernetes ConfigMap mount: the files live in `..2026_01/`, `..data`
/// links to it, and each visible name links to `..data/NAME`. The swap
/// Kubernetes makes (new timestamped dir, `..data_tmp` symlink renamed over
/// `..data`, old dir removed) reaches Envoy with no failed request, and every
/// file is read once (lint finds no duplicates).
#[test]
fn configmap_symlink_swap_is_followed() {
    use std::os::unix::fs::symlink;
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let first = two_service_set(port, &a, &b, "a");
    let second = two_service_set(port, &a, &b, "b");
    let stack = Stack::launch("configmap", XdsSource::SOTW, &[], |dir| {
        let data = dir.join("..2026_01");
        std::fs::create_dir(&data).expect("mkdir ..2026_01");
        for (name, text) in &first {
            std::fs::write(data.join(name), text).expect("write");
            symlink(format!("..data/{name}"), dir.join(name)).expect("symlink file");
        }
        symlink("..2026_01", dir.join("..data")).expect("symlink ..data");
    });
    let dir = stack.config.clone();
    let text = lint_clean(&dir);
    eprintln!("lint of the ConfigMap mount: {}", text.trim());
    assert!(
        text.contains("6 resources"),
        "each file read once: 6 resources (1 listener, 2 clusters, 2 endpoints, 1 route):\n{text}"
    );
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    settled_state(&stack.envoy);

    let (outcomes, changed) = load_with_change(
        port,
        Duration::from_secs(4),
        Duration::from_millis(1500),
        || {
            let new = dir.join("..2026_02");
            std::fs::create_dir(&new).expect("mkdir ..2026_02");
            for (name, text) in &second {
                std::fs::write(new.join(name), text).expect("write");
            }
            symlink("..2026_02", dir.join("..data_tmp")).expect("symlink ..data_tmp");
            std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
            std::fs::remove_dir_all(dir.join("..2026_01")).expect("remove ..2026_01");
        },
    );
    check_load(
        "ConfigMap swap",
        &outcomes,
        changed,
        "backend-a",
        "backend-b",
    );
    let text = lint_clean(&dir);
    assert!(text.contains("6 resources"), "after the swap:\n{text}");
    let s = status(&stack.xdsd);
    assert_eq!(s["last_load"]["ok"], true, "/status after the swap: {s:#}");
    let rejected = rejected_updates(&stack.envoy);
    assert!(rejected.is_empty(), "Envoy rejected updates: {rejected:?}");
    // Envoy has exactly the served clusters, each once.
    let clusters = stack.envoy.admin_get("/clusters");
    for name in ["a", "b"] {
        let n = clusters
            .lines()
            .filter(|l| l.starts_with(&format!("{name}::")) && l.contains("::cx_active::"))
            .count();
        assert_eq!(
            n, 1,
            "cluster {name} has one endpoint in Envoy:\n{clusters}"
        );
    }
}

/// `rm -rf` of the whole config dir while serving drops nothing: Envoy's
/// config and xDS stats stay as they were and traffic keeps flowing. The
/// directory re-created with a changed config is picked up (the watch
/// re-arms on a 1 s tick).
#[test]
fn directory_removed_and_recreated() {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let stack = Stack::start("rmdir", &two_service_set(port, &a, &b, "a"));
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    let before = settled_state(&stack.envoy);
    let version = served_version(&status(&stack.xdsd));

    let traffic = Traffic::start(port, "/", "backend-a", Duration::from_millis(20));
    let from = stack.xdsd.log().len();
    std::fs::remove_dir_all(&stack.config).expect("rm -rf config");
    assert_state_unchanged(
        &stack.envoy,
        &before,
        Duration::from_secs(2),
        "config dir removed",
    );
    let (requests, failures) = traffic.finish();
    eprintln!("directory gone: {requests} requests in 2 s");
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed while the dir was gone: {failures:?}",
        failures.len()
    );
    let s = status(&stack.xdsd);
    assert_eq!(
        served_version(&s),
        version,
        "the served version changed while the dir was gone: {s:#}"
    );
    eprintln!(
        "xdsd while the dir was gone: /status last_load = {}; log:\n{}",
        s["last_load"],
        common::tail(stack.xdsd.log().get(from..).unwrap_or(""), 6)
    );
    assert!(
        stack.xdsd.guard.log_path().exists(),
        "xdsd's log is outside the config dir"
    );

    // Re-created (as `cp -r` or a checkout would), routing `/` to b now,
    // under load: no request may fail on the way.
    let (outcomes, changed) = load_with_change(
        port,
        Duration::from_secs(4),
        Duration::from_millis(500),
        || {
            std::fs::create_dir(&stack.config).expect("mkdir config");
            for (name, text) in two_service_set(port, &a, &b, "b") {
                std::fs::write(stack.config.join(name), text).expect("write");
            }
        },
    );
    check_load(
        "directory re-created",
        &outcomes,
        changed,
        "backend-a",
        "backend-b",
    );
    let took = outcomes
        .iter()
        .find(|o| o.result.as_deref() == Ok("backend-b"))
        .map(|o| o.at.saturating_sub(changed))
        .expect("backend-b answered");
    eprintln!("re-created dir applied in {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "the re-created directory took {took:?} to apply (want < 3 s)"
    );
    assert_served_by(port, "/x", "backend-b", 5);
    let rejected = rejected_updates(&stack.envoy);
    assert!(rejected.is_empty(), "Envoy rejected updates: {rejected:?}");
}

/// The watch is armed before the first load: a file added while a long
/// first load runs is served by the reload that follows, not only after the
/// next edit. (It used to be armed after the load, and a test that wrote a
/// file right after `/readyz` could lose the race.)
#[test]
fn an_edit_during_the_first_load_is_served() {
    let work = common::WorkDir::new("edit-during-first-load");
    // Enough clusters that the first load of the debug build takes a while.
    let count = 3000;
    let many: String = (0..count)
        .map(|i| format!("---\n\"@type\": {CLUSTER}\nname: c{i}\nconnect_timeout: 1s\n"))
        .collect();
    work.put("many.yaml", &many);
    let (listen, admin) = (free_port(), free_port());
    let mut xdsd = Xdsd {
        guard: common::ChildGuard::spawn(
            "xdsd",
            Xdsd::command(&work.config(), listen, admin, &[]),
            &work.beside("xdsd.log"),
        ),
        listen,
        admin,
    };
    let armed = wait_for(Duration::from_secs(10), Duration::from_millis(5), || {
        xdsd.log().contains("watching the directory").then_some(())
    });
    assert!(
        armed.is_some(),
        "the watch was never armed:\n{}",
        xdsd.log()
    );
    work.put("late.yaml", &format!("\"@type\": {CLUSTER}\nname: late\n"));
    let log = xdsd.log();
    assert!(
        !log.contains("loaded version="),
        "the first load ended before the edit (or the watch was armed after it); \
         the test needs a longer first load:\n{log}"
    );
    xdsd.wait_ready();
    let clusters = wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        let s = status(&xdsd);
        (s["resources"]["Cluster"] == count + 1).then_some(())
    });
    assert!(
        clusters.is_some(),
        "the file added during the first load was not served: {:#}\n{}",
        status(&xdsd),
        xdsd.log()
    );
}

// ---------------------------------------------------------------------------
// SIGHUP
// ---------------------------------------------------------------------------

/// SIGHUP reloads at once: xdsd logs it, stays up, and `/status`'s
/// `last_load.time` advances. With a 60 s debounce the watcher holds a file
/// change back, so a change that reaches Envoy right after SIGHUP was
/// applied by the SIGHUP reload.
#[test]
fn sighup_forces_reload() {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let mut stack = Stack::launch(
        "sighup",
        XdsSource::SOTW,
        &["--debounce-ms", "60000"],
        |dir| {
            for (name, text) in two_service_set(port, &a, &b, "a") {
                std::fs::write(dir.join(name), text).expect("write");
            }
        },
    );
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    let before = settled_state(&stack.envoy);
    let s0 = status(&stack.xdsd);
    let (t0, v0) = (last_load_time(&s0), served_version(&s0));
    let hangups = |xdsd: &Xdsd| xdsd.log().matches("SIGHUP: reloading").count();

    // (a) Nothing changed: a reload happens, nothing is sent. (50 ms apart,
    // so that the reload's time stamp can be told from the first load's.)
    std::thread::sleep(Duration::from_millis(50));
    stack.xdsd.guard.signal("HUP");
    let s1 = wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
        let s = status(&stack.xdsd);
        (last_load_time(&s) > t0).then_some(s)
    })
    .unwrap_or_else(|| panic!("/status last_load.time did not advance after SIGHUP"));
    assert_eq!(hangups(&stack.xdsd), 1, "xdsd logs `SIGHUP: reloading`");
    assert_eq!(served_version(&s1), v0, "same files, same version: {s1:#}");
    assert_eq!(s1["last_load"]["ok"], true, "{s1:#}");
    assert!(
        stack.xdsd.guard.try_wait().is_none(),
        "xdsd exited after SIGHUP"
    );
    let healthz = stack.xdsd.admin_get("/healthz");
    assert_eq!(healthz.status, 200, "/healthz after SIGHUP");
    assert_state_unchanged(
        &stack.envoy,
        &before,
        Duration::from_millis(500),
        "SIGHUP with no change",
    );

    // (b) A change the watcher holds back (60 s debounce) ...
    stack.write(
        "routes.yaml",
        &bare(ROUTE, &route_spec("local_route", &[("/", "b")])),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_served_by(port, "/", "backend-a", 3);
    assert_eq!(
        served_version(&status(&stack.xdsd)),
        v0,
        "the 60 s debounce held the change back"
    );
    // ... is applied at once on SIGHUP.
    let sent = Instant::now();
    stack.xdsd.guard.signal("HUP");
    wait_body(port, "/", "backend-b", Duration::from_secs(5));
    let took = sent.elapsed();
    eprintln!("SIGHUP -> change served in {took:?}");
    assert!(took < Duration::from_secs(1), "SIGHUP reload took {took:?}");
    assert_eq!(hangups(&stack.xdsd), 2, "xdsd logs each SIGHUP");
    let s2 = status(&stack.xdsd);
    assert_ne!(served_version(&s2), v0, "a new version is served: {s2:#}");
    assert!(last_load_time(&s2) > last_load_time(&s1), "{s2:#}");
    assert!(stack.xdsd.guard.try_wait().is_none(), "xdsd still runs");
}

// ---------------------------------------------------------------------------
// The admin API
// ---------------------------------------------------------------------------

/// `/healthz`, `/readyz`, `/status` and `/clients` with one Envoy connected
/// and everything ACKed.
#[test]
fn admin_endpoints() {
    let a = Backend::start("backend-a");
    let port = free_port();
    let stack = Stack::start_via(
        "admin",
        XdsSource::SOTW,
        &simple_set_via(port, &a, XdsSource::SOTW),
    );
    wait_body(port, "/", "backend-a", Duration::from_secs(10));

    for path in ["/healthz", "/readyz"] {
        let r = stack.xdsd.admin_get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let s = status(&stack.xdsd);
    eprintln!("/status: {s}");
    served_version(&s);
    assert_eq!(s["last_load"]["ok"], true, "/status: {s:#}");

    let types = wait_all_acked(&stack.xdsd, "admin", &XDS_TYPES);
    let clients = clients_of(&stack.xdsd, "admin");
    eprintln!("/clients entry: {}", clients[0]);
    assert_eq!(
        clients[0]["node_cluster"], "admin-cluster",
        "{:#}",
        clients[0]
    );
    for t in XDS_TYPES {
        assert!(
            types[t]["last_nack"].is_null(),
            "no NACK for {t}: {:#}",
            types[t]
        );
    }
    let r = stack.xdsd.admin_get("/no-such-endpoint");
    assert_eq!(r.status, 404, "unknown admin path");
}

/// `GET /metrics` answers Prometheus text (the contract's admin API).
#[test]
fn admin_metrics_endpoint() {
    let a = Backend::start("backend-a");
    let port = free_port();
    let stack = Stack::start_via(
        "metrics",
        XdsSource::SOTW,
        &simple_set_via(port, &a, XdsSource::SOTW),
    );
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    let r = stack.xdsd.admin_get("/metrics");
    assert_eq!(r.status, 200, "/metrics: {}", r.body);
    let samples = r
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    assert!(samples > 0, "/metrics has samples:\n{}", r.body);
    for want in [
        "xdsd_connected_streams{service=\"ads\",protocol=\"sotw\"} 1",
        "xdsd_snapshot_resources{type=\"Cluster\"} 1",
        "xdsd_reloads_total 1",
        "xdsd_reload_failures_total 0",
    ] {
        assert!(
            r.body.contains(want),
            "/metrics lacks `{want}`:\n{}",
            r.body
        );
    }
    let acks = r
        .body
        .lines()
        .find(|l| l.starts_with("xdsd_acks_total{type=\"Cluster\"}"));
    assert!(
        acks.is_some_and(|l| !l.ends_with(" 0")),
        "the Envoy's cluster ACK is counted:\n{}",
        r.body
    );
}

/// An admin request that arrives in two TCP segments (as any client that
/// writes the request line and the headers separately may send it) is
/// answered for its path, not for a truncated one.
#[test]
fn admin_request_split_across_segments() {
    use std::io::{Read, Write};
    let a = Backend::start("backend-a");
    let work = common::ScratchDir::new("admin-split");
    let config = work.path().join("config");
    std::fs::create_dir(&config).expect("mkdir");
    for (name, text) in simple_set_via(free_port(), &a, XdsSource::SOTW) {
        std::fs::write(config.join(name), text).expect("write");
    }
    let log = work.path().join("xdsd.log");
    let xdsd = Xdsd::start(&config, &log);
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", xdsd.admin)).expect("connect admin");
    stream.set_nodelay(true).ok();
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    stream.write_all(b"GET /sta").expect("first segment");
    std::thread::sleep(Duration::from_millis(100));
    // The server may already have answered and closed: then this write fails.
    let second = stream.write_all(b"tus HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(
        second.is_ok()
            && response.starts_with("HTTP/1.1 200")
            && response.contains("served_version"),
        "GET /status sent in two segments (second write: {second:?}) was answered:\n{response}"
    );
}

/// After a bad edit `/status` shows the failed attempt (`ok: false`, the
/// error at `file:line:col`) while `served_version` stays; the fix brings
/// `ok: true` back with the same version as before (same content).
#[test]
fn admin_status_shows_rejected_edit() {
    let a = Backend::start("backend-a");
    let port = free_port();
    let stack = Stack::start_via(
        "admin-bad",
        XdsSource::SOTW,
        &simple_set_via(port, &a, XdsSource::SOTW),
    );
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    let before = settled_state(&stack.envoy);
    let v0 = served_version(&status(&stack.xdsd));

    // An unknown field on line 3, column 1.
    let bad = "\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
name: local_route
virtual_hostz: []
";
    stack.write("routes.yaml", bad);
    let mut last = Value::Null;
    let s = wait_for(Duration::from_secs(5), Duration::from_millis(25), || {
        last = status(&stack.xdsd);
        (last["last_load"]["ok"] == false).then(|| last.clone())
    })
    .unwrap_or_else(|| {
        panic!(
            "/status never showed the failed load (ok: false) within 5 s; last: {last:#}\nxdsd log:\n{}",
            common::tail(&stack.xdsd.log(), 10)
        )
    });
    eprintln!("/status after the bad edit: {s:#}");
    assert_eq!(
        served_version(&s),
        v0,
        "still serving the last good version"
    );
    let errors = s["last_load"]["errors"].to_string();
    assert!(
        errors.contains("routes.yaml:3:"),
        "the error is located at routes.yaml:3:COL: {errors}"
    );
    assert_served_by(port, "/", "backend-a", 3);
    let after = envoy_state(&stack.envoy);
    assert!(
        before == after,
        "a rejected edit changed Envoy's config:\n{}",
        state_diff(&before, &after)
    );

    // The fix: the original file again.
    stack.write(
        "routes.yaml",
        &bare(ROUTE, &route_spec("local_route", &[("/", "a")])),
    );
    let s = wait_for(Duration::from_secs(5), Duration::from_millis(25), || {
        let s = status(&stack.xdsd);
        (s["last_load"]["ok"] == true).then_some(s)
    })
    .unwrap_or_else(|| panic!("/status not ok again after the fix"));
    assert_eq!(served_version(&s), v0, "same files, same version: {s:#}");
}

/// A cluster xdsd accepts but Envoy rejects (an `UpstreamTlsContext` whose
/// `trusted_ca` file does not exist on the proxy's host): `/clients` shows
/// the NACK with Envoy's error text for the Cluster type, Envoy keeps its
/// last good config, and the NACKed version is sent once, not in a loop.
#[test]
fn admin_clients_show_nack_without_resend() {
    nack_flow("nack", XdsSource::SOTW);
}

/// [`admin_clients_show_nack_without_resend`] over delta ADS.
#[test]
fn admin_clients_show_nack_without_resend_delta() {
    nack_flow("nack-delta", XdsSource::DELTA);
}

fn nack_flow(tag: &str, source: XdsSource) {
    let a = Backend::start("backend-a");
    let port = free_port();
    let stack = Stack::start_via(tag, source, &simple_set_via(port, &a, source));
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    let good = wait_all_acked(&stack.xdsd, tag, &XDS_TYPES);
    let good_cds = good[CLUSTER]["acked_version"].clone();
    let before = settled_state(&stack.envoy);
    let rejected = |stack: &Stack| {
        stack
            .envoy
            .stat("cluster_manager.cds.update_rejected")
            .unwrap_or_default()
    };
    assert_eq!(rejected(&stack), "0");

    // Cluster a, now with TLS to upstream, verified against a CA file that
    // does not exist.
    let missing_ca = stack.work.path().join("no-such-ca.pem");
    let file = documents(&[
        bare(CLUSTER, &tls_cluster_spec_via("a", &missing_ca, source)),
        bare(ENDPOINTS, &endpoints_spec("a", a.port)),
    ]);
    // xdsd accepts it.
    let check = common::ScratchDir::new(&format!("{tag}-lint"));
    std::fs::write(check.path().join("a.yaml"), &file).expect("write");
    for name in ["listener.yaml", "routes.yaml"] {
        std::fs::copy(stack.config.join(name), check.path().join(name)).expect("copy");
    }
    lint_clean(check.path());

    let v0 = served_version(&status(&stack.xdsd));
    stack.write("a.yaml", &file);
    let mut last = Value::Null;
    let nacked = wait_for(Duration::from_secs(5), Duration::from_millis(25), || {
        let clients = clients_of(&stack.xdsd, tag);
        last = Value::Array(clients.clone());
        let cds = clients.first()?["types"][CLUSTER].clone();
        (!cds["last_nack"].is_null()).then_some(cds)
    })
    .unwrap_or_else(|| panic!("/clients shows no NACK for the Cluster type within 5 s: {last:#}"));
    let nacked_at = Instant::now();
    eprintln!("{tag}: /clients Cluster entry after the NACK: {nacked:#}");
    let s = status(&stack.xdsd);
    assert_ne!(
        served_version(&s),
        v0,
        "xdsd accepted and serves the new set: {s:#}"
    );
    assert_eq!(s["last_load"]["ok"], true, "{s:#}");

    let nack = &nacked["last_nack"];
    let error = nack["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no-such-ca.pem"),
        "the NACK's error text is Envoy's (naming the missing file): {nack:#}"
    );
    let nack_version = nack["version"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        nacked["sent_version"], nack_version,
        "the NACKed version is the one sent: {nacked:#}"
    );
    assert_eq!(
        nacked["acked_version"], good_cds,
        "the ACKed version is still the last good one: {nacked:#}"
    );
    assert!(
        nack["time"].as_f64().is_some(),
        "the NACK has a time: {nack:#}"
    );

    // Envoy really rejected it and keeps working on its last good config.
    let rejected_now = wait_for(Duration::from_secs(2), Duration::from_millis(25), || {
        (rejected(&stack) == "1").then_some(())
    });
    assert!(
        rejected_now.is_some(),
        "Envoy's cds.update_rejected is {} (want 1)",
        rejected(&stack)
    );
    assert_served_by(port, "/", "backend-a", 5);
    let dump = stack.envoy.config_dump().to_string();
    assert!(
        !dump.contains("no-such-ca.pem"),
        "Envoy did not apply the rejected cluster"
    );

    // Not re-sent in a loop: over ~2 s Envoy rejects nothing more, and xdsd
    // sent that version once.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(nacked_at.elapsed()));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            rejected(&stack),
            "1",
            "Envoy got the rejected cluster again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = sent_lines(&stack.xdsd, CLUSTER, &nack_version);
    assert_eq!(
        lines.len(),
        1,
        "xdsd sent the NACKed Cluster version {nack_version} once:\n{}",
        lines.join("\n")
    );
    let clients = clients_of(&stack.xdsd, tag);
    assert_eq!(clients.len(), 1, "one stream: {clients:#?}");
    let cds = &clients[0]["types"][CLUSTER];
    assert_eq!(cds["last_nack"]["version"], nack_version, "{cds:#}");
    let after = envoy_state(&stack.envoy);
    let dynamic_clusters = |s: &EnvoyState| {
        s.config_dump["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| {
                c["@type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("ClustersConfigDump"))
            })
            .map(|c| c["dynamic_active_clusters"].clone())
    };
    assert_eq!(
        dynamic_clusters(&before),
        dynamic_clusters(&after),
        "Envoy's active clusters are the last good ones"
    );
}

/// Every file removed while the directory stays (a checkout caught halfway,
/// a careless `rm *`): an empty set never replaces the one being served, and
/// `/status` says why.
#[test]
fn emptied_directory_keeps_serving() {
    let a = Backend::start("backend-a");
    let port = free_port();
    let stack = Stack::start_via(
        "emptied",
        XdsSource::SOTW,
        &simple_set_via(port, &a, XdsSource::SOTW),
    );
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    let before = settled_state(&stack.envoy);
    let v0 = served_version(&status(&stack.xdsd));
    for entry in std::fs::read_dir(&stack.config)
        .expect("read config dir")
        .flatten()
    {
        std::fs::remove_file(entry.path()).expect("remove config file");
    }
    let s = wait_for(Duration::from_secs(5), Duration::from_millis(25), || {
        let s = status(&stack.xdsd);
        (s["last_load"]["ok"] == false).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "/status never showed the rejected empty set\nxdsd log:\n{}",
            common::tail(&stack.xdsd.log(), 10)
        )
    });
    assert_eq!(
        served_version(&s),
        v0,
        "still serving the last good version"
    );
    assert!(
        s["last_load"]["errors"]
            .to_string()
            .contains("no resources"),
        "{s:#}"
    );
    assert_served_by(port, "/", "backend-a", 3);
    let after = envoy_state(&stack.envoy);
    assert!(
        before == after,
        "emptying the directory changed Envoy's config:\n{}",
        state_diff(&before, &after)
    );
}

/// Make-before-break without ADS: each type is its own stream, so xdsd
/// keeps the order across a node's streams (new clusters and endpoints in
/// place before listeners and routes move; stale ones removed after).
#[test]
fn per_type_live_update_and_make_before_break() {
    live_update_flow("per-type-live", XdsSource::PerType(ApiType::Grpc));
    make_before_break_flow("per-type-mbb", XdsSource::PerType(ApiType::Grpc));
}

/// The same with per-type delta streams.
#[test]
fn per_type_delta_make_before_break() {
    make_before_break_flow("per-type-delta-mbb", XdsSource::PerType(ApiType::DeltaGrpc));
}
