//! The admin HTTP endpoint, readable with curl: `/healthz`, `/readyz`,
//! `/metrics` (Prometheus text), and JSON views: `/clients` (the per-stream
//! ledger), `/status` (the last load, the listeners, the xDS certificate) and `/config` (what one
//! node is served). Only GET and HEAD are answered. The bodies' types are in
//! `api.rs`, the HTTP server and its limits in `server.rs`; this module holds
//! the state reported on and the routes.

pub mod api;
mod json;
mod metrics;
mod server;

pub use server::{ConnectionLimits, exposure_warning, serve};

use crate::config::schema::ResourceType;
use crate::daemon::accept::AcceptStats;
use crate::daemon::xds_tls_rotation::{RotatingTls, TlsStatus};
use crate::xds::Ledger;
use crate::xds::snapshot::{Changes, Snapshot};
use hyper::{Method, StatusCode, Uri};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The result of the last load attempt.
#[derive(Clone, Debug, Default)]
pub struct LoadStatus {
    /// The version being served.
    pub served_version: String,
    /// When the served version was loaded.
    pub loaded_at: Option<SystemTime>,
    /// When the last attempt ran, and its errors (empty: it succeeded).
    pub last_attempt: Option<(SystemTime, Vec<String>)>,
    /// Load attempts since start (the first load included).
    pub attempts: u64,
    /// Attempts that were rejected.
    pub failures: u64,
    /// Resources per type in the served set.
    pub counts: BTreeMap<ResourceType, usize>,
    /// What the last applied change did, per type.
    pub last_changes: BTreeMap<ResourceType, Changes>,
    /// The served set came from `--state-dir` (the directory was invalid at
    /// start), not from the directory.
    pub serving_saved_state: bool,
}

impl LoadStatus {
    fn serve(
        &mut self,
        snapshot: &Snapshot,
        changes: BTreeMap<ResourceType, Changes>,
        now: SystemTime,
        saved_state: bool,
    ) {
        self.served_version = snapshot.version.clone();
        self.loaded_at = Some(now);
        self.counts = snapshot.counts();
        self.last_changes = changes;
        self.serving_saved_state = saved_state;
    }
}

/// How a load attempt ended.
#[derive(Debug)]
pub enum LoadOutcome<'a> {
    /// A new set is served, with what it changed.
    Applied(&'a Snapshot, BTreeMap<ResourceType, Changes>),
    /// The directory validated and equals the served set.
    Unchanged,
    /// Rejected with these errors; the served set stays.
    Rejected(Vec<String>),
    /// At start: the directory was rejected with these errors, and the last
    /// good set saved in `--state-dir` is served instead.
    Restored(&'a Snapshot, BTreeMap<ResourceType, Changes>, Vec<String>),
}

/// Shared state the admin endpoint reports on.
#[derive(Debug)]
pub struct Health {
    /// A valid set is loaded and xDS is listening.
    pub ready: AtomicBool,
    /// The last load.
    pub status: Mutex<LoadStatus>,
    /// Every stream's sent/ACKed/NACKed versions.
    pub ledger: Arc<Ledger>,
    /// The served set.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// The xDS and admin listeners.
    pub listeners: Listeners,
    /// The xDS listener's certificate, when it serves TLS.
    pub tls: Option<Arc<RotatingTls>>,
}

/// The listeners' accept loops, and the admin connections open.
#[derive(Debug, Default)]
pub struct Listeners {
    /// The xDS listener's accept errors.
    pub xds: Arc<AcceptStats>,
    /// The admin listener's accept errors.
    pub admin: Arc<AcceptStats>,
    /// Admin connections open now.
    pub admin_connections: AtomicUsize,
}

impl Health {
    /// Not ready yet, nothing loaded.
    pub fn new(ledger: Arc<Ledger>, snapshots: watch::Receiver<Arc<Snapshot>>) -> Health {
        Health {
            ready: AtomicBool::new(false),
            status: Mutex::new(LoadStatus::default()),
            ledger,
            snapshots,
            listeners: Listeners::default(),
            tls: None,
        }
    }

    /// Reports on the xDS listener's certificate too.
    pub fn with_tls(self, tls: Option<Arc<RotatingTls>>) -> Health {
        Health { tls, ..self }
    }

    /// Records a load attempt and its outcome.
    pub fn record_load(&self, outcome: LoadOutcome<'_>) {
        let mut status = crate::sync::lock(&self.status);
        let now = SystemTime::now();
        status.attempts += 1;
        let errors = match outcome {
            LoadOutcome::Applied(snapshot, changes) => {
                status.serve(snapshot, changes, now, false);
                Vec::new()
            }
            LoadOutcome::Restored(snapshot, changes, errors) => {
                status.serve(snapshot, changes, now, true);
                status.failures += 1;
                errors
            }
            // What is served, and when it was loaded, stay as they are; a
            // set restored from --state-dir is now also the directory's.
            LoadOutcome::Unchanged => {
                status.serving_saved_state = false;
                Vec::new()
            }
            LoadOutcome::Rejected(errors) => {
                status.failures += 1;
                errors
            }
        };
        status.last_attempt = Some((now, errors));
    }

    fn load_status(&self) -> LoadStatus {
        crate::sync::lock(&self.status).clone()
    }

    fn tls_status(&self) -> Option<TlsStatus> {
        self.tls.as_ref().map(|tls| tls.status())
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshots.borrow())
    }
}

