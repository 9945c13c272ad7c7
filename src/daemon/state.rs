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

/// Where the last good set is kept.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Uses (and creates when missing) `dir`.
    pub fn open(dir: &Path) -> Result<StateDir, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("--state-dir {}: {e}", dir.display()))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    /// The state file.
    pub fn file(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Writes `snapshot` as the last good set, atomically; the one it
    /// replaces becomes the previous set.
    pub fn save(&self, snapshot: &Snapshot) -> Result<(), String> {
        let body = Reply::from_entries(snapshot.entries(), Vec::new()).encode_to_vec();
        let mut bytes = Vec::with_capacity(MAGIC.len() + 8 + body.len() + CHECKSUM_LEN);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(bytes_hash(&body).as_bytes());
        let target = self.file();
        let temporary = self.dir.join(format!(".{FILE_NAME}.tmp"));
        // The new file is complete on disk before the old one moves aside,
        // so a crash at any point leaves a last good set (see `restore`).
        let written = write_synced(&temporary, &bytes)
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
        state.save(&snapshot).expect("save");
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
        state.save(&second).expect("save");
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
        assert_eq!(names, vec![FILE_NAME.to_string()]);
        let _ = std::fs::remove_dir_all(&state.dir);
    }
}
