//! Every flag of the `xdsd` command line, defined once (clap derive): help,
//! the man pages and the shell completions are generated from these types.

use crate::check::validate::{self};
use crate::config::diag::{self};
use crate::config::render;
use crate::config::schema::ResourceType;
use crate::config::selector::NodeIdentity;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// A file-driven xDS control plane for Envoy and proxyless gRPC.
///
/// xdsd reads a directory of Envoy v3 resources written as YAML (or JSON),
/// validates the whole set the way Envoy would, and serves it over the xDS
/// Aggregated Discovery Service. The offline subcommands check and review a
/// directory before it ships.
#[derive(Debug, Parser)]
#[command(name = "xdsd", version, propagate_version = true, after_long_help = NOTES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Choices the product contract leaves open, as `--help` and the man page state them.
const NOTES: &str = "\
Config files: every *.yaml, *.yml and *.json below --dir; names starting with `.` are skipped. \
A document is a bare resource with \"@type\", an envelope (kind, nodes, spec), or a \
DiscoveryResponse with `resources:`.

YAML is read as Envoy reads it: an unquoted 123, yes, on or true is a number or a bool, never \
a string, so `name: yes` is an error (quote it); 1.5 and 12345678901 stay strings; a single value \
where a list is expected is accepted as a one-item list (with a warning).

Extensions: a typed_config whose type is in a package xdsd's Envoy schema lacks entirely is a \
warning and is served as a TypedStruct, for Envoy to check; a misspelled message name in a known \
package is an error. Inside work-in-progress Envoy APIs, unknown fields and enum names are \
warnings (the Envoy you run may be newer); what Envoy 1.40's schema forbids there (validate.rules \
constraints, empty enum names) stays an error.

References must be visible to every node that sees the referrer: a target without `nodes` \
covers everyone; otherwise each pair of a `cluster` glob and an `id` glob of the referrer must \
lie within the globs of one target. A missing cluster is an error wherever Envoy resolves one by name, tcp_proxy included \
(Envoy loads it but fails every connection); clusters of the proxies' own bootstrap are declared \
with --known-cluster.

Rules: every finding names its rule (`[rule-id]` at the end of the line); `xdsd lint --explain` \
lists them. --allow RULE drops a rule's findings, --deny RULE makes them errors, and a comment \
`# xdsd: allow(RULE, ...)` in a resource's YAML document allows it for that document; syntax and \
schema errors cannot be allowed. lint --envoy and serve --envoy-validate also have a real Envoy \
validate each node view (`envoy --mode validate` on a static bootstrap) and report its rejections \
at the resource responsible.

serve never replaces a non-empty set with an empty one (a directory caught empty while it is \
re-created or checked out would otherwise drop every listener); it logs the refusal and shows \
it in /status. serve reads and validates every change in a child process (the same executable, \
shown as xdsd-loader) limited by --load-memory-limit-mb and --load-timeout-secs: a file that \
exhausts either gets the load rejected with the reason, and the daemon keeps serving. The \
child exits 10 s after the last change, which keeps an idle daemon small.

