//! `xds-load`: a neutral fleet of simulated xDS clients for any ADS server
//! (not only xdsd). Each client has its own stream (and, unless told to
//! share, its own connection) and behaves like Envoy (SotW or delta,
//! wildcard CDS/LDS then EDS/RDS by name, node on every request, references
//! asked for before the ACK, reconnection with Envoy's backoff) or like
//! proxyless gRPC (one listener by name, then what it references), ACKing
//! every response. It measures the initial sync, and per trial the time from
//! a trigger command to each client's last response of the change (or its
//! new stream, when the trigger restarted the server), bytes and responses
//! per client, NACKs and disconnects.
#![forbid(unsafe_code)]

use clap::Parser;
use client::Mode;
use fleet::Plan;
use std::process::ExitCode;
use std::time::Duration;

mod client;
mod fleet;
mod refs;

/// A neutral ADS load generator: N simulated clients, each with its own
/// connection and stream, against any xDS server.
///
/// Prints the initial sync of all clients and, per trial, the time from the
/// trigger command to each client's last response of the change (first,
/// p50, p99, last), bytes and responses per client, NACKs and disconnects.
/// Clients behave like Envoy: node on every request, references asked for
/// before the ACK, reconnection with Envoy's backoff. Exit status: 0 when
/// every client synced and has a stream open at the end, 1 otherwise, 2 on
/// bad flags.
#[derive(Debug, Parser)]
#[command(name = "xds-load", version)]
struct Args {
    /// The ADS server (`host:port`).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:18000")]
    server: String,
    /// Number of clients.
    #[arg(long, value_name = "N", default_value_t = 100)]
    clients: usize,
    /// sotw and delta subscribe like Envoy over ADS (CDS and LDS wildcard,
    /// then EDS and RDS by name); named subscribes like proxyless gRPC, from
    /// the listener given by --listener.
    #[arg(long, value_enum, default_value_t = ModeArg::Sotw)]
    mode: ModeArg,
    /// The listener a `named` client starts from (gRPC's `xds:///NAME`).
    #[arg(long, value_name = "NAME", required_if_eq("mode", "named"))]
    listener: Option<String>,
    /// Node ids are PREFIX followed by the client's index.
    #[arg(long, value_name = "PREFIX", default_value = "load-")]
    node_id_prefix: String,
    /// Every client's node cluster.
    #[arg(long, value_name = "CLUSTER", default_value = "load")]
    node_cluster: String,
    /// Connections opened at the same time.
    #[arg(long, value_name = "N", default_value_t = 256)]
    connect_concurrency: usize,
    /// Clients sharing one HTTP/2 connection, each with its own stream
    /// (Envoy opens one connection each; more lets a fleet outgrow the
    /// open-file limit).
    #[arg(long, value_name = "N", default_value_t = 1)]
    streams_per_connection: usize,
    /// A change is over when no client received anything for MS milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    settle_ms: u64,
    /// Longest wait, in seconds, for the initial sync and for each trial.
    #[arg(long, value_name = "S", default_value_t = 60)]
    timeout_s: u64,
    /// Shell command that makes a change (e.g. writes and renames a file), run once per trial.
    #[arg(long, value_name = "COMMAND")]
    trigger: Option<String>,
    /// Number of trials.
    #[arg(long, value_name = "N", default_value_t = 1)]
    trials: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ModeArg {
    Sotw,
    Delta,
    Named,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // One socket per client: a fleet needs more than the usual 1024.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("xds-load: cannot raise the open-file limit: {e}");
    }
    let plan = Plan {
        server: args.server,
        clients: args.clients,
        mode: match args.mode {
            ModeArg::Sotw => Mode::Sotw,
            ModeArg::Delta => Mode::Delta,
            ModeArg::Named => Mode::Named(args.listener.unwrap_or_default()),
        },
        node_id_prefix: args.node_id_prefix,
        node_cluster: args.node_cluster,
        connect_concurrency: args.connect_concurrency,
        streams_per_connection: args.streams_per_connection,
        settle: Duration::from_millis(args.settle_ms),
        timeout: Duration::from_secs(args.timeout_s),
        trigger: args.trigger,
        trials: args.trials,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xds-load: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match runtime.block_on(fleet::run(&plan)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xds-load: {e}");
            return ExitCode::from(2);
        }
    };
    match args.format {
        Format::Text => print!("{}", report.to_text()),
        Format::Json => println!("{}", report.to_json()),
    }
    // Dropping thousands of streams one by one takes longer than exiting.
    runtime.shutdown_background();
    if report.synced == report.clients && report.connected == report.clients {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
