//! `xdsd status`: reads a running daemon's admin API (`/status`, `/clients`)
//! and prints one line per connected stream, per type SYNCED / STALE /
//! NACKED, and every NACK's text below. Only the admin API's JSON is used,
//! so this works against any xdsd of the same API, local or remote.
//! With `--xds`, [`csds`] asks the xDS port's CSDS instead.

pub mod csds;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long to wait for the daemon.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The types shown as columns, in make-before-break order; other types get
/// a column only when some client has them.
const MAIN_TYPES: [&str; 5] = ["CDS", "EDS", "LDS", "RDS", "SDS"];

/// `GET path` on the admin endpoint, parsed as JSON.
pub fn get_json(admin: SocketAddr, path: &str) -> Result<Value, String> {
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
    serde_json::from_str(body).map_err(|e| format!("{admin}{path}: not JSON: {e}"))
}

/// The abbreviation of a type URL's resource type (`CDS` for clusters).
fn abbreviation(type_url: &str) -> String {
    crate::schema::ResourceType::ALL
        .iter()
        .find(|t| t.type_url() == type_url)
        .map_or_else(
            || type_url.rsplit('.').next().unwrap_or(type_url).to_string(),
            |t| t.service_abbreviation().to_string(),
        )
}

/// The report: the served version, the table, then the NACKs.
pub fn report(status: &Value, clients: &Value) -> String {
    let clients = clients.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = format!(
        "serving version {} ({} streams)\n",
        status["served_version"].as_str().unwrap_or("?"),
        clients.len()
    );
    if let Some(errors) = status["last_load"]["errors"]
        .as_array()
        .filter(|e| !e.is_empty())
    {
        out.push_str(&format!(
            "last reload REJECTED ({} errors), first: {}\n",
            errors.len(),
            errors[0].as_str().unwrap_or_default()
        ));
    }
    let mut columns: Vec<String> = MAIN_TYPES.iter().map(|s| s.to_string()).collect();
    for c in clients {
        for url in c["types"].as_object().into_iter().flat_map(|t| t.keys()) {
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
        let node = c["node_id"].as_str().unwrap_or_default();
        let protocol = if c["incremental"].as_bool() == Some(true) {
            "delta"
        } else {
            "sotw"
        };
        let mut row = vec![
            node.to_string(),
            c["node_cluster"].as_str().unwrap_or_default().to_string(),
            format!("{} {protocol}", c["service"].as_str().unwrap_or("?")),
        ];
        let types = c["types"].as_object();
        for column in &columns {
            let entry = types.and_then(|t| t.iter().find(|(url, _)| abbreviation(url) == *column));
            let cell = entry.map_or("-", |(_, s)| s["status"].as_str().unwrap_or("?"));
            row.push(cell.to_string());
            if let Some((_, s)) = entry
                && cell == "NACKED"
            {
                let nack = &s["last_nack"];
                nacks.push(format!(
                    "{node} {column} (version {}): {}",
                    nack["version"].as_str().unwrap_or_default(),
                    nack["error"].as_str().unwrap_or_default()
                ));
            }
        }
        row.push(c["peer"].as_str().unwrap_or("-").to_string());
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

    #[test]
    fn report_shows_states_and_nack_text() {
        let status =
            serde_json::json!({"served_version": "abc", "last_load": {"ok": true, "errors": []}});
        let clients = serde_json::json!([{
            "node_id": "edge-1", "node_cluster": "edge", "service": "ADS", "incremental": false,
            "peer": "127.0.0.1:4000",
            "types": {
                "type.googleapis.com/envoy.config.cluster.v3.Cluster": {"status": "SYNCED"},
                "type.googleapis.com/envoy.config.route.v3.RouteConfiguration": {
                    "status": "NACKED",
                    "last_nack": {"version": "v2", "error": "bad route"}
                }
            }
        }]);
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
    fn an_unreachable_daemon_is_an_error() {
        let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = unused.local_addr().expect("addr");
        drop(unused);
        let error = get_json(addr, "/clients").expect_err("nothing listens");
        assert!(error.contains("cannot reach"), "{error}");
    }
}