/// An HTTP response.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

const TEXT: &str = "text/plain";
const JSON: &str = "application/json";

impl Reply {
    fn text(status: StatusCode, body: &str) -> Reply {
        Reply {
            status,
            content_type: TEXT,
            headers: Vec::new(),
            body: format!("{body}\n"),
        }
    }

    /// `value` as pretty JSON, keys sorted (through `Value`, whose maps are
    /// sorted) whatever the order of the type's fields.
    fn json(value: &impl serde::Serialize) -> Reply {
        let value = serde_json::to_value(value).unwrap_or_default();
        let mut body = serde_json::to_string_pretty(&value).unwrap_or_default();
        body.push('\n');
        Reply {
            status: StatusCode::OK,
            content_type: JSON,
            headers: Vec::new(),
            body,
        }
    }
}

/// The methods answered: the API only reads.
const ALLOW: &str = "GET, HEAD";

fn respond(method: &Method, uri: &Uri, health: &Health) -> Reply {
    if method != Method::GET && method != Method::HEAD {
        let mut reply = Reply::text(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("method not allowed; allowed: {ALLOW}"),
        );
        reply.headers.push(("allow", ALLOW.to_string()));
        return reply;
    }
    let query = parse_query(uri.query().unwrap_or(""));
    match uri.path() {
        "/healthz" => Reply::text(StatusCode::OK, "ok"),
        "/readyz" if health.ready.load(Ordering::Relaxed) => Reply::text(StatusCode::OK, "ready"),
        "/readyz" => Reply::text(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
        "/clients" => Reply::json(&json::clients(&health.ledger)),
        "/status" => Reply::json(&json::status(
            &health.load_status(),
            &health.listeners,
            health.tls_status().as_ref(),
        )),
        "/config" => config(&health.snapshot(), &query),
        "/metrics" => Reply {
            status: StatusCode::OK,
            content_type: "text/plain; version=0.0.4",
            headers: Vec::new(),
            body: metrics::render(
                &health.ledger,
                &health.load_status(),
                &health.listeners,
                health.tls_status().as_ref(),
            ),
        },
        _ => Reply::text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `/config?node_id=ID&node_cluster=C[&type=T][&format=json|yaml]`: exactly what
/// `xdsd render --redact` prints for that node (no secret is shown), from the set being served; the
/// served version is in the `x-xdsd-version` header.
fn config(snapshot: &Snapshot, query: &BTreeMap<String, String>) -> Reply {
    let get = |key: &str| query.get(key).cloned().unwrap_or_default();
    let rtype = match query.get("type") {
        None => None,
        Some(name) => match ResourceType::parse_loose(name) {
            Some(t) => Some(t),
            None => {
                return Reply::text(StatusCode::BAD_REQUEST, &format!("unknown type `{name}`"));
            }
        },
    };
    let format = match query.get("format").map(String::as_str) {
        None | Some("json") => crate::config::render::Format::Json,
        Some("yaml") => crate::config::render::Format::Yaml,
        Some(other) => {
            return Reply::text(
                StatusCode::BAD_REQUEST,
                &format!("unknown format `{other}`; expected json or yaml"),
            );
        }
    };
    let node = crate::config::selector::NodeIdentity {
        id: get("node_id"),
        cluster: get("node_cluster"),
    };
    let body = json::config(snapshot, &node, rtype, format);
    Reply {
        status: StatusCode::OK,
        content_type: match format {
            crate::config::render::Format::Json => JSON,
            crate::config::render::Format::Yaml => "application/yaml",
        },
        headers: vec![("x-xdsd-version", snapshot.version.clone())],
        body,
    }
}

/// `a=1&b=x%2Fy` → {a: 1, b: x/y}.
fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = || {
            let digits = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            u8::from_str_radix(digits, 16).ok()
        };
        match (bytes[i], hex()) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Seconds since the Unix epoch.
fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        let q = parse_query("node_id=spiffe%3A%2F%2Fa%2Fb&node_cluster=edge+1&bad=%zz&x");
        assert_eq!(q["node_id"], "spiffe://a/b");
        assert_eq!(q["node_cluster"], "edge 1");
        assert_eq!(q["bad"], "%zz");
        assert_eq!(q["x"], "");
    }

    #[test]
    fn config_answers_bad_parameters_with_400() {
        let snapshot = Snapshot::empty();
        let reply = config(&snapshot, &parse_query("type=Nope"));
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let reply = config(&snapshot, &parse_query("format=xml"));
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let reply = config(&snapshot, &parse_query("node_id=a"));
        assert_eq!(reply.body, "{\n  \"resources\": []\n}\n");
    }
}
