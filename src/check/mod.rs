//! The lint rule registry: every diagnostic names one [`Rule`], which has a
//! stable id, a summary, an explanation (`xdsd lint --explain ID`) and, for
//! rules that mirror one of Envoy's own config-time checks, the Envoy source
//! file it follows. Rules are declared next to the code that reports them
//! (as clippy declares its lints); [`all`] lists them.
//!
//! * [`policy`]: `--allow` / `--deny` and inline `# xdsd: allow(ID)` comments;
//! * [`docs`]: the rules reference (docs/rules.md), generated from the registry;
//! * [`referee`]: the user's own Envoy validating each node view (`--envoy`).
//!
//! Envoy's config-time checks, one module per area, each called for every
//! message of every resource (also inside `Any`) by [`message`], and once
//! per set by [`set`]:
//!
//! * [`extensions`]: every `typed_config` of a type its place accepts;
//! * [`deprecated`]: enum values Envoy disallows as deprecated, also as defaults;
//! * [`matchers`]: the inputs and actions of unified matchers, by the matcher's use;
//! * [`dns_cache`]: dynamic forward proxy DNS caches shared by name across resources;
//! * [`tls`]: certificates, keys, TLS contexts and secrets;
//! * [`listeners`]: listeners, filter chain matching, the HTTP connection manager;
//! * [`clusters`]: clusters, load balancers, health checks, outlier detection;
//! * [`http`]: HTTP filters, routes, access logs and format strings.

pub mod clusters;
pub mod deprecated;
pub mod dns_cache;
pub mod docs;
pub mod envoy_rules;
pub mod extensions;
pub mod http;
pub mod listeners;
pub mod matchers;
pub mod policy;
pub mod proxyless_grpc;
pub mod referee;
pub mod tls;
pub mod validate;

use crate::config::diag::{Diagnostics, Severity};
use crate::config::resource::{PathStep, Resource};
use prost_reflect::DynamicMessage;

/// One lint rule.
#[derive(Debug)]
pub struct Rule {
    /// Stable, kebab-case: what `--allow`, `--deny`, `--explain` and inline
    /// comments name. Never reused for another rule.
    pub id: &'static str,
    /// Error (Envoy rejects it) or warning (Envoy accepts it).
    pub severity: Severity,
    /// One line: what is wrong.
    pub summary: &'static str,
    /// Why it matters and how to fix it, for `--explain`.
    pub explanation: &'static str,
    /// The Envoy source file whose check this rule mirrors (relative to
    /// Envoy's repository), or `""` for xdsd's own rules.
    pub envoy: &'static str,
    /// False for findings that leave nothing to serve (YAML syntax, schema
    /// errors): such a resource cannot be built, so the rule cannot be allowed.
    pub allowable: bool,
}

impl Rule {
    /// A rule for a defect Envoy rejects.
    pub const ERROR: Rule = Rule {
        id: "",
        severity: Severity::Error,
        summary: "",
        explanation: "",
        envoy: "",
        allowable: true,
    };

    /// A rule for something Envoy accepts but that is worth a look.
    pub const WARNING: Rule = Rule {
        severity: Severity::Warning,
        ..Rule::ERROR
    };
}

/// One problem found in a message.
#[derive(Debug)]
pub struct Finding {
    /// The rule it breaks.
    pub rule: &'static Rule,
    /// Where, relative to the checked message.
    pub path: Vec<PathStep>,
    /// True when something is missing from the message at `path` (located
    /// at that message's first line rather than at its key).
    pub missing: bool,
    /// What is wrong.
    pub message: String,
}

impl Finding {
    /// A finding about the value at `path` (located at its key, or at a scalar value).
    pub fn at(rule: &'static Rule, path: Vec<PathStep>, message: impl Into<String>) -> Finding {
        Finding {
            rule,
            path,
            missing: false,
            message: message.into(),
        }
    }

    /// A finding about something missing from the message at `path`
    /// (located at that message's first line).
    pub fn missing_in(
        rule: &'static Rule,
        path: Vec<PathStep>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            rule,
            path,
            missing: true,
            message: message.into(),
        }
    }
}

/// Where a checked message sits: its resource, and the path from the
/// resource to it (fields inside an `Any` continue the path).
pub struct Place<'a> {
    /// The resource being checked.
    pub resource: &'a Resource,
    /// From the resource to the message.
    pub path: &'a [PathStep],
}

/// Runs every area's checks of one message.
pub fn message(m: &DynamicMessage, place: &Place<'_>, out: &mut Vec<Finding>) {
    crate::check::envoy_rules::check(m, place.path.is_empty(), out);
    crate::check::envoy_rules::typed_config_present(m, place, out);
    extensions::message(m, place, out);
    matchers::message(m, place, out);
    deprecated::message(m, place, out);
    tls::message(m, place, out);
    listeners::message(m, place, out);
    clusters::message(m, place, out);
    http::message(m, place, out);
}

/// Runs every area's checks that look across resources (those that start
/// from what a walk over each resource found, like [`dns_cache::check`],
/// run from `validate`, which keeps those facts between loads).
pub fn set(resources: &[Resource], diags: &mut Diagnostics) {
    tls::set(resources, diags);
    listeners::set(resources, diags);
    clusters::set(resources, diags);
    http::set(resources, diags);
}

/// Every rule, grouped by the module that reports it.
pub fn all() -> Vec<&'static Rule> {
    [
        crate::config::loader::RULES,
        crate::config::decode::RULES,
        crate::config::constraints::RULES,
        crate::check::validate::RULES,
        crate::check::envoy_rules::RULES,
        &[
            &extensions::WRONG_CATEGORY,
            &deprecated::DISALLOWED_ENUM_VALUE,
            &dns_cache::CONFIG_MISMATCH,
        ],
        tls::RULES,
        listeners::RULES,
        clusters::RULES,
        http::RULES,
        crate::check::proxyless_grpc::RULES,
        referee::RULES,
        policy::RULES,
    ]
    .concat()
}

/// The rule with this id.
pub fn find(id: &str) -> Option<&'static Rule> {
    all().into_iter().find(|r| r.id == id)
}

/// The text `xdsd lint --explain ID` prints.
pub fn explain(rule: &Rule) -> String {
    let mut text = format!(
        "{} ({}): {}\n\n{}\n",
        rule.id,
        rule.severity.as_str(),
        rule.summary,
        rule.explanation.trim()
    );
    if !rule.envoy.is_empty() {
        text.push_str(&format!("\nMirrors Envoy's check in {}.\n", rule.envoy));
    }
    if !rule.allowable {
        text.push_str("\nThis rule cannot be allowed: the resource cannot be built without it.\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_kebab_case_and_documented() {
        let mut seen = HashSet::new();
        for rule in all() {
            assert!(seen.insert(rule.id), "duplicate rule id {}", rule.id);
            assert!(
                !rule.id.is_empty()
                    && rule
                        .id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "rule id `{}` is not kebab-case",
                rule.id
            );
            assert!(!rule.summary.is_empty(), "{} has no summary", rule.id);
            assert!(
                rule.explanation.len() > 40,
                "{} has no real explanation",
                rule.id
            );
            assert!(
                rule.envoy.is_empty() || rule.envoy.starts_with("source/"),
                "{}: cite the Envoy file as source/...",
                rule.id
            );
        }
    }

    #[test]
    fn explain_names_the_envoy_source() {
        let rule = find("unknown-field").expect("registered");
        assert!(explain(rule).contains("unknown-field (error)"));
    }
}
