//! The `xdsd` command line: the flag definitions ([`args`]), the commands
//! that run the daemon or ask it ([`serve`](args::ServeArgs), [`status`],
//! [`bootstrap`]), `history` (a state directory's past sets), and the offline review commands ([`review`]: `lint`,
//! `render`, [`diff`]).

mod args;
pub mod bootstrap;
pub mod diff;
mod history;
mod review;
pub mod status;

pub use args::*;
use history::history;
use review::{diff_cmd, lint, print, render_cmd};
use std::process::ExitCode;

/// Exit status for "could not run".
const EXIT_TROUBLE: u8 = 2;

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Status(args) => status(&args),
        Command::History(args) => history(&args),
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
        Ok(settings) => crate::check::validate::Settings {
            envoy: args.envoy_validate.clone(),
            ..settings
        },
        Err(e) => {
            eprintln!("xdsd: {e}");
            return ExitCode::from(EXIT_TROUBLE);
        }
    };
    let quiet = std::time::Duration::from_millis(args.debounce_ms);
    let options = crate::daemon::serve::Options {
        checks,
        dir: args.dir.dir.clone(),
        listen: args.listen,
        admin: args.admin.admin,
        admin_limits: crate::daemon::admin::ConnectionLimits {
            timeout: std::time::Duration::from_secs(args.admin_timeout_secs),
            max_connections: usize::try_from(args.admin_max_connections).unwrap_or(usize::MAX),
        },
        debounce: crate::daemon::watch::Debounce {
            quiet,
            max_delay: std::time::Duration::from_millis(args.debounce_max_ms).max(quiet),
        },
        tls: args.tls.files(),
        authorize_node: args.tls.authorization(),
        load_limits: crate::daemon::loader_process::ProcessLimits {
            memory_bytes: (args.load_memory_limit_mb > 0)
                .then(|| args.load_memory_limit_mb.saturating_mul(1024 * 1024)),
            timeout: std::time::Duration::from_secs(args.load_timeout_secs),
            files: args.dir.limits.limits(),
        },
        state_dir: args.state_dir.clone(),
        history: args.history,
        client_limits: crate::xds::ClientLimits {
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
    let served = runtime.block_on(crate::daemon::serve::run(options));
    // Dropping thousands of connections' tasks one by one would only delay
    // the exit; the kernel closes their sockets.
    runtime.shutdown_background();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(crate::daemon::serve::StartError(message)) => {
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
    let fetched = crate::cli::status::get::<crate::daemon::admin::api::Clients>(admin, "/clients")
        .and_then(|clients| match args.format {
            StatusFormat::Json => Ok(pretty_json(
                &serde_json::to_value(&clients).unwrap_or_default(),
            )),
            StatusFormat::Table => crate::cli::status::get(admin, "/status")
                .map(|status| crate::cli::status::report(&status, &clients)),
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
    use crate::cli::status::csds_client;
    match csds_client::fetch(server, args.tls.settings().as_ref()) {
        Ok(response) => {
            print(&match args.format {
                StatusFormat::Table => csds_client::report(server, &response),
                StatusFormat::Json => pretty_json(&csds_client::to_json(&response)),
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
    let client = crate::cli::bootstrap::Client {
        server: args.server.clone(),
        node_id: args.node.node_id.clone(),
        node_cluster: args.node.node_cluster.clone(),
        locality: args.locality.clone(),
        tls: args.tls.settings(),
    };
    match args.format {
        BootstrapFormat::Envoy => print(&crate::config::yaml::to_yaml(
            &crate::cli::bootstrap::envoy(&client, args.admin_port),
        )),
        BootstrapFormat::Grpc => {
            if client.tls.is_some() {
                eprintln!("{}", crate::cli::bootstrap::GRPC_JS_TLS_NOTE);
            }
            print(&pretty_json(&crate::cli::bootstrap::grpc(&client)))
        }
    }
    ExitCode::SUCCESS
}
