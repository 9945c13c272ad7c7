//! tcp_proxy: reconnect back-off and HTTP tunneling.

use super::{field, flag, join, millis, show_ms, step, text};
use crate::check::{Finding, Rule};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, Value};

pub static BACKOFF: Rule = Rule {
    id: "tcp-proxy-backoff-max-below-base",
    summary: "tcp_proxy backoff_options max_interval is shorter than base_interval",
    explanation: "tcp_proxy reconnect back-off grows from base_interval up to max_interval, so the maximum \
cannot be shorter than the base (\"max_backoff_interval must be greater or equal to base_backoff_interval\").",
    envoy: "source/common/tcp_proxy/tcp_proxy.cc",
    ..Rule::ERROR
};

pub static POST_PATH: Rule = Rule {
    id: "tcp-proxy-tunneling-post-path",
    summary: "tcp_proxy tunneling_config sets post_path without use_post",
    explanation: "When tunneling TCP over HTTP, Envoy uses CONNECT unless use_post is true. post_path only \
applies to POST tunnels (\"Can't set a post path when POST method isn't used\").",
    envoy: "source/common/tcp_proxy/tcp_proxy.cc",
    ..Rule::ERROR
};

pub fn message(name: &str, m: &DynamicMessage, out: &mut Vec<Finding>) {
    if name != "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy" {
        return;
    }
    if let Some((bf, Value::Message(backoff))) = field(m, "backoff_options")
        && let Some(base) = millis(backoff, "base_interval")
    {
        // The maximum defaults to ten times the base.
        let max = millis(backoff, "max_interval").unwrap_or(base.saturating_mul(10));
        if max < base {
            out.push(Finding::at(
                &BACKOFF,
                join(&[PathStep::Field(bf)], step(backoff, "max_interval")),
                format!(
                    "tcp_proxy backoff max_interval ({}) is shorter than base_interval ({})",
                    show_ms(max),
                    show_ms(base)
                ),
            ));
        }
    }
    if let Some((tf, Value::Message(tunneling))) = field(m, "tunneling_config")
        && !text(tunneling, "post_path").is_empty()
        && !flag(tunneling, "use_post")
    {
        out.push(Finding::at(
            &POST_PATH,
            join(&[PathStep::Field(tf)], step(tunneling, "post_path")),
            "tunneling_config.post_path requires use_post: true",
        ));
    }
}
