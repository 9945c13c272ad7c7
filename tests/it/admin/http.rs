//! The admin API as an HTTP/1.1 server, over raw sockets: only GET and HEAD
//! (405 with `Allow` otherwise), keep-alive, the 16 KiB head limit (431),
//! idle connections closed after `--admin-timeout-secs`, at most
//! `--admin-max-connections` open (more wait in the kernel's queue), and the
//! warning for an address other than loopback.

use crate::common;

use crate::common::{HttpResponse, KeepAliveClient, WorkDir, Xdsd, read_response, wait_for};
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const CLUSTER: &str = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: a\nconnect_timeout: 1s\n";

/// xdsd on a one-cluster directory, with `extra` flags, ready.
fn start(tag: &str, extra: &[&str]) -> (WorkDir, Xdsd) {
    let work = WorkDir::new(tag);
    work.put("cluster.yaml", CLUSTER);
    let xdsd = Xdsd::start_with(&work.config(), &work.beside("xdsd.log"), extra);
    (work, xdsd)
}

fn connect(port: u16) -> TcpStream {
    let socket = TcpStream::connect(("127.0.0.1", port)).expect("connect to the admin port");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    socket
}

/// Sends `request` (the whole head, as is) on a new connection and reads the response.
fn exchange(port: u16, request: &str) -> HttpResponse {
    let mut socket = connect(port);
    socket.write_all(request.as_bytes()).expect("send");
    read_response(&mut BufReader::new(socket)).expect("a response")
}

