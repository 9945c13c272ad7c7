//! `xdsd status`: reads a running daemon's admin API (`/status`, `/clients`)
//! and prints one line per connected stream, per type SYNCED / STALE /
//! NACKED, and every NACK's text below. Only the admin API's JSON is used,
//! read with the types the daemon writes it with (`admin::api`), so this
//! works against any xdsd of the same API, local or remote.
//! With `--xds`, [`csds`] asks the xDS port's CSDS instead.

pub mod csds_client;

use crate::daemon::admin::api::{Client, Status};
use serde::de::DeserializeOwned;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long to wait for the daemon.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The types shown as columns, in make-before-break order; other types get
/// a column only when some client has them.
const MAIN_TYPES: [&str; 5] = ["CDS", "EDS", "LDS", "RDS", "SDS"];

/// `GET path` on the admin endpoint, read as the API type `T`.
pub fn get<T: DeserializeOwned>(admin: SocketAddr, path: &str) -> Result<T, String> {
    let fail = |e: std::io::Error| format!("cannot reach xdsd's admin API at {admin}: {e}");
    let mut socket = TcpStream::connect_timeout(&admin, TIMEOUT).map_err(fail)?;
    socket.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).map_err(fail)?;
    let mut response = Vec::new();
    socket.read_to_end(&mut response).map_err(fail)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{admin}{path}: not an HTTP response"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(format!("{admin}{path}: {status}"));
    }
    serde_json::from_str(body).map_err(|e| format!("{admin}{path}: not the admin API's JSON: {e}"))
}

/// The abbreviation of a type URL's resource type (`CDS` for clusters).
fn abbreviation(type_url: &str) -> String {
    crate::config::schema::ResourceType::ALL
        .iter()
        .find(|t| t.type_url() == type_url)
        .map_or_else(
            || type_url.rsplit('.').next().unwrap_or(type_url).to_string(),
            |t| t.service_abbreviation().to_string(),
        )
}

/// The report: the served version, the listeners if saturated, the table, then the NACKs.
pub fn report(status: &Status, clients: &[Client]) -> String {
    let mut out = format!(
        "serving version {} ({} streams)\n",
        status.served_version,
        clients.len()
    );
    if let Some(load) = status.last_load.as_ref().filter(|l| !l.errors.is_empty()) {
        out.push_str(&format!(
            "last reload REJECTED ({} errors), first: {}\n",
            load.errors.len(),
            load.errors[0]
        ));
    }
    for (name, listener) in [
        ("xDS", &status.listeners.xds),
        ("admin", &status.listeners.admin),
    ] {
        if listener.saturated {
            out.push_str(&format!(
                "{name} listener SATURATED: out of descriptors or memory, new connections wait \
                 ({} accept errors so far)\n",
                listener.accept_errors
            ));
        }
    }
    let mut columns: Vec<String> = MAIN_TYPES.iter().map(|s| s.to_string()).collect();
    for c in clients {
        for url in c.types.keys() {
            let abbreviation = abbreviation(url);
            if !columns.contains(&abbreviation) {
                columns.push(abbreviation);
            }
        }
    }
    let mut header = vec!["NODE".to_string(), "CLUSTER".into(), "STREAM".into()];
    header.extend(columns.iter().cloned());
    header.push("PEER".into());
    let mut rows = vec![header];
    let mut nacks = Vec::new();
    for c in clients {
        let protocol = if c.incremental { "delta" } else { "sotw" };
        let mut row = vec![
            c.node_id.clone(),
            c.node_cluster.clone(),
            format!("{} {protocol}", c.service),
        ];
        for column in &columns {
            let entry = c.types.iter().find(|(url, _)| abbreviation(url) == *column);
            let cell = entry.map_or("-", |(_, s)| s.status.as_str());
            row.push(cell.to_string());
            if let Some((_, s)) = entry
                && cell == "NACKED"
            {
                let (version, error) = s
                    .last_nack
                    .as_ref()
                    .map_or(("", ""), |n| (n.version.as_str(), n.error.as_str()));
                nacks.push(format!(
                    "{} {column} (version {version}): {error}",
                    c.node_id
                ));
            }
        }
        row.push(c.peer.clone().unwrap_or_else(|| "-".to_string()));
        rows.push(row);
    }
    out.push_str(&align(&rows));
    if !nacks.is_empty() {
        out.push_str("\nNACKs:\n");
        for line in nacks {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// Left-aligned columns, two spaces apart.
fn align(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:width$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::daemon::admin::api::{LastLoad, Nack, TypeState};

    #[test]
    fn report_shows_states_and_nack_text() {
        let status = Status {
            served_version: "abc".into(),
            last_load: Some(LastLoad {
                ok: true,
                ..LastLoad::default()
            }),
            ..Status::default()
        };
        let state = |status: &str| TypeState {
            status: status.into(),
            ..TypeState::default()
        };
        let clients = [Client {
            node_id: "edge-1".into(),
            node_cluster: "edge".into(),
            service: "ADS".into(),
            incremental: false,
            peer: Some("127.0.0.1:4000".into()),
            types: [
                (
                    "type.googleapis.com/envoy.config.cluster.v3.Cluster".to_string(),
                    state("SYNCED"),
                ),
                (
                    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration".to_string(),
                    TypeState {
                        last_nack: Some(Nack {
                            version: "v2".into(),
                            error: "bad route".into(),
                            time: 0.0,
                        }),
                        ..state("NACKED")
                    },
                ),
            ]
            .into_iter()
            .collect(),
            ..Client::default()
        }];
        let text = report(&status, &clients);
        assert_eq!(
            text,
            "serving version abc (1 streams)\n\
             NODE    CLUSTER  STREAM    CDS     EDS  LDS  RDS     SDS  PEER\n\
             edge-1  edge     ADS sotw  SYNCED  -    -    NACKED  -    127.0.0.1:4000\n\
             \nNACKs:\n  edge-1 RDS (version v2): bad route\n"
        );
    }

    #[test]
    fn a_saturated_listener_gets_a_line() {
        let mut status = Status::default();
        status.listeners.xds.saturated = true;
        status.listeners.xds.accept_errors = 7;
        let text = report(&status, &[]);
        assert!(
            text.contains("xDS listener SATURATED") && text.contains("7 accept errors"),
            "{text}"
        );
        assert!(!text.contains("admin listener"), "{text}");
    }

    #[test]
    fn an_unreachable_daemon_is_an_error() {
        let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = unused.local_addr().expect("addr");
        drop(unused);
        let error = get::<Vec<Client>>(addr, "/clients").expect_err("nothing listens");
        assert!(error.contains("cannot reach"), "{error}");
    }
}
