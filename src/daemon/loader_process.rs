//! Loading in a child process: `serve` never parses a config file itself.
//!
//! Why a process and not a thread:
//! * containment: whatever a file does to the parser (exhausts memory,
//!   overflows the stack, never ends) ends the child, which has an
//!   address-space limit and a deadline; the daemon keeps serving its last
//!   good set and reports why the load failed;
//! * memory: the decoded Envoy schema (~17 MB) and the parse of the whole
//!   set live in the child, which exits when no change came for a while, so
//!   an idle daemon holds little more than the encoded snapshot. The
//!   allocator would not give that memory back to the system otherwise.
//!
//! The child is the same executable (`/proc/self/exe`, so an upgrade that
//! replaces the file on disk cannot pair a daemon with a newer loader),
//! started with [`CHILD_ARGV0`] as its name, which `main` checks before the
//! command line is parsed: it is no subcommand a user could type. Protocol: the parent writes one byte per
//! load; the child answers each with one frame on stdout (8-byte
//! little-endian length, then a protobuf [`Reply`]). EOF on stdin ends it.

use crate::check::validate::Settings;
use crate::config::diag::Severity;
use crate::config::resource::Resource;
use crate::config::schema::{self, ResourceType};
use crate::config::selector::NodeSelector;
use crate::xds::messages::SharedAny;
use crate::xds::snapshot::{Entry, Snapshot};
use bytes::Bytes;
use prost::Message;
use prost_reflect::DynamicMessage;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a load may use before the child is stopped.
#[derive(Clone, Copy, Debug)]
pub struct ProcessLimits {
    /// Address-space limit of the child, in bytes (`None`: unlimited).
    pub memory_bytes: Option<u64>,
    /// Longest a load may take.
    pub timeout: Duration,
    /// What the child may read.
    pub files: crate::config::loader::ReadLimits,
}

/// A validated set, as the child loaded it.
#[derive(Debug)]
pub struct LoadedSet {
    /// Ready to serve.
    pub snapshot: Snapshot,
    /// Located warnings, one line each.
    pub warnings: Vec<String>,
}

/// The parent's handle on the loader process; starts it on demand.
pub struct LoaderProcess {
    dir: PathBuf,
    limits: ProcessLimits,
    settings: Settings,
    child: Option<Child>,
}

struct Child {
    process: tokio::process::Child,
    requests: tokio::process::ChildStdin,
    replies: tokio::process::ChildStdout,
}

/// The executable the child runs: this very image, even when the file on
/// disk was replaced since the daemon started.
const SELF_EXE: &str = "/proc/self/exe";

/// The program name the child is started with:
/// `xdsd-loader DIR MAX_FILE_BYTES [MEMORY_LIMIT_BYTES]`.
pub const CHILD_ARGV0: &str = "xdsd-loader";

/// The environment variable that hands the child the check settings
/// (known clusters, allowed and denied rules), as JSON.
const SETTINGS_ENV: &str = "XDSD_LOADER_SETTINGS";

fn settings_to_env(settings: &Settings) -> String {
    let (allow, deny) = settings.policy.ids();
    serde_json::json!({
        "known_clusters": settings.known_clusters,
        "allow": allow,
        "deny": deny,
        "envoy": settings.envoy,
    })
    .to_string()
}

