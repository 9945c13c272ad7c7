//! `xdsd serve` end to end with real Envoy processes: xdsd and Envoy run as
//! child processes on free loopback ports, backends are tiny HTTP servers in
//! this process, and every check is a request through Envoy or a look at
//! Envoy's own admin API (`/stats`, `/config_dump`).
//!
//! Every process is killed by a guard on drop (also when a test panics; its
//! log tail is printed then). Config directories are scratch folders; edits
//! are written to a dotfile (ignored by xdsd) and renamed into place unless a
//! test is about non-atomic writes.

use crate::common;

use crate::common::config::{
    ENDPOINTS, LISTENER, ROUTE, bare, cluster_spec, discovery_response, documents, endpoints_spec,
    envelope, listener_spec, route_spec, service, simple_set, two_service_set,
};
use crate::common::stack::{
    EnvoyState, Stack, Traffic, assert_served_by, envoy_state, live_update_flow,
    make_before_break_flow, quickstart_flow, rejected_updates, settled_state, state_diff,
    update_counters, wait_body, wait_for_located_error,
};
use crate::common::{Backend, ChildGuard, Envoy, ScratchDir, XdsSource, Xdsd, free_port, wait_for};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn quickstart_request_reaches_backend() {
    quickstart_flow("quickstart", XdsSource::SOTW);
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
    live_update_flow("live", XdsSource::SOTW);
}

#[test]
fn make_before_break_moves_route_with_zero_failures() {
    make_before_break_flow("mbb", XdsSource::SOTW);
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
    // A window, not a wait: a push of the rejected set would show by now.
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
    // A window, not a wait: a push of the rejected set would show by now.
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
    let rejected = rejected_updates(&stack.envoy);
    assert!(rejected.is_empty(), "Envoy rejected updates: {rejected:?}");
}

#[test]
fn half_written_file_never_reaches_envoy() {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    let stack = Stack::start("half-written", &two_service_set(port, &a, &b, "a"));
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
    let rejected = rejected_updates(&stack.envoy);
    assert!(rejected.is_empty(), "Envoy rejected updates: {rejected:?}");
    assert_served_by(port, "/", "backend-a", 3);
    assert_served_by(port, "/b", "backend-b", 3);
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
    // Streams end at once on SIGTERM (UNAVAILABLE), so a restart is not
    // held up by streams that would never finish by themselves.
    assert!(
        stopping.elapsed() < Duration::from_secs(1),
        "xdsd took {:?} to exit with Envoy's stream open",
        stopping.elapsed()
    );
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
    // A window, not a wait: whatever xdsd sends on the new stream (it should
    // send nothing new) arrives and is applied within it.
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
    assert_eq!(
        update_counters(&before),
        update_counters(&after),
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
