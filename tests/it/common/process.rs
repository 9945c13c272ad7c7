//! Child processes stopped by a guard on drop, also when a test fails.

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A child process whose stdout and stderr go to a log file. Killed (and
/// reaped) on drop, also when the test panics; then its log tail is printed.
pub struct ChildGuard {
    name: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `command` with its stdout and stderr appended to `log`.
    pub fn spawn(name: &str, command: Command, log: &Path) -> ChildGuard {
        ChildGuard::spawn_split(name, command, log, log)
    }

    /// Spawns `command` with stdout appended to `stdout` and stderr to
    /// `stderr` (which is the log [`ChildGuard::log`] reads).
    pub fn spawn_split(
        name: &str,
        mut command: Command,
        stdout: &Path,
        stderr: &Path,
    ) -> ChildGuard {
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("open log file")
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(open(stdout))
            .stderr(open(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ChildGuard {
            name: name.to_string(),
            child,
            log: stderr.to_path_buf(),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The exit status, if it exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_for(timeout, Duration::from_millis(20), || self.try_wait())
    }

    /// Sends a signal (`"TERM"`, `"INT"`, `"HUP"`) with kill(1), if still running.
    pub fn signal(&mut self, signal: &str) {
        if self.try_wait().is_some() {
            return;
        }
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(ok.success(), "kill -{signal} {} failed", self.pid());
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}), last 200 lines -----\n{}\n----- end of {} log -----",
                self.name,
                self.log.display(),
                tail(&self.log(), 200),
                self.name
            );
        }
    }
}
