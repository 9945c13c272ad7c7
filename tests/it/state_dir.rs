//! `--state-dir`: the last good set survives a restart. A daemon started
//! while its directory is invalid serves the saved set (and says so in the
//! log, `/status` and `/metrics`) instead of refusing to start; a damaged
//! state file is never served.

use crate::common::{WorkDir, Xdsd, free_port, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

fn cluster(name: &str) -> String {
    format!("\"@type\": {CLUSTER}\nname: {name}\nconnect_timeout: 1s\n")
}

/// The state directory beside the config directory.
fn state(work: &WorkDir) -> PathBuf {
    work.beside("state")
}

fn state_file(work: &WorkDir) -> PathBuf {
    state(work).join("last-good.xdsd")
}

fn state_arg(work: &WorkDir) -> String {
    state(work).display().to_string()
}

/// Starts xdsd on a valid set with `--state-dir`, waits until the set is
/// saved, then kills it (SIGKILL: no chance to write anything more). Returns
/// the version it served and the state file's bytes.
fn serve_once_and_kill(work: &WorkDir) -> (String, Vec<u8>) {
    work.put("a.yaml", &cluster("a"));
    work.put("b.yaml", &cluster("b"));
    let state = state_arg(work);
    let mut xdsd = Xdsd::start_with(
        &work.config(),
        &work.beside("first.log"),
        &["--state-dir", &state],
    );
    let version = xdsd.admin_json("/status")["served_version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let saved = wait_for(Duration::from_secs(10), Duration::from_millis(25), || {
        std::fs::read(state_file(work)).ok()
    })
    .unwrap_or_else(|| panic!("no state file saved:\n{}", xdsd.log()));
    xdsd.guard.signal("KILL");
    xdsd.guard.wait_exit(Duration::from_secs(5));
    (version, saved)
}

/// An unknown field on line 3, column 1 of bad.yaml.
fn break_the_directory(work: &WorkDir) {
    work.put(
        "bad.yaml",
        &format!("\"@type\": {CLUSTER}\nname: c\nconnect_timeoutt: 1s\n"),
    );
}

fn metric(xdsd: &Xdsd, name: &str) -> Option<f64> {
    let body = xdsd.admin_get("/metrics").body;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_restart_with_an_invalid_directory_serves_the_saved_set() {
    let work = WorkDir::new("state-restore");
    let (version, _) = serve_once_and_kill(&work);
    break_the_directory(&work);

    let state = state_arg(&work);
    let xdsd = Xdsd::start_with(
        &work.config(),
        &work.beside("second.log"),
        &["--state-dir", &state],
    );
    let status: Value = xdsd.admin_json("/status");
    assert_eq!(status["served_version"], version.as_str(), "{status:#}");
    assert_eq!(status["source"], "state-dir", "{status:#}");
    assert_eq!(status["last_load"]["ok"], false, "{status:#}");
    let errors = status["last_load"]["errors"].to_string();
    assert!(
        errors.contains("bad.yaml:3:1"),
        "located errors kept: {errors}"
    );
    assert_eq!(metric(&xdsd, "xdsd_serving_saved_state"), Some(1.0));
    assert!(
        xdsd.log().contains("serving the last good set saved in"),
        "said loudly in the log:\n{}",
        xdsd.log()
    );
    // What is served is the saved set, resource for resource.
    let config = xdsd.admin_get("/config?node_id=any").body;
    assert!(
        config.contains("\"name\": \"a\"") && config.contains("\"name\": \"b\""),
        "the saved clusters are served:\n{config}"
    );

    // Fixing the directory makes it the source again (same content: same version).
    std::fs::remove_file(work.config().join("bad.yaml")).expect("rm");
    let mut last = Value::Null;
    wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        last = xdsd.admin_json("/status");
        (last["source"] == "directory").then_some(())
    })
    .unwrap_or_else(|| panic!("the fixed directory is not the source: {last:#}"));
    assert_eq!(last["served_version"], version.as_str(), "{last:#}");
    assert_eq!(metric(&xdsd, "xdsd_serving_saved_state"), Some(0.0));
}

