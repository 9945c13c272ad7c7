//! `serve` loads in a child process: a load that exhausts its memory limit
//! or its deadline is stopped and rejected, the daemon keeps serving the last
//! good set, the next edit loads in a new child, and no child outlives a
//! quiet period.

use crate::common;

use crate::common::{WorkDir, Xdsd, wait_for};
use serde_json::Value;
use std::time::Duration;

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

fn cluster(name: &str) -> String {
    format!(
        "\"@type\": {CLUSTER}\nname: {name}\nconnect_timeout: 1s\ntype: STATIC\n\
         load_assignment:\n  cluster_name: {name}\n  endpoints:\n  - lb_endpoints:\n    \
         - endpoint:\n        address:\n          socket_address: {{address: 127.0.0.1, port_value: 9000}}\n"
    )
}

/// `count` clusters in one multi-document file.
fn many_clusters(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|i| cluster(&format!("{prefix}-{i}")))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn status(xdsd: &Xdsd) -> Value {
    xdsd.admin_json("/status")
}

/// Waits for a load after `reloads_before` to finish and returns `/status`.
fn next_load(xdsd: &Xdsd, reloads_before: u64, within: Duration) -> Value {
    let mut last = Value::Null;
    wait_for(within, Duration::from_millis(50), || {
        last = status(xdsd);
        (last["reloads"].as_u64() > Some(reloads_before)).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("no load finished; /status: {last:#}\n{}", xdsd.log()))
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc");
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Starts xdsd on one small cluster and returns it with its version.
fn start(dir: &WorkDir, extra: &[&str]) -> (Xdsd, String) {
    dir.put("a.yaml", &cluster("a"));
    let xdsd = Xdsd::start_with(&dir.config(), &dir.beside("xdsd.log"), extra);
    let version = status(&xdsd)["served_version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (xdsd, version)
}

/// A rejected load, then recovery: the set served meanwhile is `version`,
/// and a small valid edit afterwards is applied by a fresh child.
fn assert_rejected_then_recovers(
    dir: &WorkDir,
    xdsd: &Xdsd,
    version: &str,
    rejected: &Value,
    expected_error: &str,
) {
    assert_eq!(rejected["last_load"]["ok"], false, "{rejected:#}");
    let errors = rejected["last_load"]["errors"].to_string();
    eprintln!("rejected: {errors}");
    assert!(
        errors.contains(expected_error),
        "the error says why ({expected_error}): {errors}"
    );
    assert_eq!(
        rejected["served_version"], version,
        "the last good set is still served: {rejected:#}"
    );
    assert!(xdsd.admin_get("/healthz").status == 200);

    std::fs::remove_file(dir.config().join("big.yaml")).expect("remove big.yaml");
    let before = status(xdsd)["reloads"].as_u64().unwrap_or_default();
    dir.put("b.yaml", &cluster("b"));
    let mut last = Value::Null;
    wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        last = status(xdsd);
        let applied = last["reloads"].as_u64() > Some(before)
            && last["last_load"]["ok"] == true
            && last["resources"]["Cluster"] == 2;
        applied.then_some(())
    })
    .unwrap_or_else(|| panic!("the next edit was not applied: {last:#}\n{}", xdsd.log()));
}

#[test]
fn a_load_over_the_memory_limit_is_stopped_and_rejected() {
    let dir = WorkDir::new("loader-memory");
    let (xdsd, version) = start(&dir, &["--load-memory-limit-mb", "128"]);
    let before = status(&xdsd)["reloads"].as_u64().unwrap_or_default();
    // 6 MB of YAML, read within the limit, but decoded it needs ~1 GB.
    dir.put("big.yaml", &many_clusters("big", 20_000));
    let rejected = next_load(&xdsd, before, Duration::from_secs(60));
    assert_rejected_then_recovers(
        &dir,
        &xdsd,
        &version,
        &rejected,
        // Stopped while decoding ("the loader process stopped without an
        // answer (...): memory allocation ... failed") or refused a buffer
        // while reading ("cannot read: out of memory"), depending on where
        // the address space runs out first; either way the reason names the
        // limit to raise.
        "(raise --load-memory-limit-mb if the set is that large)",
    );
}

#[test]
fn a_load_past_its_deadline_is_stopped_and_rejected() {
    let dir = WorkDir::new("loader-deadline");
    let (xdsd, version) = start(&dir, &["--load-timeout-secs", "1"]);
    let before = status(&xdsd)["reloads"].as_u64().unwrap_or_default();
    // Tens of seconds of work for a debug build; the deadline is one.
    dir.put("big.yaml", &many_clusters("big", 60_000));
    let rejected = next_load(&xdsd, before, Duration::from_secs(30));
    assert_rejected_then_recovers(
        &dir,
        &xdsd,
        &version,
        &rejected,
        "loading took longer than 1 s",
    );
}

#[test]
fn the_loader_process_exits_when_idle_and_comes_back_for_an_edit() {
    let dir = WorkDir::new("loader-idle");
    let (xdsd, _) = start(&dir, &[]);
    let pid = xdsd.guard.pid();
    assert_eq!(children(pid).len(), 1, "one loader after the first load");
    let gone = wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        children(pid).is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "the loader is still running after 20 s idle"
    );
    let before = status(&xdsd)["reloads"].as_u64().unwrap_or_default();
    dir.put("b.yaml", &cluster("b"));
    let loaded = next_load(&xdsd, before, Duration::from_secs(10));
    assert_eq!(loaded["last_load"]["ok"], true, "{loaded:#}");
    assert_eq!(loaded["resources"]["Cluster"], 2, "{loaded:#}");
    assert_eq!(children(pid).len(), 1, "a loader again after the edit");
}

/// A cluster whose ring hash sizes Envoy refuses (minimum above maximum).
fn bad_ring_hash_cluster(name: &str) -> String {
    format!(
        "{}lb_policy: RING_HASH\nring_hash_lb_config: {{minimum_ring_size: 4096, maximum_ring_size: 2048}}\n",
        cluster(name)
    )
}

#[test]
fn envoy_validate_keeps_what_the_referee_envoy_rejects_from_being_served() {
    let dir = WorkDir::new("loader-referee");
    let envoy = common::envoy_bin();
    let envoy = envoy.to_str().expect("UTF-8 path");
    // Memory-limited loads still run the referee: its limit is lifted for Envoy.
    let (xdsd, version) = start(
        &dir,
        &["--envoy-validate", envoy, "--load-memory-limit-mb", "512"],
    );
    let before = status(&xdsd)["reloads"].as_u64().unwrap_or_default();
    // xdsd's own rule for this defect is allowed inline, so only the referee sees it.
    let allowed = "# xdsd: allow(lb-ring-hash-min-above-max)\n";
    dir.put(
        "big.yaml",
        &format!("{allowed}{}", bad_ring_hash_cluster("ring")),
    );
    let rejected = next_load(&xdsd, before, Duration::from_secs(30));
    assert_rejected_then_recovers(
        &dir,
        &xdsd,
        &version,
        &rejected,
        "big.yaml:2:1: error: envoy 1.40.0: ring hash: minimum_ring_size (4096) > maximum_ring_size (2048) [envoy-rejects]",
    );
}
