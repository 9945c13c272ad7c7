//! An HTTP backend on 127.0.0.1 that counts the requests it answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// An HTTP/1.1 server on `127.0.0.1` (free port) answering every request
/// with 200 and its name as the body (tests tell backends apart by it); keep-alive unless asked to close.
/// Stops accepting on drop.
pub struct Backend {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let port = listener.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let (body, stop2) = (name.to_string(), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (body, stop) = (body.clone(), Arc::clone(&stop2));
                std::thread::spawn(move || serve_backend_conn(conn, &body, &stop));
            }
        });
        Backend { port, stop }
    }
}

fn serve_backend_conn(conn: TcpStream, body: &str, stop: &AtomicBool) {
    use std::sync::atomic::Ordering;
    conn.set_read_timeout(Some(Duration::from_secs(60))).ok();
    conn.set_nodelay(true).ok();
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        // Request line (EOF or a timeout ends the connection).
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => {}
        }
        let mut close = false;
        let mut length = 0usize;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                match n.trim() {
                    "connection" => close |= v.trim() == "close",
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut skip = vec![0; length];
        if reader.read_exact(&mut skip).is_err() {
            return;
        }
        close |= stop.load(Ordering::SeqCst);
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        if out.write_all(response.as_bytes()).is_err() || close {
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
