//! `/metrics`: Prometheus text format (version 0.0.4), names `xdsd_*`.

use super::{Listeners, LoadStatus, unix_seconds};
use crate::config::schema::ResourceType;
use crate::daemon::accept::{AcceptStats, ErrorKind};
use crate::daemon::xds_tls_rotation::TlsStatus;
use crate::xds::{LATENCY_BUCKETS, Ledger, Outcome, Sync};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Writes metric families: `# HELP`, `# TYPE`, then samples.
#[derive(Default)]
struct Families(String);

impl Families {
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(self.0, "{name}{labels} {value}");
        }
    }

    /// One sample per type, labelled `type="Cluster"` and so on.
    fn per_type(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(ResourceType) -> f64,
    ) {
        let samples: Vec<(String, f64)> = ResourceType::ALL
            .iter()
            .map(|t| (type_label(*t), value(*t)))
            .collect();
        self.family(name, kind, help, &samples);
    }
}

fn type_label(t: ResourceType) -> String {
    format!("{{type=\"{}\"}}", t.kind_name())
}

/// Every metric, from the ledger, the last load, the listeners and the xDS
/// certificate.
pub fn render(
    ledger: &Ledger,
    status: &LoadStatus,
    listeners: &Listeners,
    tls: Option<&TlsStatus>,
) -> String {
    let mut out = Families::default();
    out.family(
        "xdsd_build_info",
        "gauge",
        "Always 1; the version is a label.",
        &[(
            format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")),
            1.0,
        )],
    );
    streams(&mut out, ledger);
    responses(&mut out, ledger);
    loads(&mut out, status);
    accepts(&mut out, listeners);
    if let Some(tls) = tls {
        certificate(&mut out, tls);
    }
    out.0
}

/// Only with TLS: a plaintext listener has no certificate to expire.
fn certificate(out: &mut Families, tls: &TlsStatus) {
    out.family(
        "xdsd_tls_certificate_expiry_timestamp_seconds",
        "gauge",
        "When the xDS listener's certificate (the leaf in use) expires (Unix time).",
        &[(String::new(), unix_seconds(tls.not_after))],
    );
    out.family(
        "xdsd_tls_reloads_total",
        "counter",
        "Changed TLS files read since start: ok (the new pair is in use), refused (it did not load; the previous pair stayed).",
        &[
            ("{result=\"ok\"}".to_string(), tls.rotations as f64),
            ("{result=\"refused\"}".to_string(), tls.failures as f64),
        ],
    );
}

fn streams(out: &mut Families, ledger: &Ledger) {
    let clients = ledger.clients();
    let mut streams: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    let mut sync: BTreeMap<&str, f64> = [Sync::Synced, Sync::Stale, Sync::Nacked]
        .iter()
        .map(|s| (s.label(), 0.0))
        .collect();
    for c in clients.values() {
        let service = if c.only.is_some() { "per_type" } else { "ads" };
        let protocol = if c.incremental { "delta" } else { "sotw" };
        *streams.entry((service, protocol)).or_insert(0.0) += 1.0;
        for t in c.types.values() {
            *sync.entry(t.sync().label()).or_insert(0.0) += 1.0;
        }
    }
    for service in ["ads", "per_type"] {
        for protocol in ["sotw", "delta"] {
            streams.entry((service, protocol)).or_insert(0.0);
        }
    }
    let samples: Vec<(String, f64)> = streams
        .into_iter()
        .map(|((s, p), n)| (format!("{{service=\"{s}\",protocol=\"{p}\"}}"), n))
        .collect();
    out.family(
        "xdsd_connected_streams",
        "gauge",
        "Open xDS streams, by service (ADS or a per-type service) and protocol (sotw, delta).",
        &samples,
    );
    let nodes: std::collections::BTreeSet<&str> =
        clients.values().map(|c| c.node.id.as_str()).collect();
    out.family(
        "xdsd_connected_nodes",
        "gauge",
        "Distinct node ids with an open stream.",
        &[(String::new(), nodes.len() as f64)],
    );
    let samples: Vec<(String, f64)> = sync
        .into_iter()
        .map(|(s, n)| (format!("{{status=\"{s}\"}}"), n))
        .collect();
    out.family(
        "xdsd_client_types",
        "gauge",
        "Stream and type pairs by state: SYNCED (last response ACKed), STALE (not answered yet), NACKED (last response refused).",
        &samples,
    );
}

