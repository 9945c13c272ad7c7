//! Watching the config directory, and the TLS files' directories: file
//! events (notify) coalesced into one reload signal per burst.
//!
//! Event paths are not trusted (a `mkdir` plus a write may arrive as one
//! folder event, a ConfigMap swap as a symlink change): any event means
//! "rescan everything". Reads (`Access` events, which xdsd's own reading
//! causes) are ignored, or reloads would loop.

use notify::{EventKind, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// How events are coalesced.
#[derive(Clone, Copy, Debug)]
pub struct Debounce {
    /// Reload once no event came for this long.
    pub quiet: Duration,
    /// Reload at the latest this long after the first event of a burst.
    pub max_delay: Duration,
}

/// What the watcher asks of the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Files began to change: a reload will follow (time to get ready).
    Changing,
    /// The burst is over: reload now.
    Reload,
}

/// Watches `dir` and everything under it, and sends [`Trigger::Changing`]
/// at the first event of a burst and [`Trigger::Reload`] when it ends. Runs
/// until `reload` is closed. The watch is re-armed when the directory is
/// removed and re-created.
pub async fn watch(dir: PathBuf, debounce: Debounce, reload: mpsc::Sender<Trigger>) {
    watch_dir(dir, RecursiveMode::Recursive, debounce, reload).await;
}

/// [`watch`] for `dir`'s own entries only (the TLS files' directories:
/// renames and symlink swaps happen there; subdirectories are not ours).
pub async fn watch_flat(dir: PathBuf, debounce: Debounce, reload: mpsc::Sender<Trigger>) {
    watch_dir(dir, RecursiveMode::NonRecursive, debounce, reload).await;
}

async fn watch_dir(
    dir: PathBuf,
    mode: RecursiveMode,
    debounce: Debounce,
    reload: mpsc::Sender<Trigger>,
) {
    let (events_tx, mut events) = mpsc::channel::<()>(64);
    // A watch that cannot be set up is retried every second, and said once.
    let mut failing = false;
    let mut watcher = arm(&dir, mode, events_tx.clone(), &mut failing);
    let mut identity = dir_identity(&dir);
    let mut rearm = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            Some(()) = events.recv() => {
                // Best effort: a full queue already has a reload coming.
                let _ = reload.try_send(Trigger::Changing);
                coalesce(&mut events, debounce).await;
                if reload.send(Trigger::Reload).await.is_err() {
                    return;
                }
            }
            _ = rearm.tick() => {
                // A removed and re-created directory is a new inode: the old watch sees nothing.
                let now = dir_identity(&dir);
                let replaced = now != identity;
                if replaced || watcher.is_none() && now.is_some() {
                    identity = now;
                    watcher = arm(&dir, mode, events_tx.clone(), &mut failing);
                    // Changes may have been missed when the directory was
                    // replaced or the watch just came back; a retry that
                    // failed again has nothing new to read.
                    let reread = replaced || watcher.is_some();
                    if reread && reload.send(Trigger::Reload).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Waits until events stop for `quiet`, or `max_delay` has passed.
async fn coalesce(events: &mut mpsc::Receiver<()>, debounce: Debounce) {
    let deadline = tokio::time::Instant::now() + debounce.max_delay;
    loop {
        let quiet_end = (tokio::time::Instant::now() + debounce.quiet).min(deadline);
        match tokio::time::timeout_at(quiet_end, events.recv()).await {
            Ok(Some(())) if tokio::time::Instant::now() < deadline => continue,
            _ => return,
        }
    }
}

/// Sets up the watch; `failing` carries whether the last attempt failed,
/// so a failure is logged when it starts and the recovery when it ends.
fn arm(
    dir: &Path,
    mode: RecursiveMode,
    events: mpsc::Sender<()>,
    failing: &mut bool,
) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(e) => !matches!(e.kind, EventKind::Access(_)),
            Err(_) => true,
        };
        if relevant {
            // A full channel already means "reload pending".
            let _ = events.try_send(());
        }
    };
    let armed = notify::recommended_watcher(handler)
        .and_then(|mut watcher| watcher.watch(dir, mode).map(|()| watcher));
    match armed {
        Ok(watcher) => {
            if std::mem::replace(failing, false) {
                tracing::info!(dir = %dir.display(), "watching the directory again");
            }
            Some(watcher)
        }
        Err(e) => {
            if !std::mem::replace(failing, true) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the directory; retrying every second (SIGHUP reloads meanwhile)");
            }
            None
        }
    }
}

fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}