Admin API (--admin, plain HTTP/1.1, GET and HEAD only, no authentication: keep it on loopback; \
another address is warned about): /healthz, /readyz, /metrics (Prometheus, xdsd_*), /clients (per \
stream and type: sent and ACKed versions, the last NACK's text), /status (served version, last \
load and its located errors, listeners), /config?node_id=ID&node_cluster=C (what `render` prints \
for that node, from the served set, secrets redacted). A request head over 16 KiB is answered 431. CSDS is served on \
the xDS port; its node matchers match node ids only.

When the process runs out of descriptors or memory, accepting connections pauses (5 ms, doubling \
up to 1 s) instead of retrying at once; connections wait in the kernel's queue meanwhile. Each \
burst of such errors is logged once when it starts and once when it ends (5 s without one), is \
counted in xdsd_accept_errors_total, and shows in xdsd_listener_saturated and /status.

Secrets (fields Envoy marks sensitive: private keys, session ticket keys, HMAC and generic secrets) \
are shown as [redacted] by CSDS, /config, status, diff and in diagnostics and logs; render keeps \
them unless given --redact.

--authorize-node compares the filled-in template with the certificate's DNS and URI SANs and \
subject CNs for equality (no wildcards); it holds on every service of the xDS port, CSDS \
included (a caller sees only the nodes it proves; an --admin-identity sees all). The --tls-* files \
are re-read when their directories change and on SIGHUP: a new pair that loads serves every new \
connection (open ones keep theirs); one that does not (unparseable, or a key of another \
certificate) is logged, shown in /status and counted (xdsd_tls_reloads_total), and the previous \
pair stays. systemd: Type=notify gets READY=1 after the first valid load, STATUS= after each \
reload, WATCHDOG=1 at half of WatchdogSec=, STOPPING=1 on SIGTERM; SIGHUP reloads the directory \
and re-reads the TLS files (no RELOADING=1 is sent; serving never pauses).

Exit status: 0 success; 1 errors found (lint, render) or differences (diff), or serve could not \
start; 2 could not run (bad flags; status: the daemon could not be reached).";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a config directory over xDS (ADS), reloading it when it changes.
    ///
    /// Validates the whole directory and serves it to Envoy and proxyless
    /// gRPC clients over the Aggregated Discovery Service. Changes are applied
    /// all or nothing: a set with any error is logged and never served; the
    /// last good set stays. Exits 0 at once after SIGTERM/SIGINT (the
    /// connections close; clients reconnect with their own backoff),
    /// non-zero at once when it cannot start (bad flags, address in use,
    /// unreadable directory, invalid initial set). It listens before the
    /// first load, with the system's largest backlog, so a fleet
    /// reconnecting after a restart waits in the listen queue instead of
    /// being refused. SIGHUP forces a reload, and a re-read of the TLS files.
    Serve(Box<ServeArgs>),
    /// Show which client has which config: a running daemon's clients, per type.
    ///
    /// Reads the admin API of a running `xdsd serve` (`/status` and
    /// `/clients`) and prints the served version and one line per connected
    /// stream: node id, node cluster, stream kind, and per type SYNCED (the
    /// last response was ACKed), STALE (not answered yet), NACKED (refused)
    /// or `-` (not subscribed), then the text of every NACK. With --xds, asks
    /// CSDS on the xDS port instead (over TLS or mTLS), one line per node.
    /// Exit status 0 when the daemon answered, 2 when it could not be reached.
    Status(StatusArgs),
    /// List the past good sets a state directory keeps, newest first.
    ///
    /// Reads `--state-dir`'s `history/` folder (written by `xdsd serve
    /// --state-dir DIR`, the last `--history N` sets): one line per set with
    /// its version, when it was saved (UTC), its resources per type and
    /// what changed from the set before it. Exit status 0, 2 when the
    /// directory or a summary cannot be read.
    History(HistoryArgs),
    /// Print a client bootstrap that points at a running xdsd.
    ///
    /// `--format envoy` prints an Envoy bootstrap (YAML) that gets everything
    /// over ADS, with the node id and cluster and an admin endpoint on
    /// 127.0.0.1; `--format grpc` prints a GRPC_XDS_BOOTSTRAP file (JSON) for
    /// proxyless gRPC clients resolving `xds:///NAME` and for xDS-enabled
    /// gRPC servers, which ask for the Listener
    /// `grpc/server?xds.resource.listening_address=IP:PORT`. Both carry
    /// `node.locality` (grpc-js-xds requires it).
    Bootstrap(BootstrapArgs),
    /// Check a config directory and report every problem with its location.
    ///
    /// Prints `path:line:column: error: message [rule-id]` (or warning) for
    /// every finding. Exit status: 0 when there are no errors, 1 when there
    /// are, 2 when lint could not run (missing directory, bad flags, an
    /// unknown rule, an Envoy that cannot run).
    Lint(LintArgs),
    /// Print the resources one node is served, as typed Envoy resources.
    ///
    /// The output is itself a valid config directory file. Without node
    /// flags, prints what a node matching no selector gets (the resources
    /// without `nodes`).
    Render(RenderArgs),
    /// Compare two config directories resource by resource.
    ///
    /// Lists added (+), removed (-) and changed (~) resources per type, with
    /// the fields that changed. Exit status as diff(1): 0 same, 1 different,
    /// 2 error (including an invalid directory).
    Diff(DiffArgs),
}

/// The config directory.
#[derive(Debug, Args)]
pub struct DirArg {
    /// Directory of *.yaml, *.yml and *.json resource files, read recursively.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub limits: FileLimitArg,
}

/// How large a config file may be.
#[derive(Debug, Args)]
pub struct FileLimitArg {
    /// Largest config file read, in MiB; a larger file is an error at that
    /// file (and, for serve, the whole change is rejected).
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub max_file_mb: u64,
}

impl FileLimitArg {
    /// As the loader takes it.
    pub fn limits(&self) -> crate::config::loader::ReadLimits {
        crate::config::loader::ReadLimits {
            max_file_bytes: self.max_file_mb.saturating_mul(1024 * 1024),
        }
    }
}

