//! `xdsd serve`: the daemon around the config and xDS wings.
//!
//! * [`serve`]: wiring: watch → load → validate → snapshot → xDS;
//! * [`watch`]: file events, debounced into reloads;
//! * [`loader_process`]: every load runs in a child process (containment,
//!   memory), started by `serve`;
//! * [`state`]: the last good set on disk (`--state-dir`);
//! * [`xds_tls`]: the xDS listener's identity and node authorization;
//!   [`xds_tls_rotation`]: its certificate replaced live, and the handshakes;
//! * [`accept`]: both listeners' accept loop (pauses and counts errors,
//!   never spins);
//! * [`systemd`]: sd_notify readiness, status and watchdog;
//! * [`admin`]: the admin HTTP API and metrics.

pub mod accept;
pub mod admin;
pub mod loader_process;
pub mod serve;
pub mod state;
pub mod systemd;
pub mod watch;
pub mod xds_tls;
pub mod xds_tls_rotation;
