//! xdsd: a file-driven xDS control plane for Envoy and proxyless gRPC.
//!
//! Data flows through the modules in this order:
//!
//! * [`yaml`]: located YAML (every node keeps its line and column);
//! * [`schema`]: the Envoy descriptor pool and the served resource types;
//! * [`decode`] + [`rules`]: YAML → protobuf by the proto3 JSON mapping, with
//!   `validate.rules` checked as each message is built;
//! * [`loader`]: directory walk and the three document forms → [`resource`]s;
//! * [`validate`]: cross-resource checks (references, duplicates) and, through
//!   [`envoy_rules`], what Envoy rejects inside one resource beyond the schema;
//!   [`grpc_rules`]: what proxyless gRPC clients reject (warnings);
//! * [`selector`]: which nodes see which resources;
//! * [`render`], [`diff`]: per-node output and change review; [`redact`]:
//!   secrets are never displayed, by any of them or the daemon;
//! * [`diag`]: located findings and their output formats; [`check`]: the rule
//!   registry every finding names, `--allow`/`--deny` and inline allow comments;
//! * [`snapshot`], [`xds`], [`watch`], [`serve`], [`admin`], [`systemd`], [`tls`]: the daemon;
//!   [`accept`]: both listeners' accept loop (pauses and counts errors, never spins);
//!   [`tls_rotation`]: the xDS listener's certificate replaced live, and its TLS handshakes;
//!   [`worker`]: the daemon's loads run in a child process (containment, memory);
//!   [`state`]: the last good set on disk (`--state-dir`);
//! * [`bootstrap`]: client bootstraps pointing at xdsd; [`status`]: `xdsd status`, a client of the admin API;
//! * [`cli`]: the `xdsd` command line;
//! * [`load`]: the `xds-load` fleet of simulated clients, for benchmarks.
#![forbid(unsafe_code)]

pub mod accept;
pub mod admin;
pub mod bootstrap;
pub mod check;
pub mod cli;
pub mod decode;
pub mod diag;
pub mod diff;
pub mod envoy_rules;
pub mod grpc_rules;
pub mod load;
pub mod loader;
pub mod parallel;
pub mod redact;
pub mod reflect;
pub mod render;
pub mod resource;
pub mod rules;
pub mod schema;
pub mod selector;
pub mod serve;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod systemd;
pub mod tls;
pub mod tls_rotation;
pub mod validate;
pub mod watch;
pub mod worker;
pub mod xds;
pub mod yaml;