/// Which rules apply, and which clusters the proxies define themselves.
#[derive(Debug, Args, Default)]
pub struct CheckArgs {
    /// Drop the findings of this rule (repeatable); `xdsd lint --explain`
    /// lists the rules. Syntax and schema errors cannot be allowed.
    #[arg(long, value_name = "RULE")]
    pub allow: Vec<String>,
    /// Make the findings of this rule errors (repeatable).
    #[arg(long, value_name = "RULE")]
    pub deny: Vec<String>,
    /// A cluster defined in the proxies' own bootstrap, not in --dir
    /// (repeatable): references to it are satisfied.
    #[arg(long, value_name = "NAME")]
    pub known_cluster: Vec<String>,
    /// A file naming such clusters, one per line (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    pub known_clusters_file: Option<PathBuf>,
}

impl CheckArgs {
    /// The settings every check of this run uses.
    pub fn settings(&self) -> Result<validate::Settings, String> {
        let mut known_clusters: std::collections::BTreeSet<String> =
            self.known_cluster.iter().cloned().collect();
        if let Some(file) = &self.known_clusters_file {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            known_clusters.extend(
                text.lines()
                    .map(|l| l.split('#').next().unwrap_or_default().trim())
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            );
        }
        Ok(validate::Settings {
            known_clusters,
            policy: crate::check::policy::Policy::new(&self.allow, &self.deny)?,
            envoy: None,
        })
    }
}

/// Which node's view to use.
#[derive(Debug, Args, Default)]
pub struct NodeArgs {
    /// The node's `node.id`, matched against `nodes.id` selectors.
    #[arg(long, value_name = "ID", default_value = "")]
    pub node_id: String,
    /// The node's `node.cluster`, matched against `nodes.cluster` selectors.
    #[arg(long, value_name = "CLUSTER", default_value = "")]
    pub node_cluster: String,
}

impl NodeArgs {
    pub(super) fn identity(&self) -> NodeIdentity {
        NodeIdentity {
            id: self.node_id.clone(),
            cluster: self.node_cluster.clone(),
        }
    }
}

/// The admin endpoint's address.
#[derive(Debug, Args)]
pub struct AdminArg {
    /// Address of the admin HTTP endpoint (/healthz, /readyz, /metrics, /clients, /status, /config).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:18001")]
    pub admin: std::net::SocketAddr,
}

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub(super) dir: DirArg,
    #[command(flatten)]
    pub(super) checks: CheckArgs,
    /// Have this Envoy validate every node view of each candidate set
    /// (`envoy --mode validate`) before it is served; a rejection keeps the
    /// last good set, like any invalid set.
    #[arg(long, value_name = "PATH")]
    pub(super) envoy_validate: Option<PathBuf>,
    /// Address for gRPC xDS.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:18000")]
    pub(super) listen: std::net::SocketAddr,
    #[command(flatten)]
    pub(super) admin: AdminArg,
    /// Seconds an admin client has to send a request head, also the next
    /// one on a kept-alive connection (so an idle connection is closed after
    /// this long), and that a write to it may stay stuck.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) admin_timeout_secs: u64,
    /// Most admin connections open at once; over it, new connections are not
    /// accepted but wait in the kernel's queue until one closes.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) admin_max_connections: u64,
    #[command(flatten)]
    pub(super) tls: ServeTlsArgs,
    /// Quiet period, in milliseconds, that ends a burst of file events.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub(super) debounce_ms: u64,
    /// Longest wait, in milliseconds, from a burst's first event to the reload.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub(super) debounce_max_ms: u64,
    /// Memory (address space), in MiB, a load may use before it is stopped
    /// and rejected; 0 means no limit. Loads run in a child process, so a
    /// file that exhausts this cannot harm the daemon or what it serves.
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    pub(super) load_memory_limit_mb: u64,
    /// Seconds a load may take before it is stopped and rejected.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub(super) load_timeout_secs: u64,
    /// Most xDS streams open at once (an Envoy on ADS holds one; per-type
    /// services one per type); more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    pub(super) max_clients: usize,
    /// Largest request a client may send, in MiB; a larger one ends its
    /// stream with RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "MIB", default_value_t = 4)]
    pub(super) max_request_mb: usize,
    /// Keep the last good set in this directory (created if missing;
    /// replaced atomically after each applied load). When --dir is invalid
    /// at start, that set is served instead of refusing to start, and
    /// /status, the log and xdsd_serving_saved_state say so; a damaged file
    /// is ignored.
    #[arg(long, value_name = "DIR")]
    pub(super) state_dir: Option<PathBuf>,
    /// How many past good sets --state-dir keeps in its `history/` folder
    /// (each with its version, time and what changed; `xdsd history` lists
    /// them); 0 keeps none.
    #[arg(long, value_name = "N", default_value_t = crate::daemon::state::DEFAULT_HISTORY)]
    pub(super) history: usize,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(super) log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub(super) log_level: String,
}

