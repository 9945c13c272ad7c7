//! Accepting connections without spinning. An accept that fails for want of
//! descriptors or memory (EMFILE, ENFILE, ENOMEM, ENOBUFS) leaves the
//! connection in the kernel's queue, so retrying at once fails again at once:
//! a busy loop at full CPU until something closes. [`Incoming`] pauses
//! instead, 5 ms after the first error, doubling up to 1 s, back to nothing
//! after a successful accept; it is the one accept loop of both listeners
//! (tonic takes it as its stream of connections, the admin server polls it).
//!
//! Exhaustion comes in bursts; each is logged twice, not once per error: a
//! warning when it starts, and one line with its count once [`QUIET`] passed
//! without an error. Every error is counted by kind ([`AcceptStats`], in
//! `/metrics`), and the listener reads as saturated while a burst lasts.
//! Other accept errors (a client that gave up while queued: ECONNABORTED)
//! are counted and paused on the same way, but say nothing about capacity:
//! they are logged at debug level and start no burst.

use futures_core::Stream;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Sleep;

/// The first pause after an accept error.
pub const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause: the most a queued client waits once descriptors are free again.
pub const LONGEST_PAUSE: Duration = Duration::from_secs(1);
/// Time without an exhaustion error that ends a burst.
pub const QUIET: Duration = Duration::from_secs(5);

/// A listening socket on `addr` whose accept queue is as long as the system
/// allows (`net.core.somaxconn`, 4096 on current kernels). Rust's and
/// tokio's `bind` ask for 128: when a fleet reconnects at once (xdsd
/// restarted under it), the 129th SYN is dropped and that client waits a
/// second for its retransmission. The kernel caps the backlog asked for at
/// somaxconn, so asking for the most is asking for somaxconn.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind` does: a restarted xdsd rebinds at once,
    // while its predecessor's connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(u32::MAX)
}

/// Why an accept failed, as metrics label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The process's descriptor limit (RLIMIT_NOFILE).
    Emfile,
    /// The system's descriptor limit.
    Enfile,
    /// No kernel memory for the socket.
    Enomem,
    /// No buffer space.
    Enobufs,
    /// The client left before it was accepted.
    Econnaborted,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Emfile,
        ErrorKind::Enfile,
        ErrorKind::Enomem,
        ErrorKind::Enobufs,
        ErrorKind::Econnaborted,
        ErrorKind::Other,
    ];

    /// The kind of `error`, by its errno.
    pub fn of(error: &io::Error) -> ErrorKind {
        match error.raw_os_error() {
            Some(libc::EMFILE) => ErrorKind::Emfile,
            Some(libc::ENFILE) => ErrorKind::Enfile,
            Some(libc::ENOMEM) => ErrorKind::Enomem,
            Some(libc::ENOBUFS) => ErrorKind::Enobufs,
            Some(libc::ECONNABORTED) => ErrorKind::Econnaborted,
            _ => ErrorKind::Other,
        }
    }

    /// The `kind` label.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Emfile => "emfile",
            ErrorKind::Enfile => "enfile",
            ErrorKind::Enomem => "enomem",
            ErrorKind::Enobufs => "enobufs",
            ErrorKind::Econnaborted => "econnaborted",
            ErrorKind::Other => "other",
        }
    }

    /// Out of descriptors or memory: no connection can be taken until some close.
    pub fn is_exhaustion(self) -> bool {
        matches!(
            self,
            ErrorKind::Emfile | ErrorKind::Enfile | ErrorKind::Enomem | ErrorKind::Enobufs
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One listener's accept errors: counts by kind and the current burst.
/// Shared between its [`Incoming`] and the admin API.
#[derive(Debug, Default)]
pub struct AcceptStats {
    errors: [AtomicU64; ErrorKind::ALL.len()],
    burst: Mutex<Option<Burst>>,
}

/// Exhaustion errors close together.
#[derive(Clone, Copy, Debug)]
struct Burst {
    started: Instant,
    last: Instant,
    errors: u64,
}

impl AcceptStats {
    /// Errors of `kind` since start.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()].load(Ordering::Relaxed)
    }

    /// Errors of every kind since start.
    pub fn total_errors(&self) -> u64 {
        ErrorKind::ALL.iter().map(|k| self.errors(*k)).sum()
    }

    /// In a burst: the last exhaustion error is less than [`QUIET`] old.
    /// Read from the time, so it is right even while nothing polls the listener.
    pub fn saturated(&self) -> bool {
        self.burst_now().is_some_and(|b| b.last.elapsed() < QUIET)
    }

    fn burst_now(&self) -> Option<Burst> {
        *crate::sync::lock(&self.burst)
    }

    /// Counts an error; for exhaustion, returns whether it starts a burst.
    fn record(&self, kind: ErrorKind, now: Instant) -> bool {
        self.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
        if !kind.is_exhaustion() {
            return false;
        }
        let mut burst = crate::sync::lock(&self.burst);
        match burst.as_mut() {
            Some(b) => {
                b.last = now;
                b.errors += 1;
                false
            }
            None => {
                *burst = Some(Burst {
                    started: now,
                    last: now,
                    errors: 1,
                });
                true
            }
        }
    }

    /// Ends the burst if [`QUIET`] passed since its last error; returns it then.
    fn end_burst(&self, now: Instant) -> Option<Burst> {
        let mut burst = crate::sync::lock(&self.burst);
        let quiet = burst.is_some_and(|b| now.duration_since(b.last) >= QUIET);
        if quiet { burst.take() } else { None }
    }
}

/// Pauses after accept errors: [`FIRST_PAUSE`], doubling, at most [`LONGEST_PAUSE`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// The pause after one more error in a row.
    pub fn failed(&mut self) -> Duration {
        let pause = self.next.unwrap_or(FIRST_PAUSE);
        self.next = Some((pause * 2).min(LONGEST_PAUSE));
        pause
    }

    /// An accept succeeded: the next error pauses [`FIRST_PAUSE`] again.
    pub fn reset(&mut self) {
        self.next = None;
    }
}

