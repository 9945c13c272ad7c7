//! Faults under traffic, end to end with real Envoys: xdsd killed with
//! SIGKILL in the middle of a make-before-break transition and started
//! again with the same `--state-dir` (Envoy keeps serving what it has; the
//! restarted xdsd knows the set served before the change, keeps its
//! clusters until Envoy's routes have moved, and finishes the move without
//! a failed request); and two replicas on one directory,
//! one killed (Envoy fails over and is sent nothing new).

use crate::common::config::simple_set;
use crate::common::stack::{
    Stack, Traffic, check_load, load_with_change, rejected_updates, routed_to, settled_state,
    update_counters, wait_body,
};
use crate::common::{
    Backend, Envoy, NodeSpec, WorkDir, XdsSource, Xdsd, envoy_bootstrap_for, free_port, wait_for,
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
