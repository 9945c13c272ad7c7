//! Faults under traffic, end to end with real Envoys: xdsd killed with
//! SIGKILL in the middle of a make-before-break transition and started
//! again with the same `--state-dir` (Envoy keeps serving what it has; the
//! restarted xdsd knows the set served before the change, keeps its
//! clusters until Envoy's routes have moved, and finishes the move without
//! a failed request); and two replicas on one directory,
//! one killed (Envoy fails over and is sent nothing new).

use crate::common::config::{
    LISTENER, ROUTE, bare, documents, listener_spec_via, route_spec, service_via, simple_set,
};
use crate::common::stack::{
    Stack, Traffic, check_load, load_with_change, rejected_updates, routed_to, settled_state,
    update_counters, wait_body,
};
use crate::common::{
    ApiType, Backend, Envoy, NodeSpec, WorkDir, XdsSource, Xdsd, envoy_bootstrap_for, free_port,
    wait_for,
};
use std::time::{Duration, Instant};

fn kill_mid_transition_then_restart(tag: &str, source: XdsSource) {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    // Everything in one file, so one rename is one change: the route moves
    // to a new cluster and the old cluster goes away.
    let all = |cluster: &str, backend: &Backend| routed_to(port, cluster, backend, source);
    // The state directory tells the restarted xdsd what was served before
    // the change, which Envoy may still be using (outside the scratch
    // folder, whose path is not known before the stack starts).
    let state = std::env::temp_dir().join(format!("xdsd-test-{tag}-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let state_arg = state.display().to_string();
    let mut stack = Stack::launch(tag, source, &["--state-dir", &state_arg], |config| {
        std::fs::write(config.join("all.yaml"), all("a", &a)).expect("write");
    });
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    settled_state(&stack.envoy);
    let (listen, admin) = (stack.xdsd.listen, stack.xdsd.admin);
    let config = stack.config.clone();
    let second_log = stack.work.path().join("xdsd-2.log");
    let killed_at = std::cell::Cell::new(None);

    let (outcomes, changed) = load_with_change(
        port,
        Duration::from_secs(7),
        Duration::from_millis(1500),
        || {
            let from = stack.xdsd.log().len();
            stack.write("all.yaml", &all("b", &b));
            // The transition starts as the reload is logged.
            let reloaded = wait_for(Duration::from_secs(5), Duration::from_millis(1), || {
                stack
                    .xdsd
                    .log()
                    .get(from..)?
                    .contains("reloaded")
                    .then_some(())
            });
            assert!(reloaded.is_some(), "no reload:\n{}", stack.xdsd.log());
            // Then wait for Envoy to have the new cluster: the first stage is
            // done, and the route has not moved yet (or only just).
            let new_cluster = wait_for(Duration::from_secs(5), Duration::from_millis(1), || {
                let clusters = stack.envoy.admin_get("/clusters");
                clusters.lines().any(|l| l.starts_with("b::")).then_some(())
            });
            assert!(new_cluster.is_some(), "Envoy never got cluster b");
            stack.xdsd.guard.signal("KILL");
            killed_at.set(Some(Instant::now()));
            let clusters = stack.envoy.admin_get("/clusters");
            let has = |c: &str| clusters.lines().any(|l| l.starts_with(&format!("{c}::")));
            eprintln!(
                "{tag}: killed with Envoy holding clusters a: {}, b: {}",
                has("a"),
                has("b")
            );
            // Envoy runs on its own for a second, then xdsd comes back.
            std::thread::sleep(Duration::from_secs(1));
            let mut second = Xdsd::spawn(
                &config,
                listen,
                admin,
                &["--state-dir", &state_arg],
                &second_log,
            );
            second.wait_ready();
            stack.xdsd = second;
        },
    );
    check_load(
        &format!("{tag}: kill -9 mid-transition, restart"),
        &outcomes,
        changed,
        "backend-a",
        "backend-b",
    );
    if let Some(at) = killed_at.get() {
        eprintln!(
            "{tag}: {:?} from the kill to the end of the run",
            at.elapsed()
        );
    }
    let clusters = stack.envoy.admin_get("/clusters");
    assert!(
        !clusters.lines().any(|l| l.starts_with("a::")),
        "the restarted xdsd finished the move: cluster a is gone:\n{clusters}"
    );
    let rejected = rejected_updates(&stack.envoy);
    assert!(rejected.is_empty(), "Envoy rejected updates: {rejected:?}");
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn kill_9_mid_transition_sotw() {
    kill_mid_transition_then_restart("kill9-sotw", XdsSource::SOTW);
}

#[test]
fn kill_9_mid_transition_delta() {
    kill_mid_transition_then_restart("kill9-delta", XdsSource::DELTA);
}

/// Staged reconnects: xdsd is killed, and while it is down the route moves
/// to a new EDS cluster (the old one stays). When xdsd comes back, Envoy
/// reconnects holding the old set; the restarted xdsd knows nothing of it
/// (no `--state-dir`), so the stream's arrival is staged like a change:
/// the new cluster and its endpoints first, ACKed, and only then the route
/// that names it. Answering each type as Envoy asks (as xdsd did) sends the
/// route with the clusters, and requests meet a cluster still warming (503).
fn reconnect_after_a_change_made_while_cut_off(tag: &str, source: XdsSource) {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    // Before: the route to a, and only a. After: a new cluster b, the route to b.
    let set = |to: &str, services: &[String]| {
        let mut docs = vec![
            bare(
                LISTENER,
                &listener_spec_via("listener_http", port, "local_route", source),
            ),
            bare(ROUTE, &route_spec("local_route", &[("/", to)])),
        ];
        docs.extend(services.iter().cloned());
        documents(&docs)
    };
    let (service_a, service_b) = (
        service_via("a", a.port, source),
        service_via("b", b.port, source),
    );
    let mut stack = Stack::launch(tag, source, &[], |config| {
        let before = set("a", std::slice::from_ref(&service_a));
        std::fs::write(config.join("all.yaml"), before).expect("write");
    });
    wait_body(port, "/", "backend-a", Duration::from_secs(10));
    settled_state(&stack.envoy);
    let (listen, admin) = (stack.xdsd.listen, stack.xdsd.admin);
    stack.xdsd.guard.signal("KILL");
    stack.xdsd.guard.wait_exit(Duration::from_secs(5));
    // While xdsd is down: a new cluster b, and the route moved to it.
    stack.write("all.yaml", &set("b", &[service_a, service_b]));
    let config = stack.config.clone();
    let second_log = stack.work.path().join("xdsd-2.log");
    let (outcomes, changed) = load_with_change(
        port,
        Duration::from_secs(6),
        Duration::from_millis(1000),
        || {
            let mut second = Xdsd::spawn(&config, listen, admin, &[], &second_log);
            second.wait_ready();
            stack.xdsd = second;
        },
    );
    check_load(
        &format!("{tag}: reconnect after a change made while xdsd was down"),
        &outcomes,
        changed,
        "backend-a",
        "backend-b",
    );
    assert!(
        outcomes
            .iter()
            .any(|o| o.result.as_deref() == Ok("backend-b")),
        "{tag}: the route never moved to b"
    );
    // Requests at 200/s rarely fall into the window (one EDS round trip);
    // Envoy's own record of when each became active does not miss it.
    let (cluster_b, route) = (
        last_updated(&stack.envoy, "dynamic_active_clusters", "cluster", "b"),
        last_updated(
            &stack.envoy,
            "dynamic_route_configs",
            "route_config",
            "local_route",
        ),
    );
    assert!(
        route >= cluster_b,
        "{tag}: Envoy applied the route to b at {route}, before cluster b was active at {cluster_b}"
    );
    let rejected = rejected_updates(&stack.envoy);
    assert!(rejected.is_empty(), "Envoy rejected updates: {rejected:?}");
}

/// `last_updated` of the resource `name` (under `key`, e.g. `cluster`) in
/// Envoy's config dump section `section`, with its fraction of a second
/// padded to nanoseconds so that the texts compare as times.
fn last_updated(envoy: &Envoy, section: &str, key: &str, name: &str) -> String {
    let dump = envoy.admin_get(&format!("/config_dump?resource={section}"));
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("config_dump is JSON");
    let entry = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c[key]["name"] == name)
        .unwrap_or_else(|| panic!("no {key} {name} in {section}: {dump:#}"));
    let text = entry["last_updated"]
        .as_str()
        .expect("last_updated")
        .trim_end_matches('Z');
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    format!("{seconds}.{fraction:0<9}Z")
}

#[test]
fn staged_reconnect_sotw() {
    reconnect_after_a_change_made_while_cut_off("reconnect-sotw", XdsSource::SOTW);
}

#[test]
fn staged_reconnect_delta() {
    reconnect_after_a_change_made_while_cut_off("reconnect-delta", XdsSource::DELTA);
}

#[test]
fn staged_reconnect_per_type() {
    reconnect_after_a_change_made_while_cut_off(
        "reconnect-per-type",
        XdsSource::PerType(ApiType::Grpc),
    );
}

/// Two xdsd replicas serve one directory; Envoy's bootstrap lists both as
/// endpoints of its xDS cluster. The one Envoy is connected to is killed:
/// Envoy reconnects to the other, which has the same content and so the
/// same versions, and sends it nothing; traffic never fails.
#[test]
fn a_killed_replica_is_failed_over_and_nothing_is_resent() {
    let a = Backend::start("backend-a");
    let port = free_port();
    let work = WorkDir::new("replicas");
    for (name, text) in simple_set(port, &a) {
        work.put(name, &text);
    }
    let mut replicas = [
        Xdsd::start_with(&work.config(), &work.beside("xdsd-1.log"), &[]),
        Xdsd::start_with(&work.config(), &work.beside("xdsd-2.log"), &[]),
    ];
    let first = replicas[0].listen;
    let endpoint = |xds: u16| {
        format!(
            "        - endpoint:\n            address:\n              socket_address: {{address: 127.0.0.1, port_value: {xds}}}\n"
        )
    };
    let admin = free_port();
    let bootstrap = envoy_bootstrap_for(
        NodeSpec::new("replicas", "replicas-cluster"),
        admin,
        first,
        XdsSource::SOTW,
    );
    let both = format!("{}{}", endpoint(first), endpoint(replicas[1].listen));
    let bootstrap = bootstrap.replace(&endpoint(first), &both);
    assert!(
        bootstrap.contains(&endpoint(replicas[1].listen)),
        "both replicas listed:\n{bootstrap}"
    );
    let envoy = Envoy::start_bootstrap(&work.beside(""), "replicas", &bootstrap, admin);
    wait_body(port, "/", "backend-a", Duration::from_secs(15));
    let connected = |x: &Xdsd| {
        x.admin_json("/clients")
            .as_array()
            .is_some_and(|c| !c.is_empty())
    };
    let serving = replicas
        .iter()
        .position(connected)
        .expect("Envoy is connected to one replica");
    let other = 1 - serving;
    let before = settled_state(&envoy);

    let traffic = Traffic::start(port, "/", "backend-a", Duration::from_millis(5));
    replicas[serving].guard.signal("KILL");
    let killed = Instant::now();
    let failed_over = wait_for(Duration::from_secs(30), Duration::from_millis(50), || {
        connected(&replicas[other]).then_some(())
    });
    assert!(
        failed_over.is_some(),
        "Envoy did not reach the other replica within 30 s"
    );
    eprintln!(
        "replicas: Envoy reached the other replica {:?} after the kill",
        killed.elapsed()
    );
    // A window, not a wait: anything the new replica sends (it should send
    // nothing new) arrives and is applied within it.
    std::thread::sleep(Duration::from_secs(1));
    let (requests, failures) = traffic.finish();
    let after = settled_state(&envoy);
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed: {failures:?}",
        failures.len()
    );
    assert_eq!(
        update_counters(&before),
        update_counters(&after),
        "Envoy was sent something by the other replica, though it has the same content"
    );
    let status = replicas[other].admin_json("/clients");
    eprintln!("replicas: {requests} requests, none failed; the other replica sees {status}");
}
