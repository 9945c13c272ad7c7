//! The `string` and `bytes` rule kinds: lengths, affixes, allowed values,
//! patterns (compiled once and cached in [`Rules`]) and the well-known
//! formats (header names and values, IP addresses), with the RE2 syntax
//! check that other checks use for the regexes of a config.

use super::Rules;
use super::read::rule;
use prost_reflect::{DynamicMessage, Value};
use regex::Regex;

impl Rules {
    pub(super) fn check_string(&mut self, r: &DynamicMessage, s: &str) -> Option<String> {
        let chars = s.chars().count() as u64;
        let bytes = s.len() as u64;
        let u = |n: &str| rule(r, n).and_then(|v| v.as_u64());
        if let Some(min) = u("min_len")
            && chars < min
        {
            return Some(if min == 1 {
                "must not be empty".into()
            } else {
                format!("must be at least {min} characters long")
            });
        }
        if let Some(max) = u("max_len")
            && chars > max
        {
            return Some(format!("must be at most {max} characters long"));
        }
        if let Some(len) = u("len")
            && chars != len
        {
            return Some(format!("must be exactly {len} characters long"));
        }
        if let Some(min) = u("min_bytes")
            && bytes < min
        {
            return Some(if min == 1 {
                "must not be empty".into()
            } else {
                format!("must be at least {min} bytes long")
            });
        }
        if let Some(max) = u("max_bytes")
            && bytes > max
        {
            return Some(format!("must be at most {max} bytes long"));
        }
        let text = |n: &str| rule(r, n).and_then(|v| v.as_str().map(str::to_string));
        if let Some(c) = text("const")
            && s != c
        {
            return Some(format!("must be `{c}`"));
        }
        if let Some(p) = text("prefix")
            && !s.starts_with(&p)
        {
            return Some(format!("must start with `{p}`"));
        }
        if let Some(p) = text("suffix")
            && !s.ends_with(&p)
        {
            return Some(format!("must end with `{p}`"));
        }
        if let Some(p) = text("contains")
            && !s.contains(&p)
        {
            return Some(format!("must contain `{p}`"));
        }
        if let Some(p) = text("not_contains")
            && s.contains(&p)
        {
            return Some(format!("must not contain `{p}`"));
        }
        if let Some(Value::List(allowed)) = rule(r, "in").as_deref()
            && !allowed.iter().any(|a| a.as_str() == Some(s))
        {
            return Some(format!("`{s}` is not one of the allowed values"));
        }
        if let Some(Value::List(denied)) = rule(r, "not_in").as_deref()
            && denied.iter().any(|a| a.as_str() == Some(s))
        {
            return Some(format!("`{s}` is not allowed"));
        }
        if let Some(p) = text("pattern")
            && let Some(re) = self.pattern(&p)
            && !re.is_match(s)
        {
            return Some(format!("`{s}` does not match the pattern `{p}`"));
        }
        if let Some(text) = check_well_known(r, s) {
            return Some(text);
        }
        None
    }

    fn pattern(&mut self, p: &str) -> Option<&Regex> {
        self.patterns
            .entry(p.to_string())
            .or_insert_with(|| Regex::new(p).ok())
            .as_ref()
    }
}

fn check_well_known(r: &DynamicMessage, s: &str) -> Option<String> {
    let strict = rule(r, "strict").and_then(|v| v.as_bool()).unwrap_or(true);
    if let Some(Value::EnumNumber(n)) = rule(r, "well_known_regex").as_deref() {
        // 1 = HTTP_HEADER_NAME, 2 = HTTP_HEADER_VALUE (validate.proto).
        let bad = match (*n, strict) {
            (1, true) => {
                s.is_empty()
                    || !s.strip_prefix(':').unwrap_or(s).bytes().all(is_token_byte)
                    || s == ":"
            }
            (2, true) => s.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n'),
            (_, false) => s.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n'),
            _ => false,
        };
        if bad {
            let what = if *n == 1 {
                "a valid HTTP header name"
            } else {
                "a valid HTTP header value"
            };
            return Some(format!("`{}` is not {what}", s.escape_debug()));
        }
    }
    let flag = |n: &str| rule(r, n).and_then(|v| v.as_bool()) == Some(true);
    if flag("ip") && s.parse::<std::net::IpAddr>().is_err() {
        return Some(format!("`{s}` is not an IP address"));
    }
    if flag("ipv4") && s.parse::<std::net::Ipv4Addr>().is_err() {
        return Some(format!("`{s}` is not an IPv4 address"));
    }
    if flag("ipv6") && s.parse::<std::net::Ipv6Addr>().is_err() {
        return Some(format!("`{s}` is not an IPv6 address"));
    }
    None
}

/// RFC 7230 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(super) fn check_bytes(r: &DynamicMessage, b: &[u8]) -> Option<String> {
    let len = b.len() as u64;
    let u = |n: &str| rule(r, n).and_then(|v| v.as_u64());
    if let Some(min) = u("min_len")
        && len < min
    {
        return Some(format!("must be at least {min} bytes long"));
    }
    if let Some(max) = u("max_len")
        && len > max
    {
        return Some(format!("must be at most {max} bytes long"));
    }
    u("len")
        .filter(|n| *n != len)
        .map(|n| format!("must be exactly {n} bytes long"))
}

/// Compiles a regex with RE2's syntax as far as Rust's `regex` matches it
/// (both refuse look-around and backreferences).
pub fn check_re2(re: &str) -> Result<(), String> {
    match regex::RegexBuilder::new(re).size_limit(1 << 24).build() {
        Ok(_) => Ok(()),
        Err(regex::Error::Syntax(s)) => Err(s
            .lines()
            .last()
            .unwrap_or("syntax error")
            .trim()
            .trim_start_matches("error: ")
            .to_string()),
        Err(e) => Err(e.to_string()),
    }
}
