//! The admin API's JSON bodies as types, shared by both ends: the daemon
//! fills them in (`admin/json.rs`) and `xdsd status` reads them back
//! (`status.rs`), so a renamed or retyped field breaks the build instead of
//! the client. Bodies are written with sorted keys (through
//! `serde_json::Value`), as they always were; unknown fields are ignored
//! when reading, so a newer daemon's additions do not break an older client.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `/clients`: one entry per identified stream.
pub type Clients = Vec<Client>;

/// One xDS stream and where each of its types stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Client {
    /// The ledger's stream number.
    pub stream: u64,
    pub node_id: String,
    pub node_cluster: String,
    pub locality: Option<Locality>,
    /// `envoy 1.40.0`, `grpc-python 1.85.1`: name and version as the node says.
    pub user_agent: String,
    /// The client's address.
    pub peer: Option<String>,
    /// When it sent its first request (Unix time).
    pub connected_since: f64,
    /// `ADS`, or the per-type service (`CDS`, `EDS`, ...).
    pub service: String,
    /// Delta (incremental) rather than state of the world.
    pub incremental: bool,
    /// Per type URL.
    pub types: BTreeMap<String, TypeState>,
}

/// The node's locality.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Locality {
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
}

/// One type on one stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeState {
    /// `SYNCED`, `STALE` or `NACKED` (see `xds::Sync`).
    pub status: String,
    pub sent_version: String,
    pub acked_version: String,
    /// The last response is not answered (ACK or NACK) yet.
    pub pending: bool,
    /// Resources the client was last given.
    pub resources: usize,
    pub last_nack: Option<Nack>,
}

/// A refused response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Nack {
    pub version: String,
    /// The client's `error_detail` message.
    pub error: String,
    /// When it arrived (Unix time).
    pub time: f64,
}

/// `/status`: the served version, the last load attempt, the listeners.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub served_version: String,
    pub source: Source,
    /// When the served version was loaded (Unix time).
    pub loaded_at: Option<f64>,
    /// Resources per kind (`Cluster`, ...) in the served set.
    pub resources: BTreeMap<String, usize>,
    /// What the last applied change did, per kind.
    pub last_change: BTreeMap<String, ChangeCounts>,
    pub last_load: Option<LastLoad>,
    /// Load attempts since start (the first load included).
    pub reloads: u64,
    pub reload_failures: u64,
    /// Absent from daemons older than this field.
    #[serde(default)]
    pub listeners: Listeners,
    /// The xDS listener's certificate; null without TLS.
    #[serde(default)]
    pub tls: Option<Tls>,
}

/// The certificate the xDS listener serves, and its rotations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tls {
    /// When the served leaf expires (Unix time).
    pub certificate_not_after: f64,
    /// The served leaf's serial number (hex).
    pub certificate_serial: String,
    /// When the served pair was loaded (Unix time).
    pub loaded_at: f64,
    /// New pairs taken into use since start.
    pub rotations: u64,
    /// New file contents refused since start.
    pub refused: u64,
    /// The last refusal, while the files still hold what was refused.
    pub last_error: Option<TlsError>,
}

/// A refused certificate and key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsError {
    /// Unix time.
    pub time: f64,
    pub error: String,
}

/// Where the served set came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The config directory.
    #[default]
    Directory,
    /// `--state-dir`: the directory was invalid at start.
    StateDir,
}

/// Names added, removed and changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
}

/// The last load attempt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LastLoad {
    /// Unix time.
    pub time: f64,
    pub ok: bool,
    /// One located line each; empty when it succeeded.
    pub errors: Vec<String>,
}

/// The two listeners.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Listeners {
    pub xds: Listener,
    pub admin: Listener,
}

/// One listener's accept loop.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    /// In a burst of accept errors from exhaustion (descriptors, memory):
    /// new connections wait in the kernel's queue (`accept.rs`).
    pub saturated: bool,
    /// Accept errors since start, every kind.
    pub accept_errors: u64,
    /// Connections open now, where xdsd counts them (the admin listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
}