/// The settings the parent handed over; they were checked there, so a
/// failure here means a mismatched executable, reported with the reply.
fn settings_from_env() -> Result<Settings, String> {
    let Some(text) = std::env::var_os(SETTINGS_ENV) else {
        return Ok(Settings::default());
    };
    let value: serde_json::Value = serde_json::from_str(&text.to_string_lossy())
        .map_err(|e| format!("{SETTINGS_ENV}: {e}"))?;
    let strings = |key: &str| -> Vec<String> {
        value[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Settings {
        known_clusters: strings("known_clusters").into_iter().collect(),
        policy: crate::check::policy::Policy::new(&strings("allow"), &strings("deny"))?,
        envoy: value["envoy"].as_str().map(PathBuf::from),
    })
}

/// The most a child's stderr contributes to an error message.
const STDERR_TAIL: usize = 2048;

impl LoaderProcess {
    /// A loader for `dir`, checking with `settings`; no process is started yet.
    pub fn new(dir: PathBuf, limits: ProcessLimits, settings: Settings) -> LoaderProcess {
        LoaderProcess {
            dir,
            limits,
            settings,
            child: None,
        }
    }

    /// The directory it loads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True while a child is running (and holding the schema).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the child if it is not running, so that it decodes the schema
    /// while the watcher is still waiting for a burst of edits to end.
    pub fn start(&mut self) -> Result<(), String> {
        if self.child.is_none() {
            self.child = Some(self.spawn()?);
        }
        Ok(())
    }

    /// Stops the child (it exits on EOF; it is killed if it does not).
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// Loads and validates the directory. The error lists every problem,
    /// one located line each, or says why the child gave no answer.
    pub async fn load(&mut self) -> Result<LoadedSet, Vec<String>> {
        self.start().map_err(|e| vec![e])?;
        let timeout = self.limits.timeout;
        let exchanged = match self.child.as_mut() {
            Some(child) => tokio::time::timeout(timeout, child.exchange()).await,
            None => return Err(vec!["the loader process is not running".into()]),
        };
        let reply = match exchanged {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(vec![self.failure(&e).await]),
            Err(_) => {
                self.stop();
                return Err(vec![format!(
                    "{}: loading took longer than {} s (--load-timeout-secs) and was stopped",
                    self.dir.display(),
                    timeout.as_secs()
                )]);
            }
        };
        reply.into_loaded()
    }

    fn spawn(&self) -> Result<Child, String> {
        let mut command = tokio::process::Command::new(SELF_EXE);
        command
            .arg0(CHILD_ARGV0)
            .arg(&self.dir)
            .arg(self.limits.files.max_file_bytes.to_string())
            .env(SETTINGS_ENV, settings_to_env(&self.settings))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(bytes) = self.limits.memory_bytes {
            command.arg(bytes.to_string());
        }
        let mut process = command
            .spawn()
            .map_err(|e| format!("cannot start the loader process: {e}"))?;
        match (process.stdin.take(), process.stdout.take()) {
            (Some(requests), Some(replies)) => Ok(Child {
                process,
                requests,
                replies,
            }),
            _ => Err("the loader process has no pipes".into()),
        }
    }

    /// Why the exchange failed: the child's exit status and its last words.
    async fn failure(&mut self, error: &std::io::Error) -> String {
        let Some(mut child) = self.child.take() else {
            return format!("loader process: {error}");
        };
        let status = child.process.wait().await;
        let mut said = String::new();
        if let Some(stderr) = child.process.stderr.take() {
            let mut tail = Vec::new();
            let _ = stderr.take(64 * 1024).read_to_end(&mut tail).await;
            let text = String::from_utf8_lossy(&tail);
            let text = text.trim();
            let start = text.len().saturating_sub(STDERR_TAIL);
            let start = (start..text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            said = text[start..].replace('\n', " | ");
        }
        let status = match status {
            Ok(status) => describe_exit(status),
            Err(e) => format!("status unknown: {e}"),
        };
        let hint = if said.contains("memory allocation") {
            format!(" {}", crate::config::loader::RAISE_MEMORY_LIMIT)
        } else {
            String::new()
        };
        format!(
            "{}: the loader process stopped without an answer ({status}){}{hint}",
            self.dir.display(),
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        )
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                _ => "",
            };
            format!("killed by signal {signal}{name}")
        }
        _ => status.to_string(),
    }
}

impl Child {
    async fn exchange(&mut self) -> std::io::Result<Reply> {
        self.requests.write_all(b"L").await?;
        self.requests.flush().await?;
        let mut length = [0u8; 8];
        self.replies.read_exact(&mut length).await?;
        let length = usize::try_from(u64::from_le_bytes(length))
            .map_err(|_| std::io::Error::other("reply too large"))?;
        let mut frame = vec![0u8; length];
        self.replies.read_exact(&mut frame).await?;
        Reply::decode(Bytes::from(frame)).map_err(std::io::Error::other)
    }
}

/// One load's answer, as it crosses the pipe.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reply {
    /// Located errors; when there are any, `entries` is empty.
    #[prost(string, repeated, tag = "1")]
    pub errors: Vec<String>,
    /// Located warnings.
    #[prost(string, repeated, tag = "2")]
    pub warnings: Vec<String>,
    /// The encoded set.
    #[prost(message, repeated, tag = "3")]
    pub entries: Vec<WireEntry>,
}

