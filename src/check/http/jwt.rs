//! The jwt_authn filter: providers, requirements and key sets.

use super::{field, items, join, step, text};
use crate::check::{Finding, Rule};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, MapKey, Value};
use std::collections::BTreeSet;

pub static UNKNOWN_PROVIDER: Rule = Rule {
    id: "jwt-unknown-provider",
    summary: "a jwt_authn requirement names a provider that is not defined in `providers`",
    explanation: "JWT requirements refer to providers by their key in `providers`. Envoy builds every \
requirement at load time and rejects a name that is not defined there (\"Required provider ... is not \
configured\"), even in a requirement_map entry that no rule uses.",
    envoy: "source/extensions/filters/http/jwt_authn/verifier.cc",
    ..Rule::ERROR
};

pub static UNKNOWN_REQUIREMENT: Rule = Rule {
    id: "jwt-unknown-requirement-name",
    summary: "a jwt_authn rule's requirement_name is not a key of requirement_map",
    explanation: "A rule can point at a named requirement in requirement_map instead of spelling it \
inline; the name must exist there. Envoy rejects the filter if it does not (\"Wrong requirement_name\").",
    envoy: "source/extensions/filters/http/jwt_authn/filter_config.cc",
    ..Rule::ERROR
};

pub static LOCAL_JWKS: Rule = Rule {
    id: "jwt-invalid-local-jwks",
    summary: "an inline local_jwks is not a usable JSON Web Key Set",
    explanation: "local_jwks must be a JSON Web Key Set: an object with a `keys` array of JWKs, each with a \
supported `kty` (RSA, EC, oct, OKP). Envoy parses it at load time and rejects the filter if no key can be \
used. PEM keys and bare single JWKs are not accepted.",
    envoy: "source/extensions/filters/http/jwt_authn/filter_factory.cc",
    ..Rule::ERROR
};

pub static REMOTE_JWKS_URI: Rule = Rule {
    id: "jwt-remote-jwks-uri",
    summary: "remote_jwks.http_uri.uri is not an absolute http(s) URL",
    explanation: "Envoy fetches remote JWKS from http_uri.uri, which must be a full URL with a scheme and \
host, such as https://issuer.example.com/.well-known/jwks.json (\"has an invalid URI\").",
    envoy: "source/extensions/filters/http/jwt_authn/filter_config.cc",
    ..Rule::ERROR
};

pub static CLAIM_TO_HEADER_SOURCE: Rule = Rule {
    id: "jwt-claim-to-headers-claim",
    summary: "a jwt_authn claim_to_headers entry does not set exactly one of claim_name and claim_path",
    explanation: "Each `claim_to_headers` entry of a provider copies one claim into a header, and names the claim \
either by `claim_name` (split on dots into nested claims) or by `claim_path` (explicit segments, for claim \
names with dots in them): exactly one of the two. Envoy resolves every entry when it builds the provider and \
rejects an entry with neither (an empty claim_name and no claim_path) or with both (\"does not set exactly \
one of claim_name and claim_path\").",
    envoy: "source/extensions/filters/http/jwt_authn/jwks_cache.cc",
    ..Rule::ERROR
};

pub fn message(name: &str, m: &DynamicMessage, out: &mut Vec<Finding>) {
    if name == "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication" {
        let providers = providers(m, out);
        requirements(m, &providers, out);
    }
}

/// Checks each provider's keys; returns the provider names.
fn providers(m: &DynamicMessage, out: &mut Vec<Finding>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Some((f, Value::Map(providers))) = field(m, "providers") else {
        return names;
    };
    for (key, provider) in providers {
        let MapKey::String(name) = key else { continue };
        names.insert(name.clone());
        let Value::Message(provider) = provider else {
            continue;
        };
        let path = vec![PathStep::Field(f.clone()), PathStep::key(key)];
        claim_to_headers(name, provider, &path, out);
        if let Some((lf, Value::Message(local))) = field(provider, "local_jwks")
            && let Some((inner, bytes)) = super::inline_source(local)
            && let Some(reason) = jwks_defect(&bytes)
        {
            out.push(Finding::at(
                &LOCAL_JWKS,
                join(&path, [PathStep::Field(lf)].into_iter().chain(inner)),
                format!("provider '{name}': local_jwks is not a valid JWKS: {reason}"),
            ));
        }
        if let Some((rf, Value::Message(remote))) = field(provider, "remote_jwks")
            && let Some((hf, Value::Message(http_uri))) = field(remote, "http_uri")
            && let Some((uf, Value::String(uri))) = field(http_uri, "uri")
            && !is_absolute_url(uri)
        {
            out.push(Finding::at(
                &REMOTE_JWKS_URI,
                join(
                    &path,
                    [
                        PathStep::Field(rf),
                        PathStep::Field(hf),
                        PathStep::Field(uf),
                    ],
                ),
                format!("provider '{name}': remote_jwks uri '{uri}' is not a valid URL"),
            ));
        }
    }
    names
}

