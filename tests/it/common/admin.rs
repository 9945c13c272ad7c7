//! Reading xdsd's admin API in tests: `/status`, `/clients`.

use super::{Xdsd, wait_for};
use serde_json::Value;
use std::time::Duration;

/// `/status` of xdsd.
pub fn status(xdsd: &Xdsd) -> Value {
    xdsd.admin_json("/status")
}

/// `served_version` in `/status` (non-empty).
pub fn served_version(status: &Value) -> String {
    let v = status["served_version"]
        .as_str()
        .unwrap_or_else(|| panic!("/status has no served_version string: {status:#}"));
    assert!(!v.is_empty(), "/status served_version is empty: {status:#}");
    v.to_string()
}

/// The `/clients` entries of node `id`.
pub fn clients_of(xdsd: &Xdsd, id: &str) -> Vec<Value> {
    let clients = xdsd.admin_json("/clients");
    let list = clients
        .as_array()
        .unwrap_or_else(|| panic!("/clients is not a JSON array: {clients:#}"));
    list.iter()
        .filter(|c| c["node_id"] == id)
        .cloned()
        .collect()
}

/// Waits (up to 5 s) until `/clients` shows node `id` with every one of
/// `types` sent and ACKed at the same version; returns that entry's `types`.
pub fn wait_all_acked(xdsd: &Xdsd, id: &str, types: &[&str]) -> serde_json::Map<String, Value> {
    let mut last = Value::Null;
    let got = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        let clients = clients_of(xdsd, id);
        last = Value::Array(clients.clone());
        let [client] = clients.as_slice() else {
            return None;
        };
        let per_type = client["types"].as_object()?;
        let acked = types.iter().all(|t| {
            let s = per_type.get(*t).unwrap_or(&Value::Null);
            s["sent_version"].as_str().is_some_and(|v| !v.is_empty())
                && s["sent_version"] == s["acked_version"]
        });
        acked.then(|| per_type.clone())
    });
    got.unwrap_or_else(|| {
        panic!("/clients never showed {id} with {types:?} all ACKed at the sent version; last: {last:#}")
    })
}
