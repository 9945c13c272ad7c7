//! Which findings count: `--allow ID` and `--deny ID` on the command line,
//! and `# xdsd: allow(ID, ...)` comments in a resource's YAML document.
//!
//! An allowed rule's findings are dropped; a denied rule's findings become
//! errors. Rules whose findings leave nothing to serve (YAML syntax, schema
//! errors) cannot be allowed. An allow comment covers the document it is
//! written in (the text between two `---` lines), so it sits with the
//! resource it excuses.

use super::Rule;
use crate::config::diag::{Diagnostics, Location, Severity};
use crate::config::yaml::Mark;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The rules this module reports.
pub static RULES: &[&Rule] = &[&ALLOW_COMMENT];

/// An allow comment that cannot take effect.
pub static ALLOW_COMMENT: Rule = Rule {
    id: "allow-comment",
    summary: "an `# xdsd: allow(...)` comment names an unknown rule or one that cannot be allowed",
    explanation: "`# xdsd: allow(ID, ...)` in a resource's YAML document drops that document's findings of \
those rules. The id must be a rule's (`xdsd lint --explain ID`, docs/rules.md), and the rule must be one \
that can be allowed: syntax and schema errors cannot, since nothing could be served.",
    ..Rule::WARNING
};

/// `--allow` and `--deny`, checked against the registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    allow: BTreeSet<&'static str>,
    deny: BTreeSet<&'static str>,
}

impl Policy {
    /// A policy from rule ids; an unknown id, or allowing a rule that
    /// cannot be allowed, is an error naming it.
    pub fn new(allow: &[String], deny: &[String]) -> Result<Policy, String> {
        let mut policy = Policy::default();
        for id in allow {
            let rule = known(id)?;
            if !rule.allowable {
                return Err(format!(
                    "rule `{id}` cannot be allowed: the resource cannot be built without it"
                ));
            }
            policy.allow.insert(rule.id);
        }
        for id in deny {
            let rule = known(id)?;
            if policy.allow.contains(rule.id) {
                return Err(format!("rule `{id}` is both allowed and denied"));
            }
            policy.deny.insert(rule.id);
        }
        Ok(policy)
    }

    /// The ids allowed, then the ids denied (to hand the policy to another process).
    pub fn ids(&self) -> (Vec<String>, Vec<String>) {
        let strings = |set: &BTreeSet<&str>| set.iter().map(|s| s.to_string()).collect();
        (strings(&self.allow), strings(&self.deny))
    }

    /// Drops allowed findings and turns denied ones into errors.
    pub fn apply(&self, diags: &mut Diagnostics) {
        if self.allow.is_empty() && self.deny.is_empty() {
            return;
        }
        diags.retain(|d| !self.allow.contains(d.rule));
        diags.adjust(|d| {
            if self.deny.contains(d.rule) {
                d.severity = Severity::Error;
            }
        });
    }
}

fn known(id: &str) -> Result<&'static Rule, String> {
    super::find(id).ok_or_else(|| {
        format!(
            "unknown rule `{id}` (`xdsd lint --explain` lists rules, docs/rules.md explains them)"
        )
    })
}

/// Rules allowed by comments in one document of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowance {
    /// The file, as reached from `--dir`.
    pub file: Arc<str>,
    /// First and last line of the document.
    pub lines: (u32, u32),
    /// The rules it allows.
    pub rules: Vec<&'static str>,
}

/// What the comments of one document allow; comments naming no rule that
/// can be allowed are reported (as [`ALLOW_COMMENT`] warnings).
pub fn scan(
    file: &Arc<str>,
    text: &str,
    first_line: u32,
    diags: &mut Diagnostics,
) -> Option<Allowance> {
    const MARKER: &str = "xdsd: allow(";
    if !text.contains(MARKER) {
        return None;
    }
    let mut rules = Vec::new();
    let mut last_line = first_line;
    for (n, line) in text.lines().enumerate() {
        let line_no = first_line.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        last_line = line_no;
        let Some(at) = comment_start(line) else {
            continue;
        };
        // The marker may follow other words of the comment.
        let Some(list) = line[at..].split_once(MARKER).map(|(_, rest)| rest) else {
            continue;
        };
        let list = list.split(')').next().unwrap_or_default();
        let col = u32::try_from(line[..at].chars().count() + 1).unwrap_or(u32::MAX);
        for id in list.split(',').map(str::trim).filter(|id| !id.is_empty()) {
            match super::find(id) {
                Some(rule) if rule.allowable => rules.push(rule.id),
                found => diags.report(
                    &ALLOW_COMMENT,
                    Location::at(file, Mark { line: line_no, col }),
                    match found {
                        Some(_) => format!(
                            "rule `{id}` cannot be allowed: the resource cannot be built without it"
                        ),
                        None => format!("unknown rule `{id}` in an allow comment"),
                    },
                ),
            }
        }
    }
    Some(Allowance {
        file: Arc::clone(file),
        lines: (first_line, last_line),
        rules,
    })
}

/// Where a YAML comment starts in `line`: a `#` at the start or after
/// whitespace, outside quotes.
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return Some(i),
            None => {}
        }
        previous = c;
    }
    None
}

/// Drops the findings that an allow comment in their document covers.
pub fn apply_inline(allowances: &[Allowance], diags: &mut Diagnostics) {
    if allowances.is_empty() {
        return;
    }
    diags.retain(|d| {
        let Some(mark) = d.location.mark else {
            return true;
        };
        !allowances.iter().any(|a| {
            *a.file == *d.location.file
                && (a.lines.0..=a.lines.1).contains(&mark.line)
                && a.rules.contains(&d.rule)
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_found_outside_quotes_only() {
        assert_eq!(comment_start("# xdsd: allow(x)"), Some(0));
        assert_eq!(comment_start("name: a  # note"), Some(9));
        assert_eq!(comment_start("name: \"a # b\""), None);
        assert_eq!(comment_start("url: http://a#frag"), None);
    }

    #[test]
    fn an_allow_comment_covers_its_document_and_reports_unknown_ids() {
        let file: Arc<str> = Arc::from("a.yaml");
        let mut diags = Diagnostics::default();
        let text = "# xdsd: allow(unreferenced, no-such-rule, yaml-syntax)\nname: a\n";
        let allowance = scan(&file, text, 5, &mut diags).expect("found");
        assert_eq!(allowance.lines, (5, 6));
        assert_eq!(allowance.rules, vec!["unreferenced"]);
        let texts: Vec<String> = diags.iter().map(|d| d.message.clone()).collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(texts[0].contains("no-such-rule") && texts[1].contains("cannot be allowed"));
    }

    #[test]
    fn allow_and_deny_flags_are_checked_against_the_registry() {
        assert!(Policy::new(&["no-such-rule".into()], &[]).is_err());
        assert!(Policy::new(&["unknown-field".into()], &[]).is_err());
        assert!(Policy::new(&["unreferenced".into()], &["unreferenced".into()]).is_err());
        let policy =
            Policy::new(&["missing-reference".into()], &["unreferenced".into()]).expect("ok");
        assert_eq!(
            policy.ids(),
            (
                vec!["missing-reference".into()],
                vec!["unreferenced".into()]
            )
        );
    }
}
