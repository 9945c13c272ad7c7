//! The admin HTTP endpoint: health and readiness (the full admin API comes later).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Shared state the admin endpoint reports on.
#[derive(Debug, Default)]
pub struct Health {
    /// A valid set is loaded and xDS is listening.
    pub ready: AtomicBool,
}

/// Serves `/healthz` and `/readyz` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, health: Arc<Health>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let health = Arc::clone(&health);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let Ok(Ok(n)) =
                tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut buf))
                    .await
            else {
                return;
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/healthz" => ("200 OK", "ok\n"),
                "/readyz" if health.ready.load(Ordering::Relaxed) => ("200 OK", "ready\n"),
                "/readyz" => ("503 Service Unavailable", "not ready\n"),
                _ => ("404 Not Found", "not found\n"),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}
