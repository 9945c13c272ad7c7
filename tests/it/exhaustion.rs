//! Descriptor exhaustion: xdsd runs under a low `RLIMIT_NOFILE` (set by the
//! shell that execs it) while this test holds more idle connections than it
//! can accept. Accepting must pause rather than spin (its CPU time over 2 s
//! is read from `/proc/PID/stat`), the errors must be counted and said once,
//! and service must come back once the connections are dropped.
//!
//! `XDSD_EXHAUSTION_BIN=/path/to/xdsd` runs the same scenario against another
//! build (to measure an older one: it fails at the CPU assertion, which
//! prints the figure).

use crate::common::{ChildGuard, WorkDir, Xdsd, free_port, http_get, wait_for};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// The most CPU a listener at its limit may use, as a share of one core.
const MOST_CPU: f64 = 0.10;

fn xdsd_bin() -> PathBuf {
    std::env::var_os("XDSD_EXHAUSTION_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_xdsd")), PathBuf::from)
}

/// `xdsd serve` on a one-cluster directory, under `ulimit -n nofile` (soft
/// and hard: xdsd raises its soft limit to the hard one), ready.
fn start_limited(work: &WorkDir, nofile: u32, extra: &[&str]) -> Xdsd {
    work.put(
        "cluster.yaml",
        &format!("\"@type\": {CDS}\nname: a\nconnect_timeout: 1s\n"),
    );
    let (listen, admin) = (free_port(), free_port());
    let serve = Xdsd::command(&work.config(), listen, admin, extra);
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
        .arg(xdsd_bin())
        .args(serve.get_args());
    let mut xdsd = Xdsd {
        guard: ChildGuard::spawn("xdsd", command, &work.beside("xdsd.log")),
        listen,
        admin,
    };
    xdsd.wait_ready();
    xdsd
}

/// Open descriptors of `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces): state is the
    // first, utime the 12th and stime the 13th.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields[i].parse::<u64>().expect("a number");
    field(11) + field(12)
}

fn ticks_per_second() -> f64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

/// The share of one core `pid` used over `span`.
fn cpu_share(pid: u32, span: Duration) -> f64 {
    let (before, started) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(span);
    let used = (cpu_ticks(pid) - before) as f64 / ticks_per_second();
    used / started.elapsed().as_secs_f64()
}

/// Opens `count` connections to `port` (they queue in the kernel once xdsd
/// stops accepting), then waits until xdsd holds every descriptor it may.
fn exhaust(xdsd: &Xdsd, port: u16, count: usize, nofile: u32) -> Vec<TcpStream> {
    let held: Vec<TcpStream> = (0..count)
        .map(|i| {
            TcpStream::connect(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("connection {i} of {count}: {e}"))
        })
        .collect();
    let pid = xdsd.guard.pid();
    let full = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        (open_files(pid) + 1 >= nofile as usize).then_some(())
    });
    assert!(
        full.is_some(),
        "xdsd never reached its limit of {nofile}: {} open",
        open_files(pid)
    );
    // Let a spinning loop show itself.
    std::thread::sleep(Duration::from_millis(300));
    held
}

/// One sample of a metric with exactly these labels.
fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

/// Waits until `/healthz` answers 200 again; returns how long that took.
fn healthz_back(xdsd: &Xdsd) -> Duration {
    let started = Instant::now();
    let ok = wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        let r = http_get(xdsd.admin, "/healthz", Duration::from_secs(2)).ok()?;
        (r.status == 200).then_some(())
    });
    assert!(ok.is_some(), "/healthz never answered again");
    started.elapsed()
}

