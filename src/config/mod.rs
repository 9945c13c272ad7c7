//! Reading a config directory into resources, in the order of the flow:
//!
//! * [`yaml`]: located YAML (every node keeps its line and column);
//! * [`schema`]: the Envoy descriptor pool and the served resource types;
//!   [`reflect`]: small accessors over dynamic messages;
//! * [`decode`] + [`constraints`]: YAML → protobuf by the proto3 JSON
//!   mapping, with `validate.rules` constraints checked as each message is
//!   built;
//! * [`loader`]: directory walk and the three document forms → [`resource`]s
//!   (spread over cores by [`parallel`]);
//! * [`selector`]: which nodes see which resources;
//! * [`render`]: a node's resources as YAML, JSON or an Envoy static
//!   bootstrap; [`redact`]: secrets are never displayed;
//! * [`diag`]: located findings and their output formats.

pub mod constraints;
pub mod decode;
pub mod diag;
pub mod loader;
pub mod parallel;
pub mod redact;
pub mod reflect;
pub mod render;
pub mod resource;
pub mod schema;
pub mod selector;
pub mod yaml;
