//! The `xdsd` command line: argument definitions (each flag defined once)
//! and the offline subcommands `lint`, `render` and `diff`.

use crate::diag::{self, Diagnostics};
use crate::render;
use crate::resource::{self, Resource};
use crate::schema::ResourceType;
use crate::selector::NodeIdentity;
use crate::validate::{self, Checked};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
package is an error. Problems inside work-in-progress Envoy APIs are warnings.

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
    /// last good set stays. Exits 0 after SIGTERM/SIGINT, non-zero at once
    /// when it cannot start (bad flags, address in use, unreadable directory,
    /// invalid initial set). SIGHUP forces a reload, and a re-read of the
    /// TLS files.
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
    /// Print a client bootstrap that points at a running xdsd.
    ///
    /// `--format envoy` prints an Envoy bootstrap (YAML) that gets everything
    /// over ADS, with the node id and cluster and an admin endpoint on
    /// 127.0.0.1; `--format grpc` prints a GRPC_XDS_BOOTSTRAP file (JSON) for
    /// proxyless gRPC clients resolving `xds:///NAME`.
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
    pub fn limits(&self) -> crate::loader::Limits {
        crate::loader::Limits {
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
    fn identity(&self) -> NodeIdentity {
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
    dir: DirArg,
    #[command(flatten)]
    checks: CheckArgs,
    /// Have this Envoy validate every node view of each candidate set
    /// (`envoy --mode validate`) before it is served; a rejection keeps the
    /// last good set, like any invalid set.
    #[arg(long, value_name = "PATH")]
    envoy_validate: Option<PathBuf>,
    /// Address for gRPC xDS.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:18000")]
    listen: std::net::SocketAddr,
    #[command(flatten)]
    admin: AdminArg,
    /// Seconds an admin client has to send a request head, also the next
    /// one on a kept-alive connection (so an idle connection is closed after
    /// this long), and that a write to it may stay stuck.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    admin_timeout_secs: u64,
    /// Most admin connections open at once; over it, new connections are not
    /// accepted but wait in the kernel's queue until one closes.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    admin_max_connections: u64,
    #[command(flatten)]
    tls: ServeTlsArgs,
    /// Quiet period, in milliseconds, that ends a burst of file events.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    debounce_ms: u64,
    /// Longest wait, in milliseconds, from a burst's first event to the reload.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    debounce_max_ms: u64,
    /// Memory (address space), in MiB, a load may use before it is stopped
    /// and rejected; 0 means no limit. Loads run in a child process, so a
    /// file that exhausts this cannot harm the daemon or what it serves.
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    load_memory_limit_mb: u64,
    /// Seconds a load may take before it is stopped and rejected.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    load_timeout_secs: u64,
    /// Most xDS streams open at once (an Envoy on ADS holds one; per-type
    /// services one per type); more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    max_clients: usize,
    /// Largest request a client may send, in MiB; a larger one ends its
    /// stream with RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "MIB", default_value_t = 4)]
    max_request_mb: usize,
    /// Keep the last good set in this directory (created if missing;
    /// replaced atomically after each applied load). When --dir is invalid
    /// at start, that set is served instead of refusing to start, and
    /// /status, the log and xdsd_serving_saved_state say so; a damaged file
    /// is ignored.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
}

/// TLS for the xDS listener.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS")]
pub struct ServeTlsArgs {
    /// Serve xDS over TLS with this certificate chain (PEM); needs --tls-key.
    /// Re-read, with the key, when its directory changes and on SIGHUP: new
    /// connections get the new pair, unless it does not load.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA bundle (PEM): mutual
    /// TLS. Clients without one fail the handshake.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Tie each client's certificate to the node it claims: the certificate
    /// must carry a DNS or URI subject alternative name (or a subject CN)
    /// equal to TEMPLATE with {node_id} and {node_cluster} replaced by the
    /// client's node id and cluster, e.g. `spiffe://example.org/envoy/{node_id}`.
    /// Other clients are refused with PERMISSION_DENIED, and it is logged.
    #[arg(long, value_name = "TEMPLATE", requires = "tls_client_ca", value_parser = crate::tls::NodeAuthorization::new)]
    authorize_node: Option<crate::tls::NodeAuthorization>,
    /// A certificate identity (DNS or URI SAN, or subject CN) that may read
    /// every node's status through CSDS, e.g. for `xdsd status --xds`
    /// (repeatable; exact, or a glob with `*` and `?` such as
    /// `spiffe://example.org/ops/*`). It claims no node: over ADS and the
    /// per-type services it is held to --authorize-node like any client.
    #[arg(long, value_name = "ID", requires = "authorize_node")]
    admin_identity: Vec<String>,
}

impl ServeTlsArgs {
    /// `--authorize-node` with its `--admin-identity`s.
    fn authorization(&self) -> Option<crate::tls::NodeAuthorization> {
        let authorization = self.authorize_node.clone()?;
        Some(authorization.with_admins(self.admin_identity.clone()))
    }

    fn files(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
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
    admin: AdminArg,
    /// Ask CSDS on xdsd's xDS port (`host:port`) instead of the admin API,
    /// over TLS with the --tls-* flags; with --authorize-node on the daemon,
    /// a certificate shows the nodes it proves, an --admin-identity all.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "admin")]
    xds: Option<String>,
    /// Output: a table, or JSON (the admin API's `/clients` as it is; with
    /// --xds, the CSDS answer with resources decoded, secrets redacted).
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    format: StatusFormat,
    #[command(flatten)]
    tls: ClientTlsArgs,
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
    format: BootstrapFormat,
    /// xdsd's gRPC address as the client reaches it (`host:port`).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:18000")]
    server: String,
    #[command(flatten)]
    node: NodeArgs,
    /// Envoy only: the port of Envoy's admin endpoint on 127.0.0.1.
    #[arg(long, value_name = "PORT", default_value_t = 9901)]
    admin_port: u16,
    #[command(flatten)]
    tls: ClientTlsArgs,
}

/// How a client reaches xdsd over TLS: the settings a bootstrap carries
/// (paths as the client sees them), or those `status --xds` uses.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS")]
pub struct ClientTlsArgs {
    /// Reach xdsd over TLS, trusting this CA bundle (PEM) for its certificate.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<String>,
    /// mTLS: the client's certificate chain (PEM); needs --tls-key and --tls-ca.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<String>,
    /// mTLS: the private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<String>,
    /// The name xdsd's certificate must carry (a DNS name, sent as SNI, or
    /// an IP address); default: the host of --server or --xds. Not for
    /// gRPC bootstraps, which have no such setting.
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    tls_server_name: Option<String>,
}

impl ClientTlsArgs {
    fn settings(&self) -> Option<crate::bootstrap::ClientTls> {
        Some(crate::bootstrap::ClientTls {
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
    dir: Option<PathBuf>,
    #[command(flatten)]
    limits: FileLimitArg,
    #[command(flatten)]
    checks: CheckArgs,
    /// Also have this Envoy validate every node view (`envoy --mode
    /// validate` on a static bootstrap) when xdsd finds no error; each
    /// rejection is reported at the resource responsible. Without PATH:
    /// $XDSD_ENVOY, else `envoy` on PATH. Verdicts are cached in
    /// $XDG_CACHE_HOME/xdsd/envoy.
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    envoy: Option<Option<PathBuf>>,
    /// Print what rule RULE checks and why, or list every rule; no --dir needed.
    #[arg(long, value_name = "RULE", num_args = 0..=1, default_missing_value = "")]
    explain: Option<String>,
    /// Output format: text (path:line:col), json, or github (Actions annotations).
    #[arg(long, value_enum, default_value_t = diag::Format::Text)]
    format: diag::Format,
    /// Treat warnings as errors (exit 1 when there are any).
    #[arg(long)]
    deny_warnings: bool,
}

/// Arguments of `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    dir: DirArg,
    #[command(flatten)]
    checks: CheckArgs,
    #[command(flatten)]
    node: NodeArgs,
    /// Only resources of this type (Cluster, ClusterLoadAssignment or Endpoints, Listener, RouteConfiguration, ...).
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    rtype: Option<ResourceType>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = render::Format::Yaml, conflicts_with = "envoy_static")]
    format: render::Format,
    /// Print one Envoy bootstrap (JSON) with the resources as static_resources,
    /// RDS inlined and EDS as load_assignment, for `envoy --mode validate`.
    #[arg(long)]
    envoy_static: bool,
    /// Replace every secret (fields Envoy marks sensitive: private keys,
    /// session ticket keys, HMAC and generic secrets) by `[redacted]`, for
    /// output meant to be shown; without it the output is a loadable config
    /// directory and holds them.
    #[arg(long)]
    redact: bool,
}

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The directory before the change.
    #[arg(value_name = "OLD_DIR")]
    old: PathBuf,
    /// The directory after the change.
    #[arg(value_name = "NEW_DIR")]
    new: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    limits: FileLimitArg,
    #[command(flatten)]
    checks: CheckArgs,
}

fn parse_type(s: &str) -> Result<ResourceType, String> {
    ResourceType::parse_loose(s).ok_or_else(|| {
        format!(
            "unknown type `{s}`; expected one of {}",
            ResourceType::KIND_NAMES.join(", ")
        )
    })
}

/// Exit status for "could not run".
const EXIT_TROUBLE: u8 = 2;

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Status(args) => status(&args),
        Command::Bootstrap(args) => bootstrap(&args),
        Command::Lint(args) => lint(&args),
        Command::Render(args) => render_cmd(&args),
        Command::Diff(args) => diff_cmd(&args),
    }
}