/// Waits (at most `limit`) for the server to close `socket`; returns how long that took.
fn closed_within(socket: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    socket.set_read_timeout(Some(limit)).expect("read timeout");
    let mut byte = [0u8; 1];
    match socket.read(&mut byte) {
        Ok(0) => Some(started.elapsed()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(started.elapsed()),
        Ok(_) => panic!("unexpected data on an idle connection"),
        Err(_) => None,
    }
}

#[test]
fn only_get_and_head_are_answered() {
    let (_work, xdsd) = start("admin-methods", &[]);
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for path in ["/healthz", "/status", "/nowhere"] {
            let r = exchange(
                xdsd.admin,
                &format!(
                    "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                ),
            );
            assert_eq!(r.status, 405, "{method} {path}: {r:?}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }
    // HEAD: GET's status and headers, no body.
    let get = exchange(
        xdsd.admin,
        "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert_eq!((get.status, get.body.as_str()), (200, "ok\n"));
    let (head, body) = head_request(xdsd.admin, "/healthz");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-length: 3"), "{head}");
    assert_eq!(body, "", "HEAD has no body");
    let (head, body) = head_request(xdsd.admin, "/nowhere");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert_eq!(body, "", "HEAD has no body");
}

/// `HEAD path` (connection: close): the raw head, and whatever followed it.
fn head_request(port: u16, path: &str) -> (String, String) {
    let mut socket = connect(port);
    socket
        .write_all(
            format!("HEAD {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .expect("send");
    let mut raw = String::new();
    socket.read_to_string(&mut raw).expect("read to the close");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    (head.to_string(), body.to_string())
}

#[test]
fn two_requests_share_one_connection() {
    let (_work, xdsd) = start("admin-keepalive", &[]);
    let mut client = KeepAliveClient::new(xdsd.admin, Duration::from_secs(5));
    let first = client.get("/healthz").expect("first request");
    let second = client.get("/status").expect("second request");
    assert_eq!((first.status, second.status), (200, 200));
    assert!(second.body.contains("served_version"), "{}", second.body);
    assert_eq!(client.connections, 1, "both requests on one connection");
}

#[test]
fn an_oversized_head_is_refused_with_431() {
    let (_work, xdsd) = start("admin-big-head", &[]);
    // Just under the limit is fine.
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(15 * 1024)
    );
    assert_eq!(exchange(xdsd.admin, &fits).status, 200);
    for size in [17 * 1024, 64 * 1024] {
        let mut socket = connect(xdsd.admin);
        let request = format!(
            "GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\n\r\n",
            "a".repeat(size)
        );
        // The server may answer and close before it read everything.
        let _ = socket.write_all(request.as_bytes());
        let r = read_response(&mut BufReader::new(socket)).expect("a response");
        assert_eq!(r.status, 431, "a {size}-byte header");
    }
    // The server is fine afterwards.
    assert_eq!(
        exchange(
            xdsd.admin,
            "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .status,
        200
    );
}

#[test]
fn idle_connections_are_closed_after_the_timeout() {
    let (_work, xdsd) = start("admin-idle", &["--admin-timeout-secs", "1"]);
    // A connection that never sends a request.
    let mut silent = connect(xdsd.admin);
    let took = closed_within(&mut silent, Duration::from_secs(5)).expect("closed");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "a silent connection closed after {took:?}"
    );
    // A kept-alive connection after its request.
    let mut kept = connect(xdsd.admin);
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("send");
    let mut reader = BufReader::new(kept.try_clone().expect("clone"));
    assert_eq!(read_response(&mut reader).expect("response").status, 200);
    let took = closed_within(&mut kept, Duration::from_secs(5)).expect("closed");
    assert!(
        took < Duration::from_secs(4),
        "an idle kept-alive connection closed after {took:?}"
    );
    // Half a head, then nothing: the head timeout covers the whole head.
    let mut slow = connect(xdsd.admin);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost:")
        .expect("send");
    assert!(closed_within(&mut slow, Duration::from_secs(5)).is_some());
}

#[test]
fn connections_over_the_limit_wait_until_one_closes() {
    let (_work, xdsd) = start(
        "admin-limit",
        &["--admin-max-connections", "2", "--admin-timeout-secs", "30"],
    );
    // Wait for the readiness probes' connections to be gone.
    let mut first = KeepAliveClient::new(xdsd.admin, Duration::from_secs(5));
    let settled = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        let metrics = first.get("/metrics").ok()?.body;
        metrics
            .lines()
            .any(|l| l == "xdsd_admin_connections 1")
            .then_some(())
    });
    assert!(settled.is_some(), "only this client's connection open");
    let mut second = KeepAliveClient::new(xdsd.admin, Duration::from_secs(5));
    assert_eq!(second.get("/healthz").expect("second").status, 200);
    let metrics = first.get("/metrics").expect("metrics").body;
    assert!(
        metrics.lines().any(|l| l == "xdsd_admin_connections 2"),
        "{metrics}"
    );

    // A third connection is queued, not answered...
    let mut third = connect(xdsd.admin);
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .expect("send");
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let early = third.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "over the limit, a connection waits: {early:?}"
    );
    // ...until one of the two closes.
    drop(second);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let r = read_response(&mut BufReader::new(third)).expect("answered once a slot freed");
    assert_eq!(r.status, 200);
    assert!(
        xdsd.log().contains("every connection in use"),
        "the wait is logged"
    );
}

#[test]
fn a_non_loopback_admin_address_is_warned_about() {
    let work = WorkDir::new("admin-exposed");
    work.put("cluster.yaml", CLUSTER);
    let (listen, admin) = (common::free_port(), common::free_port());
    let log = work.beside("xdsd.log");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_xdsd"));
    command
        .arg("serve")
        .arg("--dir")
        .arg(work.config())
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .args(["--admin", &format!("0.0.0.0:{admin}")]);
    let mut xdsd = Xdsd {
        guard: common::ChildGuard::spawn("xdsd", command, &log),
        listen,
        admin,
    };
    xdsd.wait_ready();
    let log = xdsd.log();
    let line = log
        .lines()
        .find(|l| l.contains("not a loopback address"))
        .unwrap_or_else(|| panic!("no warning in:\n{log}"));
    assert!(line.contains("WARN"), "{line}");
    for exposed in ["/config", "/status", "/clients", "/metrics"] {
        assert!(line.contains(exposed), "{line}");
    }
}
