//! The documentation's relative links resolve: every `[text](target)` in
//! a Markdown file of the repository that is not a URL names a file or directory inside the repository, and a
//! `#fragment` names a heading of the Markdown file it points to.

use crate::common::root;
use std::path::{Component, Path, PathBuf};

/// The Markdown files whose links are checked: every `*.md` of the
/// repository, outside build output and hidden folders.
fn documents() -> Vec<PathBuf> {
    let mut files = Vec::new();
    markdown_below(&root(), &mut files);
    files.sort();
    files
}

fn markdown_below(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name == "out" {
            continue;
        }
        if path.is_dir() {
            markdown_below(&path, out);
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The text outside fenced code blocks and inline code spans, line by line
/// (code is not Markdown, so `[a](b)` there is not a link).
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut prose = String::new();
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                prose.push(c);
            }
        }
        out.push((i + 1, prose));
    }
    out
}

/// The targets of inline links `[text](target "title")` in a line.
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else {
            break;
        };
        let target = after[..end].split_whitespace().next().unwrap_or("");
        let target = target.trim_start_matches('<').trim_end_matches('>');
        if !target.is_empty() {
            targets.push(target.to_string());
        }
        rest = &after[end..];
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings.
fn anchors(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// `path` with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Every broken relative link of `file`, as `file:line: target: why`.
fn broken_links(file: &Path) -> Vec<String> {
    let root = normalize(&root());
    let text = std::fs::read_to_string(file).expect("read markdown");
    let shown = file.strip_prefix(&root).unwrap_or(file).display();
    let mut broken = Vec::new();
    for (line, prose) in prose_lines(&text) {
        for target in link_targets(&prose) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.to_path_buf()
            } else {
                normalize(&file.parent().expect("parent").join(path))
            };
            let why = if !resolved.starts_with(&root) {
                Some("points outside the repository".to_string())
            } else if !resolved.exists() {
                Some("no such file".to_string())
            } else if let Some(fragment) =
                fragment.filter(|_| resolved.extension().is_some_and(|e| e == "md"))
            {
                (!anchors(&resolved).iter().any(|a| a == fragment))
                    .then(|| format!("no heading `#{fragment}` there"))
            } else {
                None
            };
            if let Some(why) = why {
                broken.push(format!("{shown}:{line}: {target}: {why}"));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_in_the_documentation_resolves() {
    let documents = documents();
    assert!(documents.len() >= 7, "documentation missing: {documents:?}");
    let broken: Vec<String> = documents.iter().flat_map(|f| broken_links(f)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_sees_links_and_skips_code() {
    assert_eq!(
        link_targets("see [a](docs/a.md) and [b](b.md \"t\") or [u](https://x/y)"),
        ["docs/a.md", "b.md", "https://x/y"]
    );
    let lines = prose_lines("a `[x](y)` b\n```\n[p](q)\n```\n[r](s)\n");
    let targets: Vec<String> = lines.iter().flat_map(|(_, l)| link_targets(l)).collect();
    assert_eq!(targets, ["s"]);
    assert_eq!(slug(" `xdsd serve`"), "xdsd-serve");
    assert_eq!(slug(" CSDS on the xDS port"), "csds-on-the-xds-port");
    assert_eq!(
        normalize(Path::new("/r/docs/../README.md")),
        Path::new("/r/README.md")
    );
}
