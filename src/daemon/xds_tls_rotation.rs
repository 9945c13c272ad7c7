//! Live rotation of the xDS listener's certificate: the TLS files are
//! re-read when their directories change and on SIGHUP; a pair that loads
//! is used by every handshake from then on, while open connections keep the
//! session they have; a pair that does not load is refused (logged once per
//! distinct content, shown in `/status`, counted in `/metrics`) and the
//! previous one stays.
//!
//! xdsd does the handshakes itself ([`handshakes`]) because tonic's
//! `ServerTlsConfig` is fixed when the server is built.

use crate::daemon::watch::{Debounce, DirWatch, Trigger};
use crate::daemon::xds_tls::{LoadedTls, TlsFiles, TlsPem};
use futures_core::Stream;
use rustls::ServerConfig;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;

/// What `/status` and `/metrics` show of the served certificate.
#[derive(Clone, Debug)]
pub struct TlsStatus {
    /// When the served leaf certificate expires.
    pub not_after: SystemTime,
    /// The served leaf's serial number (hex).
    pub serial: String,
    /// When the served pair was loaded.
    pub loaded_at: SystemTime,
    /// New pairs taken into use since start.
    pub rotations: u64,
    /// New file contents refused since start.
    pub failures: u64,
    /// The last refusal, while the files still hold what was refused.
    pub last_error: Option<(SystemTime, String)>,
}

/// The outcome of re-reading the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// Same content as what was read last time: nothing to do (a refusal is
    /// not repeated).
    Unchanged,
    /// The new pair is in use for new handshakes.
    Rotated,
    /// The new content does not load (the reason); the previous pair stays.
    Refused(String),
}

/// The current server configuration, replaced as the files change.
#[derive(Debug)]
pub struct RotatingTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    state: Mutex<Rotation>,
}

#[derive(Debug)]
struct Rotation {
    /// Digest of the content being served.
    served: u64,
    /// Digest of the content read last (served, or refused).
    seen: u64,
    status: TlsStatus,
}

impl RotatingTls {
    /// Loads the files; at start, a pair that does not load is an error.
    pub fn load(files: TlsFiles) -> Result<RotatingTls, String> {
        let pem = files.read()?;
        let loaded = files.build(&pem)?;
        let digest = digest(&Ok(&pem));
        tracing::info!(
            serial = %loaded.serial,
            expires_in_days = days_left(loaded.not_after),
            "TLS certificate loaded"
        );
        let status = TlsStatus {
            not_after: loaded.not_after,
            serial: loaded.serial,
            loaded_at: SystemTime::now(),
            rotations: 0,
            failures: 0,
            last_error: None,
        };
        Ok(RotatingTls {
            files,
            current: RwLock::new(loaded.config),
            state: Mutex::new(Rotation {
                served: digest,
                seen: digest,
                status,
            }),
        })
    }

    /// The configuration for a new handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&crate::sync::read(&self.current))
    }

    /// What `/status` and `/metrics` show.
    pub fn status(&self) -> TlsStatus {
        self.lock().status.clone()
    }

    /// Re-reads the files: a new pair that loads replaces the current one; one
    /// that does not is logged, once per distinct content, and the current
    /// one stays.
    pub fn reload(&self) -> Reloaded {
        let pem = self.files.read();
        let digest = digest(&pem.as_ref());
        let mut state = self.lock();
        if digest == state.seen {
            tracing::debug!("TLS files unchanged");
            return Reloaded::Unchanged;
        }
        state.seen = digest;
        if digest == state.served {
            // Back to the content being served (a refused change was undone).
            state.status.last_error = None;
            tracing::info!("TLS files are back to the certificate in use");
            return Reloaded::Unchanged;
        }
        match pem.and_then(|pem| self.files.build(&pem)) {
            Ok(loaded) => {
                state.served = digest;
                self.rotate(&mut state.status, loaded);
                Reloaded::Rotated
            }
            Err(error) => {
                tracing::error!(
                    serial = %state.status.serial,
                    "TLS files not loaded, new connections keep the certificate in use: {error}"
                );
                state.status.failures += 1;
                state.status.last_error = Some((SystemTime::now(), error.clone()));
                Reloaded::Refused(error)
            }
        }
    }

    fn rotate(&self, status: &mut TlsStatus, loaded: LoadedTls) {
        tracing::info!(
            serial = %loaded.serial,
            previous = %status.serial,
            expires_in_days = days_left(loaded.not_after),
            "TLS certificate rotated; new connections use it"
        );
        *status = TlsStatus {
            not_after: loaded.not_after,
            serial: loaded.serial,
            loaded_at: SystemTime::now(),
            rotations: status.rotations + 1,
            failures: status.failures,
            last_error: None,
        };
        *crate::sync::write(&self.current) = loaded.config;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rotation> {
        crate::sync::lock(&self.state)
    }
}

