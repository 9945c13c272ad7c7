//! Secret resources and the SDS references to them. A Secret's content is
//! only loaded when a TLS context asks for it, so its material is checked
//! through the references, with the checks of the referencing side.

use super::context;
use super::{
    DOWNSTREAM, UPSTREAM, certificate, child, has, in_quic, is_true, items, join, validation,
};
use crate::check::{Finding, Rule};
use crate::config::diag::Diagnostics;
use crate::config::reflect::{field, string_field, unpack_any};
use crate::config::resource::{PathStep, Resource};
use crate::config::schema::ResourceType;
use prost::Message;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};
use std::collections::{HashMap, HashSet};

/// An SDS reference to a Secret of another kind.
pub static KIND_MISMATCH: Rule = Rule {
    id: "secret-kind-mismatch",
    summary: "an SDS secret reference names a Secret of a different kind",
    explanation: "Each SDS reference asks for one kind of secret: a certificate with its key, a \
validation context (CA), or session ticket keys. Here the named Secret holds another kind, so Envoy cannot \
use it and refuses the TLS context (over xDS it rejects the secret). Point the reference at a Secret of the \
right kind, or change what the Secret holds.",
    envoy: "source/common/tls/context_config_impl.cc",
    ..Rule::ERROR
};

/// A Secret without a payload.
pub static TYPE_MISSING: Rule = Rule {
    id: "secret-type-missing",
    summary: "a Secret resource sets no secret type",
    explanation: "A Secret must carry exactly one payload: tls_certificate, validation_context, \
session_ticket_keys or generic_secret. An empty Secret is refused by Envoy. Fill in the payload or delete \
the resource.",
    envoy: "source/common/secret/secret_manager_impl.cc",
    ..Rule::ERROR
};

/// The payloads a Secret can hold (its `type` oneof).
const KINDS: [&str; 4] = [
    "tls_certificate",
    "session_ticket_keys",
    "validation_context",
    "generic_secret",
];

/// A Secret resource must hold one of [`KINDS`]; Envoy adds every one at startup.
pub fn type_missing(m: &DynamicMessage, out: &mut Vec<Finding>) {
    if KINDS.iter().any(|k| has(m, k)) {
        return;
    }
    let name = string_field(m, "name").map(|(_, n)| n).unwrap_or_default();
    out.push(Finding::missing_in(
        &TYPE_MISSING,
        Vec::new(),
        format!("Secret `{name}` sets none of {}", KINDS.join(", ")),
    ));
}

/// A TLS context found in a resource.
struct Context {
    message: DynamicMessage,
    path: Vec<PathStep>,
    server: bool,
    quic: bool,
}

/// Checks every SDS reference of every TLS context against the Secrets of
/// the set, and the Secrets' content where it is used.
pub fn set(resources: &[Resource], diags: &mut Diagnostics) {
    let secrets: HashMap<&str, &Resource> = resources
        .iter()
        .filter(|r| r.rtype == ResourceType::Secret)
        .map(|r| (r.name.as_str(), r))
        .collect();
    if secrets.is_empty() {
        return;
    }
    let mut reported = HashSet::new();
    for resource in resources.iter().filter(|r| r.rtype != ResourceType::Secret) {
        let mut contexts = Vec::new();
        find_contexts(&resource.message, &mut Vec::new(), &mut contexts);
        for tls in contexts {
            let mut check = Check {
                resource,
                secrets: &secrets,
                tls: &tls,
                diags,
                reported: &mut reported,
            };
            check.references();
        }
    }
}

