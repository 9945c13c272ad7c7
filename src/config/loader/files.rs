//! The directory walk and reading files: which files are config (by
//! extension, dot-names skipped, symlinked directories followed once), and
//! the limits a read keeps (size, regular files only, UTF-8), so that no
//! file can stall or exhaust the loader before its text is parsed.

use crate::check::Rule;
use crate::config::diag::{Diagnostics, Location};
use crate::config::yaml::Mark;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What loading may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest file read; larger ones are reported (at the file), not read.
    pub max_file_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> ReadLimits {
        ReadLimits {
            max_file_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A file that cannot be read as config.
pub static UNREADABLE_FILE: Rule = Rule {
    id: "unreadable-file",
    summary: "a config file or directory cannot be read",
    explanation: "The file could not be read as configuration: no permission, larger than --max-file-mb, \
not a regular file (FIFOs, sockets and devices are never opened), or not UTF-8 text. Nothing in it is \
loaded, so the set is incomplete.",
    allowable: false,
    ..Rule::ERROR
};

/// What to do when a load runs out of memory under `serve`'s limit.
pub const RAISE_MEMORY_LIMIT: &str = "(raise --load-memory-limit-mb if the set is that large)";

/// Why a file could not be read. Out of memory here means the loader
/// process hit its address-space limit while reading (the same limit that
/// stops it later, while decoding, with "stopped without an answer").
fn read_error(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::OutOfMemory {
        format!("cannot read: {e} {RAISE_MEMORY_LIMIT}")
    } else {
        format!("cannot read: {e}")
    }
}

pub(super) fn read_text(path: &Path, limits: ReadLimits) -> Result<String, (Option<Mark>, String)> {
    use std::io::Read;
    let limit = limits.max_file_bytes;
    let too_large = |size: u64| {
        format!("file is {size} bytes, larger than the limit of {limit} (--max-file-mb)")
    };
    // Checked before opening: opening a FIFO would wait for a writer.
    let meta = std::fs::metadata(path).map_err(|e| (None, format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err((
            None,
            "not a regular file (a FIFO, socket or device is never read)".into(),
        ));
    }
    if meta.len() > limit {
        return Err((None, too_large(meta.len())));
    }
    let file = std::fs::File::open(path).map_err(|e| (None, format!("cannot read: {e}")))?;
    // The size may change between the check and the read: never read more than the limit.
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| (None, read_error(&e)))?;
    if bytes.len() as u64 > limit {
        return Err((None, too_large(bytes.len() as u64)));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let at = utf8_error_mark(e.as_bytes(), valid);
        (
            Some(at),
            format!("not valid UTF-8 (byte {valid}): config files are UTF-8 text"),
        )
    })
}

/// Line and column (in characters) of byte `valid_up_to`, the first that is
/// not UTF-8, in `bytes`, whose bytes before it are valid.
fn utf8_error_mark(bytes: &[u8], valid_up_to: usize) -> Mark {
    let prefix =
        std::str::from_utf8(bytes.get(..valid_up_to).unwrap_or_default()).unwrap_or_default();
    let line_start = prefix.rfind('\n').map_or(0, |i| i + 1);
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Mark {
        line: clamp(prefix.matches('\n').count() + 1),
        col: clamp(prefix[line_start..].chars().count() + 1),
    }
}

fn is_config_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

pub(super) fn collect_files(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
    diags: &mut Diagnostics,
) {
    // Symlinked directories are followed once; a loop ends at the second visit.
    let Ok(canonical) = std::fs::canonicalize(dir) else {
        return;
    };
    if !visited.insert(canonical) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            diags.report(
                &UNREADABLE_FILE,
                Location {
                    file: Arc::from(dir.display().to_string()),
                    mark: None,
                },
                format!("cannot read directory: {e}"),
            );
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => collect_files(&path, out, visited, diags),
            Ok(_) if is_config_file(&path) => out.push(path),
            Ok(_) => {}
            Err(e) if is_config_file(&path) => diags.report(
                &UNREADABLE_FILE,
                Location {
                    file: Arc::from(path.display().to_string()),
                    mark: None,
                },
                format!("cannot read: {e}"),
            ),
            Err(_) => {}
        }
    }
}
