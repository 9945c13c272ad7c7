//! A fleet of simulated clients against one ADS server: start them all,
//! measure the initial sync, then for each trial run a trigger command and
//! measure, per client, the time from the trigger to the last thing the
//! change brought it: its last response (each is ACKed as it arrives) or,
//! when the trigger restarted the server, its new stream.

use super::client::{Client, ClientStats, Mode, Shared, backoff};
use envoy_types::pb::envoy::config::core::v3::Node;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The ADS server, `host:port`.
    pub server: String,
    /// How many clients.
    pub clients: usize,
    /// How they subscribe.
    pub mode: Mode,
    /// Node ids are `{prefix}{index}`.
    pub node_id_prefix: String,
    /// Every client's `node.cluster`.
    pub node_cluster: String,
    /// Connections opened at once.
    pub connect_concurrency: usize,
    /// Clients (streams) that share one connection; Envoy has one each.
    pub streams_per_connection: usize,
    /// A change is over when no client received anything for this long.
    pub settle: Duration,
    /// Longest wait for the initial sync and for each trial.
    pub timeout: Duration,
    /// Shell command that makes a change; run once per trial.
    pub trigger: Option<String>,
    /// Trials.
    pub trials: usize,
}

/// The figures of one run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Clients started.
    pub clients: usize,
    /// Clients that had every subscribed type answered.
    pub synced: usize,
    /// From the start to the last client synced, in milliseconds.
    pub initial_sync_ms: Option<f64>,
    /// Bytes each client received until then (mean).
    pub initial_bytes_per_client: f64,
    /// One entry per trial.
    pub trials: Vec<Trial>,
    /// Responses the clients NACKed (a resource that did not decode).
    pub nacks: u64,
    /// Streams that ended or could not open (each is opened again).
    pub disconnects: u64,
    /// Clients with an open stream at the end.
    pub connected: usize,
}

/// One trigger and its effect.
#[derive(Clone, Debug, Default)]
pub struct Trial {
    /// Clients that received something after the trigger.
    pub updated: usize,
    /// Trigger → each updated client's last response of the change, in milliseconds.
    pub first_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The last client.
    pub last_ms: f64,
    /// Bytes received per updated client during the trial (mean).
    pub bytes_per_client: f64,
    /// Responses per updated client during the trial (mean).
    pub responses_per_client: f64,
    /// The fewest and the most responses an updated client received.
    pub responses_min: u64,
    pub responses_max: u64,
    /// Clients that opened a new stream during the trial.
    pub reconnected: usize,
    /// The trigger command's exit status was not success.
    pub trigger_failed: bool,
}

/// Runs `plan` and reports; `Err` when the server cannot be reached at all.
pub async fn run(plan: &Plan) -> Result<Report, String> {
    let shared = Arc::new(Shared {
        start: Instant::now(),
        last_event: AtomicU64::new(0),
    });
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", plan.server))
        .map_err(|e| format!("bad server address {}: {e}", plan.server))?
        .connect_timeout(Duration::from_secs(10));
    let gate = Arc::new(Semaphore::new(plan.connect_concurrency.max(1)));
    let per_connection = plan.streams_per_connection.max(1);
    let mut stats = Vec::with_capacity(plan.clients);
    let mut first = 0;
    while first < plan.clients {
        let last = (first + per_connection).min(plan.clients);
        let clients: Vec<Client> = (first..last)
            .map(|index| Client {
                node: Node {
                    id: format!("{}{index}", plan.node_id_prefix),
                    cluster: plan.node_cluster.clone(),
                    user_agent_name: "xds-load".into(),
                    ..Node::default()
                },
                mode: plan.mode.clone(),
                stats: Arc::new(ClientStats::default()),
                shared: Arc::clone(&shared),
            })
            .collect();
        stats.extend(clients.iter().map(|c| Arc::clone(&c.stats)));
        tokio::spawn(connection(endpoint.clone(), Arc::clone(&gate), clients));
        first = last;
    }
    let mut report = Report {
        clients: plan.clients,
        ..Report::default()
    };
    let deadline = Instant::now() + plan.timeout;
    while Instant::now() < deadline && !all_done(&stats) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let synced: Vec<u64> = stats
        .iter()
        .map(|s| s.synced.load(Ordering::Relaxed))
        .filter(|t| *t > 0)
        .collect();
    report.synced = synced.len();
    if report.synced == plan.clients {
        report.initial_sync_ms = synced.iter().max().map(|ns| ms(*ns));
    }
    // Late responses of the initial sync (e.g. a second EDS round) belong to it.
    settle(&shared, plan.settle, deadline).await;
    report.initial_bytes_per_client = mean(stats.iter().map(|s| s.bytes.load(Ordering::Relaxed)));
    if let Some(trigger) = &plan.trigger {
        for _ in 0..plan.trials {
            report
                .trials
                .push(trial(plan, trigger, &shared, &stats).await);
        }
    }
    report.nacks = stats.iter().map(|s| s.nacks.load(Ordering::Relaxed)).sum();
    report.disconnects = stats
        .iter()
        .map(|s| s.disconnects.load(Ordering::Relaxed))
        .sum();
    report.connected = stats
        .iter()
        .filter(|s| s.open.load(Ordering::Relaxed))
        .count();
    Ok(report)
}

