//! The admin HTTP endpoint: `/healthz`, `/readyz`, `/clients` (the per-stream
//! ledger) and `/status` (the last load). JSON, readable with curl.

use crate::xds::Ledger;
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
    pub fn record_load(&self, version: Option<&str>, errors: Vec<String>) {
        let mut status = match self.status.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = SystemTime::now();
        if let Some(v) = version {
            status.served_version = v.to_string();
            status.loaded_at = Some(now);
        }
        status.last_attempt = Some((now, errors));
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
    let status = match health.status.lock() {
        Ok(s) => s.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let last = status.last_attempt.as_ref().map(|(at, errors)| {
        serde_json::json!({"time": unix_seconds(*at), "ok": errors.is_empty(), "errors": errors})
    });
    serde_json::json!({
        "served_version": status.served_version,
        "loaded_at": status.loaded_at.map(unix_seconds),
        "last_load": last,
    })
}