/// The admin API's view of a listener after a burst: errors counted by
/// kind, the gauge and `/status` saying saturated until 5 s without an
/// error, then not; the burst said once when it starts and once when it ends.
fn assert_burst_reported(xdsd: &Xdsd, listener: &str) {
    let metrics = xdsd.admin_get("/metrics").body;
    let emfile = metric(
        &metrics,
        "xdsd_accept_errors_total",
        &format!("{{listener=\"{listener}\",kind=\"emfile\"}}"),
    )
    .unwrap_or(0.0);
    assert!(
        emfile >= 1.0,
        "no EMFILE counted for {listener}:\n{metrics}"
    );
    let status = xdsd.admin_json("/status");
    let ended = wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
        let status = xdsd.admin_json("/status");
        let metrics = xdsd.admin_get("/metrics").body;
        let gauge = metric(
            &metrics,
            "xdsd_listener_saturated",
            &format!("{{listener=\"{listener}\"}}"),
        );
        (status["listeners"][listener]["saturated"] == false && gauge == Some(0.0)).then_some(())
    });
    assert!(
        ended.is_some(),
        "{listener} still saturated 10 s after recovery"
    );
    assert!(
        status["listeners"][listener]["accept_errors"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{status:#}"
    );
    let log = xdsd.log();
    let said = |text: &str| {
        log.lines()
            .filter(|l| l.contains(text) && l.contains(&format!("listener=\"{listener}\"")))
            .count()
    };
    assert_eq!(
        said("cannot accept connections"),
        1,
        "one warning per burst:\n{log}"
    );
    assert_eq!(
        said("accepting again after"),
        1,
        "one line at the burst's end:\n{log}"
    );
}

#[test]
fn a_full_admin_port_does_not_spin() {
    let work = WorkDir::new("exhaust-admin");
    let nofile = 60;
    // Idle connections are closed after 10 s (--admin-timeout-secs), well
    // after the sample is taken.
    let xdsd = start_limited(&work, nofile, &[]);
    let held = exhaust(&xdsd, xdsd.admin, 120, nofile);
    let share = cpu_share(xdsd.guard.pid(), Duration::from_secs(2));
    eprintln!("admin port at the limit: {:.1}% of a core", share * 100.0);
    assert!(
        share < MOST_CPU,
        "xdsd used {:.1}% of a core while its admin port was at the descriptor limit",
        share * 100.0
    );
    drop(held);
    let back = healthz_back(&xdsd);
    eprintln!("/healthz answered {back:?} after the connections were dropped");
    assert_burst_reported(&xdsd, "admin");
}

#[test]
fn a_full_xds_port_does_not_spin() {
    let work = WorkDir::new("exhaust-xds");
    let nofile = 80;
    let xdsd = start_limited(&work, nofile, &[]);
    let held = exhaust(&xdsd, xdsd.listen, 150, nofile);
    let share = cpu_share(xdsd.guard.pid(), Duration::from_secs(2));
    eprintln!("xDS port at the limit: {:.1}% of a core", share * 100.0);
    assert!(
        share < MOST_CPU,
        "xdsd used {:.1}% of a core while its xDS port was at the descriptor limit",
        share * 100.0
    );
    drop(held);
    healthz_back(&xdsd);
    let names = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(fetch_clusters(xdsd.listen));
    assert_eq!(names, ["a"], "an xDS fetch works again");
    assert_burst_reported(&xdsd, "xds");
}

/// The cluster names a CDS fetch returns.
async fn fetch_clusters(port: u16) -> Vec<String> {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::core::v3::Node;
    use envoy_types::pb::envoy::service::cluster::v3::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use prost::Message;
    let fetched = tokio::time::timeout(Duration::from_secs(10), async {
        let mut cds = ClusterDiscoveryServiceClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .expect("connect");
        cds.fetch_clusters(DiscoveryRequest {
            node: Some(Node {
                id: "probe".into(),
                cluster: "probes".into(),
                ..Node::default()
            }),
            type_url: CDS.into(),
            ..DiscoveryRequest::default()
        })
        .await
        .expect("fetch")
        .into_inner()
    })
    .await
    .expect("fetched within 10 s");
    fetched
        .resources
        .iter()
        .map(|any| {
            Cluster::decode(any.value.as_slice())
                .expect("a Cluster")
                .name
        })
        .collect()
}