fn init_logging(format: LogFormat, level: &str) {
    // A bare level applies to xdsd itself; libraries log warnings and worse.
    let directive = if ["error", "warn", "info", "debug", "trace"].contains(&level) {
        format!("warn,xdsd={level}")
    } else {
        level.to_string()
    };
    let filter = tracing_subscriber::EnvFilter::try_new(directive)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,xdsd=info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    init_logging(args.log_format, &args.log_level);
    // One socket per client stream: a fleet needs more than the usual 1024.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
    let checks = match args.checks.settings() {
        Ok(settings) => crate::validate::Settings {
            envoy: args.envoy_validate.clone(),
            ..settings
        },
        Err(e) => {
            eprintln!("xdsd: {e}");
            return ExitCode::from(EXIT_TROUBLE);
        }
    };
    let quiet = std::time::Duration::from_millis(args.debounce_ms);
    let options = crate::serve::Options {
        checks,
        dir: args.dir.dir.clone(),
        listen: args.listen,
        admin: args.admin.admin,
        admin_limits: crate::admin::Limits {
            timeout: std::time::Duration::from_secs(args.admin_timeout_secs),
            max_connections: usize::try_from(args.admin_max_connections).unwrap_or(usize::MAX),
        },
        debounce: crate::watch::Debounce {
            quiet,
            max_delay: std::time::Duration::from_millis(args.debounce_max_ms).max(quiet),
        },
        tls: args.tls.files(),
        authorize_node: args.tls.authorization(),
        load_limits: crate::worker::Limits {
            memory_bytes: (args.load_memory_limit_mb > 0)
                .then(|| args.load_memory_limit_mb.saturating_mul(1024 * 1024)),
            timeout: std::time::Duration::from_secs(args.load_timeout_secs),
            files: args.dir.limits.limits(),
        },
        state_dir: args.state_dir.clone(),
        client_limits: crate::xds::Limits {
            max_streams: args.max_clients,
            max_request_bytes: args.max_request_mb.saturating_mul(1024 * 1024),
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xdsd: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_TROUBLE);
        }
    };
    match runtime.block_on(crate::serve::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(crate::serve::StartError(message)) => {
            tracing::error!("cannot start");
            eprintln!("xdsd: {message}");
            ExitCode::FAILURE
        }
    }
}

