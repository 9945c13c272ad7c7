//! Envoy 1.40 is the referee both ways: what it accepts, lint accepts; what
//! it rejects, lint rejects at the right place.

use crate::common;

use crate::common::{envoy_validate, root, subdirs};
use std::path::Path;
use xdsd::check::proxyless_grpc::is_for_proxyless_grpc;
use xdsd::check::validate::check_dir;
use xdsd::config::diag::Severity;
use xdsd::config::resource::{self, Resource};
use xdsd::config::schema::ResourceType;
use xdsd::config::selector::NodeIdentity;

fn errors_of(dir: &Path) -> Vec<String> {
    let checked = check_dir(dir).expect("dir loads");
    checked
        .diagnostics
        .sorted()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect()
}

fn static_bootstrap(view: &[&Resource]) -> serde_json::Value {
    let typed: Vec<_> = view
        .iter()
        .map(|r| (r.rtype, xdsd::config::render::to_json(r)))
        .collect();
    xdsd::config::render::envoy_static(&typed)
}

#[test]
fn every_corpus_config_lints_without_errors() {
    // The shared corpus sits beside the repository on the project's own
    // machines only; a clone on its own skips this check and says so.
    let corpus = root().join("../shared/corpus/envoy-configs");
    if !corpus.is_dir() {
        println!("skipped: no corpus at {}", corpus.display());
        return;
    }
    let sets = subdirs(&corpus);
    assert!(
        sets.len() >= 59,
        "corpus incomplete at {}",
        corpus.display()
    );
    let mut failures = Vec::new();
    for set in &sets {
        let errors = errors_of(&set.join("config"));
        if !errors.is_empty() {
            failures.push(format!("{}:\n  {}", set.display(), errors.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "lint rejects configs Envoy accepts:\n{}",
        failures.join("\n")
    );
}

/// The nodes whose views a config directory is checked for: a node that
/// matches no selector, the nodes the examples are written for, and one
/// instance of each selector in the set (its first globs, `*` and `?` read
/// as `x`, as `lint --envoy` picks them).
fn node_views_of(resources: &[Resource]) -> Vec<NodeIdentity> {
    let mut nodes = vec![
        NodeIdentity::default(),
        NodeIdentity {
            id: "edge-eu-1".into(),
            cluster: "edge-eu".into(),
        },
        NodeIdentity {
            id: "internal-a-1".into(),
            cluster: "internal-a".into(),
        },
    ];
    let instance = |globs: &[String]| {
        globs
            .first()
            .map(|g| g.replace(['*', '?'], "x"))
            .unwrap_or_default()
    };
    for r in resources.iter().filter(|r| !r.selector.is_everyone()) {
        let node = NodeIdentity {
            id: instance(&r.selector.id),
            cluster: instance(&r.selector.cluster),
        };
        if !nodes.contains(&node) {
            nodes.push(node);
        }
    }
    nodes
}

/// Each directory lints without errors or warnings, and Envoy accepts what
/// every node (see `node_views_of`) is served, rendered as a static
/// bootstrap. Returns one message per failure.
fn judge_config_dirs(dirs: &[std::path::PathBuf]) -> Vec<String> {
    let mut failures = Vec::new();
    for dir in dirs {
        let checked = check_dir(dir).expect("config dir loads");
        // Examples and corpus configs are meant to be copied: warnings too
        // are findings here.
        let findings: Vec<String> = checked
            .diagnostics
            .sorted()
            .iter()
            .map(|d| d.to_string())
            .collect();
        if !findings.is_empty() {
            failures.push(format!(
                "{}: lint findings:\n  {}",
                dir.display(),
                findings.join("\n  ")
            ));
        }
        if !checked.diagnostics.is_ok() {
            continue;
        }
        for node in node_views_of(&checked.resources) {
            // A client's `api_listener` and a gRPC server's listener are for
            // proxyless gRPC (config-examples/grpc-proxyless), not for Envoy.
            let view: Vec<&Resource> = resource::view(&checked.resources, &node)
                .into_iter()
                .filter(|r| !is_for_proxyless_grpc(r))
                .collect();
            if view.is_empty() {
                continue;
            }
            let (ok, output) = envoy_validate(&static_bootstrap(&view));
            if !ok {
                failures.push(format!(
                    "Envoy rejects {} for {node:?}:\n{output}",
                    dir.display()
                ));
            }
        }
    }
    failures
}

#[test]
fn every_example_is_valid_and_accepted_by_envoy_for_every_node_view() {
    let examples = subdirs(&root().join("config-examples"));
    assert!(examples.len() >= 6, "examples missing");
    let failures = judge_config_dirs(&examples);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_repository_corpus_config_is_valid_and_accepted_by_envoy_for_every_node_view() {
    // tests/corpus: real-world-style configs written for this repository
    // (tests/corpus/README.md), unlike the shared corpus above.
    let corpus = subdirs(&root().join("tests/corpus"));
    assert!(
        corpus.len() >= 30,
        "tests/corpus holds {} configs, expected at least 30",
        corpus.len()
    );
    let failures = judge_config_dirs(&corpus);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The documents of `files` as Envoy would read them, without xdsd's checks.
fn raw_resources_of(files: &[std::path::PathBuf]) -> Vec<(ResourceType, serde_json::Value)> {
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("read");
        let Ok(docs) = xdsd::config::yaml::parse_documents(&text, Default::default()) else {
            continue;
        };
        for doc in docs {
            let json = doc.to_json();
            let url = json
                .get("@type")
                .and_then(|t| t.as_str())
                .unwrap_or_default();
            let name = url.rsplit('/').next().unwrap_or_default();
            if let Some(t) = ResourceType::from_message_name(name) {
                out.push((t, json));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rule fixtures: `tests/fixtures/lint/RULE/invalid[-CASE].yaml` and its
// corrected twin `valid[-CASE].yaml` (format in tests/fixtures/lint/README.md).
// ---------------------------------------------------------------------------

/// One fixture pair of one rule.
struct RuleCase {
    rule: String,
    invalid: std::path::PathBuf,
    valid: std::path::PathBuf,
}

fn rule_cases() -> Vec<RuleCase> {
    let mut cases = Vec::new();
    for dir in subdirs(&root().join("tests/fixtures/lint")) {
        let rule = dir.file_name().expect("name").to_string_lossy().to_string();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("read fixture dir")
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for invalid in files {
            let name = invalid
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            if let Some(case) = name.strip_prefix("invalid") {
                cases.push(RuleCase {
                    rule: rule.clone(),
                    valid: dir.join(format!("valid{case}")),
                    invalid,
                });
            }
        }
    }
    cases
}

/// Lints one file alone: every error as (line, rule id, text).
fn lint_file(file: &Path) -> Vec<(u32, String, String)> {
    let scratch = common::ScratchDir::new("rule-fixture");
    std::fs::copy(file, scratch.path().join("config.yaml")).expect("copy fixture");
    check_dir(scratch.path())
        .expect("fixture loads")
        .diagnostics
        .sorted()
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            (
                d.location.mark.map_or(0, |m| m.line),
                d.rule.to_string(),
                d.to_string(),
            )
        })
        .collect()
}

/// The lines of a fixture marked `# error`.
fn marked_lines(text: &str) -> Vec<u32> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_end().ends_with("# error"))
        .map(|(i, _)| i as u32 + 1)
        .collect()
}

/// What the fixture's first line says Envoy answers (`-- Envoy: TEXT`), and
/// whether Envoy can only see the defect at run time (`# envoy: runtime`).
fn envoy_expectation(text: &str) -> (Option<String>, bool) {
    let first = text.lines().next().unwrap_or_default();
    let says = first
        .split_once("-- Envoy: ")
        .map(|(_, s)| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let runtime = text.lines().any(|l| l.starts_with("# envoy: runtime"));
    (says, runtime)
}

fn envoy_on_file(file: &Path) -> (bool, String) {
    envoy_validate(&xdsd::config::render::envoy_static(&raw_resources_of(&[
        file.to_path_buf(),
    ])))
}

/// Checks one pair both ways; returns what is wrong with it.
fn check_case(case: &RuleCase) -> Vec<String> {
    let mut failures = Vec::new();
    let name = format!("{}/{}", case.rule, case.invalid.display());
    if xdsd::check::find(&case.rule).is_none() {
        failures.push(format!("{name}: no rule `{}` in the registry", case.rule));
    }
    let Ok(invalid_text) = std::fs::read_to_string(&case.invalid) else {
        return vec![format!("{name}: unreadable")];
    };
    if !case.valid.exists() {
        failures.push(format!(
            "{name}: no corrected twin {}",
            case.valid.display()
        ));
        return failures;
    }
    // Lint: errors exactly at the marked lines, all of this rule.
    let marked = marked_lines(&invalid_text);
    let errors = lint_file(&case.invalid);
    let error_lines: std::collections::BTreeSet<u32> = errors.iter().map(|e| e.0).collect();
    let wrong_rule: Vec<&String> = errors
        .iter()
        .filter(|e| e.1 != case.rule)
        .map(|e| &e.2)
        .collect();
    if marked.is_empty() {
        failures.push(format!("{name}: no line is marked `# error`"));
    }
    if error_lines != marked.iter().copied().collect() || !wrong_rule.is_empty() {
        failures.push(format!(
            "{name}: expected {} errors at lines {marked:?}; lint said:\n  {}",
            case.rule,
            errors
                .iter()
                .map(|e| e.2.clone())
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    let valid_errors = lint_file(&case.valid);
    if !valid_errors.is_empty() {
        failures.push(format!(
            "{}: the corrected twin has errors:\n  {}",
            case.valid.display(),
            valid_errors
                .iter()
                .map(|e| e.2.clone())
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    // Envoy: the invalid one rejected (for the stated reason), the twin accepted.
    let (says, runtime) = envoy_expectation(&invalid_text);
    if !runtime {
        let (accepted, output) = envoy_on_file(&case.invalid);
        if accepted {
            failures.push(format!("{name}: Envoy accepts it"));
        } else if let Some(says) = says
            && !output.contains(&says)
        {
            failures.push(format!(
                "{name}: Envoy rejects it, but not with `{says}`:\n  {output}"
            ));
        }
    }
    let (accepted, output) = envoy_on_file(&case.valid);
    if !accepted {
        failures.push(format!(
            "{}: Envoy rejects the corrected twin:\n  {output}",
            case.valid.display()
        ));
    }
    failures
}

#[test]
fn every_rule_fixture_pair_is_judged_alike_by_envoy_and_by_lint() {
    let cases = rule_cases();
    assert!(!cases.is_empty(), "no rule fixtures");
    // Two Envoys at a time: each validation is a process of ~0.2 s.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let (first, second) = cases.split_at(cases.len() / 2);
        let workers: Vec<_> = [first, second]
            .into_iter()
            .map(|half| scope.spawn(move || half.iter().flat_map(check_case).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    let rules: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.rule.as_str()).collect();
    println!("{} fixture pairs for {} rules", cases.len(), rules.len());
    assert!(
        failures.is_empty(),
        "{} of {} fixture pairs fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
