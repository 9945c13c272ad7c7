//! Config loading: walks `--dir`, parses every YAML/JSON file, recognises the
//! three document forms of the SPEC (bare `"@type"` resource, `kind`/`nodes`/
//! `spec` envelope, `DiscoveryResponse` with `resources:`) and decodes each
//! resource against the Envoy schema.

use crate::check::Rule;
use crate::config::constraints::Rules;
use crate::config::decode::Decoder;
use crate::config::diag::{Diagnostics, Location};
use crate::config::resource::Resource;
use crate::config::schema::{self, ResourceType};
use crate::config::selector::NodeSelector;
use crate::config::yaml::{self, Mark, Node, NodeKind};
use prost_reflect::{DynamicMessage, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// What reading files and recognising documents reports.
pub static RULES: &[&Rule] = &[
    &UNREADABLE_FILE,
    &YAML_SYNTAX,
    &DOCUMENT_FORM,
    &MISSING_NAME,
    &DERIVED_NAME,
];

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

/// YAML that does not parse.
pub static YAML_SYNTAX: Rule = Rule {
    id: "yaml-syntax",
    summary: "the YAML does not parse",
    explanation: "The file is not valid YAML (or JSON) at that place: a bad indentation, an unclosed quote or \
bracket, a tab used for indentation, or an alias bomb or nesting beyond xdsd's limits. Envoy's parser refuses \
the same text.",
    envoy: "source/common/protobuf/yaml_utility.cc",
    allowable: false,
    ..Rule::ERROR
};

/// A document of none of the three forms.
pub static DOCUMENT_FORM: Rule = Rule {
    id: "document-form",
    summary: "a document is not a resource, an envelope or a DiscoveryResponse",
    explanation: "Each YAML document in the directory is one of three forms: a bare resource with \
\"@type\"; an envelope with `kind`, optional `nodes` (cluster/id glob lists) and `spec`; or a \
DiscoveryResponse with `resources`. The message says which part of the form is wrong, for example an \
unknown `kind`, a `nodes` selector that is not a mapping of glob lists, or a type xdsd does not serve.",
    allowable: false,
    ..Rule::ERROR
};

/// A resource without the name xDS needs.
pub static MISSING_NAME: Rule = Rule {
    id: "missing-name",
    summary: "a resource served over xDS has no name",
    explanation: "Resources are served and referenced by name (`cluster_name` for a ClusterLoadAssignment). \
Give it one; a Listener without a name gets one derived from its address instead.",
    allowable: false,
    ..Rule::ERROR
};

/// A listener named from its address.
pub static DERIVED_NAME: Rule = Rule {
    id: "listener-name-derived",
    summary: "a listener has no name; xdsd derives one from its address",
    explanation: "Envoy needs a name for every listener it receives over LDS. xdsd derives a stable one from \
the address (`0.0.0.0_10000`) so that the listener can be served and diffed; write the name to choose it.",
    ..Rule::WARNING
};

const DISCOVERY_RESPONSE: &str = "envoy.service.discovery.v3.DiscoveryResponse";

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

fn read_text(path: &Path, limits: ReadLimits) -> Result<String, (Option<Mark>, String)> {
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

fn collect_files(
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

struct FileLoader {
    rules: Rules,
    loaded: Loaded,
}

impl FileLoader {
    fn load_part(&mut self, part: &PartKey) {
        self.load_documents(&part.file, &part.text, part.first_line);
    }

    fn load_text(&mut self, file: &Arc<str>, text: &str) {
        self.load_documents(file, text, 1);
    }

    fn load_documents(&mut self, file: &Arc<str>, text: &str, first_line: u32) {
        if let Some(allowance) =
            crate::check::policy::scan(file, text, first_line, &mut self.loaded.diagnostics)
        {
            self.loaded.allowances.push(allowance);
        }
        match yaml::parse_documents_at(text, yaml::NestingLimits::default(), first_line) {
            Ok(docs) => {
                for doc in docs {
                    self.document(file, Arc::new(doc));
                }
            }
            Err(e) => self.error(&YAML_SYNTAX, file, e.mark, format!("YAML: {}", e.message)),
        }
    }

    fn error(
        &mut self,
        rule: &'static Rule,
        file: &Arc<str>,
        mark: Mark,
        message: impl Into<String>,
    ) {
        self.loaded
            .diagnostics
            .report(rule, Location::at(file, mark), message);
    }

    fn document(&mut self, file: &Arc<str>, doc: Arc<Node>) {
        if doc.is_null() {
            return;
        }
        if doc.as_map().is_none() {
            self.error(
                &DOCUMENT_FORM,
                file,
                doc.mark,
                format!("a document must be a mapping, got {}", doc.shape()),
            );
            return;
        }
        let type_name = doc
            .get("@type")
            .and_then(Node::as_str)
            .map(|u| u.rsplit('/').next().unwrap_or(u).to_string());
        if doc.get("kind").is_some() {
            self.envelope(file, &doc);
        } else if doc.get("resources").is_some()
            && type_name.as_deref().is_none_or(|t| t == DISCOVERY_RESPONSE)
        {
            self.discovery_response(file, &doc);
        } else if doc.get("@type").is_some() {
            self.bare(file, doc, NodeSelector::default());
        } else {
            self.error(&DOCUMENT_FORM,
                file,
                doc.mark,
                "not an xdsd document: expected a resource with \"@type\", an envelope with `kind` and `spec`, or a DiscoveryResponse with `resources`",
            );
        }
    }

    fn bare(&mut self, file: &Arc<str>, node: Arc<Node>, selector: NodeSelector) {
        let Some(type_node) = node.get("@type") else {
            self.error(
                &DOCUMENT_FORM,
                file,
                node.mark,
                "a resource needs \"@type\"",
            );
            return;
        };
        let Some(url) = type_node.as_str() else {
            self.error(
                &DOCUMENT_FORM,
                file,
                type_node.mark,
                "\"@type\" must be a string",
            );
            return;
        };
        let Some(desc) = schema::message_by_type_url(url) else {
            self.error(
                &crate::config::decode::UNKNOWN_TYPE_URL,
                file,
                type_node.mark,
                format!("unknown type URL `{url}`"),
            );
            return;
        };
        let Some(rtype) = ResourceType::from_message_name(desc.full_name()) else {
            let served: Vec<&str> = ResourceType::ALL.iter().map(|t| t.kind_name()).collect();
            self.error(
                &DOCUMENT_FORM,
                file,
                type_node.mark,
                format!(
                    "`{}` is not a resource type xdsd serves ({})",
                    desc.full_name(),
                    served.join(", ")
                ),
            );
            return;
        };
        self.resource(file, rtype, node, selector);
    }

    fn envelope(&mut self, file: &Arc<str>, doc: &Node) {
        for (key, _) in doc.as_map().unwrap_or(&[]) {
            if !matches!(key.as_str(), Some("kind" | "nodes" | "spec")) {
                self.error(
                    &DOCUMENT_FORM,
                    file,
                    key.mark,
                    format!(
                        "unknown envelope field `{}` (expected kind, nodes, spec)",
                        key.as_str().unwrap_or("?")
                    ),
                );
            }
        }
        let kind_node = doc.get("kind");
        let Some(rtype) = kind_node
            .and_then(Node::as_str)
            .and_then(ResourceType::from_kind)
        else {
            let mark = kind_node.map_or(doc.mark, |n| n.mark);
            let kinds: Vec<&str> = ResourceType::ALL.iter().map(|t| t.kind_name()).collect();
            self.error(
                &DOCUMENT_FORM,
                file,
                mark,
                format!(
                    "unknown kind; expected one of {}, Endpoints, Route",
                    kinds.join(", ")
                ),
            );
            return;
        };
        let selector = match doc.get("nodes") {
            Some(nodes) => match self.selector(file, nodes) {
                Some(s) => s,
                None => return,
            },
            None => NodeSelector::default(),
        };
        let Some(spec) = doc.get("spec") else {
            self.error(&DOCUMENT_FORM, file, doc.mark, "an envelope needs `spec`");
            return;
        };
        if let Some(t) = spec.get("@type") {
            let url = t.as_str().unwrap_or("");
            if schema::message_by_type_url(url)
                .is_none_or(|d| d.full_name() != rtype.message_name())
            {
                self.error(
                    &DOCUMENT_FORM,
                    file,
                    t.mark,
                    format!(
                        "\"@type\" `{url}` does not match kind {}",
                        rtype.kind_name()
                    ),
                );
                return;
            }
        }
        self.resource(file, rtype, Arc::new(spec.clone()), selector);
    }

    fn selector(&mut self, file: &Arc<str>, nodes: &Node) -> Option<NodeSelector> {
        let Some(entries) = nodes.as_map() else {
            self.error(
                &DOCUMENT_FORM,
                file,
                nodes.mark,
                "`nodes` must be a mapping with `cluster` and/or `id` lists",
            );
            return None;
        };
        let mut selector = NodeSelector::default();
        for (key, value) in entries {
            let list = match key.as_str() {
                Some("cluster") => &mut selector.cluster,
                Some("id") => &mut selector.id,
                _ => {
                    self.error(
                        &DOCUMENT_FORM,
                        file,
                        key.mark,
                        "unknown `nodes` field (expected cluster, id)",
                    );
                    return None;
                }
            };
            let NodeKind::Seq(items) = &value.kind else {
                self.error(&DOCUMENT_FORM, file, value.mark, "expected a list of globs");
                return None;
            };
            for item in items {
                match item.as_scalar() {
                    Some(s) => list.push(s.text.clone()),
                    None => {
                        self.error(&DOCUMENT_FORM, file, item.mark, "a glob must be a string");
                        return None;
                    }
                }
            }
        }
        Some(selector)
    }

    fn discovery_response(&mut self, file: &Arc<str>, doc: &Node) {
        for (key, _) in doc.as_map().unwrap_or(&[]) {
            let known = [
                "@type",
                "version_info",
                "versionInfo",
                "resources",
                "type_url",
                "typeUrl",
                "nonce",
                "canary",
                "control_plane",
                "controlPlane",
            ];
            if !key.as_str().is_some_and(|k| known.contains(&k)) {
                self.error(
                    &DOCUMENT_FORM,
                    file,
                    key.mark,
                    format!(
                        "unknown DiscoveryResponse field `{}`",
                        key.as_str().unwrap_or("?")
                    ),
                );
            }
        }
        let Some(resources) = doc.get("resources") else {
            return;
        };
        let NodeKind::Seq(items) = &resources.kind else {
            self.error(
                &DOCUMENT_FORM,
                file,
                resources.mark,
                "`resources` must be a list",
            );
            return;
        };
        for item in items {
            self.bare(file, Arc::new(item.clone()), NodeSelector::default());
        }
    }

    fn resource(
        &mut self,
        file: &Arc<str>,
        rtype: ResourceType,
        node: Arc<Node>,
        selector: NodeSelector,
    ) {
        let desc = rtype.descriptor();
        let mut message = {
            let mut decoder = Decoder::new(
                Arc::clone(file),
                &mut self.loaded.diagnostics,
                &mut self.rules,
            );
            decoder.message(&desc, &node, &["@type"])
        };
        let mut name = message
            .get_field_by_name(rtype.name_field())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if name.is_empty()
            && rtype == ResourceType::Listener
            && let Some(derived) = listener_name_from_address(&message)
        {
            self.loaded.diagnostics.report(
                &DERIVED_NAME,
                Location::at(file, node.mark),
                format!("listener has no `name`; xdsd names it `{derived}` from its address"),
            );
            message.set_field_by_name("name", Value::String(derived.clone()));
            name = derived;
        }
        // A name written empty breaks the schema's own rule where it has
        // one (min_len), reported there already.
        let written_empty_with_rule = node.get(rtype.name_field()).is_some_and(|n| {
            self.loaded.diagnostics.iter().any(|d| {
                d.location.mark == Some(n.mark)
                    && d.rule == crate::config::constraints::CONSTRAINT.id
            })
        });
        if name.is_empty() && !written_empty_with_rule {
            self.error(
                &MISSING_NAME,
                file,
                node.mark,
                format!(
                    "a {} served over xDS needs a `{}`",
                    rtype.kind_name(),
                    rtype.name_field()
                ),
            );
        }
        self.loaded.resources.push(Resource {
            rtype,
            name,
            selector,
            message: Arc::new(message),
            file: Arc::clone(file),
            source: node,
        });
    }
}

/// `0.0.0.0_10000` for a socket address, the path for a pipe.
fn listener_name_from_address(listener: &DynamicMessage) -> Option<String> {
    let address = listener.get_field_by_name("address")?;
    let address = address.as_message()?;
    if let Some(sa) = address
        .get_field_by_name("socket_address")
        .filter(|_| address.has_field_by_name("socket_address"))
    {
        let sa = sa.as_message()?;
        let host = sa.get_field_by_name("address")?.as_str()?.to_string();
        let port = sa.get_field_by_name("port_value")?.as_u32()?;
        return Some(format!("{host}_{port}"));
    }
    let pipe = address
        .get_field_by_name("pipe")
        .filter(|_| address.has_field_by_name("pipe"))?;
    Some(
        pipe.as_message()?
            .get_field_by_name("path")?
            .as_str()?
            .to_string(),
    )
}

#[cfg(test)]
mod tests;

/// Property tests on hostile input (`bash bench/fuzz.sh` runs them longer):
/// any text, and YAML-shaped text built from Envoy's own words, loads and
/// validates without a panic, and parses the same split into documents as whole.
#[cfg(test)]
mod fuzz;