fn responses(out: &mut Families, ledger: &Ledger) {
    let counters = ledger.counters();
    for (outcome, name, help) in [
        (
            Outcome::Sent,
            "xdsd_responses_sent_total",
            "xDS responses sent, by type.",
        ),
        (
            Outcome::Acked,
            "xdsd_acks_total",
            "Responses ACKed by clients, by type.",
        ),
        (
            Outcome::Nacked,
            "xdsd_nacks_total",
            "Responses NACKed by clients, by type.",
        ),
    ] {
        out.per_type(name, "counter", help, |t| {
            counters.outcomes.get(&(t, outcome)).copied().unwrap_or(0) as f64
        });
    }
    out.per_type(
        "xdsd_sent_bytes_total",
        "counter",
        "Encoded xDS response bytes sent, by type.",
        |t| counters.bytes_sent.get(&t).copied().unwrap_or(0) as f64,
    );
    let name = "xdsd_push_latency_seconds";
    let _ = writeln!(
        out.0,
        "# HELP {name} From a new config set being built to a client's ACK of a response carrying it, by type.\n# TYPE {name} histogram"
    );
    for (t, h) in &counters.push_latency {
        let kind = t.kind_name();
        let mut cumulative = 0;
        for (i, count) in h.buckets.iter().enumerate() {
            cumulative += count;
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), f64::to_string);
            let _ = writeln!(
                out.0,
                "{name}_bucket{{type=\"{kind}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(out.0, "{name}_sum{{type=\"{kind}\"}} {}", h.sum);
        let _ = writeln!(out.0, "{name}_count{{type=\"{kind}\"}} {}", h.count);
    }
}

fn loads(out: &mut Families, status: &LoadStatus) {
    out.family(
        "xdsd_reloads_total",
        "counter",
        "Load attempts (the first load included).",
        &[(String::new(), status.attempts as f64)],
    );
    out.family(
        "xdsd_reload_failures_total",
        "counter",
        "Load attempts rejected (the last good set stayed).",
        &[(String::new(), status.failures as f64)],
    );
    out.family(
        "xdsd_last_successful_reload_timestamp_seconds",
        "gauge",
        "When the served set was last loaded (Unix time).",
        &[(String::new(), status.loaded_at.map_or(0.0, unix_seconds))],
    );
    out.family(
        "xdsd_serving_saved_state",
        "gauge",
        "1 while the served set is the one saved in --state-dir (the directory was invalid at start).",
        &[(
            String::new(),
            if status.serving_saved_state { 1.0 } else { 0.0 },
        )],
    );
    out.per_type(
        "xdsd_snapshot_resources",
        "gauge",
        "Resources in the served set, by type.",
        |t| status.counts.get(&t).copied().unwrap_or(0) as f64,
    );
}

fn accepts(out: &mut Families, listeners: &Listeners) {
    let both: [(&str, &AcceptStats); 2] = [("xds", &listeners.xds), ("admin", &listeners.admin)];
    let samples: Vec<(String, f64)> = both
        .iter()
        .flat_map(|(listener, stats)| {
            ErrorKind::ALL.iter().map(move |kind| {
                (
                    format!("{{listener=\"{listener}\",kind=\"{}\"}}", kind.label()),
                    stats.errors(*kind) as f64,
                )
            })
        })
        .collect();
    out.family(
        "xdsd_accept_errors_total",
        "counter",
        "Failed accepts, by listener (xds, admin) and errno (emfile, enfile, enomem, enobufs: exhaustion; econnaborted: the client left; other).",
        &samples,
    );
    let samples: Vec<(String, f64)> = both
        .iter()
        .map(|(listener, stats)| {
            let saturated = if stats.saturated() { 1.0 } else { 0.0 };
            (format!("{{listener=\"{listener}\"}}"), saturated)
        })
        .collect();
    out.family(
        "xdsd_listener_saturated",
        "gauge",
        "1 while a listener is in a burst of exhaustion accept errors (until 5 s without one): new connections wait in the kernel's queue.",
        &samples,
    );
    out.family(
        "xdsd_admin_connections",
        "gauge",
        "Admin API connections open (at most --admin-max-connections).",
        &[(
            String::new(),
            listeners
                .admin_connections
                .load(std::sync::atomic::Ordering::Relaxed) as f64,
        )],
    );
}
