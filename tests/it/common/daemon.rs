//! The built `xdsd serve` as a child process, with its ports and admin API.

use super::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A running `xdsd serve` on free loopback ports, logging at debug level to
/// a file; killed on drop.
pub struct Xdsd {
    pub guard: ChildGuard,
    /// gRPC xDS port.
    pub listen: u16,
    /// Admin HTTP port.
    pub admin: u16,
}

impl Xdsd {
    /// The command line `xdsd serve --dir dir --listen 127.0.0.1:listen
    /// --admin 127.0.0.1:admin --log-level debug` plus `extra`.
    pub fn command(dir: &Path, listen: u16, admin: u16, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xdsd"));
        command
            .arg("serve")
            .arg("--dir")
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .args(["--log-level", "debug"])
            .args(extra);
        command
    }

    /// Spawns `xdsd serve --dir dir` on the given ports (no readiness wait);
    /// its output is appended to `log`.
    pub fn spawn(dir: &Path, listen: u16, admin: u16, extra: &[&str], log: &Path) -> Xdsd {
        let command = Xdsd::command(dir, listen, admin, extra);
        Xdsd {
            guard: ChildGuard::spawn("xdsd", command, log),
            listen,
            admin,
        }
    }

    /// Starts xdsd on fresh free ports and waits (up to 10 s) for `/readyz`.
    pub fn start(dir: &Path, log: &Path) -> Xdsd {
        Xdsd::start_with(dir, log, &[])
    }

    /// [`Xdsd::start`] with `extra` arguments for `xdsd serve`.
    pub fn start_with(dir: &Path, log: &Path, extra: &[&str]) -> Xdsd {
        let mut xdsd = Xdsd::spawn(dir, free_port(), free_port(), extra, log);
        xdsd.wait_ready();
        xdsd
    }

    /// Waits up to 10 s for `GET /readyz` to answer 200; panics (showing the
    /// log) if xdsd exits or never gets ready.
    pub fn wait_ready(&mut self) {
        let admin = self.admin;
        let ready = wait_for(Duration::from_secs(10), Duration::from_millis(25), || {
            if let Some(status) = self.guard.try_wait() {
                panic!(
                    "xdsd exited ({status}) before it was ready:\n{}",
                    self.guard.log()
                );
            }
            let r = http_get(admin, "/readyz", Duration::from_secs(1)).ok()?;
            (r.status == 200).then_some(())
        });
        assert!(ready.is_some(), "xdsd not ready within 10 s");
    }

    pub fn log(&self) -> String {
        self.guard.log()
    }

    /// `GET path` on the admin port; panics on a transport error.
    pub fn admin_get(&self, path: &str) -> HttpResponse {
        http_get(self.admin, path, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("xdsd admin {path}: {e}"))
    }

    /// `GET path` on the admin port as JSON; panics unless it is 200 and JSON.
    pub fn admin_json(&self, path: &str) -> serde_json::Value {
        let r = self.admin_get(path);
        assert_eq!(r.status, 200, "xdsd admin {path}: {}", r.body);
        serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("xdsd admin {path} is not JSON ({e}): {}", r.body))
    }
}