/// A [`Entry`] on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireEntry {
    /// The resource's type URL.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// Its name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Its content hash.
    #[prost(string, tag = "3")]
    pub version: String,
    /// `nodes.cluster` globs.
    #[prost(string, repeated, tag = "4")]
    pub node_clusters: Vec<String>,
    /// `nodes.id` globs.
    #[prost(string, repeated, tag = "5")]
    pub node_ids: Vec<String>,
    /// The encoded resource.
    #[prost(bytes = "bytes", tag = "6")]
    pub value: Bytes,
    /// The ClusterLoadAssignment an EDS cluster warms with.
    #[prost(string, optional, tag = "7")]
    pub warms_with: Option<String>,
}

impl Reply {
    /// The reply for a set of encoded entries.
    pub fn from_entries(entries: &[Arc<Entry>], warnings: Vec<String>) -> Reply {
        Reply {
            errors: Vec::new(),
            warnings,
            entries: entries.iter().map(|e| WireEntry::from(&**e)).collect(),
        }
    }

    /// The snapshot, or the errors.
    pub fn into_loaded(self) -> Result<LoadedSet, Vec<String>> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        let entries = self
            .entries
            .into_iter()
            .map(|e| e.into_entry().map(Arc::new))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| vec![e])?;
        Ok(LoadedSet {
            snapshot: Snapshot::from_entries(entries),
            warnings: self.warnings,
        })
    }
}

impl From<&Entry> for WireEntry {
    fn from(e: &Entry) -> WireEntry {
        WireEntry {
            type_url: e.any.type_url.clone(),
            name: e.name.clone(),
            version: e.version.clone(),
            node_clusters: e.selector.cluster.clone(),
            node_ids: e.selector.id.clone(),
            value: e.any.value.clone(),
            warms_with: e.warms_with.clone(),
        }
    }
}

impl WireEntry {
    fn into_entry(self) -> Result<Entry, String> {
        let message = self
            .type_url
            .strip_prefix(schema::TYPE_URL_PREFIX)
            .unwrap_or(&self.type_url);
        let rtype = ResourceType::from_message_name(message)
            .ok_or_else(|| format!("loader process sent an unknown type {}", self.type_url))?;
        Ok(Entry {
            rtype,
            name: self.name,
            version: self.version,
            selector: NodeSelector {
                cluster: self.node_clusters,
                id: self.node_ids,
            },
            any: SharedAny {
                type_url: self.type_url,
                value: self.value,
            },
            warms_with: self.warms_with,
        })
    }
}

/// What a loader keeps from one load to the next: the documents as loaded,
/// and each resource's encoding (known by its decoded message, which an
/// unchanged document hands back as the same shared value).
#[derive(Default)]
pub struct LoadCache {
    /// What may be read.
    pub files: crate::config::loader::ReadLimits,
    /// Known clusters and the rule policy.
    pub settings: Settings,
    /// The referee Envoy of `--envoy-validate`, once asked for its version.
    referee: Option<crate::check::referee::Referee>,
    caches: crate::check::validate::LoadCaches,
    encoded: HashMap<usize, (Arc<DynamicMessage>, Arc<Entry>)>,
}

impl LoadCache {
    /// With `--envoy-validate`, has that Envoy validate the set's node
    /// views. Envoy reserves more address space than a load may use, so the
    /// limit is lifted while it runs (soft limit raised to the hard one,
    /// which stays unlimited) and set again after.
    fn referee_check(
        &mut self,
        checked: &mut crate::check::validate::Checked,
    ) -> Result<(), String> {
        let Some(envoy) = self.settings.envoy.clone() else {
            return Ok(());
        };
        if !checked.diagnostics.is_ok() {
            return Ok(());
        }
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::AS).unwrap_or((u64::MAX, u64::MAX));
        let lifted = soft != hard && rlimit::setrlimit(rlimit::Resource::AS, hard, hard).is_ok();
        let result = match &self.referee {
            Some(referee) => Ok(referee),
            None => {
                crate::check::referee::Referee::new(&envoy, None).map(|r| &*self.referee.insert(r))
            }
        }
        .map(|referee| checked.referee(referee, &self.settings));
        if lifted {
            let _ = rlimit::setrlimit(rlimit::Resource::AS, soft, hard);
        }
        result
    }

    fn encode(&self, r: &Resource) -> Arc<Entry> {
        let key = Arc::as_ptr(&r.message) as usize;
        match self.encoded.get(&key) {
            Some((_, e)) if e.rtype == r.rtype && e.name == r.name && e.selector == r.selector => {
                Arc::clone(e)
            }
            _ => Arc::new(Entry::encode(r)),
        }
    }

    /// Keeps exactly this load's encodings (the map holds each message, so
    /// its address cannot be reused while it is a key).
    fn keep(&mut self, resources: &[Resource], entries: &[Arc<Entry>]) {
        self.encoded = resources
            .iter()
            .zip(entries)
            .map(|(r, e)| {
                let key = Arc::as_ptr(&r.message) as usize;
                (key, (Arc::clone(&r.message), Arc::clone(e)))
            })
            .collect();
    }
}

