//! Secrets are never displayed: every field Envoy's protos annotate
//! `udpa.annotations.sensitive` (private keys, session ticket keys, HMAC and
//! generic secrets), and everything below one, is replaced by `[redacted]`
//! the way Envoy's own config dump does it, wherever xdsd shows config
//! (CSDS, admin `/config`, `xdsd status`, `xdsd diff`, `render --redact`)
//! and in the text of diagnostics. The list of sensitive fields is read from
//! the descriptors, never written by hand, so a field Envoy marks in a later
//! release is covered when the schema is updated.

use crate::config::schema;
use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, ReflectMessage, Value};
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// What a secret is replaced by (as bytes for a `bytes` field, which JSON
/// then shows base64-encoded, `W3JlZGFjdGVkXQ==`, as Envoy's dump does).
pub const REDACTED: &str = "[redacted]";

/// Shorter lines of a secret are not scrubbed from text: they would match
/// ordinary words (a PEM's `-----END` line is not secret either).
const MIN_SECRET_LINE: usize = 8;

/// The full names of every field annotated `udpa.annotations.sensitive` in
/// the schema, read once per process (field names do not change when the
/// pool is decoded again).
pub fn sensitive_fields() -> &'static BTreeSet<String> {
    static FIELDS: OnceLock<BTreeSet<String>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let _lease = schema::PoolLease::take();
        let pool = schema::pool();
        let Some(sensitive) = pool.get_extension_by_name("udpa.annotations.sensitive") else {
            return BTreeSet::new();
        };
        pool.all_messages()
            .flat_map(|m| m.fields().collect::<Vec<_>>())
            // Decoding every field's options is slow; most fields have none.
            .filter(|f| f.field_descriptor_proto().options.is_some())
            .filter(|f| {
                let options = f.options();
                options.has_extension(&sensitive)
                    && options.get_extension(&sensitive).as_bool() == Some(true)
            })
            .map(|f| f.full_name().to_string())
            .collect()
    })
}

/// True when `field` is annotated sensitive.
pub fn is_sensitive(field: &FieldDescriptor) -> bool {
    sensitive_fields().contains(field.full_name())
}

/// Redacts `message` in place, through `Any`s; true when anything was secret.
pub fn message(message: &mut DynamicMessage) -> bool {
    walk(message, false)
}

/// The encoded message `bytes` of type `type_url` with its secrets redacted,
/// or `None` when it holds none (or cannot be decoded), so callers keep the
/// shared bytes they have.
pub fn encoded(type_url: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let desc = schema::message_by_type_url(type_url)?;
    let mut decoded = DynamicMessage::decode(desc, bytes).ok()?;
    message(&mut decoded).then(|| decoded.encode_to_vec())
}

/// Envoy's `MessageUtil::redact`: strings and bytes at or below a sensitive
/// field become [`REDACTED`], other scalars there are cleared; map keys stay.
fn walk(message: &mut DynamicMessage, sensitive: bool) -> bool {
    if message.descriptor().full_name() == "google.protobuf.Any" {
        return any(message, sensitive);
    }
    let mut changed = false;
    let mut cleared = Vec::new();
    for (field, value) in message.fields_mut() {
        let sensitive = sensitive || is_sensitive(&field);
        match value_in_place(value, &field.kind(), sensitive) {
            Leaf::Kept => {}
            Leaf::Replaced => changed = true,
            Leaf::Clear => cleared.push(field),
        }
    }
    for field in &cleared {
        message.clear_field(field);
    }
    changed || !cleared.is_empty()
}

/// What became of one value.
enum Leaf {
    Kept,
    Replaced,
    /// A secret that is neither text nor a message: the field is cleared.
    Clear,
}

