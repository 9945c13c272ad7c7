//! The systemd notification protocol (`sd_notify`), spoken directly: one
//! datagram per message to the socket named by `NOTIFY_SOCKET`. With
//! `Type=notify`, systemd considers xdsd started only after `READY=1`;
//! `STATUS=` lines show in `systemctl status`; `WATCHDOG=1` pings prove the
//! runtime is alive when the unit sets `WatchdogSec=`.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where notifications go; `None` when not run by systemd (nothing is sent).
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .and_then(|name| address(&name))
            .and_then(|addr| Some((UnixDatagram::unbound().ok()?, addr)));
        Notifier { socket }
    }

    /// Sends newline-separated `KEY=value` assignments; failures are logged, never fatal.
    pub fn notify(&self, state: &str) {
        let Some((socket, addr)) = &self.socket else {
            return;
        };
        if let Err(e) = socket.send_to_addr(state.as_bytes(), addr) {
            tracing::warn!("sd_notify failed: {e}");
        }
    }

    /// Sends `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// Sends a status line.
    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={}", one_line(status)));
    }

    /// Pings the watchdog every half period (when systemd asked for it) until dropped.
    pub async fn watchdog(self: std::sync::Arc<Self>) {
        let Some(period) = watchdog_period() else {
            return;
        };
        let mut ticks = tokio::time::interval(period / 2);
        loop {
            ticks.tick().await;
            self.notify("WATCHDOG=1");
        }
    }
}

/// The unit's `WatchdogSec=`, from `WATCHDOG_USEC` (when `WATCHDOG_PID` is
/// unset or names this process).
fn watchdog_period() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

fn address(name: &str) -> Option<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    match name.strip_prefix('@') {
        Some(abstract_name) => {
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).ok()
        }
        None if name.starts_with('/') => std::os::unix::net::SocketAddr::from_pathname(name).ok(),
        None => None,
    }
}

/// A status value must not contain a newline (it would start a new assignment).
fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("xdsd-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier {
            socket: Some((
                UnixDatagram::unbound().expect("socket"),
                address(path.to_str().expect("utf-8")).expect("address"),
            )),
        };
        notifier.ready("serving\nversion 1");
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving version 1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn relative_and_empty_names_are_ignored() {
        assert!(address("relative/path").is_none());
        assert!(address("").is_none());
        assert!(address("@abstract").is_some());
    }
}
