//! The admin API's HTTP/1.1 server: hyper's connection state machine (keep-alive,
//! request parsing, limits) over the shared accept loop (`accept.rs`), with
//! bounds so that idle or stuck clients cannot hold it:
//!
//! * a request head must arrive within the timeout (`--admin-timeout-secs`),
//!   also the next one on a kept-alive connection: an idle connection is
//!   closed after the same time;
//! * a head larger than [`MAX_HEAD`] is answered 431 and the connection closed;
//! * a write stuck for the timeout (a client that stopped reading) ends the
//!   connection;
//! * at most `--admin-max-connections` are open; over that, new connections
//!   are not accepted: they wait in the kernel's queue until one closes
//!   (idle ones close within the timeout), and the wait is logged.

use super::Health;
use crate::daemon::accept::Incoming;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming as Body};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_stream::StreamExt;

/// The largest request head (request line and headers) answered.
pub const MAX_HEAD: usize = 16 * 1024;

/// How often reaching the connection limit is logged, at most.
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(60);

/// What admin clients may hold.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// For a request head to arrive (the first, or the next on a kept-alive
    /// connection), and for a stuck write.
    pub timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// Serves the admin API on `incoming` until the task is dropped.
pub async fn serve(mut incoming: Incoming, health: Arc<Health>, limits: ConnectionLimits) {
    let slots = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(slots));
    let http = Arc::new(builder(limits.timeout));
    let mut last_limit_log: Option<Instant> = None;
    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if last_limit_log.is_none_or(|t| t.elapsed() >= LIMIT_LOG_EVERY) {
                    last_limit_log = Some(Instant::now());
                    tracing::warn!(
                        connections = limits.max_connections,
                        "admin: every connection in use (--admin-max-connections); new \
                         connections wait until one closes (at most once a minute in the log)"
                    );
                }
                match Arc::clone(&permits).acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => return,
                }
            }
        };
        let Some(Ok(socket)) = incoming.next().await else {
            return;
        };
        let open = Open::new(&health, permit);
        tokio::spawn(connection(
            Arc::clone(&http),
            socket,
            Arc::clone(&health),
            limits.timeout,
            open,
        ));
    }
}

/// hyper's HTTP/1.1 settings for every admin connection.
fn builder(timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(timeout)
        .max_header_size(MAX_HEAD)
        // A head that never completes stops at the buffer, also with 431.
        .max_buf_size(2 * MAX_HEAD);
    builder
}

/// One open connection: its slot under the limit and its place in the
/// `xdsd_admin_connections` gauge, both given back on drop.
struct Open {
    health: Arc<Health>,
    _permit: OwnedSemaphorePermit,
}

impl Open {
    fn new(health: &Arc<Health>, permit: OwnedSemaphorePermit) -> Open {
        health
            .listeners
            .admin_connections
            .fetch_add(1, Ordering::Relaxed);
        Open {
            health: Arc::clone(health),
            _permit: permit,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let open = &self.health.listeners.admin_connections;
        open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(
    http: Arc<http1::Builder>,
    socket: TcpStream,
    health: Arc<Health>,
    timeout: Duration,
    _open: Open,
) {
    let service = service_fn(move |request: Request<Body>| {
        let health = Arc::clone(&health);
        async move { Ok::<_, Infallible>(answer(&request, &health)) }
    });
    let io = TokioIo::new(Stalled::new(socket, timeout));
    if let Err(e) = http.serve_connection(io, service).await {
        tracing::debug!("admin connection: {e}");
    }
}

/// The response to one request, as hyper sends it (no body for HEAD).
fn answer(request: &Request<Body>, health: &Health) -> Response<Full<Bytes>> {
    let reply = super::respond(request.method(), request.uri(), health);
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(reply.content_type),
    );
    for (name, value) in reply.headers {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// The warning for an admin address other than loopback: the API has no
/// authentication, and says a lot.
pub fn exposure_warning(admin: SocketAddr) -> Option<String> {
    (!admin.ip().is_loopback()).then(|| {
        format!(
            "the admin API listens on {admin}, not a loopback address, without authentication: \
             whoever reaches it can read the config of every node (/config: clusters, \
             listeners, routes, secrets included), the load status and its errors with file \
             paths (/status), every connected client (/clients) and the metrics (/metrics)"
        )
    })
}

/// A socket whose writes fail once they have been stuck for `timeout`: a
/// client that stopped reading its answer gives its connection back.
/// Reads are bounded by hyper's head timeout.
struct Stalled {
    socket: TcpStream,
    timeout: Duration,
    stuck: Option<Pin<Box<Sleep>>>,
}

impl Stalled {
    fn new(socket: TcpStream, timeout: Duration) -> Stalled {
        Stalled {
            socket,
            timeout,
            stuck: None,
        }
    }

    /// Passes a write's result through; a pending one starts (or checks) the clock.
    fn bound<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stuck = None;
            return polled;
        }
        let timeout = self.timeout;
        let stuck = self
            .stuck
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stuck.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Stalled {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stalled {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.socket).poll_write(cx, buf);
        self.bound(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.socket).poll_write_vectored(cx, bufs);
        self.bound(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.socket).poll_flush(cx);
        self.bound(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.socket).poll_shutdown(cx);
        self.bound(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_loopback_addresses_are_warned_about() {
        let warning = |a: &str| exposure_warning(a.parse().expect("address"));
        assert!(warning("127.0.0.1:18001").is_none());
        assert!(warning("[::1]:18001").is_none());
        let text = warning("0.0.0.0:18001").expect("exposed");
        for what in ["/config", "/status", "/clients", "/metrics"] {
            assert!(text.contains(what), "{text}");
        }
    }
}