fn status(args: &StatusArgs) -> ExitCode {
    if let Some(server) = &args.xds {
        return status_csds(server, args);
    }
    if args.tls.tls_ca.is_some() {
        eprintln!("xdsd: the --tls-* flags of status are for --xds (the admin API is plain HTTP)");
        return ExitCode::from(EXIT_TROUBLE);
    }
    let admin = args.admin.admin;
    let fetched =
        crate::status::get::<crate::admin::api::Clients>(admin, "/clients").and_then(|clients| {
            match args.format {
                StatusFormat::Json => Ok(pretty_json(
                    &serde_json::to_value(&clients).unwrap_or_default(),
                )),
                StatusFormat::Table => crate::status::get(admin, "/status")
                    .map(|status| crate::status::report(&status, &clients)),
            }
        });
    match fetched {
        Ok(text) => {
            print(&text);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("xdsd: {message}");
            ExitCode::from(EXIT_TROUBLE)
        }
    }
}

/// `status --xds`: CSDS on the xDS port.
fn status_csds(server: &str, args: &StatusArgs) -> ExitCode {
    use crate::status::csds;
    match csds::fetch(server, args.tls.settings().as_ref()) {
        Ok(response) => {
            print(&match args.format {
                StatusFormat::Table => csds::report(server, &response),
                StatusFormat::Json => pretty_json(&csds::to_json(&response)),
            });
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("xdsd: {message}");
            ExitCode::from(EXIT_TROUBLE)
        }
    }
}