/// One connection (opened under `gate`, retried with Envoy's backoff until
/// it opens) and its clients' streams. The channel reconnects by itself
/// when a client opens a stream after the server went away.
async fn connection(
    endpoint: tonic::transport::Endpoint,
    gate: Arc<Semaphore>,
    clients: Vec<Client>,
) {
    let mut attempt = 0;
    let channel = loop {
        let connected = {
            let Ok(_permit) = gate.acquire().await else {
                return;
            };
            endpoint.connect().await
        };
        match connected {
            Ok(channel) => break channel,
            Err(_) => {
                for client in &clients {
                    client.stats.disconnects.fetch_add(1, Ordering::Relaxed);
                }
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    };
    for client in clients {
        tokio::spawn(client.run(channel.clone()));
    }
}

/// Every client has a stream open.
fn all_connected(stats: &[Arc<ClientStats>]) -> bool {
    stats.iter().all(|s| s.open.load(Ordering::Relaxed))
}

/// Every client synced.
fn all_done(stats: &[Arc<ClientStats>]) -> bool {
    stats.iter().all(|s| s.synced.load(Ordering::Relaxed) > 0)
}

/// Waits until nothing arrived for `quiet`, or `deadline`.
async fn settle(shared: &Shared, quiet: Duration, deadline: Instant) {
    let quiet_ns = u64::try_from(quiet.as_nanos()).unwrap_or(u64::MAX);
    while Instant::now() < deadline {
        let last = shared.last_event.load(Ordering::Relaxed);
        if shared.now().saturating_sub(last) >= quiet_ns {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn trial(plan: &Plan, trigger: &str, shared: &Shared, stats: &[Arc<ClientStats>]) -> Trial {
    let before: Vec<(u64, u64)> = stats
        .iter()
        .map(|s| {
            (
                s.bytes.load(Ordering::Relaxed),
                s.responses.load(Ordering::Relaxed),
            )
        })
        .collect();
    let triggered = shared.now();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(trigger)
        .status()
        .await;
    // Nothing arrived yet counts as "last event" now, so settling waits a full period.
    shared.last_event.fetch_max(shared.now(), Ordering::Relaxed);
    let deadline = Instant::now() + plan.timeout;
    // A stream ending or opening is an event too: after a trigger that
    // restarted the server, the trial lasts until every client is back.
    loop {
        settle(shared, plan.settle, deadline).await;
        if all_connected(stats) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut latencies = Vec::new();
    let (mut bytes, mut responses, mut reconnected) = (Vec::new(), Vec::new(), 0);
    for (s, (b0, r0)) in stats.iter().zip(before) {
        let opened = s.stream_opened.load(Ordering::Relaxed);
        reconnected += usize::from(opened > triggered);
        let last = s.last_response.load(Ordering::Relaxed).max(opened);
        if last > triggered {
            latencies.push(ms(last - triggered));
            bytes.push(s.bytes.load(Ordering::Relaxed) - b0);
            responses.push(s.responses.load(Ordering::Relaxed) - r0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    Trial {
        updated: latencies.len(),
        first_ms: latencies.first().copied().unwrap_or(0.0),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        last_ms: latencies.last().copied().unwrap_or(0.0),
        bytes_per_client: mean(bytes.into_iter()),
        responses_per_client: mean(responses.iter().copied()),
        responses_min: responses.iter().copied().min().unwrap_or(0),
        responses_max: responses.iter().copied().max().unwrap_or(0),
        reconnected,
        trigger_failed: !status.is_ok_and(|s| s.success()),
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn mean(values: impl Iterator<Item = u64>) -> f64 {
    let (sum, n) = values.fold((0u64, 0u64), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum as f64 / n as f64 }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Report {
    /// As JSON, for scripts.
    pub fn to_json(&self) -> serde_json::Value {
        let trials: Vec<serde_json::Value> = self
            .trials
            .iter()
            .map(|t| {
                serde_json::json!({
                    "updated": t.updated,
                    "first_ms": t.first_ms,
                    "p50_ms": t.p50_ms,
                    "p99_ms": t.p99_ms,
                    "last_ms": t.last_ms,
                    "bytes_per_client": t.bytes_per_client,
                    "responses_per_client": t.responses_per_client,
                    "responses_min": t.responses_min,
                    "responses_max": t.responses_max,
                    "reconnected": t.reconnected,
                    "trigger_failed": t.trigger_failed,
                })
            })
            .collect();
        serde_json::json!({
            "clients": self.clients,
            "synced": self.synced,
            "initial_sync_ms": self.initial_sync_ms,
            "initial_bytes_per_client": self.initial_bytes_per_client,
            "trials": trials,
            "nacks": self.nacks,
            "disconnects": self.disconnects,
            "connected": self.connected,
        })
    }

    /// As text, for people.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "clients {}, synced {}, initial sync {}, {:.0} bytes per client\n",
            self.clients,
            self.synced,
            self.initial_sync_ms
                .map_or("incomplete".to_string(), |ms| format!("{ms:.1} ms")),
            self.initial_bytes_per_client
        );
        for (i, t) in self.trials.iter().enumerate() {
            out.push_str(&format!(
                "trial {}: {} clients updated ({} on a new stream); first {:.1} ms, p50 {:.1} ms, p99 {:.1} ms, last {:.1} ms; {:.0} bytes and {:.1} responses per client ({} to {}){}\n",
                i + 1,
                t.updated,
                t.reconnected,
                t.first_ms,
                t.p50_ms,
                t.p99_ms,
                t.last_ms,
                t.bytes_per_client,
                t.responses_per_client,
                t.responses_min,
                t.responses_max,
                if t.trigger_failed { " (trigger FAILED)" } else { "" }
            ));
        }
        out.push_str(&format!(
            "NACKs {}, disconnects {}, connected at the end {}\n",
            self.nacks, self.disconnects, self.connected
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
