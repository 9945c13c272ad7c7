//! TLS cipher suites: BoringSSL refuses a context whose list names a
//! cipher it does not know, so names are checked against its list; rule
//! keywords and groups are left to it.

use super::wrong;
use crate::check::{Finding, Rule};
use crate::config::reflect::list;
use crate::config::resource::PathStep;
use prost_reflect::DynamicMessage;

/// A cipher suite BoringSSL does not know.
pub static UNKNOWN_CIPHER: Rule = Rule {
    id: "tls-unknown-cipher",
    summary: "a cipher suite name is not known to BoringSSL",
    explanation: "Each `cipher_suites` entry that is spelled like a cipher name must name one BoringSSL knows; \
Envoy tries the list and refuses the context when one is rejected (\"Failed to initialize cipher suites\").",
    envoy: "source/common/tls/context_impl.cc",
    ..Rule::ERROR
};

/// Cipher suites BoringSSL knows, by their OpenSSL names (TLS 1.2 and below).
const KNOWN_CIPHERS: [&str; 22] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-PSK-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-PSK-AES128-CBC-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "ECDHE-PSK-AES256-CBC-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "PSK-AES128-CBC-SHA",
    "AES256-SHA",
    "PSK-AES256-CBC-SHA",
    "DES-CBC3-SHA",
    "ECDHE-ECDSA-CHACHA20-POLY1305-OLD",
    "ECDHE-RSA-CHACHA20-POLY1305-OLD",
];

/// Flags entries that are spelled like a full cipher name but name none.
/// Rule keywords (`ALL`, `HIGH`, `-kRSA`, ...) and `[A|B]` groups pass.
pub(super) fn cipher_suites(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let Some((f, items)) = list(m, "cipher_suites") else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let Some(entry) = item.as_str() else { continue };
        let names = entry
            .trim_start_matches(['[', '!', '-', '+'])
            .trim_end_matches(']');
        for name in names.split('|') {
            let full_name_shape = name.matches('-').count() >= 2
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
            if full_name_shape && !KNOWN_CIPHERS.contains(&name) {
                out.push(wrong(
                    &UNKNOWN_CIPHER,
                    vec![PathStep::Field(f.clone()), PathStep::Index(i)],
                    format!("unknown cipher suite `{name}`"),
                ));
            }
        }
    }
}
