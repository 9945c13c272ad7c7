//! xdsd's integration tests: one crate, so `common` compiles once. Each
//! module is one concern; `common` holds what they share (processes, peers,
//! configs, certificates). Ground rules for every test: servers bind
//! 127.0.0.1 on a free port, every process is stopped by a guard on drop
//! (also when a test fails), scratch directories, and bounded waits that poll
//! a condition. CONTRIBUTING.md says how the tests are organised.

mod common;

mod admin;
mod authz;
mod cli;
mod clients;
mod descriptors;
mod doc_links;
mod envoy_referee;
mod exhaustion;
mod faults;
mod grpc_proxyless;
mod hostile_files;
mod load;
mod loader;
mod man_page;
mod packaging;
mod redaction;
mod serve;
mod serve_variants;
mod soak;
mod state_dir;
mod systemd;
mod tls;
mod tls_rotation;
mod xds_protocol;