/// A listener's accepted connections, as a stream that never ends and never
/// yields an error (errors are paused on, counted and logged here).
/// Sockets have TCP_NODELAY: xDS messages and admin answers are small and
/// latency-bound.
pub struct Incoming {
    listener: TcpListener,
    /// `xds` or `admin`, for logs and metrics.
    name: &'static str,
    stats: Arc<AcceptStats>,
    backoff: Backoff,
    /// The pause after an error, while it runs.
    pause: Option<Pin<Box<Sleep>>>,
    /// Fires [`QUIET`] after the last exhaustion error, to end the burst.
    quiet: Option<Pin<Box<Sleep>>>,
}

impl Incoming {
    /// Accepts on `listener`, named `name` in logs, counting into `stats`.
    pub fn new(listener: TcpListener, name: &'static str, stats: Arc<AcceptStats>) -> Incoming {
        Incoming {
            listener,
            name,
            stats,
            backoff: Backoff::default(),
            pause: None,
            quiet: None,
        }
    }

    /// Counts and logs `error`; returns the pause before the next accept.
    fn failed(&mut self, error: &io::Error) -> Duration {
        let kind = ErrorKind::of(error);
        let now = Instant::now();
        let pause = self.backoff.failed();
        if self.stats.record(kind, now) {
            tracing::warn!(
                listener = self.name,
                kind = kind.label(),
                "cannot accept connections: {error}; new connections wait in the kernel's \
                 queue, accepting is retried after pauses of up to {} ms (said once per burst)",
                LONGEST_PAUSE.as_millis()
            );
        } else if !kind.is_exhaustion() {
            tracing::debug!(listener = self.name, kind = kind.label(), "accept: {error}");
        }
        if kind.is_exhaustion() {
            let deadline = tokio::time::Instant::from_std(now + QUIET);
            match self.quiet.as_mut() {
                Some(quiet) => quiet.as_mut().reset(deadline),
                None => self.quiet = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        pause
    }

    /// Ends the burst once its quiet timer fired, with its one closing line.
    fn poll_quiet(&mut self, cx: &mut Context<'_>) {
        let Some(quiet) = self.quiet.as_mut() else {
            return;
        };
        if quiet.as_mut().poll(cx).is_pending() {
            return;
        }
        self.quiet = None;
        if let Some(burst) = self.stats.end_burst(Instant::now()) {
            tracing::info!(
                listener = self.name,
                errors = burst.errors,
                seconds = burst.last.duration_since(burst.started).as_secs_f64(),
                "accepting again after {} accept errors",
                burst.errors
            );
        }
    }
}

impl Stream for Incoming {
    type Item = Result<TcpStream, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        this.poll_quiet(cx);
        loop {
            if let Some(pause) = this.pause.as_mut() {
                ready!(pause.as_mut().poll(cx));
                this.pause = None;
            }
            match ready!(this.listener.poll_accept(cx)) {
                Ok((socket, _)) => {
                    this.backoff.reset();
                    if let Err(e) = socket.set_nodelay(true) {
                        tracing::debug!("TCP_NODELAY: {e}");
                    }
                    return Poll::Ready(Some(Ok(socket)));
                }
                Err(error) => {
                    let pause = this.failed(&error);
                    this.pause = Some(Box::pin(tokio::time::sleep(pause)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connect_storm_waits_in_the_queue_instead_of_being_dropped() {
        // Nothing accepts while 1,000 clients connect: each handshake
        // completes only if the accept queue holds it (with a backlog of
        // 128, the 129th SYN is dropped and that client waits a second).
        let listener = listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let storm = (0..1000).map(|_| {
            tokio::spawn(async move {
                let connect = TcpStream::connect(addr);
                tokio::time::timeout(Duration::from_millis(500), connect).await
            })
        });
        let mut connected = Vec::new();
        for client in storm {
            if let Ok(Ok(Ok(stream))) = client.await {
                connected.push(stream);
            }
        }
        assert_eq!(connected.len(), 1000, "connected within 500 ms");
        drop(listener);
    }

    #[test]
    fn pauses_grow_to_a_second_and_reset() {
        let mut backoff = Backoff::default();
        let pauses: Vec<u128> = (0..10).map(|_| backoff.failed().as_millis()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.failed(), FIRST_PAUSE);
    }

    #[test]
    fn kinds_come_from_errno() {
        let kind = |errno| ErrorKind::of(&io::Error::from_raw_os_error(errno));
        assert_eq!(kind(libc::EMFILE), ErrorKind::Emfile);
        assert_eq!(kind(libc::ENFILE), ErrorKind::Enfile);
        assert_eq!(kind(libc::ECONNABORTED), ErrorKind::Econnaborted);
        assert_eq!(kind(libc::EINVAL), ErrorKind::Other);
        assert!(ErrorKind::Enomem.is_exhaustion() && !ErrorKind::Econnaborted.is_exhaustion());
    }

    #[test]
    fn a_burst_starts_once_and_ends_after_quiet() {
        let stats = AcceptStats::default();
        let t0 = Instant::now();
        assert!(stats.record(ErrorKind::Emfile, t0));
        assert!(!stats.record(ErrorKind::Emfile, t0 + Duration::from_secs(1)));
        assert!(!stats.record(ErrorKind::Econnaborted, t0));
        assert_eq!(stats.errors(ErrorKind::Emfile), 2);
        assert_eq!(stats.total_errors(), 3);
        assert!(stats.end_burst(t0 + Duration::from_secs(5)).is_none());
        let burst = stats
            .end_burst(t0 + Duration::from_secs(6))
            .expect("quiet for 5 s");
        assert_eq!(burst.errors, 2);
        assert!(!stats.saturated());
        // A client giving up is no exhaustion: no burst.
        assert!(!stats.record(ErrorKind::Econnaborted, t0));
        assert!(!stats.saturated());
    }
}
