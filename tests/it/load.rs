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
    run_load_on(xdsd.listen, args, trigger, &xdsd.log())
}

fn run_load_on(port: u16, args: &[&str], trigger: &str, log: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_xds-load"))
        .args(["--server", &format!("127.0.0.1:{port}")])
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
            log
        )
    });
    assert!(out.status.success(), "xds-load failed: {report:#}");
    report
}

fn check(report: &Value) {
    assert_eq!(report["synced"], CLIENTS, "{report:#}");
    assert_eq!(report["disconnects"], 0, "{report:#}");
    assert_eq!(report["connected"], CLIENTS, "{report:#}");
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

/// Kills the process whose pid is in the file (the xdsd a restart trigger
/// started, which is nobody's child here) when the test ends, also on failure.
struct PidFileGuard(std::path::PathBuf);

impl Drop for PidFileGuard {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// xdsd restarted (SIGTERM, then a new process, as `bench/restart.sh` and
/// systemd do) under a connected Envoy-like fleet: every client is back on
/// a stream, and nothing is re-sent, since the clients resume with the
/// versions they hold.
#[test]
fn a_restarted_xdsd_takes_the_fleet_back_and_resends_nothing() {
    for mode in ["sotw", "delta"] {
        let work = ScratchDir::new(&format!("load-restart-{mode}"));
        let config = work.path().join("config");
        std::fs::create_dir_all(&config).expect("mkdir");
        grpc_example(&config);
        let state = work.path().join("state");
        let log = work.path().join("xdsd.log");
        let pidfile = work.path().join("xdsd.pid");
        let (listen, admin) = (crate::common::free_port(), crate::common::free_port());
        let extra = ["--state-dir", state.to_str().expect("utf-8 path")];
        let command = Xdsd::command(&config, listen, admin, &extra);
        let mut first = Xdsd::spawn(&config, listen, admin, &extra, &log);
        first.wait_ready();
        std::fs::write(&pidfile, first.guard.pid().to_string()).expect("pid");
        let _restarted = PidFileGuard(pidfile.clone());
        let argv: Vec<String> = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let trigger = format!(
            "sh {} {} {} {}",
            root().join("bench/restart.sh").display(),
            pidfile.display(),
            log.display(),
            argv.join(" ")
        );
        let report = run_load_on(listen, &["--mode", mode], &trigger, "(see the scratch dir)");
        eprintln!("{mode}: {report}");
        let trial = &report["trials"][0];
        assert_eq!(trial["reconnected"], CLIENTS, "{report:#}");
        assert_eq!(report["connected"], CLIENTS, "{report:#}");
        assert_eq!(
            trial["responses_max"], 0,
            "something was re-sent: {report:#}"
        );
        assert_eq!(report["nacks"], 0, "{report:#}");
    }
}