fn value_in_place(value: &mut Value, kind: &Kind, sensitive: bool) -> Leaf {
    let replaced = |changed: bool| if changed { Leaf::Replaced } else { Leaf::Kept };
    match value {
        Value::Message(m) => replaced(walk(m, sensitive)),
        Value::List(items) => {
            let mut changed = false;
            for item in items.iter_mut() {
                match value_in_place(item, kind, sensitive) {
                    Leaf::Kept => {}
                    Leaf::Replaced => changed = true,
                    Leaf::Clear => return Leaf::Clear,
                }
            }
            replaced(changed)
        }
        Value::Map(entries) => {
            let value_kind = match kind {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other.clone(),
            };
            let mut changed = false;
            for item in entries.values_mut() {
                match value_in_place(item, &value_kind, sensitive) {
                    Leaf::Kept => {}
                    Leaf::Replaced => changed = true,
                    Leaf::Clear => return Leaf::Clear,
                }
            }
            replaced(changed)
        }
        _ if !sensitive => Leaf::Kept,
        Value::String(s) => {
            *s = REDACTED.to_string();
            Leaf::Replaced
        }
        Value::Bytes(b) => {
            *b = REDACTED.as_bytes().to_vec().into();
            Leaf::Replaced
        }
        _ => Leaf::Clear,
    }
}

/// An `Any`: its message is redacted and packed again when it held a secret.
/// One that cannot be unpacked is left alone unless it is itself secret.
fn any(message: &mut DynamicMessage, sensitive: bool) -> bool {
    let url = message
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let bytes = message
        .get_field_by_name("value")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let unpacked = schema::message_by_type_url(&url)
        .and_then(|desc| DynamicMessage::decode(desc, bytes.clone()).ok());
    let redacted = match unpacked {
        Some(mut inner) => walk(&mut inner, sensitive).then(|| inner.encode_to_vec()),
        None => sensitive.then(Vec::new),
    };
    match redacted {
        Some(value) => {
            message.set_field_by_name("value", Value::Bytes(value.into()));
            true
        }
        None => false,
    }
}

/// The secret values in `message` (text, and bytes as text and base64, as a
/// file or a JSON form would spell them), for [`scrub`].
pub fn secrets(message: &DynamicMessage) -> Vec<String> {
    let mut found = Vec::new();
    collect(message, false, &mut found);
    found
}

fn collect(message: &DynamicMessage, sensitive: bool, found: &mut Vec<String>) {
    if let Some(inner) = crate::config::reflect::unpack_any(message) {
        return collect(&inner, sensitive, found);
    }
    for (field, value) in message.fields() {
        collect_value(value, sensitive || is_sensitive(&field), found);
    }
}

fn collect_value(value: &Value, sensitive: bool, found: &mut Vec<String>) {
    use base64::Engine;
    match value {
        Value::Message(m) => collect(m, sensitive, found),
        Value::List(items) => items
            .iter()
            .for_each(|v| collect_value(v, sensitive, found)),
        Value::Map(entries) => entries
            .values()
            .for_each(|v| collect_value(v, sensitive, found)),
        Value::String(s) if sensitive => found.push(s.clone()),
        Value::Bytes(b) if sensitive => {
            found.push(String::from_utf8_lossy(b).into_owned());
            found.push(base64::engine::general_purpose::STANDARD.encode(b));
        }
        _ => {}
    }
}

