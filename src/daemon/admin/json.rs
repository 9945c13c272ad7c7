//! The admin API's bodies (`api.rs`) filled in from the daemon's state.

use super::api;
use super::{Listeners, LoadStatus, unix_seconds};
use crate::config::render;
use crate::config::schema::ResourceType;
use crate::config::selector::NodeIdentity;
use crate::daemon::accept::AcceptStats;
use crate::daemon::xds_tls_rotation::TlsStatus;
use crate::xds::snapshot::Snapshot;
use crate::xds::{ClientStatus, Ledger, TypeStatus};
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

/// `/clients`: one entry per identified stream.
pub fn clients(ledger: &Ledger) -> api::Clients {
    ledger
        .clients()
        .iter()
        .map(|(stream, c)| client(*stream, c))
        .collect()
}

fn client(stream: u64, c: &ClientStatus) -> api::Client {
    let locality = c.details.locality.as_ref().map(|l| api::Locality {
        region: l.region.clone(),
        zone: l.zone.clone(),
        sub_zone: l.sub_zone.clone(),
    });
    let version = match &c.details.user_agent_version_type {
        Some(UserAgentVersionType::UserAgentVersion(v)) => v.clone(),
        Some(UserAgentVersionType::UserAgentBuildVersion(build)) => build
            .version
            .as_ref()
            .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch))
            .unwrap_or_default(),
        None => String::new(),
    };
    api::Client {
        stream,
        node_id: c.node.id.clone(),
        node_cluster: c.node.cluster.clone(),
        locality,
        user_agent: format!("{} {version}", c.details.user_agent_name)
            .trim()
            .to_string(),
        peer: c.peer.map(|p| p.to_string()),
        connected_since: unix_seconds(c.connected_at),
        service: c
            .only
            .map_or("ADS", ResourceType::service_abbreviation)
            .to_string(),
        incremental: c.incremental,
        types: c
            .types
            .iter()
            .map(|(t, s)| (t.type_url(), type_state(s)))
            .collect(),
    }
}

fn type_state(s: &TypeStatus) -> api::TypeState {
    api::TypeState {
        status: s.sync().label().to_string(),
        sent_version: s.sent_version.clone(),
        acked_version: s.acked_version.clone(),
        pending: s.pending,
        resources: s.resources.len(),
        last_nack: s.last_nack.as_ref().map(|n| api::Nack {
            version: n.version.clone(),
            error: n.error.clone(),
            time: unix_seconds(n.at),
        }),
    }
}

/// `/status`: the served version, the last load attempt and the listeners;
/// with TLS, the served certificate and its rotations.
pub fn status(status: &LoadStatus, listeners: &Listeners, tls: Option<&TlsStatus>) -> api::Status {
    api::Status {
        served_version: status.served_version.clone(),
        source: if status.serving_saved_state {
            api::Source::StateDir
        } else {
            api::Source::Directory
        },
        loaded_at: status.loaded_at.map(unix_seconds),
        resources: status
            .counts
            .iter()
            .map(|(t, n)| (t.kind_name().to_string(), *n))
            .collect(),
        last_change: status
            .last_changes
            .iter()
            .map(|(t, c)| {
                let counts = api::ChangeCounts {
                    added: c.added,
                    removed: c.removed,
                    changed: c.changed,
                };
                (t.kind_name().to_string(), counts)
            })
            .collect(),
        last_load: status
            .last_attempt
            .as_ref()
            .map(|(at, errors)| api::LastLoad {
                time: unix_seconds(*at),
                ok: errors.is_empty(),
                errors: errors.clone(),
            }),
        reloads: status.attempts,
        reload_failures: status.failures,
        listeners: api::Listeners {
            xds: listener(&listeners.xds),
            admin: api::Listener {
                connections: Some(listeners.admin_connections.load(Ordering::Relaxed)),
                ..listener(&listeners.admin)
            },
        },
        tls: tls.map(tls_status),
    }
}

/// The `tls` object of `/status`; `last_error` is the refused content the
/// files still hold, null once a good pair is loaded or the files are back.
fn tls_status(tls: &TlsStatus) -> api::Tls {
    api::Tls {
        certificate_not_after: unix_seconds(tls.not_after),
        certificate_serial: tls.serial.clone(),
        loaded_at: unix_seconds(tls.loaded_at),
        rotations: tls.rotations,
        refused: tls.failures,
        last_error: tls.last_error.as_ref().map(|(at, error)| api::TlsError {
            time: unix_seconds(*at),
            error: error.clone(),
        }),
    }
}

fn listener(stats: &AcceptStats) -> api::Listener {
    api::Listener {
        saturated: stats.saturated(),
        accept_errors: stats.total_errors(),
        connections: None,
    }
}

/// `/config`: what `node` is served, as `xdsd render --redact` prints it.
pub fn config(
    snapshot: &Snapshot,
    node: &NodeIdentity,
    only: Option<ResourceType>,
    format: render::Format,
) -> String {
    let _pool = crate::config::schema::PoolLease::take();
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
                    Some(mut message) => {
                        crate::config::redact::message(&mut message);
                        render::message_json(*t, &message)
                    }
                    None => {
                        json!({"@type": t.type_url(), "name": entry.name, "error": "cannot decode"})
                    }
                })
        })
        .collect();
    render::render_values(values, format)
}