/// Whole days until `t` (negative once past).
fn days_left(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::now()) {
        Ok(left) => (left.as_secs() / 86_400) as i64,
        Err(past) => -((past.duration().as_secs() / 86_400) as i64),
    }
}

/// Tells contents apart (in this process only: not a security boundary,
/// the content is checked in full whenever it differs).
fn digest(pem: &Result<&TlsPem, &String>) -> u64 {
    let mut hasher = DefaultHasher::new();
    pem.hash(&mut hasher);
    hasher.finish()
}

/// Watches the directories of the TLS files and re-reads them after each
/// burst of changes; also whenever [`Trigger::Reload`] is sent on the
/// returned sender (SIGHUP). Runs until the sender is dropped.
pub fn follow(tls: Arc<RotatingTls>, debounce: Debounce) -> mpsc::Sender<Trigger> {
    let (triggers_tx, mut triggers) = mpsc::channel::<Trigger>(4);
    for dir in tls.files.directories() {
        tokio::spawn(DirWatch::flat(dir).run(debounce, triggers_tx.clone()));
    }
    tokio::spawn(async move {
        while let Some(trigger) = triggers.recv().await {
            if trigger == Trigger::Reload {
                let tls = Arc::clone(&tls);
                // File reads and parsing: off the async workers.
                let _ = tokio::task::spawn_blocking(move || tls.reload()).await;
            }
        }
    });
    triggers_tx
}

/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; past this, accepting waits.
const HANDSHAKES_AT_ONCE: usize = 1024;

/// TLS over each accepted connection, with the configuration current when it
/// was accepted; each handshake runs in its own task (a slow client delays
/// no one) for at most [`HANDSHAKE_TIMEOUT`]. Failed handshakes are logged
/// (debug) and dropped; accept errors pass through. Dropping the stream
/// drops `accepted` (closing the listener) and aborts the handshakes.
pub fn handshakes<S, E>(accepted: S, tls: Arc<RotatingTls>) -> Handshakes<S>
where
    S: Stream<Item = Result<TcpStream, E>>,
{
    Handshakes {
        accepted: Box::pin(accepted),
        accepting: true,
        pending: JoinSet::new(),
        tls,
    }
}

/// The stream [`handshakes`] returns.
pub struct Handshakes<S> {
    accepted: Pin<Box<S>>,
    /// `accepted` has not ended.
    accepting: bool,
    pending: JoinSet<Option<TlsStream<TcpStream>>>,
    tls: Arc<RotatingTls>,
}

impl<S, E> Stream for Handshakes<S>
where
    S: Stream<Item = Result<TcpStream, E>>,
{
    type Item = Result<TlsStream<TcpStream>, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            while this.accepting && this.pending.len() < HANDSHAKES_AT_ONCE {
                match this.accepted.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(socket))) => {
                        this.pending.spawn(handshake(socket, this.tls.config()));
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => this.accepting = false,
                    Poll::Pending => break,
                }
            }
            match this.pending.poll_join_next(cx) {
                Poll::Ready(Some(Ok(Some(tls)))) => return Poll::Ready(Some(Ok(tls))),
                // A failed handshake freed a slot: accept more.
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) if this.accepting => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