/// Entries of `claim_to_headers` naming their claim both ways or neither.
/// An empty claim_name counts as unset, as in proto3.
fn claim_to_headers(
    provider_name: &str,
    provider: &DynamicMessage,
    path: &[PathStep],
    out: &mut Vec<Finding>,
) {
    for (i, entry) in items(provider, "claim_to_headers").iter().enumerate() {
        let Some(entry) = entry.as_message() else {
            continue;
        };
        let by_name = !text(entry, "claim_name").is_empty();
        let by_path = !items(entry, "claim_path").is_empty();
        if by_name != by_path {
            continue;
        }
        let how = if by_name { "both" } else { "neither" };
        out.push(Finding::at(
            &CLAIM_TO_HEADER_SOURCE,
            join(
                path,
                step(provider, "claim_to_headers")
                    .into_iter()
                    .chain([PathStep::Index(i)]),
            ),
            format!(
                "provider '{provider_name}': the claim_to_headers entry for header '{}' sets {how} of claim_name and claim_path; set exactly one",
                text(entry, "header_name")
            ),
        ));
    }
}

/// A scheme and a host, as `Http::Utility::Url::initialize` requires.
fn is_absolute_url(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !scheme.is_empty() && !host.is_empty()
}

/// Why jwt_verify_lib would find no usable key, for the cases lint can tell.
fn jwks_defect(bytes: &[u8]) -> Option<String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let Ok(serde_json::Value::Object(jwks)) = serde_json::from_slice::<serde_json::Value>(bytes)
    else {
        return Some("Jwks is an invalid JSON".into());
    };
    let Some(keys) = jwks.get("keys") else {
        return Some("Jwks does not have [keys] field".into());
    };
    let serde_json::Value::Array(keys) = keys else {
        return Some("[keys] in Jwks is not an array".into());
    };
    const KTY: &[&str] = &["RSA", "EC", "oct", "OKP"];
    let objects: Vec<_> = keys.iter().filter_map(|k| k.as_object()).collect();
    if objects.iter().any(|k| {
        k.get("kty")
            .and_then(|t| t.as_str())
            .is_some_and(|t| KTY.contains(&t))
    }) {
        return None;
    }
    Some(match objects.first().map(|k| k.get("kty")) {
        None => "Jwks doesn't have any valid public key".into(),
        Some(None) => "[kty] is missing in [keys]".into(),
        Some(Some(_)) => "[kty] is not supported in [keys]".into(),
    })
}

fn requirements(m: &DynamicMessage, providers: &BTreeSet<String>, out: &mut Vec<Finding>) {
    let mut names = BTreeSet::new();
    if let Some((f, Value::Map(map))) = field(m, "requirement_map") {
        for (key, requirement) in map {
            if let MapKey::String(name) = key {
                names.insert(name.clone());
            }
            if let Value::Message(requirement) = requirement {
                let path = vec![PathStep::Field(f.clone()), PathStep::key(key)];
                requirement_providers(requirement, providers, path, out);
            }
        }
    }
    for (i, rule) in items(m, "rules").iter().enumerate() {
        let Some(rule) = rule.as_message() else {
            continue;
        };
        let path = join(&step(m, "rules"), [PathStep::Index(i)]);
        if let Some((rf, Value::Message(requires))) = field(rule, "requires") {
            requirement_providers(requires, providers, join(&path, [PathStep::Field(rf)]), out);
        }
        let name = text(rule, "requirement_name");
        if !name.is_empty() && !names.contains(name) {
            out.push(Finding::at(
                &UNKNOWN_REQUIREMENT,
                join(&path, step(rule, "requirement_name")),
                format!("jwt_authn rule requirement_name '{name}' is not in requirement_map"),
            ));
        }
    }
}

/// Every provider a requirement names, through requires_any / requires_all.
fn requirement_providers(
    r: &DynamicMessage,
    providers: &BTreeSet<String>,
    path: Vec<PathStep>,
    out: &mut Vec<Finding>,
) {
    let mut named = |holder: &DynamicMessage, at: Vec<PathStep>| {
        if let Some((f, Value::String(p))) = field(holder, "provider_name")
            && !providers.contains(p.as_str())
        {
            out.push(Finding::at(
                &UNKNOWN_PROVIDER,
                join(&at, [PathStep::Field(f)]),
                format!("jwt_authn requirement names unknown provider '{p}'"),
            ));
        }
    };
    named(r, path.clone());
    if let Some((f, Value::Message(pa))) = field(r, "provider_and_audiences") {
        named(pa, join(&path, [PathStep::Field(f)]));
    }
    for list in ["requires_any", "requires_all"] {
        let Some((f, Value::Message(group))) = field(r, list) else {
            continue;
        };
        for (i, inner) in items(group, "requirements").iter().enumerate() {
            if let Some(inner) = inner.as_message() {
                let at = join(
                    &path,
                    [PathStep::Field(f.clone())]
                        .into_iter()
                        .chain(step(group, "requirements"))
                        .chain([PathStep::Index(i)]),
                );
                requirement_providers(inner, providers, at, out);
            }
        }
    }
}
