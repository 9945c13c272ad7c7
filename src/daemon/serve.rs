//! `xdsd serve`: load and validate the directory, serve it over ADS, reload
//! on change (all or nothing: an invalid set never replaces the served one).

use crate::config::schema::ResourceType;
use crate::daemon::accept::{self, Incoming};
use crate::daemon::admin::{self, Health, LoadOutcome};
use crate::daemon::loader_process::{LoaderProcess, ProcessLimits};
use crate::daemon::state::StateDir;
use crate::daemon::systemd::Notifier;
use crate::daemon::watch::{Debounce, DirWatch, Trigger};
use crate::daemon::xds_tls::{NodeAuthorization, TlsFiles};
use crate::daemon::xds_tls_rotation::{self, RotatingTls};
use crate::xds::snapshot::{Changes, Snapshot};
use crate::xds::{Ads, Ledger};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch as channel};

/// Everything `serve` needs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The config directory.
    pub dir: PathBuf,
    /// The gRPC xDS address.
    pub listen: SocketAddr,
    /// The admin HTTP address.
    pub admin: SocketAddr,
    /// What admin clients may hold.
    pub admin_limits: admin::ConnectionLimits,
    /// How file events are coalesced.
    pub debounce: Debounce,
    /// TLS (and mTLS) for the xDS listener; plaintext when `None`.
    pub tls: Option<TlsFiles>,
    /// The certificate identity each client must prove for the node it claims.
    pub authorize_node: Option<NodeAuthorization>,
    /// What one load may use.
    pub load_limits: ProcessLimits,
    /// Where the last good set is saved, for restarts with an invalid directory.
    pub state_dir: Option<PathBuf>,
    /// How many past good sets the state directory keeps (`--history`).
    pub history: usize,
    /// What clients may open and send.
    pub client_limits: crate::xds::ClientLimits,
    /// Known clusters and the rule policy every load is checked with.
    pub checks: crate::check::validate::Settings,
}

/// Why `serve` could not start.
#[derive(Debug)]
pub struct StartError(pub String);

