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
/// text changed. Validation still covers the whole set every time. A
/// document is known by its file, first line and exact text.
#[derive(Default)]
pub struct DocumentCache {
    parts: std::collections::HashMap<PartKey, Arc<Loaded>>,
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

/// [`load_dir`], reusing and then refreshing `cache`: afterwards it holds
/// exactly the documents of this load.
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
    let mut parts = Vec::new();
    for (file, text) in texts {
        let text = match text {
            Ok(text) => text,
            Err((mark, message)) => {
                diagnostics.report(&UNREADABLE_FILE, Location { file, mark }, message);
                continue;
            }
        };
        for (first_line, part) in yaml::split_documents(&text) {
            let key = PartKey {
                file: Arc::clone(&file),
                first_line,
                text: part.to_string(),
            };
            let cached = cache.parts.get(&key).cloned();
            parts.push(Part { key, cached });
        }
    }
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
    let mut loaded = Loaded {
        diagnostics,
        ..Loaded::default()
    };
    let mut kept = std::collections::HashMap::with_capacity(parts.len());
    for (part, result) in parts.into_iter().zip(results.into_iter().flatten()) {
        loaded.resources.extend(result.resources.iter().cloned());
        loaded.diagnostics.extend(result.diagnostics.clone());
        loaded.allowances.extend(result.allowances.iter().cloned());
        kept.insert(part.key, result);
    }
    cache.parts = kept;
    Ok(loaded)
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
