//! `Type=notify`: xdsd tells systemd, over the datagram socket named by
//! `NOTIFY_SOCKET`, when it is ready (after the first valid load, with xDS
//! listening), what it serves after each reload, that it is alive
//! (`WATCHDOG=1` at half of `WATCHDOG_USEC`), and when it stops. A test
//! socket stands in for systemd.

use crate::common;

use crate::common::config::service;
use crate::common::stack::write_atomic;
use crate::common::{ChildGuard, ScratchDir, Xdsd, free_port, wait_for};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// The socket systemd would listen on.
struct NotifySocket(UnixDatagram);

impl NotifySocket {
    fn bind(path: &std::path::Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).expect("bind notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        NotifySocket(socket)
    }

    /// Messages until one satisfies `want` (returned) or `timeout` passes (panics, listing them).
    fn until(&self, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.0.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if want(&message) {
                    return message;
                }
                seen.push(message);
            }
        }
        panic!("no wanted notification within {timeout:?}; got {seen:?}");
    }

    /// Every message within `period`.
    fn collect(&self, period: Duration) -> Vec<String> {
        let deadline = Instant::now() + period;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.0.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        seen
    }
}

fn served_version(admin: u16) -> String {
    let r = common::http_get(admin, "/status", Duration::from_secs(5)).expect("/status");
    let status: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    status["served_version"]
        .as_str()
        .expect("served_version")
        .to_string()
}

#[test]
fn ready_status_watchdog_and_stopping_reach_the_notify_socket() {
    let work = ScratchDir::new("notify");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    write_atomic(&config, "a.yaml", &service("a", 9));
    let socket = NotifySocket::bind(&work.path().join("notify.sock"));
    let (listen, admin) = (free_port(), free_port());
    let mut command = Xdsd::command(&config, listen, admin, &[]);
    command
        .env("NOTIFY_SOCKET", work.path().join("notify.sock"))
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID");
    let mut xdsd = ChildGuard::spawn("xdsd", command, &work.path().join("xdsd.log"));

    let ready = socket.until(Duration::from_secs(10), |m| m.starts_with("READY=1"));
    // READY comes only once xDS listens and the admin API answers.
    assert!(std::net::TcpStream::connect(("127.0.0.1", listen)).is_ok());
    let version = served_version(admin);
    assert_eq!(
        ready,
        format!("READY=1\nSTATUS=serving version {version} (2 resources)")
    );

    let pings = socket
        .collect(Duration::from_secs(1))
        .iter()
        .filter(|m| *m == "WATCHDOG=1")
        .count();
    assert!(
        (5..=15).contains(&pings),
        "WATCHDOG=1 every 100 ms: {pings} in 1 s"
    );

    // A reload reports the new version; a rejected one says so and what is still served.
    write_atomic(&config, "b.yaml", &service("b", 9));
    let reloaded = socket.until(Duration::from_secs(5), |m| m.starts_with("STATUS="));
    let new_version = wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
        Some(served_version(admin)).filter(|v| *v != version)
    })
    .expect("new version served");
    assert_eq!(
        reloaded,
        format!("STATUS=serving version {new_version} (4 resources)")
    );
    write_atomic(&config, "bad.yaml", "kind: Cluster\nspec: {name: [\n");
    let rejected = socket.until(Duration::from_secs(5), |m| m.starts_with("STATUS="));
    assert!(
        rejected.starts_with("STATUS=reload rejected (1 errors, first: ")
            && rejected.contains("bad.yaml:")
            && rejected.ends_with(&format!("serving version {new_version} (4 resources)")),
        "{rejected}"
    );

    xdsd.signal("TERM");
    socket.until(Duration::from_secs(5), |m| m == "STOPPING=1");
    let status = xdsd.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status}");
}

#[test]
fn no_watchdog_pings_for_another_process() {
    let work = ScratchDir::new("notify-pid");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir");
    let socket = NotifySocket::bind(&work.path().join("notify.sock"));
    let mut command = Xdsd::command(&config, free_port(), free_port(), &[]);
    command
        .env("NOTIFY_SOCKET", work.path().join("notify.sock"))
        .env("WATCHDOG_USEC", "100000")
        // systemd sets WATCHDOG_PID to the main process; another pid means "not you".
        .env("WATCHDOG_PID", "1");
    let _xdsd = ChildGuard::spawn("xdsd", command, &work.path().join("xdsd.log"));
    socket.until(Duration::from_secs(10), |m| m.starts_with("READY=1"));
    let seen = socket.collect(Duration::from_millis(500));
    assert!(!seen.iter().any(|m| m == "WATCHDOG=1"), "{seen:?}");
}
