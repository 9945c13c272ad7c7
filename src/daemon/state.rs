//! `--state-dir`: the last good set kept on disk, so that a daemon restarted
//! while its directory is invalid serves what it served before instead of
//! nothing.
//!
//! One file, `last-good.xdsd`: a magic line, the body length (8 bytes,
//! little-endian), the body (the loader's [`Reply`] with every entry and its
//! encoded bytes), and a checksum of the body (16 hex digits, FNV-1a). It
//! is replaced atomically: written to a temporary file beside it, synced,
//! renamed over the old one, and the directory synced, so a crash leaves
//! either the old file or the new one. A file that fails any check is
//! reported and ignored, never served.
//!
//! `history/` keeps the last `--history N` good sets, one file each in the
//! same format (named by the time it was saved and its version, so that
//! names sort by age), each with a one-line JSON summary beside it
//! (`.json`: version, time, resource counts, what changed). The oldest
//! beyond N are removed after each save. `xdsd history` lists them.

use crate::daemon::loader_process::Reply;
use crate::xds::snapshot::{Snapshot, bytes_hash};
use prost::Message;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The first bytes of a state file (format version 1).
const MAGIC: &[u8] = b"xdsd-state 1\n";

/// The state file's name inside `--state-dir`.
pub const FILE_NAME: &str = "last-good.xdsd";

/// The set served before the last good one: what clients may still hold
/// when xdsd restarts in the middle of a change.
pub const PREVIOUS_NAME: &str = "previous.xdsd";

/// Length of the trailing checksum (hex digits).
const CHECKSUM_LEN: usize = 16;

/// The folder of past good sets inside `--state-dir`.
pub const HISTORY_DIR: &str = "history";

/// How many past good sets are kept by default (`--history`).
pub const DEFAULT_HISTORY: usize = 10;

/// Where the last good set is kept.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// How many good sets `history/` keeps (0: none).
    history: usize,
}

/// One good set in `history/`, as its summary tells.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    /// The set's version.
    pub version: String,
    /// When it was saved (Unix seconds).
    pub saved_at: f64,
    /// Resources per type.
    pub resources: std::collections::BTreeMap<String, usize>,
    /// What changed from the set served before it.
    pub change: String,
}