/// How long the loader process outlives its last load: a burst of edits
/// reuses it; an idle daemon does not keep the schema in memory.
const LOADER_IDLE: Duration = Duration::from_secs(10);

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(options: Options) -> Result<(), StartError> {
    let mut loader = LoaderProcess::new(
        options.dir.clone(),
        options.load_limits,
        options.checks.clone(),
    );
    let state = match &options.state_dir {
        Some(dir) => Some(
            StateDir::open(dir)
                .map_err(StartError)?
                .with_history(options.history),
        ),
        None => None,
    };
    // Listening before the first load: clients that connect meanwhile (a
    // fleet reconnecting after a restart) wait in the listen queue and are
    // served as soon as the set is loaded, instead of being refused and
    // backing off, each refusal doubling their wait.
    let grpc = accept::listen(options.listen)
        .map_err(|e| StartError(format!("cannot listen on {}: {e}", options.listen)))?;
    let admin_listener = accept::listen(options.admin)
        .map_err(|e| StartError(format!("cannot listen on {} (admin): {e}", options.admin)))?;
    // Armed before the first load: an edit made while it runs is read by
    // the reload that follows instead of waiting for the next edit.
    let config_watch = DirWatch::recursive(options.dir.clone());
    let started = std::time::Instant::now();
    let initial = initial_set(&mut loader, state.as_ref()).await?;
    // A first load parses everything; later ones only what changed.
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let tls = match &options.tls {
        Some(files) => Some(Arc::new(
            RotatingTls::load(files.clone()).map_err(StartError)?,
        )),
        None => None,
    };
    let snapshot = initial.snapshot();
    tracing::info!(version = %snapshot.version, resources = ?snapshot.counts(), load_ms, "loaded");
    let (snapshots_tx, snapshots) = channel::channel(Arc::clone(snapshot));
    let ledger = Arc::new(Ledger::default());
    let health =
        Arc::new(Health::new(Arc::clone(&ledger), snapshots.clone()).with_tls(tls.clone()));
    let added = snapshot.changes_from(&Snapshot::empty());
    match initial {
        Initial::Loaded(snapshot, is_saved) => {
            let change = format!("loaded at start: {}", describe(&added));
            health.record_load(LoadOutcome::Applied(&snapshot, added));
            // Saving it again would turn the previous set into this one.
            if !is_saved {
                save(state.as_ref(), &snapshot, change).await;
            }
        }
        Initial::Restored(snapshot, errors) => {
            health.record_load(LoadOutcome::Restored(&snapshot, added, errors));
        }
    }
    if let Some(warning) = admin::exposure_warning(options.admin) {
        tracing::warn!("{warning}");
    }
    let admin_incoming =
        Incoming::new(admin_listener, "admin", Arc::clone(&health.listeners.admin));
    tokio::spawn(admin::serve(
        admin_incoming,
        Arc::clone(&health),
        options.admin_limits,
    ));
    let systemd = Arc::new(Notifier::from_env());

    let (trigger_tx, triggers) = mpsc::channel::<Trigger>(4);
    tokio::spawn(config_watch.run(options.debounce, trigger_tx.clone()));
    let mut hangup_to = vec![trigger_tx];
    if let Some(tls) = &tls {
        hangup_to.push(xds_tls_rotation::follow(Arc::clone(tls), options.debounce));
    }
    tokio::spawn(forward_sighup(hangup_to));
    tokio::spawn(reload_loop(
        loader,
        triggers,
        Publisher {
            snapshots: snapshots_tx,
            health: Arc::clone(&health),
            state,
        },
        Arc::clone(&systemd),
    ));

    tracing::info!(listen = %options.listen, admin = %options.admin, "serving xDS");
    health.ready.store(true, Ordering::Relaxed);
    systemd.ready(&serving_status(&health.snapshots.borrow()));
    tokio::spawn(Arc::clone(&systemd).watchdog());
    let incoming = Incoming::new(grpc, "xds", Arc::clone(&health.listeners.xds));
    // One signal listener; the server and the stop below both follow it.
    let (stop, stopping) = channel::channel(false);
    let stop_systemd = Arc::clone(&systemd);
    tokio::spawn(async move {
        shutdown_signal().await;
        stop_systemd.notify("STOPPING=1");
        let _ = stop.send(true);
    });
    let mut ads = Ads::new(snapshots, ledger).with_limits(options.client_limits);
    if let Some(authorization) = options.authorize_node.clone() {
        ads = ads.with_authorization(authorization);
    }
    let router = server_builder().add_routes(ads.routes());
    let shutdown = stopped(stopping.clone());
    let server = async {
        match tls {
            Some(tls) => {
                let incoming = xds_tls_rotation::handshakes(incoming, tls);
                router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
            None => {
                router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
        }
    };
    // Streams never finish by themselves, and ending 10,000 of them one by
    // one (trailers, GOAWAY, close) took 1.7 s of the one core: on the
    // signal, xdsd exits at once and the kernel closes the connections.
    // Clients reconnect (to the next xdsd, in a restart) after their own
    // backoff. Saved state is never half-written (see `state`).
    tokio::select! {
        result = server => result.map_err(|e| StartError(format!("xDS server: {e}")))?,
        () = stopped(stopping) => {}
    }
    tracing::info!("stopped");
    Ok(())
}

/// The gRPC server. TLS, when configured, is done before connections reach
/// it (`xds_tls_rotation::handshakes`), so the certificate can change live.
fn server_builder() -> tonic::transport::Server {
    tonic::transport::Server::builder().http2_keepalive_interval(Some(Duration::from_secs(30)))
}

/// Loads and validates in the loader process, logging warnings; the error
/// lists every problem, one located line each.
async fn load(loader: &mut LoaderProcess) -> Result<Snapshot, Vec<String>> {
    let loaded = loader.load().await?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(loaded.snapshot)
}

/// The first set to serve.
enum Initial {
    /// The directory's; `true` when it is the set saved in `--state-dir` already.
    Loaded(Arc<Snapshot>, bool),
    /// The directory is invalid (these errors): the last good set saved in `--state-dir`.
    Restored(Arc<Snapshot>, Vec<String>),
}

impl Initial {
    fn snapshot(&self) -> &Arc<Snapshot> {
        match self {
            Initial::Loaded(s, _) | Initial::Restored(s, _) => s,
        }
    }
}

/// Loads the directory; when it is invalid, falls back to the set saved in
/// `state` (loudly). Without a usable saved set, an invalid directory is a
/// start error.
async fn initial_set(
    loader: &mut LoaderProcess,
    state: Option<&StateDir>,
) -> Result<Initial, StartError> {
    let saved = match state.map(StateDir::restore) {
        Some(Ok(saved)) => saved,
        Some(Err(damaged)) => {
            tracing::error!("ignoring the saved set: {damaged}");
            None
        }
        None => None,
    };
    let errors = match load(loader).await {
        Ok(mut snapshot) => {
            // What clients may still hold if xdsd stopped in the middle of a
            // change: the set served before this one (see `Snapshot::follow`).
            let is_saved = saved
                .as_ref()
                .is_some_and(|s| s.version == snapshot.version);
            let predecessor = if is_saved {
                state.and_then(StateDir::restore_previous)
            } else {
                saved
            };
            if let Some(previous) = predecessor {
                snapshot.follow(&Arc::new(previous));
            }
            return Ok(Initial::Loaded(Arc::new(snapshot), is_saved));
        }
        Err(errors) => errors,
    };
    let invalid = || {
        StartError(format!(
            "{} is not a valid config set:\n{}",
            loader.dir().display(),
            errors.join("\n")
        ))
    };
    let (Some(state), Some(mut snapshot)) = (state, saved) else {
        return Err(invalid());
    };
    tracing::error!(
        version = %snapshot.version,
        "{} is not a valid config set; serving the last good set saved in {} until it is fixed",
        loader.dir().display(),
        state.file().display()
    );
    for line in &errors {
        tracing::error!("{line}");
    }
    if let Some(previous) = state.restore_previous() {
        snapshot.follow(&Arc::new(previous));
    }
    Ok(Initial::Restored(Arc::new(snapshot), errors))
}

/// Where a new set goes: the clients, the admin API and `--state-dir`.
struct Publisher {
    snapshots: channel::Sender<Arc<Snapshot>>,
    health: Arc<Health>,
    state: Option<StateDir>,
}

/// Saves `snapshot` as the last good set, when `--state-dir` is set; a
/// failure is logged (serving goes on).
async fn save(state: Option<&StateDir>, snapshot: &Arc<Snapshot>, change: String) {
    let Some(state) = state.cloned() else {
        return;
    };
    let snapshot = Arc::clone(snapshot);
    let saved = tokio::task::spawn_blocking(move || state.save(&snapshot, &change)).await;
    match saved {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("{e}"),
        Err(e) => tracing::warn!("saving the last good set failed: {e}"),
    }
}

/// Acts on triggers one at a time: starts the loader when files begin to
/// change, reloads when they settle, and stops the loader once idle.
async fn reload_loop(
    mut loader: LoaderProcess,
    mut triggers: mpsc::Receiver<Trigger>,
    publisher: Publisher,
    systemd: Arc<Notifier>,
) {
    loop {
        let idle = async {
            if loader.is_running() {
                tokio::time::sleep(LOADER_IDLE).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let trigger = tokio::select! {
            trigger = triggers.recv() => trigger,
            () = idle => {
                loader.stop();
                continue;
            }
        };
        match trigger {
            None => return,
            Some(Trigger::Changing) => {
                if let Err(e) = loader.start() {
                    tracing::warn!("{e}");
                }
            }
            Some(Trigger::Reload) => {
                let outcome = reload(&mut loader, &publisher).await;
                systemd.status(&outcome);
            }
        }
    }
}

/// The status line systemd shows while `snapshot` is served.
fn serving_status(snapshot: &Snapshot) -> String {
    let resources: usize = snapshot.counts().values().sum();
    format!(
        "serving version {} ({resources} resources)",
        snapshot.version
    )
}

/// Reloads; on any error keeps serving the last good snapshot. Returns the
/// outcome as one status line.
async fn reload(loader: &mut LoaderProcess, publisher: &Publisher) -> String {
    let Publisher {
        snapshots, health, ..
    } = publisher;
    let started = std::time::Instant::now();
    let loaded = load(loader).await;
    // Read, validate and build the snapshot: what a reload costs before any push.
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let serving = Arc::clone(&snapshots.borrow());
    // A directory caught empty (being re-created, mid-checkout) would drop
    // everything from every client: an empty set never replaces a non-empty one.
    let loaded = loaded.and_then(|snapshot| {
        if snapshot.counts().is_empty() && !serving.counts().is_empty() {
            Err(vec![format!(
                "{}: no resources; an empty set never replaces the one being served",
                loader.dir().display()
            )])
        } else {
            Ok(snapshot)
        }
    });
    match loaded {
        Ok(mut snapshot) => {
            if snapshot.version == serving.version {
                health.record_load(LoadOutcome::Unchanged);
                tracing::info!(version = %snapshot.version, load_ms, "reload: no change");
                return serving_status(&snapshot);
            }
            let changes = snapshot.changes_from(&serving);
            let change = describe(&changes);
            snapshot.follow(&serving);
            // Every connected node's view, built once here rather than by
            // the first of its streams: the cost is logged, and streams start
            // the change with their views ready.
            let building = std::time::Instant::now();
            let views = snapshot.prepare_views(health.ledger.nodes().iter());
            let views_ms = building.elapsed().as_secs_f64() * 1e3;
            tracing::info!(
                version = %snapshot.version,
                previous = %serving.version,
                changes = %change,
                resources = ?snapshot.counts(),
                load_ms,
                views,
                views_ms,
                "reloaded"
            );
            let status = serving_status(&snapshot);
            health.record_load(LoadOutcome::Applied(&snapshot, changes));
            let snapshot = Arc::new(snapshot);
            snapshots.send_replace(Arc::clone(&snapshot));
            save(publisher.state.as_ref(), &snapshot, change).await;
            status
        }
        Err(errors) => {
            tracing::error!(
                load_ms,
                "reload rejected; still serving version {}",
                serving.version
            );
            for line in &errors {
                tracing::error!("{line}");
            }
            let status = format!(
                "reload rejected ({} errors, first: {}); {}",
                errors.len(),
                errors.first().map_or("", String::as_str),
                serving_status(&serving)
            );
            health.record_load(LoadOutcome::Rejected(errors));
            status
        }
    }
}

/// `Cluster +1 -0 ~2, Listener +0 -1 ~0` (added, removed, changed).
fn describe(changes: &std::collections::BTreeMap<ResourceType, Changes>) -> String {
    let parts: Vec<String> = changes
        .iter()
        .map(|(t, c)| {
            format!(
                "{} +{} -{} ~{}",
                t.kind_name(),
                c.added,
                c.removed,
                c.changed
            )
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// SIGHUP reloads the config directory and re-reads the TLS files: one
/// [`Trigger::Reload`] to each of `reloaders`.
async fn forward_sighup(reloaders: Vec<mpsc::Sender<Trigger>>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading");
        for reload in &reloaders {
            if reload.send(Trigger::Reload).await.is_err() {
                return;
            }
        }
    }
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(mut stopping: channel::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
