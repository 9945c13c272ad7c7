//! `xds-load` against `xdsd serve`, small: the fleet converges in each mode
//! (Envoy-like SotW and delta, gRPC-like named), a trigger's change reaches
//! every client, and the figures are produced. Speed is the benchmark
//! suite's business (`bash bench/suite.sh`), not this test's.

use crate::common::{ScratchDir, Xdsd, root};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const CLIENTS: usize = 20;

/// Copies the example into `dir`, and beside it (as a dotfile xdsd skips)
/// the endpoints with another port; returns the trigger that swaps them in.
fn grpc_example(dir: &Path) -> String {
    let example = root().join("config-examples/grpc-proxyless");
    for name in [
        "listeners.yaml",
        "routes.yaml",
        "clusters.yaml",
        "endpoints.yaml",
    ] {
        std::fs::copy(example.join(name), dir.join(name)).expect("copy example");
    }
    let endpoints = std::fs::read_to_string(example.join("endpoints.yaml")).expect("read");
    let changed = endpoints.replace("port_value: 50051", "port_value: 50052");
    assert_ne!(changed, endpoints, "the example's port moved");
    std::fs::write(dir.join(".endpoints.next"), changed).expect("write");
    format!(
        "mv {} {}",
        dir.join(".endpoints.next").display(),
        dir.join("endpoints.yaml").display()
    )
}

fn run_load(xdsd: &Xdsd, args: &[&str], trigger: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_xds-load"))
        .args(["--server", &format!("127.0.0.1:{}", xdsd.listen)])
        .args(["--clients", &CLIENTS.to_string()])
        .args(["--node-cluster", "grpc-load", "--settle-ms", "300"])
        .args(["--timeout-s", "30", "--format", "json"])
        .args(["--trigger", trigger])
        .args(args)
        .output()
        .expect("run xds-load");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "xds-load printed no JSON ({e}): {}\n{}\nxdsd log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            xdsd.log()
        )
    });
    assert!(out.status.success(), "xds-load failed: {report:#}");
    report
}

fn check(report: &Value) {
    assert_eq!(report["synced"], CLIENTS, "{report:#}");
    assert_eq!(report["stream_errors"], 0, "{report:#}");
    assert_eq!(report["nacks"], 0, "{report:#}");
    assert!(
        report["initial_sync_ms"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0)
    );
    assert!(
        report["initial_bytes_per_client"]
            .as_f64()
            .is_some_and(|b| b > 0.0)
    );
    let trial = &report["trials"][0];
    assert_eq!(
        trial["updated"], CLIENTS,
        "every client got the change: {report:#}"
    );
    assert_eq!(trial["trigger_failed"], false, "{report:#}");
    let (first, p99, last) = (
        trial["first_ms"].as_f64().unwrap_or(-1.0),
        trial["p99_ms"].as_f64().unwrap_or(-1.0),
        trial["last_ms"].as_f64().unwrap_or(-1.0),
    );
    assert!(0.0 < first && first <= p99 && p99 <= last, "{report:#}");
}

#[test]
fn fleet_converges_and_measures_a_change_in_every_mode() {
    for (mode, extra) in [
        ("sotw", vec!["--mode", "sotw"]),
        ("delta", vec!["--mode", "delta"]),
        ("named", vec!["--mode", "named", "--listener", "greeter"]),
    ] {
        let work = ScratchDir::new(&format!("load-{mode}"));
        let config = work.path().join("config");
        std::fs::create_dir_all(&config).expect("mkdir");
        let trigger = grpc_example(&config);
        let xdsd = Xdsd::start_with(
            &config,
            &work.path().join("xdsd.log"),
            &["--debounce-ms", "5"],
        );
        let report = run_load(&xdsd, &extra, &trigger);
        eprintln!("{mode}: {report}");
        check(&report);
        // The change is one endpoint assignment: less than the whole initial set.
        let trial_bytes = report["trials"][0]["bytes_per_client"]
            .as_f64()
            .unwrap_or_default();
        let initial = report["initial_bytes_per_client"]
            .as_f64()
            .unwrap_or_default();
        assert!(0.0 < trial_bytes && trial_bytes < initial, "{report:#}");
    }
}