impl StateDir {
    /// Uses (and creates when missing) `dir`, keeping [`DEFAULT_HISTORY`] past sets.
    pub fn open(dir: &Path) -> Result<StateDir, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("--state-dir {}: {e}", dir.display()))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
            history: DEFAULT_HISTORY,
        })
    }

    /// Keeps `count` past good sets in `history/` (0: none).
    pub fn with_history(mut self, count: usize) -> StateDir {
        self.history = count;
        self
    }

    /// Reads `dir` for listing only (nothing is created).
    pub fn existing(dir: &Path) -> Result<StateDir, String> {
        if !dir.is_dir() {
            return Err(format!("--state-dir {}: not a directory", dir.display()));
        }
        Ok(StateDir {
            dir: dir.to_path_buf(),
            history: DEFAULT_HISTORY,
        })
    }

    /// The state file.
    pub fn file(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Writes `snapshot` as the last good set, atomically; the one it
    /// replaces becomes the previous set. `change` says what changed (for
    /// the history).
    pub fn save(&self, snapshot: &Snapshot, change: &str) -> Result<(), String> {
        let bytes = encode_state(snapshot);
        self.save_last_good(&bytes)?;
        self.add_to_history(snapshot, change, &bytes)
    }

    fn save_last_good(&self, bytes: &[u8]) -> Result<(), String> {
        let target = self.file();
        let temporary = self.dir.join(format!(".{FILE_NAME}.tmp"));
        // The new file is complete on disk before the old one moves aside,
        // so a crash at any point leaves a last good set (see `restore`).
        let written = write_synced(&temporary, bytes)
            .and_then(
                |()| match std::fs::rename(&target, self.dir.join(PREVIOUS_NAME)) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    other => other,
                },
            )
            .and_then(|()| std::fs::rename(&temporary, &target))
            .and_then(|()| std::fs::File::open(&self.dir)?.sync_all());
        written.map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            format!("cannot save the last good set to {}: {e}", target.display())
        })
    }

    /// Adds the set to `history/` (unless it is the newest there already)
    /// and removes the oldest beyond the count kept.
    fn add_to_history(
        &self,
        snapshot: &Snapshot,
        change: &str,
        bytes: &[u8],
    ) -> Result<(), String> {
        if self.history == 0 {
            return Ok(());
        }
        let folder = self.dir.join(HISTORY_DIR);
        let failed =
            |e: std::io::Error| format!("cannot keep the set in {}: {e}", folder.display());
        std::fs::create_dir_all(&folder).map_err(failed)?;
        if self
            .history_names()
            .last()
            .is_some_and(|newest| newest.ends_with(&format!("-{}", snapshot.version)))
        {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let entry = HistoryEntry {
            version: snapshot.version.clone(),
            saved_at: now.as_secs_f64(),
            resources: snapshot
                .counts()
                .into_iter()
                .map(|(t, n)| (t.kind_name().to_string(), n))
                .collect(),
            change: change.to_string(),
        };
        let name = format!("{:020}-{}", now.as_nanos(), snapshot.version);
        let summary = serde_json::to_vec(&entry).unwrap_or_default();
        // The set first: a summary always has its set.
        write_synced(&folder.join(format!("{name}.xdsd")), bytes)
            .and_then(|()| write_synced(&folder.join(format!("{name}.json")), &summary))
            .map_err(failed)?;
        let names = self.history_names();
        for old in &names[..names.len().saturating_sub(self.history)] {
            for ext in ["json", "xdsd"] {
                let _ = std::fs::remove_file(folder.join(format!("{old}.{ext}")));
            }
        }
        Ok(())
    }

    /// The names (without extension) of the sets in `history/`, oldest first.
    fn history_names(&self) -> Vec<String> {
        let Ok(read) = std::fs::read_dir(self.dir.join(HISTORY_DIR)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = read
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// The sets in `history/`, newest first; a summary that cannot be read
    /// is an error naming its file.
    pub fn history(&self) -> Result<Vec<HistoryEntry>, String> {
        let folder = self.dir.join(HISTORY_DIR);
        self.history_names()
            .iter()
            .rev()
            .map(|name| {
                let path = folder.join(format!("{name}.json"));
                let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
            })
            .collect()
    }

    /// The last good set: `Ok(None)` when none was saved, `Err` (with the
    /// reason) when the file is unreadable or fails a check.
    pub fn restore(&self) -> Result<Option<Snapshot>, String> {
        match read_state(&self.file())? {
            Some(last) => Ok(Some(last)),
            // A crash between moving the last set aside and renaming the
            // new one into place: the set moved aside is the last complete one.
            None => read_state(&self.dir.join(PREVIOUS_NAME)),
        }
    }

    /// The set served before the last good one, when it is known and intact.
    pub fn restore_previous(&self) -> Option<Snapshot> {
        read_state(&self.dir.join(PREVIOUS_NAME)).ok().flatten()
    }
}

/// A set in the state file format.
fn encode_state(snapshot: &Snapshot) -> Vec<u8> {
    let body = Reply::from_entries(snapshot.entries(), Vec::new()).encode_to_vec();
    let mut bytes = Vec::with_capacity(MAGIC.len() + 8 + body.len() + CHECKSUM_LEN);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(bytes_hash(&body).as_bytes());
    bytes
}

/// A state file's set (see [`StateDir::restore`]).
fn read_state(path: &Path) -> Result<Option<Snapshot>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let corrupt = |why: &str| format!("{}: corrupt state file ({why})", path.display());
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt("not an xdsd state file of this version"))?;
    let (length, rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("truncated"))?;
    let length = usize::try_from(u64::from_le_bytes(*length)).map_err(|_| corrupt("bad length"))?;
    if rest.len() != length.saturating_add(CHECKSUM_LEN) {
        return Err(corrupt("truncated or extended"));
    }
    let (body, checksum) = rest.split_at(length);
    if checksum != bytes_hash(body).as_bytes() {
        return Err(corrupt("checksum mismatch"));
    }
    let reply = Reply::decode(body).map_err(|e| corrupt(&e.to_string()))?;
    let loaded = reply
        .into_loaded()
        .map_err(|errors| corrupt(&errors.join("; ")))?;
    Ok(Some(loaded.snapshot))
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::loader::load_str;

    const SET: &str = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: a\nconnect_timeout: 1s\n---\nkind: Cluster\nnodes: {cluster: [edge]}\nspec: {name: b}\n";

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xdsd-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn saved(tag: &str) -> (StateDir, Snapshot) {
        let state = StateDir::open(&scratch(tag)).expect("state dir");
        let snapshot = Snapshot::build(&load_str("x.yaml", SET).resources);
        state.save(&snapshot, "first").expect("save");
        (state, snapshot)
    }

    #[test]
    fn a_saved_set_restores_with_the_same_version_and_bytes() {
        let (state, snapshot) = saved("roundtrip");
        let restored = state.restore().expect("valid").expect("present");
        assert_eq!(restored.version, snapshot.version);
        assert_eq!(restored.counts(), snapshot.counts());
        for (a, b) in restored.entries().iter().zip(snapshot.entries()) {
            assert_eq!(
                (&a.name, &a.version, &a.selector),
                (&b.name, &b.version, &b.selector)
            );
            assert_eq!(a.any.value, b.any.value);
        }
        let _ = std::fs::remove_dir_all(&state.dir);
    }

    #[test]
    fn no_file_is_no_state() {
        let state = StateDir::open(&scratch("none")).expect("state dir");
        assert!(matches!(state.restore(), Ok(None)));
        let _ = std::fs::remove_dir_all(&state.dir);
    }

    #[test]
    fn every_kind_of_damage_is_detected() {
        let (state, _) = saved("damage");
        let good = std::fs::read(state.file()).expect("read");
        let flip_in_body = {
            let mut b = good.clone();
            let i = MAGIC.len() + 8 + 5;
            b[i] ^= 0x01;
            b
        };
        let damages: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("one bit flipped", flip_in_body),
            ("extended", [good.as_slice(), b"x"].concat()),
            (
                "other magic",
                [b"xdsd-state 2\n", &good[MAGIC.len()..]].concat(),
            ),
        ];
        for (what, bytes) in damages {
            std::fs::write(state.file(), &bytes).expect("write");
            let restored = state.restore();
            assert!(
                matches!(&restored, Err(e) if e.contains("corrupt state file")),
                "{what}: {:?}",
                restored.map(|s| s.map(|s| s.version))
            );
        }
        let _ = std::fs::remove_dir_all(&state.dir);
    }

    #[test]
    fn a_second_save_keeps_the_first_as_previous() {
        let (state, first) = saved("rotate");
        let loaded = load_str(
            "x.yaml",
            &SET.replace("connect_timeout: 1s", "connect_timeout: 2s"),
        );
        let second = Snapshot::build(&loaded.resources);
        state.save(&second, "second").expect("save");
        let last = state.restore().expect("valid").expect("present");
        assert_eq!(last.version, second.version);
        let previous = state.restore_previous().expect("previous kept");
        assert_eq!(previous.version, first.version);
        let _ = std::fs::remove_dir_all(&state.dir);
    }

    #[test]
    fn a_crash_between_the_renames_still_restores_a_set() {
        let (state, first) = saved("crash");
        std::fs::rename(state.file(), state.dir.join(PREVIOUS_NAME)).expect("move aside");
        let restored = state
            .restore()
            .expect("valid")
            .expect("the moved-aside set");
        assert_eq!(restored.version, first.version);
        let _ = std::fs::remove_dir_all(&state.dir);
    }

    #[test]
    fn a_save_leaves_no_temporary_file() {
        let (state, _) = saved("tidy");
        let names: Vec<String> = std::fs::read_dir(&state.dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, vec![HISTORY_DIR.to_string(), FILE_NAME.to_string()]);
        let _ = std::fs::remove_dir_all(&state.dir);
    }

    /// `history/` keeps the last N good sets, newest first, each with what
    /// changed and restorable as it was served; the same set saved again
    /// (a restart) adds nothing; `--history 0` keeps none.
    #[test]
    fn the_history_keeps_the_last_good_sets() {
        let state = StateDir::open(&scratch("history"))
            .expect("state dir")
            .with_history(3);
        let set = |timeout: u32| {
            let text = SET.replace(
                "connect_timeout: 1s",
                &format!("connect_timeout: {timeout}s"),
            );
            Snapshot::build(&load_str("x.yaml", &text).resources)
        };
        let sets: Vec<Snapshot> = (1..=4).map(set).collect();
        for (i, s) in sets.iter().enumerate() {
            state.save(s, &format!("change {i}")).expect("save");
        }
        state.save(&sets[3], "again").expect("save");
        let listed = state.history().expect("readable");
        let versions: Vec<&str> = listed.iter().map(|e| e.version.as_str()).collect();
        let want: Vec<&str> = sets[1..].iter().rev().map(|s| s.version.as_str()).collect();
        assert_eq!(versions, want, "the 3 newest, newest first, no duplicate");
        assert_eq!(listed[0].change, "change 3");
        assert_eq!(listed[0].resources.get("Cluster"), Some(&2));
        for name in state.history_names() {
            let path = state.dir.join(HISTORY_DIR).join(format!("{name}.xdsd"));
            let kept = read_state(&path).expect("intact").expect("present");
            assert!(name.ends_with(&kept.version), "{name}");
        }
        let _ = std::fs::remove_dir_all(&state.dir);

        let none = StateDir::open(&scratch("no-history"))
            .expect("state dir")
            .with_history(0);
        none.save(&sets[0], "first").expect("save");
        assert!(none.history().expect("readable").is_empty());
        let _ = std::fs::remove_dir_all(&none.dir);
    }
}