#[test]
fn a_damaged_state_file_is_ignored() {
    let work = WorkDir::new("state-damaged");
    let (_, saved) = serve_once_and_kill(&work);
    break_the_directory(&work);
    let mut damaged = saved.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x20;
    std::fs::write(state_file(&work), &damaged).expect("damage");

    let output = start_and_collect(&work.config(), &state(&work));
    assert_eq!(
        output.status.code(),
        Some(1),
        "refuses to start: {output:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.yaml:3:1"), "names the error: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        format!("{stdout}{stderr}").contains("corrupt state file (checksum mismatch)"),
        "says the saved set was ignored and why:\n{stdout}\n{stderr}"
    );
}

#[test]
fn without_a_saved_set_an_invalid_directory_still_refuses_to_start() {
    let work = WorkDir::new("state-empty");
    break_the_directory(&work);
    let output = start_and_collect(&work.config(), &state(&work));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad.yaml:3:1"));
}

/// Runs `xdsd serve` expecting it to exit at once; its output.
fn start_and_collect(config: &Path, state: &Path) -> std::process::Output {
    let mut command = Xdsd::command(config, free_port(), free_port(), &[]);
    command.arg("--state-dir").arg(state);
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn xdsd");
    // A daemon that wrongly started would never exit: stop it after 20 s.
    let exited = wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        child.try_wait().ok().flatten()
    });
    if exited.is_none() {
        let _ = child.kill();
    }
    child.wait_with_output().expect("xdsd output")
}

/// `--history 2`: the state directory keeps the last two good sets, and
/// `xdsd history` lists them newest first with what changed; a rejected
/// edit adds nothing. JSON lists the same versions.
#[test]
fn history_lists_the_last_good_sets() {
    let work = WorkDir::new("history");
    work.put("a.yaml", &cluster("a"));
    let state = state_arg(&work);
    let xdsd = Xdsd::start_with(
        &work.config(),
        &work.beside("xdsd.log"),
        &[
            "--state-dir",
            &state,
            "--history",
            "2",
            "--debounce-ms",
            "20",
        ],
    );
    let served = || -> String {
        xdsd.admin_json("/status")["served_version"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let history = |format: &str| {
        let out = crate::common::xdsd(&["history", "--state-dir", &state, "--format", format]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut versions = vec![served()];
    for name in ["b", "c"] {
        let before = served();
        work.put(&format!("{name}.yaml"), &cluster(name));
        let changed = wait_for(Duration::from_secs(10), Duration::from_millis(25), || {
            let now = served();
            (now != before).then_some(now)
        });
        versions.push(changed.unwrap_or_else(|| panic!("{name} not served:\n{}", xdsd.log())));
    }
    break_the_directory(&work);
    let listed = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        let text = history("table");
        text.contains(&versions[2]).then_some(text)
    })
    .unwrap_or_else(|| panic!("history never listed the last set:\n{}", history("table")));
    eprintln!("{listed}");
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "a header and the two newest sets:\n{listed}"
    );
    assert!(lines[1].starts_with(&versions[2]) && lines[1].contains("Cluster +1 -0 ~0"));
    assert!(lines[1].ends_with("(last good)"));
    assert!(lines[2].starts_with(&versions[1]));
    let json: Value = serde_json::from_str(&history("json")).expect("JSON");
    let listed: Vec<&str> = json
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["version"].as_str())
        .collect();
    assert_eq!(listed, [versions[2].as_str(), versions[1].as_str()]);
    let missing = crate::common::xdsd(&[
        "history",
        "--state-dir",
        &work.beside("nope").display().to_string(),
    ]);
    assert_eq!(missing.status.code(), Some(2));
}
