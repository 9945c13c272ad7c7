//! xdsd: a file-driven xDS control plane for Envoy and proxyless gRPC.
//!
//! Five wings, in the order data flows through them (ARCHITECTURE.md has the
//! map, from a file event to a pushed response):
//!
//! * [`config`]: reading a directory into typed, located resources: YAML with
//!   positions, the Envoy schema, decoding by the proto3 JSON mapping with
//!   `validate.rules` constraints, the three document forms, node selectors,
//!   rendering and redaction, and the diagnostics every step reports;
//! * [`check`]: whole-set validation and the lint rule registry: references
//!   and duplicates, Envoy's config-time checks by area, what proxyless gRPC
//!   rejects, and the user's own Envoy as referee;
//! * [`xds`]: the snapshot of per-node views and the xDS protocol (ADS, SotW
//!   and delta, per-type services, CSDS): a stream engine without I/O, a
//!   per-node coordinator, and the gRPC transport;
//! * [`daemon`]: `xdsd serve` around them: watching, the loader process,
//!   the state dir, TLS and its rotation, the accept loop, systemd, and the
//!   admin API;
//! * [`cli`]: the `xdsd` command line, and the commands that are clients
//!   (`diff`, `bootstrap`, `status`).
//!
//! [`sync`] holds the one way every lock is taken (surviving a panicked
//! holder). The `xds-load` benchmark fleet is a binary of its own
//! (`src/bin/xds-load`).
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod sync;
pub mod xds;