/// TLS for the xDS listener.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS")]
pub struct ServeTlsArgs {
    /// Serve xDS over TLS with this certificate chain (PEM); needs --tls-key.
    /// Re-read, with the key, when its directory changes and on SIGHUP: new
    /// connections get the new pair, unless it does not load.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(super) tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(super) tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA bundle (PEM): mutual
    /// TLS. Clients without one fail the handshake.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(super) tls_client_ca: Option<PathBuf>,
    /// Tie each client's certificate to the node it claims: the certificate
    /// must carry a DNS or URI subject alternative name (or a subject CN)
    /// equal to TEMPLATE with {node_id} and {node_cluster} replaced by the
    /// client's node id and cluster, e.g. `spiffe://example.org/envoy/{node_id}`.
    /// Other clients are refused with PERMISSION_DENIED, and it is logged.
    #[arg(long, value_name = "TEMPLATE", requires = "tls_client_ca", value_parser = crate::daemon::xds_tls::NodeAuthorization::new)]
    pub(super) authorize_node: Option<crate::daemon::xds_tls::NodeAuthorization>,
    /// A certificate identity (DNS or URI SAN, or subject CN) that may read
    /// every node's status through CSDS, e.g. for `xdsd status --xds`
    /// (repeatable; exact, or a glob with `*` and `?` such as
    /// `spiffe://example.org/ops/*`). It claims no node: over ADS and the
    /// per-type services it is held to --authorize-node like any client.
    #[arg(long, value_name = "ID", requires = "authorize_node")]
    pub(super) admin_identity: Vec<String>,
}

impl ServeTlsArgs {
    /// `--authorize-node` with its `--admin-identity`s.
    pub(super) fn authorization(&self) -> Option<crate::daemon::xds_tls::NodeAuthorization> {
        let authorization = self.authorize_node.clone()?;
        Some(authorization.with_admins(self.admin_identity.clone()))
    }

    pub(super) fn files(&self) -> Option<crate::daemon::xds_tls::TlsFiles> {
        Some(crate::daemon::xds_tls::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub(super) admin: AdminArg,
    /// Ask CSDS on xdsd's xDS port (`host:port`) instead of the admin API,
    /// over TLS with the --tls-* flags; with --authorize-node on the daemon,
    /// a certificate shows the nodes it proves, an --admin-identity all.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "admin")]
    pub(super) xds: Option<String>,
    /// Output: a table, or JSON (the admin API's `/clients` as it is; with
    /// --xds, the CSDS answer with resources decoded, secrets redacted).
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    pub(super) format: StatusFormat,
    #[command(flatten)]
    pub(super) tls: ClientTlsArgs,
}

/// Arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The state directory of `xdsd serve --state-dir`.
    #[arg(long, value_name = "DIR")]
    pub(super) state_dir: PathBuf,
    /// Output: a table, or JSON (one object per set, newest first).
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    pub(super) format: StatusFormat,
}

/// Output formats of `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// One line per stream, then the NACKs.
    Table,
    /// `/clients` (with --xds, the CSDS answer) as JSON.
    Json,
}

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Which client the bootstrap is for.
    #[arg(long, value_enum)]
    pub(super) format: BootstrapFormat,
    /// xdsd's gRPC address as the client reaches it (`host:port`).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:18000")]
    pub(super) server: String,
    #[command(flatten)]
    pub(super) node: NodeArgs,
    /// The node's `node.locality`, `REGION[/ZONE[/SUB_ZONE]]` (a part may be
    /// empty). Always printed, with an empty zone by default: grpc-js-xds
    /// refuses a bootstrap whose node has no locality.
    #[arg(long, value_name = "REGION/ZONE/SUB_ZONE", default_value = "")]
    pub(super) locality: crate::cli::bootstrap::Locality,
    /// Envoy only: the port of Envoy's admin endpoint on 127.0.0.1.
    #[arg(long, value_name = "PORT", default_value_t = 9901)]
    pub(super) admin_port: u16,
    #[command(flatten)]
    pub(super) tls: ClientTlsArgs,
}

