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

/// A directory watch, armed when made so that no change after that moment
/// is missed (the daemon arms it before its first load: an edit made while
/// a long first load runs is read by the reload that follows).
pub struct DirWatch {
    dir: PathBuf,
    mode: RecursiveMode,
    events_tx: mpsc::Sender<()>,
    events: mpsc::Receiver<()>,
    watcher: Option<notify::RecommendedWatcher>,
    identity: Option<(u64, u64)>,
    /// Whether the last attempt to arm failed (said once, and its end too).
    failing: bool,
}

impl DirWatch {
    /// Watches `dir` and everything under it.
    pub fn recursive(dir: PathBuf) -> Self {
        Self::armed(dir, RecursiveMode::Recursive)
    }

    /// Watches `dir`'s own entries only (the TLS files' directories:
    /// renames and symlink swaps happen there; subdirectories are not ours).
    pub fn flat(dir: PathBuf) -> Self {
        Self::armed(dir, RecursiveMode::NonRecursive)
    }

    fn armed(dir: PathBuf, mode: RecursiveMode) -> Self {
        let (events_tx, events) = mpsc::channel::<()>(64);
        let mut failing = false;
        let watcher = arm(&dir, mode, events_tx.clone(), &mut failing);
        let identity = dir_identity(&dir);
        Self {
            dir,
            mode,
            events_tx,
            events,
            watcher,
            identity,
            failing,
        }
    }

    /// Sends [`Trigger::Changing`] at the first event of a burst and
    /// [`Trigger::Reload`] when it ends, until `reload` is closed. A watch
    /// that cannot be set up is retried every second; one is re-armed when
    /// the directory is removed and re-created.
    pub async fn run(mut self, debounce: Debounce, reload: mpsc::Sender<Trigger>) {
        let mut rearm = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                Some(()) = self.events.recv() => {
                    // Best effort: a full queue already has a reload coming.
                    let _ = reload.try_send(Trigger::Changing);
                    coalesce(&mut self.events, debounce).await;
                    if reload.send(Trigger::Reload).await.is_err() {
                        return;
                    }
                }
                _ = rearm.tick() => {
                    if self.rearm_if_needed() && reload.send(Trigger::Reload).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Re-arms a watch that failed or whose directory was replaced (a new
    /// inode: the old watch sees nothing); `true` when the directory must be
    /// read again, since changes may have been missed meanwhile (a retry
    /// that failed again has nothing new to read).
    fn rearm_if_needed(&mut self) -> bool {
        let now = dir_identity(&self.dir);
        let replaced = now != self.identity;
        if !(replaced || self.watcher.is_none() && now.is_some()) {
            return false;
        }
        self.identity = now;
        self.watcher = arm(
            &self.dir,
            self.mode,
            self.events_tx.clone(),
            &mut self.failing,
        );
        replaced || self.watcher.is_some()
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
            } else {
                tracing::debug!(dir = %dir.display(), "watching the directory");
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