fn pretty_json(value: &serde_json::Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value).unwrap_or_default()
    )
}

fn bootstrap(args: &BootstrapArgs) -> ExitCode {
    let client = crate::bootstrap::Client {
        server: args.server.clone(),
        node_id: args.node.node_id.clone(),
        node_cluster: args.node.node_cluster.clone(),
        tls: args.tls.settings(),
    };
    match args.format {
        BootstrapFormat::Envoy => print(&crate::yaml::to_yaml(&crate::bootstrap::envoy(
            &client,
            args.admin_port,
        ))),
        BootstrapFormat::Grpc => print(&pretty_json(&crate::bootstrap::grpc(&client))),
    }
    ExitCode::SUCCESS
}

fn load(dir: &Path, limits: &FileLimitArg, checks: &CheckArgs) -> Result<Checked, ExitCode> {
    let trouble = |e: String| {
        eprintln!("xdsd: {e}");
        ExitCode::from(EXIT_TROUBLE)
    };
    let settings = checks.settings().map_err(trouble)?;
    validate::check_dir_with(dir, limits.limits(), &settings).map_err(|e| trouble(e.to_string()))
}

/// The referee Envoy: the path given, else $XDSD_ENVOY, else `envoy` on PATH.
fn referee_envoy(given: Option<&Path>) -> PathBuf {
    if let Some(path) = given {
        return path.to_path_buf();
    }
    std::env::var_os("XDSD_ENVOY")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("envoy"), PathBuf::from)
}

/// `lint --explain [RULE]`: one rule's explanation, or the list of rules.
fn explain(id: &str) -> ExitCode {
    if id.is_empty() {
        let rules = crate::check::all();
        let width = rules.iter().map(|r| r.id.len()).max().unwrap_or(0);
        let list: String = rules
            .iter()
            .map(|r| {
                format!(
                    "{:width$}  {:7}  {}\n",
                    r.id,
                    r.severity.as_str(),
                    r.summary
                )
            })
            .collect();
        print(&list);
        return ExitCode::SUCCESS;
    }
    match crate::check::find(id) {
        Some(rule) => {
            print(&crate::check::explain(rule));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("xdsd: unknown rule `{id}`; `xdsd lint --explain` lists them");
            ExitCode::from(EXIT_TROUBLE)
        }
    }
}

