//! `xdsd status --xds HOST:PORT`: asks CSDS on the xDS port (over TLS or
//! mTLS with the operator's certificate) and prints one line per node with
//! per type SYNCED / STALE / NACKED, then the NACKs; or the whole answer as
//! JSON, resources decoded and their secrets redacted. With
//! `--authorize-node` on the daemon, the answer holds only the nodes the
//! certificate proves, or every node for an `--admin-identity`.

use crate::cli::bootstrap::ClientTls;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use envoy_types::pb::envoy::service::status::v3::{
    ClientStatusRequest, ClientStatusResponse, ConfigStatus,
};
use prost::Message;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long to wait for the daemon.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `FetchClientStatus` for every client the caller may see.
pub fn fetch(server: &str, tls: Option<&ClientTls>) -> Result<ClientStatusResponse, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(fetch_async(server, tls))
}

async fn fetch_async(
    server: &str,
    tls: Option<&ClientTls>,
) -> Result<ClientStatusResponse, String> {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
    let fail = |e: &dyn std::fmt::Display| format!("cannot reach xdsd's CSDS at {server}: {e}");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://{server}"))
        .map_err(|e| format!("--xds {server}: {e}"))?
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT);
    if let Some(tls) = tls {
        let read = |path: &str| std::fs::read(path).map_err(|e| format!("{path}: {e}"));
        let mut config =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        if let Some(name) = &tls.server_name {
            config = config.domain_name(name.clone());
        }
        endpoint = endpoint.tls_config(config).map_err(|e| fail(&e))?;
    }
    let channel = endpoint.connect().await.map_err(|e| fail(&e))?;
    let response = ClientStatusDiscoveryServiceClient::new(channel)
        .fetch_client_status(ClientStatusRequest::default())
        .await
        .map_err(|status| fail(&status.message()))?;
    Ok(response.into_inner())
}

/// The answer as JSON (the proto3 mapping), each resource decoded, its
/// secrets redacted: the daemon redacts them already, an older one may not.
pub fn to_json(response: &ClientStatusResponse) -> serde_json::Value {
    let _pool = crate::config::schema::PoolLease::take();
    let Some(desc) = crate::config::schema::pool()
        .get_message_by_name("envoy.service.status.v3.ClientStatusResponse")
    else {
        return serde_json::Value::Null;
    };
    let Ok(mut message) =
        prost_reflect::DynamicMessage::decode(desc, response.encode_to_vec().as_slice())
    else {
        return serde_json::Value::Null;
    };
    crate::config::redact::message(&mut message);
    let options = prost_reflect::SerializeOptions::new().use_proto_field_name(true);
    let mut serializer = serde_json::Serializer::new(Vec::new());
    match message.serialize_with_options(&mut serializer, &options) {
        Ok(()) => serde_json::from_slice(&serializer.into_inner()).unwrap_or_default(),
        Err(e) => serde_json::Value::String(format!("<cannot serialize: {e}>")),
    }
}

/// The label of a resource's config status.
fn label(status: i32) -> &'static str {
    match ConfigStatus::try_from(status) {
        Ok(ConfigStatus::Synced) => "SYNCED",
        Ok(ConfigStatus::Error) => "NACKED",
        Ok(ConfigStatus::NotSent) => "NOT_SENT",
        _ => "STALE",
    }
}

/// The table: one line per node, per type its worst resource status, then
/// the NACKs.
pub fn report(server: &str, response: &ClientStatusResponse) -> String {
    let mut out = format!("CSDS at {server}: {} clients\n", response.config.len());
    let mut columns: Vec<String> = super::MAIN_TYPES.iter().map(|s| s.to_string()).collect();
    let mut rows = vec![];
    let mut nacks = Vec::new();
    for client in &response.config {
        let node = client.node.clone().unwrap_or_default();
        let mut per_type: BTreeMap<String, &'static str> = BTreeMap::new();
        for config in &client.generic_xds_configs {
            let column = super::abbreviation(&config.type_url);
            if !columns.contains(&column) {
                columns.push(column.clone());
            }
            let state = label(config.config_status);
            let worst = per_type.entry(column.clone()).or_insert(state);
            if rank(state) > rank(worst) {
                *worst = state;
            }
            if let Some(error) = config.error_state.as_ref().filter(|_| state == "NACKED") {
                let line = format!(
                    "{} {column} (version {}): {}",
                    node.id, error.version_info, error.details
                );
                if !nacks.contains(&line) {
                    nacks.push(line);
                }
            }
        }
        rows.push((node.id, node.cluster, per_type));
    }
    let mut header = vec!["NODE".to_string(), "CLUSTER".into()];
    header.extend(columns.iter().cloned());
    let mut table = vec![header];
    for (id, cluster, per_type) in rows {
        let mut row = vec![id, cluster];
        row.extend(
            columns
                .iter()
                .map(|c| per_type.get(c).copied().unwrap_or("-").to_string()),
        );
        table.push(row);
    }
    out.push_str(&super::align(&table));
    if !nacks.is_empty() {
        out.push_str("\nNACKs:\n");
        for line in nacks {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// Worse states rank higher.
fn rank(state: &str) -> u8 {
    match state {
        "SYNCED" => 0,
        "NOT_SENT" => 1,
        "STALE" => 2,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::admin::v3::UpdateFailureState;
    use envoy_types::pb::envoy::config::core::v3::Node;
    use envoy_types::pb::envoy::service::status::v3::ClientConfig;
    use envoy_types::pb::envoy::service::status::v3::client_config::GenericXdsConfig;

    #[test]
    fn report_shows_the_worst_state_per_type_and_nacks() {
        let config = |url: &str, status: ConfigStatus, error: Option<&str>| GenericXdsConfig {
            type_url: format!("type.googleapis.com/{url}"),
            config_status: status as i32,
            error_state: error.map(|e| UpdateFailureState {
                details: e.into(),
                version_info: "v2".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let response = ClientStatusResponse {
            config: vec![ClientConfig {
                node: Some(Node {
                    id: "edge-1".into(),
                    cluster: "edge".into(),
                    ..Default::default()
                }),
                generic_xds_configs: vec![
                    config(
                        "envoy.config.cluster.v3.Cluster",
                        ConfigStatus::Synced,
                        None,
                    ),
                    config(
                        "envoy.config.route.v3.RouteConfiguration",
                        ConfigStatus::Synced,
                        None,
                    ),
                    config(
                        "envoy.config.route.v3.RouteConfiguration",
                        ConfigStatus::Error,
                        Some("bad route"),
                    ),
                ],
                ..Default::default()
            }],
        };
        assert_eq!(
            report("x:1", &response),
            "CSDS at x:1: 1 clients\n\
             NODE    CLUSTER  CDS     EDS  LDS  RDS     SDS\n\
             edge-1  edge     SYNCED  -    -    NACKED  -\n\
             \nNACKs:\n  edge-1 RDS (version v2): bad route\n"
        );
    }
}
