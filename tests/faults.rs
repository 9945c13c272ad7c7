//! Faults under traffic, end to end with a real Envoy and ~200 requests/s:
//! xdsd killed with SIGKILL in the middle of a make-before-break transition
//! and started again. Envoy keeps serving what it has, and the restarted
//! xdsd finishes the move without a failed request.

mod common;

use common::config::{
    LISTENER, ROUTE, bare, documents, listener_spec_via, route_spec, service_via,
};
use common::stack::{
    Stack, check_load, load_with_change, rejected_updates, settled_state, wait_body,
};
use common::{Backend, XdsSource, Xdsd, free_port, wait_for};
use std::time::{Duration, Instant};

fn kill_mid_transition_then_restart(tag: &str, source: XdsSource) {
    let (a, b) = (Backend::start("backend-a"), Backend::start("backend-b"));
    let port = free_port();
    // Everything in one file, so one rename is one change: the route moves
    // to a new cluster and the old cluster goes away.
    let all = |cluster: &str, backend: &Backend| {
        documents(&[
            bare(
                LISTENER,
                &listener_spec_via("listener_http", port, "local_route", source),
            ),
            bare(ROUTE, &route_spec("local_route", &[("/", cluster)])),
            service_via(cluster, backend.port, source),
        ])
    };
    let mut stack = Stack::launch(tag, source, &[], |config| {
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
            let mut second = Xdsd::spawn(&config, listen, admin, &[], &second_log);
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
}

#[test]
fn kill_9_mid_transition_sotw() {
    kill_mid_transition_then_restart("kill9-sotw", XdsSource::SOTW);
}

#[test]
fn kill_9_mid_transition_delta() {
    kill_mid_transition_then_restart("kill9-delta", XdsSource::DELTA);
}
