//! Config loading: walks `--dir`, parses every YAML/JSON file, recognises the
//! three document forms of the SPEC (bare `"@type"` resource, `kind`/`nodes`/
//! `spec` envelope, `DiscoveryResponse` with `resources:`) and decodes each
//! resource against the Envoy schema.
//!
//! This file drives a load: files in, documents out (in parallel), each
//! document's result kept in the `DocumentCache`. `files.rs` walks the
//! directory and reads files within their limits; `documents.rs` recognises
//! the document forms and decodes each resource.

mod documents;
mod files;

use crate::check::Rule;
use crate::config::constraints::Rules;
use crate::config::diag::{Diagnostics, Location};
use crate::config::resource::Resource;
use crate::config::yaml;
use documents::FileLoader;
use files::{collect_files, read_text};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

pub use documents::{DERIVED_NAME, DOCUMENT_FORM, MISSING_NAME, YAML_SYNTAX};
pub use files::{RAISE_MEMORY_LIMIT, ReadLimits, UNREADABLE_FILE};

/// The result of loading a directory: every resource that could be read, and every finding.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Resources in file order (sorted paths, then document order).
    pub resources: Vec<Resource>,
    /// Syntax, schema and `validate.rules` findings.
    pub diagnostics: Diagnostics,
    /// Rules allowed by `# xdsd: allow(ID)` comments, per document.
    pub allowances: Vec<crate::check::policy::Allowance>,
}

/// Loading could not even start (the directory is missing or unreadable).
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// What reading files and recognising documents reports.
pub static RULES: &[&Rule] = &[
    &UNREADABLE_FILE,
    &YAML_SYNTAX,
    &DOCUMENT_FORM,
    &MISSING_NAME,
    &DERIVED_NAME,
];

/// Loads every `*.yaml`, `*.yml` and `*.json` below `dir`, skipping names that start with `.`.
pub fn load_dir(dir: &Path) -> Result<Loaded, LoadError> {
    load_dir_cached(dir, ReadLimits::default(), &mut DocumentCache::default())
}

/// What documents loaded to, kept by a long-lived loader (the daemon's
/// loader process) so that a reload parses and decodes only documents whose
/// text changed. Validation still covers the whole set every time. Kept per
/// file: a file whose text is unchanged is reused whole, without being split
/// again; in a changed one, a document is known by its first line and exact
/// text.
#[derive(Default)]
pub struct DocumentCache {
    files: std::collections::HashMap<Arc<str>, CachedFile>,
}

/// One file as last loaded.
struct CachedFile {
    text: String,
    /// Each document's result, in order.
    parts: Vec<(PartKey, Arc<Loaded>)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PartKey {
    file: Arc<str>,
    first_line: u32,
    text: String,
}

/// One document (or a whole file whose documents cannot be split) to load.
struct Part {
    key: PartKey,
    cached: Option<Arc<Loaded>>,
}

/// A file of this load: reused whole, or split into parts to load.
enum FileWork {
    Unchanged(Arc<str>, CachedFile),
    /// Its text, and how many parts it was split into.
    Changed(Arc<str>, String, usize),
}

/// [`load_dir`], reusing and then refreshing `cache`: afterwards it holds
/// exactly the files of this load.
pub fn load_dir_cached(
    dir: &Path,
    limits: ReadLimits,
    cache: &mut DocumentCache,
) -> Result<Loaded, LoadError> {
    let meta = std::fs::metadata(dir).map_err(|e| LoadError(format!("{}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(LoadError(format!("{}: not a directory", dir.display())));
    }
    let mut files = Vec::new();
    let mut diagnostics = Diagnostics::default();
    let mut visited = HashSet::new();
    collect_files(dir, &mut files, &mut visited, &mut diagnostics);
    files.sort();
    let texts = crate::config::parallel::map(&files, |path| {
        let shown: Arc<str> = Arc::from(path.display().to_string());
        (shown, read_text(path, limits))
    });
    let mut previous = std::mem::take(&mut cache.files);
    let mut work = Vec::new();
    let mut parts = Vec::new();
    for (file, text) in texts {
        let text = match text {
            Ok(text) => text,
            Err((mark, message)) => {
                diagnostics.report(&UNREADABLE_FILE, Location { file, mark }, message);
                continue;
            }
        };
        let before = match previous.remove(&file) {
            Some(same) if same.text == text => {
                work.push(FileWork::Unchanged(file, same));
                continue;
            }
            other => other,
        };
        let known: std::collections::HashMap<&PartKey, &Arc<Loaded>> = before
            .as_ref()
            .map(|f| f.parts.iter().map(|(k, l)| (k, l)).collect())
            .unwrap_or_default();
        let start = parts.len();
        for (first_line, part) in yaml::split_documents(&text) {
            let key = PartKey {
                file: Arc::clone(&file),
                first_line,
                text: part.to_string(),
            };
            let cached = known.get(&key).map(|l| Arc::clone(l));
            parts.push(Part { key, cached });
        }
        work.push(FileWork::Changed(file, text, parts.len() - start));
    }
    let results = load_parts(&parts);
    let mut loaded = Loaded {
        diagnostics,
        ..Loaded::default()
    };
    // The changed files' parts, in the order they were pushed.
    let mut done = parts.into_iter().map(|p| p.key).zip(results);
    for item in work {
        let (file, kept) = match item {
            FileWork::Unchanged(file, kept) => (file, kept),
            FileWork::Changed(file, text, count) => {
                let parts = done.by_ref().take(count).collect();
                (file, CachedFile { text, parts })
            }
        };
        for (_, result) in &kept.parts {
            loaded.resources.extend(result.resources.iter().cloned());
            loaded.diagnostics.extend(result.diagnostics.clone());
            loaded.allowances.extend(result.allowances.iter().cloned());
        }
        cache.files.insert(file, kept);
    }
    Ok(loaded)
}

/// Loads the parts not already cached, in parallel; every part's result, in order.
fn load_parts(parts: &[Part]) -> Vec<Arc<Loaded>> {
    // Small chunks, so that the threads stay busy to the end.
    let chunk = parts
        .len()
        .div_ceil(crate::config::parallel::threads() * 8)
        .max(1);
    let chunks: Vec<&[Part]> = parts.chunks(chunk).collect();
    let results: Vec<Vec<Arc<Loaded>>> = crate::config::parallel::map(&chunks, |chunk| {
        let mut loader = FileLoader {
            rules: Rules::default(),
            loaded: Loaded::default(),
        };
        chunk
            .iter()
            .map(|part| match &part.cached {
                Some(done) => Arc::clone(done),
                None => {
                    loader.load_part(&part.key);
                    Arc::new(std::mem::take(&mut loader.loaded))
                }
            })
            .collect()
    });
    results.into_iter().flatten().collect()
}

/// Loads documents from one text as if it were the file `shown` (used by tests and tools).
pub fn load_str(shown: &str, text: &str) -> Loaded {
    let mut loader = FileLoader {
        rules: Rules::default(),
        loaded: Loaded::default(),
    };
    loader.load_text(&Arc::from(shown), text);
    loader.loaded
}

#[cfg(test)]
mod tests;

/// Property tests on hostile input (`bash bench/fuzz.sh` runs them longer):
/// any text, and YAML-shaped text built from Envoy's own words, loads and
/// validates without a panic, and parses the same split into documents as whole.
#[cfg(test)]
mod fuzz;
