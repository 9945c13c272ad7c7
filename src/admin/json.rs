//! The admin API's JSON views.

use super::{LoadStatus, unix_seconds};
use crate::render;
use crate::schema::ResourceType;
use crate::selector::NodeIdentity;
use crate::snapshot::Snapshot;
use crate::tls_rotation::TlsStatus;
use crate::xds::{ClientStatus, Ledger, TypeStatus};
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use serde_json::{Value, json};

/// `/clients`: one entry per identified stream.
pub fn clients(ledger: &Ledger) -> Value {
    ledger
        .clients()
        .iter()
        .map(|(stream, c)| client(*stream, c))
        .collect()
}

fn client(stream: u64, c: &ClientStatus) -> Value {
    let types: serde_json::Map<String, Value> = c
        .types
        .iter()
        .map(|(t, s)| (t.type_url(), type_status(s)))
        .collect();
    let locality = c
        .details
        .locality
        .as_ref()
        .map(|l| json!({"region": l.region, "zone": l.zone, "sub_zone": l.sub_zone}));
    let version = match &c.details.user_agent_version_type {
        Some(UserAgentVersionType::UserAgentVersion(v)) => v.clone(),
        Some(UserAgentVersionType::UserAgentBuildVersion(build)) => build
            .version
            .as_ref()
            .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch))
            .unwrap_or_default(),
        None => String::new(),
    };
    json!({
        "stream": stream,
        "node_id": c.node.id,
        "node_cluster": c.node.cluster,
        "locality": locality,
        "user_agent": format!("{} {version}", c.details.user_agent_name).trim(),
        "peer": c.peer.map(|p| p.to_string()),
        "connected_since": unix_seconds(c.connected_at),
        "service": c.only.map_or("ADS", ResourceType::service_abbreviation),
        "incremental": c.incremental,
        "types": types,
    })
}

fn type_status(s: &TypeStatus) -> Value {
    let nack = s
        .last_nack
        .as_ref()
        .map(|n| json!({"version": n.version, "error": n.error, "time": unix_seconds(n.at)}));
    json!({
        "status": s.sync().label(),
        "sent_version": s.sent_version,
        "acked_version": s.acked_version,
        "pending": s.pending,
        "resources": s.resources.len(),
        "last_nack": nack,
    })
}

/// `/status`: the served version and the last load attempt; with TLS, the
/// served certificate and its rotations.
pub fn status(status: &LoadStatus, tls: Option<&TlsStatus>) -> Value {
    let last = status.last_attempt.as_ref().map(|(at, errors)| {
        json!({"time": unix_seconds(*at), "ok": errors.is_empty(), "errors": errors})
    });
    let changes: serde_json::Map<String, Value> = status
        .last_changes
        .iter()
        .map(|(t, c)| {
            let counts = json!({"added": c.added, "removed": c.removed, "changed": c.changed});
            (t.kind_name().to_string(), counts)
        })
        .collect();
    let counts: serde_json::Map<String, Value> = status
        .counts
        .iter()
        .map(|(t, n)| (t.kind_name().to_string(), json!(n)))
        .collect();
    json!({
        "served_version": status.served_version,
        "source": if status.serving_saved_state { "state-dir" } else { "directory" },
        "loaded_at": status.loaded_at.map(unix_seconds),
        "resources": counts,
        "last_change": changes,
        "last_load": last,
        "reloads": status.attempts,
        "reload_failures": status.failures,
        "tls": tls.map(tls_status),
    })
}

/// The `tls` object of `/status`; `last_error` is the refused content the
/// files still hold, null once a good pair is loaded or the files are back.
fn tls_status(tls: &TlsStatus) -> Value {
    let last_error = tls
        .last_error
        .as_ref()
        .map(|(at, error)| json!({"time": unix_seconds(*at), "error": error}));
    json!({
        "certificate_not_after": unix_seconds(tls.not_after),
        "certificate_serial": tls.serial,
        "loaded_at": unix_seconds(tls.loaded_at),
        "rotations": tls.rotations,
        "refused": tls.failures,
        "last_error": last_error,
    })
}

/// `/config`: what `node` is served, as `xdsd render` prints it.
pub fn config(
    snapshot: &Snapshot,
    node: &NodeIdentity,
    only: Option<ResourceType>,
    format: render::Format,
) -> String {
    let _pool = crate::schema::PoolLease::take();
    let view = snapshot.view(node);
    let values: Vec<Value> = view
        .types
        .iter()
        .filter(|(t, _)| only.is_none_or(|o| o == **t))
        .flat_map(|(t, of_type)| {
            of_type
                .resources
                .values()
                .map(move |entry| match entry.decode() {
                    Some(message) => render::message_json(*t, &message),
                    None => {
                        json!({"@type": t.type_url(), "name": entry.name, "error": "cannot decode"})
                    }
                })
        })
        .collect();
    render::render_values(values, format)
}