/// `text` with every line of every secret (of at least 8 characters, after
/// trimming) replaced by [`REDACTED`]: for messages that may quote a value.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut lines: Vec<&str> = secrets
        .iter()
        .flat_map(|s| s.lines())
        .map(str::trim)
        .filter(|l| l.len() >= MIN_SECRET_LINE)
        .collect();
    // Longest first, so a line is never left half-replaced by a shorter one.
    lines.sort_by_key(|l| std::cmp::Reverse(l.len()));
    lines.dedup();
    let mut out = text.to_string();
    for line in lines {
        if out.contains(line) {
            out = out.replace(line, REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::loader::load_str;

    #[test]
    fn the_sensitive_fields_come_from_the_annotations() {
        let fields = sensitive_fields();
        // The figure moves with Envoy's protos; it is printed for the record.
        eprintln!("{} sensitive fields: {fields:#?}", fields.len());
        for expected in [
            "envoy.extensions.transport_sockets.tls.v3.TlsCertificate.private_key",
            "envoy.extensions.transport_sockets.tls.v3.TlsSessionTicketKeys.keys",
            "envoy.extensions.transport_sockets.tls.v3.GenericSecret.secret",
        ] {
            assert!(fields.contains(expected), "{expected} in {fields:#?}");
        }
        // Envoy 1.40 has no HmacSecret message: OAuth2's `hmac_secret` is an SDS
        // reference to a Secret whose GenericSecret.secret holds it (above).
        // The AWS, Redis, basic-auth and API-key credentials are marked too.
        for expected in [
            "envoy.extensions.transport_sockets.tls.v3.TlsCertificate.password",
            "envoy.extensions.common.aws.v3.InlineCredentialProvider.secret_access_key",
            "envoy.extensions.filters.network.redis_proxy.v3.RedisProtocolOptions.auth_password",
            "envoy.extensions.filters.http.basic_auth.v3.BasicAuth.users",
        ] {
            assert!(fields.contains(expected), "{expected} in {fields:#?}");
        }
        // 27 in Envoy 1.40's own descriptors: the file-based metadata call
        // credentials (28th in the older envoy-types set) are not linked
        // into Envoy 1.40, which rejects them.
        assert_eq!(
            fields.len(),
            27,
            "Envoy 1.40's sensitive fields: {fields:#?}"
        );
        assert!(
            !fields.iter().any(|f| f.ends_with(".certificate_chain")),
            "a certificate is not secret"
        );
    }

    const SECRET: &str = "\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n\
name: s\n\
tls_certificate:\n  certificate_chain: {inline_string: public-chain}\n  private_key: {inline_string: \"very secret key text\"}\n\
---\n\
\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n\
name: t\n\
session_ticket_keys: {keys: [{inline_bytes: c2Vzc2lvbi10aWNrZXQta2V5LWJ5dGVz}]}\n";

    #[test]
    fn secrets_become_redacted_and_the_rest_stays() {
        let loaded = load_str("a.yaml", SECRET);
        assert!(loaded.diagnostics.is_ok(), "{:?}", loaded.diagnostics);
        let mut key = loaded.resources[0].message.as_ref().clone();
        assert!(message(&mut key));
        let json = crate::config::render::message_json(loaded.resources[0].rtype, &key).to_string();
        assert!(
            json.contains(r#""private_key":{"inline_string":"[redacted]"}"#),
            "{json}"
        );
        assert!(json.contains("public-chain"), "{json}");
        assert!(!json.contains("very secret"), "{json}");
        let mut tickets = loaded.resources[1].message.as_ref().clone();
        assert!(message(&mut tickets));
        let json =
            crate::config::render::message_json(loaded.resources[1].rtype, &tickets).to_string();
        assert!(
            json.contains("W3JlZGFjdGVkXQ=="),
            "bytes hold `[redacted]`: {json}"
        );

        assert!(
            !message(&mut DynamicMessage::new(
                schema::ResourceType::Cluster.descriptor()
            )),
            "nothing secret, nothing changed"
        );
    }

    #[test]
    fn secrets_inside_an_any_are_redacted_and_repacked() {
        let listener = "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\nname: l\n\
address: {socket_address: {address: 0.0.0.0, port_value: 443}}\n\
filter_chains:\n- transport_socket:\n    name: tls\n    typed_config:\n      \
\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n      \
common_tls_context: {tls_certificates: [{certificate_chain: {filename: /c.pem}, private_key: {inline_string: \"hidden key text\"}}]}\n  \
filters: [{name: tcp, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}}]\n";
        let loaded = load_str("l.yaml", listener);
        let resource = &loaded.resources[0];
        let wire = resource.message.encode_to_vec();
        let redacted = encoded(&resource.rtype.type_url(), &wire).expect("a secret inside");
        let text = String::from_utf8_lossy(&redacted);
        assert!(!text.contains("hidden key"), "{text}");
        assert!(text.contains(REDACTED) && text.contains("/c.pem"), "{text}");
        assert_eq!(secrets(&resource.message), ["hidden key text"]);
    }

    #[test]
    fn scrub_replaces_every_long_line_of_a_secret() {
        let secrets = vec!["-----BEGIN KEY-----\nAAAABBBBCCCCDDDD\nshort\n".to_string()];
        assert_eq!(
            scrub("`x`: `AAAABBBBCCCCDDDD` is bad; short stays", &secrets),
            "`x`: `[redacted]` is bad; short stays"
        );
    }
}