/// How a client reaches xdsd over TLS: the settings a bootstrap carries
/// (paths as the client sees them), or those `status --xds` uses.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS")]
pub struct ClientTlsArgs {
    /// Reach xdsd over TLS, trusting this CA bundle (PEM) for its certificate.
    #[arg(long, value_name = "FILE")]
    pub(super) tls_ca: Option<String>,
    /// mTLS: the client's certificate chain (PEM); needs --tls-key and --tls-ca.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub(super) tls_cert: Option<String>,
    /// mTLS: the private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(super) tls_key: Option<String>,
    /// The name xdsd's certificate must carry (a DNS name, sent as SNI, or
    /// an IP address); default: the host of --server or --xds. Not for
    /// gRPC bootstraps, which have no such setting.
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub(super) tls_server_name: Option<String>,
}

impl ClientTlsArgs {
    pub(super) fn settings(&self) -> Option<crate::cli::bootstrap::ClientTls> {
        Some(crate::cli::bootstrap::ClientTls {
            ca: self.tls_ca.clone()?,
            identity: self.tls_cert.clone().zip(self.tls_key.clone()),
            server_name: self.tls_server_name.clone(),
        })
    }
}

/// Bootstrap flavours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BootstrapFormat {
    /// An Envoy bootstrap (YAML).
    Envoy,
    /// A GRPC_XDS_BOOTSTRAP file (JSON).
    Grpc,
}

/// Arguments of `lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Directory of *.yaml, *.yml and *.json resource files, read recursively.
    #[arg(long, value_name = "DIR", required_unless_present = "explain")]
    pub(super) dir: Option<PathBuf>,
    #[command(flatten)]
    pub(super) limits: FileLimitArg,
    #[command(flatten)]
    pub(super) checks: CheckArgs,
    /// Also have this Envoy validate every node view (`envoy --mode
    /// validate` on a static bootstrap) when xdsd finds no error; each
    /// rejection is reported at the resource responsible. Without PATH:
    /// $XDSD_ENVOY, else `envoy` on PATH. Verdicts are cached in
    /// $XDG_CACHE_HOME/xdsd/envoy.
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub(super) envoy: Option<Option<PathBuf>>,
    /// Print what rule RULE checks and why, or list every rule; no --dir needed.
    #[arg(long, value_name = "RULE", num_args = 0..=1, default_missing_value = "")]
    pub(super) explain: Option<String>,
    /// Output format: text (path:line:col), json, or github (Actions annotations).
    #[arg(long, value_enum, default_value_t = diag::Format::Text)]
    pub(super) format: diag::Format,
    /// Treat warnings as errors (exit 1 when there are any).
    #[arg(long)]
    pub(super) deny_warnings: bool,
}

/// Arguments of `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub(super) dir: DirArg,
    #[command(flatten)]
    pub(super) checks: CheckArgs,
    #[command(flatten)]
    pub(super) node: NodeArgs,
    /// Only resources of this type (Cluster, ClusterLoadAssignment or Endpoints, Listener, RouteConfiguration, ...).
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    pub(super) rtype: Option<ResourceType>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = render::Format::Yaml, conflicts_with = "envoy_static")]
    pub(super) format: render::Format,
    /// Print one Envoy bootstrap (JSON) with the resources as static_resources,
    /// RDS inlined and EDS as load_assignment, for `envoy --mode validate`.
    #[arg(long)]
    pub(super) envoy_static: bool,
    /// Replace every secret (fields Envoy marks sensitive: private keys,
    /// session ticket keys, HMAC and generic secrets) by `[redacted]`, for
    /// output meant to be shown; without it the output is a loadable config
    /// directory and holds them.
    #[arg(long)]
    pub(super) redact: bool,
}

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The directory before the change.
    #[arg(value_name = "OLD_DIR")]
    pub(super) old: PathBuf,
    /// The directory after the change.
    #[arg(value_name = "NEW_DIR")]
    pub(super) new: PathBuf,
    #[command(flatten)]
    pub(super) node: NodeArgs,
    #[command(flatten)]
    pub(super) limits: FileLimitArg,
    #[command(flatten)]
    pub(super) checks: CheckArgs,
}

fn parse_type(s: &str) -> Result<ResourceType, String> {
    ResourceType::parse_loose(s).ok_or_else(|| {
        format!(
            "unknown type `{s}`; expected one of {}",
            ResourceType::KIND_NAMES.join(", ")
        )
    })
}