async fn handshake(socket: TcpStream, config: Arc<ServerConfig>) -> Option<TlsStream<TcpStream>> {
    let peer = socket.peer_addr().ok();
    let accept = tokio_rustls::TlsAcceptor::from(config).accept(socket);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(?peer, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(?peer, "TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::xds_tls::tests::{scratch, write_pair};
    use std::path::Path;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Replaces `to` with `from` by rename, as certificate agents do.
    fn install(from: &Path, to: &Path) {
        let staged = to.with_extension("staged");
        std::fs::copy(from, &staged).expect("copy");
        std::fs::rename(&staged, to).expect("rename");
    }

    fn rotating(dir: &Path) -> RotatingTls {
        let (cert, key) = write_pair(dir, "a", (2031, 1, 2));
        install(&cert, &dir.join("cert.pem"));
        install(&key, &dir.join("cert.key"));
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("cert.key"),
            client_ca: None,
        };
        RotatingTls::load(files).expect("loads")
    }

    #[test]
    fn changes_rotate_refusals_are_counted_once_and_the_old_pair_stays() {
        let dir = scratch("tls-rotation");
        let tls = rotating(&dir);
        assert_eq!(tls.reload(), Reloaded::Unchanged);
        let first = tls.config();

        let (cert, key) = write_pair(&dir, "b", (2032, 3, 4));
        install(&cert, &dir.join("cert.pem"));
        install(&key, &dir.join("cert.key"));
        assert_eq!(tls.reload(), Reloaded::Rotated);
        let status = tls.status();
        assert_eq!((status.rotations, status.failures), (1, 0));
        let b_expiry = status.not_after;
        assert!(b_expiry > SystemTime::UNIX_EPOCH + Duration::from_secs(1_956_000_000));
        assert!(!Arc::ptr_eq(&first, &tls.config()));

        // The key of another certificate: refused once, however often it is read.
        let (_, other_key) = write_pair(&dir, "c", (2033, 1, 1));
        install(&other_key, &dir.join("cert.key"));
        let served = tls.config();
        let Reloaded::Refused(error) = tls.reload() else {
            panic!("a mismatched pair is refused")
        };
        assert!(error.contains("does not match"), "{error}");
        assert_eq!(tls.reload(), Reloaded::Unchanged);
        let status = tls.status();
        assert_eq!((status.rotations, status.failures), (1, 1));
        assert_eq!(status.not_after, b_expiry, "the served certificate stays");
        assert!(status.last_error.is_some_and(|(_, e)| e == error));
        assert!(Arc::ptr_eq(&served, &tls.config()));

        // Undone: the files hold the served pair again; nothing to report.
        install(&key, &dir.join("cert.key"));
        assert_eq!(tls.reload(), Reloaded::Unchanged);
        let status = tls.status();
        assert_eq!((status.rotations, status.failures), (1, 1));
        assert!(status.last_error.is_none());

        // A file missing mid-swap is refused too, once.
        std::fs::remove_file(dir.join("cert.key")).expect("rm");
        assert!(matches!(tls.reload(), Reloaded::Refused(_)));
        assert_eq!(tls.reload(), Reloaded::Unchanged);
        assert_eq!(tls.status().failures, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A client trusting only `ca` (PEM file), speaking h2.
    fn client(ca: &Path) -> tokio_rustls::TlsConnector {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let der = CertificateDer::from_pem_file(ca).expect("CA");
        roots.add(der).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    async fn connect(
        port: u16,
        ca: &Path,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let socket = TcpStream::connect(("127.0.0.1", port)).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = client(ca).connect(name, socket).await?;
        // TLS 1.3: a refused client certificate, or the server's alert,
        // shows on the first read; echo one byte to know the session works.
        tls.write_all(b"x").await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        Ok(tls)
    }

    #[tokio::test]
    async fn new_handshakes_use_the_new_pair_and_open_sessions_stay() {
        let dir = scratch("tls-handshakes");
        let tls = Arc::new(rotating(&dir));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let mut sessions = handshakes(accepted, Arc::clone(&tls));
        // An echo server over whatever the stream yields.
        tokio::spawn(async move {
            while let Some(Ok(mut session)) = tokio_stream::StreamExt::next(&mut sessions).await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n @ 1..) = session.read(&mut buf).await {
                        if session.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });

        let mut open = connect(port, &dir.join("a.pem"))
            .await
            .expect("the first pair is served");
        let (cert, key) = write_pair(&dir, "b", (2032, 3, 4));
        install(&cert, &dir.join("cert.pem"));
        install(&key, &dir.join("cert.key"));
        assert_eq!(tls.reload(), Reloaded::Rotated);

        connect(port, &dir.join("b.pem"))
            .await
            .expect("a client trusting only the new certificate connects");
        assert!(
            connect(port, &dir.join("a.pem")).await.is_err(),
            "a client trusting only the old certificate is refused"
        );
        open.write_all(b"still here").await.expect("write");
        let mut buf = [0u8; 10];
        open.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"still here", "the session from before keeps working");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
