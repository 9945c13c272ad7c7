//! The admin HTTP endpoint: `/healthz`, `/readyz`, `/clients` (the per-stream
//! ledger) and `/status` (the last load). JSON, readable with curl.

use crate::schema::ResourceType;
use crate::snapshot::Snapshot;
use crate::xds::{Ledger, Outcome};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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
}

/// Shared state the admin endpoint reports on.
#[derive(Debug, Default)]
pub struct Health {
    /// A valid set is loaded and xDS is listening.
    pub ready: AtomicBool,
    /// The last load.
    pub status: Mutex<LoadStatus>,
    /// Every stream's sent/ACKed/NACKed versions.
    pub ledger: Arc<Ledger>,
}

impl Health {
    /// Records a load attempt; `version` is set when it was applied.
    pub fn record_load(&self, served: Option<&Snapshot>, errors: Vec<String>) {
        let mut status = match self.status.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = SystemTime::now();
        status.attempts += 1;
        match served {
            Some(snapshot) => {
                status.served_version = snapshot.version.clone();
                status.loaded_at = Some(now);
                status.counts = snapshot.counts();
            }
            None => status.failures += 1,
        }
        status.last_attempt = Some((now, errors));
    }

    fn load_status(&self) -> LoadStatus {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Serves the admin endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, health: Arc<Health>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let health = Arc::clone(&health);
        tokio::spawn(async move {
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), read_head(&mut socket));
            let Ok(Some(head)) = read.await else { return };
            let request = String::from_utf8_lossy(&head);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, content_type, body) = respond(path, &health);
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}

/// Reads a request head (up to the blank line), which may arrive in pieces; at most 16 KiB.
async fn read_head(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 16 * 1024 {
            return (!head.is_empty()).then_some(head);
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

fn respond(path: &str, health: &Health) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain";
    const JSON: &str = "application/json";
    match path {
        "/healthz" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" if health.ready.load(Ordering::Relaxed) => ("200 OK", TEXT, "ready\n".into()),
        "/readyz" => ("503 Service Unavailable", TEXT, "not ready\n".into()),
        "/clients" => ("200 OK", JSON, pretty(clients_json(&health.ledger))),
        "/status" => ("200 OK", JSON, pretty(status_json(health))),
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics(health)),
        _ => ("404 Not Found", TEXT, "not found\n".into()),
    }
}

fn pretty(v: serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
    text.push('\n');
    text
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn clients_json(ledger: &Ledger) -> serde_json::Value {
    let clients: Vec<serde_json::Value> = ledger
        .clients()
        .into_iter()
        .map(|(stream, c)| {
            let types: serde_json::Map<String, serde_json::Value> = c
                .types
                .iter()
                .map(|(t, s)| {
                    let nack = s.last_nack.as_ref().map(|(version, error, at)| {
                        serde_json::json!({"version": version, "error": error, "time": unix_seconds(*at)})
                    });
                    let entry = serde_json::json!({
                        "sent_version": s.sent_version,
                        "acked_version": s.acked_version,
                        "last_nack": nack,
                    });
                    (t.type_url(), entry)
                })
                .collect();
            serde_json::json!({"stream": stream, "node_id": c.node.id, "node_cluster": c.node.cluster, "types": types})
        })
        .collect();
    serde_json::Value::Array(clients)
}

fn status_json(health: &Health) -> serde_json::Value {
    let status = health.load_status();
    let last = status.last_attempt.as_ref().map(|(at, errors)| {
        serde_json::json!({"time": unix_seconds(*at), "ok": errors.is_empty(), "errors": errors})
    });
    serde_json::json!({
        "served_version": status.served_version,
        "loaded_at": status.loaded_at.map(unix_seconds),
        "last_load": last,
    })
}

/// Prometheus text format (version 0.0.4).
fn metrics(health: &Health) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let clients = health.ledger.clients();
    let ads = clients.values().filter(|c| c.only.is_none()).count();
    family(
        "xdsd_connected_streams",
        "gauge",
        "Open xDS streams, by service (ADS or a per-type service).",
        &[
            ("{service=\"ads\"}".into(), ads as f64),
            (
                "{service=\"per_type\"}".into(),
                (clients.len() - ads) as f64,
            ),
        ],
    );
    let totals = health.ledger.totals();
    for (outcome, name, help) in [
        (
            Outcome::Sent,
            "xdsd_responses_sent_total",
            "xDS responses sent, by type.",
        ),
        (
            Outcome::Acked,
            "xdsd_acks_total",
            "Responses ACKed by clients, by type.",
        ),
        (
            Outcome::Nacked,
            "xdsd_nacks_total",
            "Responses NACKed by clients, by type.",
        ),
    ] {
        let samples: Vec<(String, f64)> = ResourceType::ALL
            .iter()
            .map(|t| {
                (
                    format!("{{type=\"{}\"}}", t.kind_name()),
                    totals.get(&(*t, outcome)).copied().unwrap_or(0) as f64,
                )
            })
            .collect();
        family(name, "counter", help, &samples);
    }
    let status = health.load_status();
    family(
        "xdsd_reloads_total",
        "counter",
        "Load attempts (the first load included).",
        &[(String::new(), status.attempts as f64)],
    );
    family(
        "xdsd_reload_failures_total",
        "counter",
        "Load attempts rejected (the last good set stayed).",
        &[(String::new(), status.failures as f64)],
    );
    family(
        "xdsd_last_successful_reload_timestamp_seconds",
        "gauge",
        "When the served set was last loaded (Unix time).",
        &[(String::new(), status.loaded_at.map_or(0.0, unix_seconds))],
    );
    let counts: Vec<(String, f64)> = ResourceType::ALL
        .iter()
        .map(|t| {
            (
                format!("{{type=\"{}\"}}", t.kind_name()),
                status.counts.get(t).copied().unwrap_or(0) as f64,
            )
        })
        .collect();
    family(
        "xdsd_snapshot_resources",
        "gauge",
        "Resources in the served set, by type.",
        &counts,
    );
    out
}
