//! Scratch directories, removed on drop, and the configuration folders tests write.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch folder holding a config directory (`config/`) and whatever a
/// test keeps beside it (logs, a state directory); removed on drop.
pub struct WorkDir(ScratchDir);

impl WorkDir {
    pub fn new(tag: &str) -> WorkDir {
        let work = ScratchDir::new(tag);
        std::fs::create_dir_all(work.path().join("config")).expect("mkdir");
        WorkDir(work)
    }

    /// `rel` inside the scratch folder (not the config directory).
    pub fn beside(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }

    /// The config directory.
    pub fn config(&self) -> PathBuf {
        self.beside("config")
    }

    /// Writes `config/rel` in one step (a dot-named temporary, then a
    /// rename), so a watcher never sees half a file.
    pub fn put(&self, rel: &str, text: &str) {
        let tmp = self.config().join(format!(".{rel}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.config().join(rel)).expect("rename");
    }
}

/// A temporary directory removed on drop (also when a test fails).
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xdsd-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        ScratchDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `rel` inside the directory, creating folders.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every directory directly below `dir`, sorted.
pub fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}
