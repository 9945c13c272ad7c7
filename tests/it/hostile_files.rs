//! Hostile files: each gets a located error from `xdsd lint`, never a
//! panic, and in `xdsd serve` the change is rejected while the last good
//! set stays served. The daemon runs unprivileged (as `nobody` when the
//! tests run as root), so that an unreadable file really is unreadable.

use crate::common::{ChildGuard, WorkDir, Xdsd, free_port, wait_for};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// One hostile file: how to make it, and what the error must say.
struct Case {
    name: &'static str,
    make: fn(&Path),
    /// Every one of these appears in the error (file:line:col where there is one).
    expect: &'static [&'static str],
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write");
}

fn alias_bomb(dir: &Path) {
    let mut text =
        String::from("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
    for (prev, next) in ('a'..'i').zip('b'..='i') {
        let row = vec![format!("*{prev}"); 10].join(",");
        text.push_str(&format!("{next}: &{next} [{row}]\n"));
    }
    write(&dir.join("bomb.yaml"), text.as_bytes());
}

fn deep_nesting(dir: &Path) {
    let text = format!(
        "\"@type\": {CLUSTER}\nname: deep\nx: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    write(&dir.join("deep.yaml"), text.as_bytes());
}

fn huge_file(dir: &Path) {
    // 100 MB on disk (sparse): refused by its size, never read.
    let file = std::fs::File::create(dir.join("huge.yaml")).expect("create");
    file.set_len(100 * 1024 * 1024).expect("set_len");
}

fn over_configured_limit(dir: &Path) {
    // 2 MiB of valid YAML against --max-file-mb 1.
    let text = format!("# {}\n", "x".repeat(2 * 1024 * 1024));
    write(&dir.join("big.yaml"), text.as_bytes());
}

fn binary_garbage(dir: &Path) {
    let mut bytes =
        b"\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: ok\n".to_vec();
    bytes.extend_from_slice(&[0x7f, 0x45, 0x4c, 0x46, 0x00, 0xff, 0xfe, 0x80, 0x0a]);
    write(&dir.join("garbage.yaml"), &bytes);
}

fn symlink_loop(dir: &Path) {
    std::os::unix::fs::symlink("loop.yaml", dir.join("loop.yaml")).expect("symlink");
}

fn directory_loop(dir: &Path) {
    // A folder linking back to its parent: walked once, not forever; the
    // broken file inside makes the change visible.
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::os::unix::fs::symlink("..", dir.join("sub/up")).expect("symlink");
    write(
        &dir.join("sub/bad.yaml"),
        format!("\"@type\": {CLUSTER}\nname: [x]\n").as_bytes(),
    );
}

fn unreadable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("secret.yaml");
    write(
        &path,
        format!("\"@type\": {CLUSTER}\nname: secret\n").as_bytes(),
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
}

fn fifo(dir: &Path) {
    let status = Command::new("mkfifo")
        .arg(dir.join("pipe.yaml"))
        .status()
        .expect("mkfifo");
    assert!(status.success());
}

const CASES: &[Case] = &[
    Case {
        name: "alias bomb",
        make: alias_bomb,
        expect: &["bomb.yaml:", "YAML"],
    },
    Case {
        name: "deep nesting",
        make: deep_nesting,
        expect: &["deep.yaml:3:", "YAML"],
    },
    Case {
        name: "100 MB file",
        make: huge_file,
        expect: &["huge.yaml", "larger than the limit"],
    },
    Case {
        name: "over --max-file-mb",
        make: over_configured_limit,
        expect: &["big.yaml", "larger than the limit of 1048576"],
    },
    Case {
        name: "binary garbage",
        make: binary_garbage,
        expect: &["garbage.yaml:3:6", "not valid UTF-8"],
    },
    Case {
        name: "symlink loop",
        make: symlink_loop,
        expect: &["loop.yaml", "cannot read"],
    },
    Case {
        name: "directory loop",
        make: directory_loop,
        expect: &["sub/bad.yaml:2:7"],
    },
    Case {
        name: "unreadable file",
        make: unreadable,
        expect: &["secret.yaml", "Permission denied"],
    },
    Case {
        name: "FIFO",
        make: fifo,
        expect: &["pipe.yaml", "not a regular file"],
    },
];

/// True when the tests run as root (who can read a file of mode 000).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|ids| ids.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `command`, run as `nobody` when the tests run as root.
fn unprivileged(command: Command) -> Command {
    if !running_as_root() {
        return command;
    }
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(command.get_program())
        .args(command.get_args());
    wrapped
}

fn lint(dir: &Path) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xdsd"));
    command
        .arg("lint")
        .arg("--dir")
        .arg(dir)
        .args(["--max-file-mb", "1"]);
    let output = unprivileged(command).output().expect("lint runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

fn clean(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("list").flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n != "good.yaml") {
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
}

#[test]
fn each_hostile_file_gets_a_located_error_from_lint() {
    let work = WorkDir::new("hostile-lint");
    let dir = work.config();
    work.put("good.yaml", &format!("\"@type\": {CLUSTER}\nname: good\n"));
    let mut failures = Vec::new();
    for case in CASES {
        clean(&dir);
        (case.make)(&dir);
        let (code, text) = lint(&dir);
        let located = case.expect.iter().all(|e| text.contains(e));
        if code != Some(1) || !located || text.contains("panicked") {
            failures.push(format!(
                "{}: exit {code:?}, want 1 and {:?}:\n{text}",
                case.name, case.expect
            ));
        } else {
            eprintln!("{}: {}", case.name, text.lines().next().unwrap_or(""));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn serve_rejects_each_hostile_file_and_keeps_serving() {
    let work = WorkDir::new("hostile-serve");
    let dir = work.config();
    work.put("good.yaml", &format!("\"@type\": {CLUSTER}\nname: good\n"));
    let (listen, admin) = (free_port(), free_port());
    let command = unprivileged(Xdsd::command(&dir, listen, admin, &["--max-file-mb", "1"]));
    let mut xdsd = Xdsd {
        guard: ChildGuard::spawn("xdsd", command, &work.beside("xdsd.log")),
        listen,
        admin,
    };
    xdsd.wait_ready();
    let status = |xdsd: &Xdsd| -> Value { xdsd.admin_json("/status") };
    let served = status(&xdsd)["served_version"].clone();
    let mut failures = Vec::new();
    for case in CASES {
        let before = status(&xdsd)["reloads"].as_u64().unwrap_or_default();
        (case.make)(&dir);
        let mut last = Value::Null;
        let loaded = wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
            last = status(&xdsd);
            (last["reloads"].as_u64() > Some(before)).then(|| last.clone())
        });
        let errors = last["last_load"]["errors"].to_string();
        let ok = loaded.is_some()
            && last["last_load"]["ok"] == false
            && case.expect.iter().all(|e| errors.contains(e))
            && last["served_version"] == served;
        if ok {
            eprintln!(
                "{}: rejected: {}",
                case.name,
                errors.chars().take(200).collect::<String>()
            );
        } else {
            failures.push(format!("{}: {last:#}", case.name));
        }
        // Back to the good set (same content: nothing new is served).
        let before = last["reloads"].as_u64().unwrap_or_default();
        clean(&dir);
        let back = wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
            let now = status(&xdsd);
            (now["reloads"].as_u64() > Some(before) && now["last_load"]["ok"] == true).then_some(())
        });
        assert!(
            back.is_some(),
            "{}: the good set did not load again:\n{}",
            case.name,
            xdsd.log()
        );
        assert!(
            xdsd.guard.try_wait().is_none(),
            "xdsd exited:\n{}",
            xdsd.log()
        );
    }
    assert_eq!(status(&xdsd)["served_version"], served);
    assert!(!xdsd.log().contains("panicked"), "{}", xdsd.log());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
