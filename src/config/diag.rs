//! Diagnostics: located errors and warnings, and the three ways to print them.

use crate::check::Rule;
use crate::config::yaml::Mark;
use std::fmt;
use std::sync::Arc;

/// How bad a finding is. Errors block a config set; warnings never do unless asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The set is rejected (Envoy would reject it too).
    Error,
    /// Worth a look; Envoy accepts it.
    Warning,
}

/// A place in a config file: the file as reached from `--dir`, and a position.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Path as the user reaches it (`--dir` joined with the relative path).
    pub file: Arc<str>,
    /// Line and column; `None` for problems with the file as a whole.
    pub mark: Option<Mark>,
}

impl Location {
    /// A position inside `file`.
    pub fn at(file: &Arc<str>, mark: Mark) -> Self {
        Location {
            file: Arc::clone(file),
            mark: Some(mark),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mark {
            Some(m) => write!(f, "{}:{}:{}", self.file, m.line, m.col),
            None => write!(f, "{}", self.file),
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// Where it is.
    pub location: Location,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in one line.
    pub message: String,
    /// The id of the rule that found it ([`crate::check`]).
    pub rule: &'static str,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {} [{}]",
            self.location,
            self.severity.as_str(),
            self.message,
            self.rule
        )
    }
}

/// Collected findings, in the order they were found.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records a finding of `rule`, with the rule's severity.
    pub fn report(&mut self, rule: &'static Rule, location: Location, message: impl Into<String>) {
        self.items.push(Diagnostic {
            location,
            severity: rule.severity,
            message: message.into(),
            rule: rule.id,
        });
    }

    /// Keeps only the findings `keep` says yes to.
    pub fn retain(&mut self, keep: impl FnMut(&Diagnostic) -> bool) {
        self.items.retain(keep);
    }

    /// Lets `change` adjust every finding (severity, message).
    pub fn adjust(&mut self, change: impl FnMut(&mut Diagnostic)) {
        self.items.iter_mut().for_each(change);
    }

    /// Appends every finding of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// Appends every finding of `other` as a warning, with `note` added to errors.
    pub fn extend_as_warnings(&mut self, other: Diagnostics, note: &str) {
        for mut d in other.items {
            if d.severity == Severity::Error {
                d.severity = Severity::Warning;
                d.message = format!("{} ({note})", d.message);
            }
            self.items.push(d);
        }
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.items.len() - self.error_count()
    }

    /// True when nothing blocks the set.
    pub fn is_ok(&self) -> bool {
        self.error_count() == 0
    }

    /// Findings sorted by file, position, then severity, without repeats.
    pub fn sorted(&self) -> Vec<Diagnostic> {
        let mut items = self.items.clone();
        items.sort();
        items.dedup();
        items
    }

    /// Every finding, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }
}

/// Output formats of `xdsd lint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `path:line:col: severity: message [rule-id]`, one per line.
    Text,
    /// A JSON array of objects with file, line, column, severity, rule, message.
    Json,
    /// GitHub Actions workflow commands (`::error file=...::message`).
    Github,
}

/// Renders findings in the chosen format, sorted.
pub fn render(diags: &Diagnostics, format: Format) -> String {
    let items = diags.sorted();
    match format {
        Format::Text => items.iter().map(|d| format!("{d}\n")).collect(),
        Format::Json => {
            let rows: Vec<_> = items
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "file": &*d.location.file,
                        "line": d.location.mark.map(|m| m.line),
                        "column": d.location.mark.map(|m| m.col),
                        "severity": d.severity.as_str(),
                        "rule": d.rule,
                        "message": d.message,
                    })
                })
                .collect();
            let mut text = serde_json::Value::Array(rows).to_string();
            text.push('\n');
            text
        }
        Format::Github => items.iter().map(github_annotation).collect(),
    }
}

fn github_annotation(d: &Diagnostic) -> String {
    let level = d.severity.as_str();
    let mut props = format!("file={}", escape_property(&d.location.file));
    if let Some(m) = d.location.mark {
        props.push_str(&format!(",line={},col={}", m.line, m.col));
    }
    format!(
        "::{level} {props},title=xdsd lint {}::{}\n",
        escape_property(d.rule),
        escape_data(&d.message)
    )
}

// GitHub's workflow-command escaping: data escapes %, CR, LF; properties also : and ,.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    static UNUSED: Rule = Rule {
        id: "unused",
        ..Rule::WARNING
    };
    static BAD: Rule = Rule {
        id: "bad-value",
        ..Rule::ERROR
    };

    fn sample() -> Diagnostics {
        let file: Arc<str> = Arc::from("cfg/a.yaml");
        let mut d = Diagnostics::default();
        d.report(
            &UNUSED,
            Location::at(&file, Mark { line: 9, col: 1 }),
            "unused",
        );
        d.report(
            &BAD,
            Location::at(&file, Mark { line: 2, col: 5 }),
            "bad: value, 100%",
        );
        d
    }

    #[test]
    fn text_is_sorted_and_located() {
        let text = render(&sample(), Format::Text);
        assert_eq!(
            text,
            "cfg/a.yaml:2:5: error: bad: value, 100% [bad-value]\ncfg/a.yaml:9:1: warning: unused [unused]\n"
        );
    }

    #[test]
    fn github_escapes_properties_and_data() {
        let text = render(&sample(), Format::Github);
        assert!(
            text.starts_with(
                "::error file=cfg/a.yaml,line=2,col=5,title=xdsd lint bad-value::bad: value, 100%25\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn json_has_one_object_per_finding() {
        let v: serde_json::Value =
            serde_json::from_str(&render(&sample(), Format::Json)).expect("json");
        assert_eq!(v[0]["line"], 2);
        assert_eq!(v[1]["severity"], "warning");
        assert_eq!(v[1]["rule"], "unused");
    }
}