/// Loads `dir` in this process: errors and warnings as located lines, and
/// the encoded set when there are no errors. `cache` carries what an
/// earlier load of the same process can share with this one.
pub fn load_here(dir: &Path, cache: &mut LoadCache) -> Reply {
    let mut checked = match crate::check::validate::check_dir_cached(
        dir,
        cache.files,
        &cache.settings,
        &mut cache.caches,
    ) {
        Ok(checked) => checked,
        Err(e) => {
            return Reply {
                errors: vec![e.to_string()],
                ..Reply::default()
            };
        }
    };
    if let Err(e) = cache.referee_check(&mut checked) {
        return Reply {
            errors: vec![e],
            ..Reply::default()
        };
    }
    let lines = |severity: Severity| -> Vec<String> {
        checked
            .diagnostics
            .sorted()
            .iter()
            .filter(|d| d.severity == severity)
            .map(ToString::to_string)
            .collect()
    };
    let warnings = lines(Severity::Warning);
    if !checked.diagnostics.is_ok() {
        return Reply {
            errors: lines(Severity::Error),
            warnings,
            entries: Vec::new(),
        };
    }
    let entries = crate::config::parallel::map(&checked.resources, |r| cache.encode(r));
    cache.keep(&checked.resources, &entries);
    Reply::from_entries(&entries, warnings)
}

/// When this process is a loader child, runs it and returns its exit status.
pub fn run_if_child() -> Option<ExitCode> {
    let mut args = std::env::args_os();
    let name = args.next()?;
    if name != CHILD_ARGV0 {
        return None;
    }
    let dir = PathBuf::from(args.next()?);
    let mut number = || args.next().and_then(|n| n.to_str()?.parse::<u64>().ok());
    let files = crate::config::loader::ReadLimits {
        max_file_bytes: number()?,
    };
    let memory = number();
    Some(run_child(&dir, files, memory))
}

/// The child's main loop: one reply per request byte until stdin ends.
fn run_child(
    dir: &Path,
    files: crate::config::loader::ReadLimits,
    memory_limit_bytes: Option<u64>,
) -> ExitCode {
    // Said once, with the first reply: a load without its limit still loads.
    // Only the soft limit: the referee Envoy (--envoy-validate) runs with it lifted.
    let hard = rlimit::getrlimit(rlimit::Resource::AS).map_or(u64::MAX, |(_, hard)| hard);
    let mut notes: Vec<String> = memory_limit_bytes
        .and_then(|bytes| rlimit::setrlimit(rlimit::Resource::AS, bytes.min(hard), hard).err())
        .map(|e| format!("the loader runs without its memory limit: {e}"))
        .into_iter()
        .collect();
    let settings = settings_from_env().unwrap_or_else(|e| {
        notes.push(format!("the loader ignores its check settings: {e}"));
        Settings::default()
    });
    // Decoded now, while the parent's watcher waits for the edits to settle.
    drop(schema::pool());
    let mut requests = std::io::stdin().lock();
    let mut replies = std::io::stdout().lock();
    let mut request = [0u8; 1];
    let mut cache = LoadCache {
        files,
        settings,
        ..LoadCache::default()
    };
    loop {
        match requests.read(&mut request) {
            Ok(0) | Err(_) => return ExitCode::SUCCESS,
            Ok(_) => {}
        }
        let mut reply = load_here(dir, &mut cache);
        reply.warnings.append(&mut notes);
        let frame = reply.encode_to_vec();
        let length = (frame.len() as u64).to_le_bytes();
        let written = replies
            .write_all(&length)
            .and_then(|()| replies.write_all(&frame))
            .and_then(|()| replies.flush());
        if written.is_err() {
            return ExitCode::FAILURE;
        }
    }
}
