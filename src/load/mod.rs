//! `xds-load`: a neutral fleet of simulated xDS clients for any ADS server
//! (not only xdsd). Each client has its own connection and stream and
//! behaves like Envoy (SotW or delta, wildcard CDS/LDS then EDS/RDS by
//! name) or like proxyless gRPC (one listener by name, then what it
//! references), ACKing every response. It measures the initial sync, and per
//! trial the time from a trigger command to each client's last response of
//! the change, bytes received, NACKs and stream errors.

mod client;
mod fleet;
mod refs;

pub use client::Mode;
pub use fleet::{Plan, Report, Trial, run};
