//! A small HTTP/1.1 client over raw sockets, for the admin API and Envoy.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP response.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (status line, headers, a content-length, chunked or
/// read-to-EOF body).
pub fn read_response(reader: &mut BufReader<TcpStream>) -> Result<HttpResponse, String> {
    let mut line = String::new();
    let n = reader
        .read_line(&mut line)
        .map_err(|e| format!("reading status line: {e}"))?;
    if n == 0 {
        return Err("connection closed before a response".into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("reading headers: {e}"))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|_| "bad content-length")?;
        body.resize(len, 0);
        reader
            .read_exact(&mut body)
            .map_err(|e| format!("reading body: {e}"))?;
    } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            line.clear();
            reader
                .read_line(&mut line)
                .map_err(|e| format!("reading chunk: {e}"))?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| "bad chunk size")?;
            let mut chunk = vec![0; size + 2];
            reader
                .read_exact(&mut chunk)
                .map_err(|e| format!("reading chunk: {e}"))?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if status != 204 && status != 304 {
        reader
            .read_to_end(&mut body)
            .map_err(|e| format!("reading body: {e}"))?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn connect(port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    stream.set_nodelay(true).ok();
    Ok(stream)
}

/// `GET path` on a fresh connection to `127.0.0.1:port` (`connection: close`).
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<HttpResponse, String> {
    let mut stream = connect(port, timeout)?;
    // One write: `write!` would send each piece as its own TCP segment.
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("sending request: {e}"))?;
    read_response(&mut BufReader::new(stream))
}

/// An HTTP/1.1 client that reuses one connection for every request, and
/// opens a new one only when the server closed it (`connection: close`).
pub struct KeepAliveClient {
    port: u16,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
    /// Connections opened so far.
    pub connections: usize,
}

impl KeepAliveClient {
    pub fn new(port: u16, timeout: Duration) -> Self {
        KeepAliveClient {
            port,
            timeout,
            conn: None,
            connections: 0,
        }
    }

    /// `GET path`; an error drops the connection (the next call reconnects).
    pub fn get(&mut self, path: &str) -> Result<HttpResponse, String> {
        if self.conn.is_none() {
            self.conn = Some(BufReader::new(connect(self.port, self.timeout)?));
            self.connections += 1;
        }
        let reader = self.conn.as_mut().expect("connected");
        let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
        let sent = reader.get_mut().write_all(request.as_bytes());
        let result = sent
            .map_err(|e| format!("sending request: {e}"))
            .and_then(|()| read_response(reader));
        match &result {
            Ok(r) if r.header("connection") != Some("close") => {}
            _ => self.conn = None,
        }
        result
    }
}