fn print(text: &str) {
    // A closed pipe (`xdsd render | head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn print_errors(diags: &Diagnostics) {
    eprint!("{}", diag::render(diags, diag::Format::Text));
}

fn lint(args: &LintArgs) -> ExitCode {
    if let Some(id) = &args.explain {
        return explain(id);
    }
    let Some(dir) = &args.dir else {
        eprintln!("xdsd: lint needs --dir");
        return ExitCode::from(EXIT_TROUBLE);
    };
    let mut checked = match load(dir, &args.limits, &args.checks) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(envoy) = &args.envoy {
        let envoy = referee_envoy(envoy.as_deref());
        let referee = match crate::check::referee::Referee::new(
            &envoy,
            crate::check::referee::default_cache_dir(),
        ) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("xdsd: --envoy: {e}");
                return ExitCode::from(EXIT_TROUBLE);
            }
        };
        match args.checks.settings() {
            Ok(settings) => checked.referee(&referee, &settings),
            Err(e) => {
                eprintln!("xdsd: {e}");
                return ExitCode::from(EXIT_TROUBLE);
            }
        }
    }
    let diags = &checked.diagnostics;
    print(&diag::render(diags, args.format));
    if args.format == diag::Format::Text {
        eprintln!(
            "{} resources, {} errors, {} warnings",
            checked.resources.len(),
            diags.error_count(),
            diags.warning_count()
        );
    }
    let failed = diags.error_count() > 0 || args.deny_warnings && diags.warning_count() > 0;
    // Freeing tens of thousands of messages takes longer than exiting does.
    std::mem::forget(checked);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Loads and validates, printing errors; `None` when the set is invalid.
fn load_valid(dir: &Path, limits: &FileLimitArg, checks: &CheckArgs) -> Result<Checked, ExitCode> {
    let checked = load(dir, limits, checks)?;
    if !checked.diagnostics.is_ok() {
        print_errors(&checked.diagnostics);
        eprintln!(
            "xdsd: {}: {} errors",
            dir.display(),
            checked.diagnostics.error_count()
        );
        return Err(ExitCode::FAILURE);
    }
    Ok(checked)
}

fn render_cmd(args: &RenderArgs) -> ExitCode {
    let checked = match load_valid(&args.dir.dir, &args.dir.limits, &args.checks) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let view: Vec<&Resource> = resource::view(&checked.resources, &args.node.identity())
        .into_iter()
        .filter(|r| args.rtype.is_none_or(|t| r.rtype == t))
        .collect();
    if args.envoy_static {
        let json = if args.redact {
            render::redacted_json
        } else {
            render::to_json
        };
        let typed: Vec<_> = view.iter().map(|r| (r.rtype, json(r))).collect();
        let bootstrap = render::envoy_static(&typed);
        print(&pretty_json(&bootstrap));
    } else {
        print(&render::render(&view, args.format, args.redact));
    }
    ExitCode::SUCCESS
}

fn diff_cmd(args: &DiffArgs) -> ExitCode {
    let node = args.node.identity();
    let (old, new) = match (
        load_valid(&args.old, &args.limits, &args.checks),
        load_valid(&args.new, &args.limits, &args.checks),
    ) {
        (Ok(o), Ok(n)) => (o, n),
        // Invalid input is trouble for diff, as for diff(1).
        _ => return ExitCode::from(EXIT_TROUBLE),
    };
    let changes = crate::diff::diff(
        &resource::view(&old.resources, &node),
        &resource::view(&new.resources, &node),
    );
    print(&crate::diff::report(&changes));
    if changes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