/// Every Downstream/UpstreamTlsContext under `m` (also inside `Any`).
fn find_contexts(m: &DynamicMessage, path: &mut Vec<PathStep>, found: &mut Vec<Context>) {
    if let Some(inner) = unpack_any(m) {
        find_contexts(&inner, path, found);
        return;
    }
    let name = m.descriptor().full_name().to_string();
    if name == DOWNSTREAM || name == UPSTREAM {
        found.push(Context {
            message: m.clone(),
            path: path.clone(),
            server: name == DOWNSTREAM,
            quic: in_quic(path),
        });
        return;
    }
    for (f, v) in m.fields() {
        match v {
            Value::Message(child) => {
                path.push(PathStep::Field(f.clone()));
                find_contexts(child, path, found);
                path.pop();
            }
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Message(child) = item {
                        path.extend([PathStep::Field(f.clone()), PathStep::Index(i)]);
                        find_contexts(child, path, found);
                        path.truncate(path.len() - 2);
                    }
                }
            }
            Value::Map(entries) => {
                for child in entries.values().filter_map(Value::as_message) {
                    path.push(PathStep::Field(f.clone()));
                    find_contexts(child, path, found);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

/// One TLS context's references, checked.
struct Check<'a> {
    resource: &'a Resource,
    secrets: &'a HashMap<&'a str, &'a Resource>,
    tls: &'a Context,
    diags: &'a mut Diagnostics,
    /// (secret, rule, message) already reported: a Secret used twice is reported once.
    reported: &'a mut HashSet<(String, &'static str, String)>,
}

impl<'a> Check<'a> {
    fn references(&mut self) {
        let tls = &self.tls.message;
        if self.tls.server
            && let Some((step, sds)) = child(tls, "session_ticket_keys_sds_secret_config")
            && let Some(secret) = self.resolve(sds, &[step], "session_ticket_keys")
        {
            self.in_secret(secret, "session_ticket_keys", context::ticket_keys);
        }
        let Some((ctc_step, ctc)) = child(tls, "common_tls_context") else {
            return;
        };
        let base = [ctc_step];
        let handshaker = has(ctc, "custom_handshaker");
        self.certificates(ctc, &base, handshaker);
        if let Some((step, sds)) = child(ctc, "validation_context_sds_secret_config")
            && let Some(secret) = self.resolve(sds, &join(&base, [step]), "validation_context")
            && !handshaker
            && let Some((_, vc)) = child(&secret.message, "validation_context")
        {
            self.auto_sni(vc);
            self.in_secret(secret, "validation_context", validation::check);
        }
        if let Some((step, combined)) = child(ctc, "combined_validation_context") {
            let at = join(&base, [step]);
            if let Some((sds_step, sds)) = child(combined, "validation_context_sds_secret_config")
                && let Some(secret) =
                    self.resolve(sds, &join(&at, [sds_step]), "validation_context")
                && !handshaker
            {
                self.combined(combined, &at, secret);
            }
        }
    }

    /// The tls_certificate Secrets of the context (used only when there are
    /// no inline certificates).
    fn certificates(&mut self, ctc: &DynamicMessage, base: &[PathStep], handshaker: bool) {
        if has(ctc, "tls_certificates") {
            return;
        }
        let Some((step, configs)) = items(ctc, "tls_certificate_sds_secret_configs") else {
            return;
        };
        let server = self.tls.server && !self.tls.quic;
        let mut unstapled = false;
        for (i, sds) in configs.into_iter().enumerate() {
            let at = join(base, [step.clone(), PathStep::Index(i)]);
            let Some(secret) = self.resolve(sds, &at, "tls_certificate") else {
                continue;
            };
            if handshaker {
                continue;
            }
            if let Some((_, tc)) = child(&secret.message, "tls_certificate") {
                unstapled |= certificate::counts(tc) && !certificate::has_ocsp_staple(tc);
            }
            self.in_secret(secret, "tls_certificate", |tc| {
                certificate::check(tc, server)
            });
        }
        if unstapled && self.tls.server && context::must_staple(&self.tls.message) {
            let finding = context::ocsp_missing(&self.tls.message);
            self.here(finding);
        }
    }

    /// The Secret an SDS reference names, when it is in the set, served by
    /// xdsd and of the `wanted` kind; a Secret of another kind is reported.
    fn resolve(
        &mut self,
        sds: &DynamicMessage,
        at: &[PathStep],
        wanted: &str,
    ) -> Option<&'a Resource> {
        let (name_field, name) = string_field(sds, "name")?;
        if let Some((_, Value::Message(source))) = field(sds, "sds_config")
            && (has(source, "path") || has(source, "path_config_source"))
        {
            return None;
        }
        let secrets: &'a HashMap<&'a str, &'a Resource> = self.secrets;
        let secret: &'a Resource = secrets.get(name.as_str())?;
        let kind = KINDS.iter().find(|k| has(&secret.message, k))?;
        if *kind == wanted {
            return Some(secret);
        }
        let position = at
            .iter()
            .rev()
            .find_map(|s| match s {
                PathStep::Field(f) => Some(f.name().to_string()),
                PathStep::Index(_) | PathStep::Key(_) => None,
            })
            .unwrap_or_default();
        let location = self.resource.locate(&join(
            &join(&self.tls.path, at.iter().cloned()),
            [PathStep::Field(name_field)],
        ));
        self.diags.report(
            &KIND_MISMATCH,
            location,
            format!("`{name}` is a {kind} secret, but `{position}` needs a {wanted}"),
        );
        None
    }

    /// Runs `check` on the Secret's `kind` payload and reports in the Secret.
    fn in_secret(
        &mut self,
        secret: &Resource,
        kind: &str,
        check: impl FnOnce(&DynamicMessage) -> Vec<Finding>,
    ) {
        let Some((step, payload)) = child(&secret.message, kind) else {
            return;
        };
        for finding in check(payload) {
            self.report_in(secret, std::slice::from_ref(&step), finding);
        }
    }

    fn report_in(&mut self, resource: &Resource, base: &[PathStep], finding: Finding) {
        let path = join(base, finding.path);
        let key = (
            resource.name.clone(),
            finding.rule.id,
            finding.message.clone(),
        );
        if resource.rtype == ResourceType::Secret && !self.reported.insert(key) {
            return;
        }
        let location = if finding.missing {
            resource.locate_body(&path)
        } else {
            resource.locate(&path)
        };
        self.diags.report(finding.rule, location, finding.message);
    }

    /// A finding about the TLS context itself (path relative to it).
    fn here(&mut self, finding: Finding) {
        let base = self.tls.path.clone();
        self.report_in(self.resource, &base, finding);
    }

    /// auto_sni_san_validation against the validation context a Secret gives.
    fn auto_sni(&mut self, vc: &DynamicMessage) {
        if !self.tls.server
            && is_true(&self.tls.message, "auto_sni_san_validation")
            && !has(vc, "custom_validator_config")
            && !validation::has_trusted_ca(vc)
        {
            let finding = context::auto_sni_finding(
                &self.tls.message,
                "`auto_sni_san_validation` needs a `trusted_ca` in the validation context",
            );
            self.here(finding);
        }
    }

    /// A combined validation context: Envoy merges the Secret's context
    /// into the default one and builds the result. Each finding is placed
    /// where its field comes from.
    fn combined(&mut self, combined: &DynamicMessage, at: &[PathStep], secret: &Resource) {
        let Some((secret_step, from_secret)) = child(&secret.message, "validation_context") else {
            return;
        };
        let default = child(combined, "default_validation_context");
        let mut merged = default.as_ref().map_or_else(
            || DynamicMessage::new(from_secret.descriptor()),
            |(_, d)| (*d).clone(),
        );
        if merged
            .merge(from_secret.encode_to_vec().as_slice())
            .is_err()
        {
            return;
        }
        self.auto_sni(&merged);
        for finding in validation::check(&merged) {
            let first = match finding.path.first() {
                Some(PathStep::Field(f)) => Some(f.clone()),
                _ => None,
            };
            let in_secret =
                first.as_ref().is_none_or(|f| from_secret.has_field(f)) || default.is_none();
            let mut finding = finding;
            if let (Some(f), Some((_, d)), Some(PathStep::Index(i))) =
                (&first, &default, finding.path.get(1).cloned())
                && f.is_list()
            {
                // Repeated fields are concatenated: the default's items come first.
                let before = d.get_field(f).as_list().map_or(0, <[Value]>::len);
                if i >= before {
                    finding.path[1] = PathStep::Index(i - before);
                    self.report_in(secret, std::slice::from_ref(&secret_step), finding);
                } else if let Some((step, _)) = &default {
                    let base = join(&join(&self.tls.path, at.iter().cloned()), [step.clone()]);
                    self.report_in(self.resource, &base, finding);
                }
                continue;
            }
            if in_secret {
                self.report_in(secret, std::slice::from_ref(&secret_step), finding);
            } else if let Some((step, _)) = &default {
                let base = join(&join(&self.tls.path, at.iter().cloned()), [step.clone()]);
                self.report_in(self.resource, &base, finding);
            }
        }
    }
}
