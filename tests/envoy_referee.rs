//! Envoy 1.40 is the referee both ways: what it accepts, lint accepts; what
//! it rejects, lint rejects at the right place.

mod common;

use common::{envoy_validate, root, subdirs};
use std::path::Path;
use xdsd::diag::Severity;
use xdsd::resource::{self, Resource};
use xdsd::schema::ResourceType;
use xdsd::selector::NodeIdentity;
use xdsd::validate::check_dir;

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
        .map(|r| (r.rtype, xdsd::render::to_json(r)))
        .collect();
    xdsd::render::envoy_static(&typed)
}

#[test]
fn every_corpus_config_lints_without_errors() {
    let corpus = root().join("../shared/corpus/envoy-configs");
    let sets = subdirs(&corpus);
    assert!(sets.len() >= 59, "corpus missing at {}", corpus.display());
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

#[test]
fn every_example_is_valid_and_accepted_by_envoy_for_every_node_view() {
    let nodes = [
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
    let examples = subdirs(&root().join("config-examples"));
    assert!(examples.len() >= 6, "examples missing");
    for example in examples {
        let checked = check_dir(&example).expect("example loads");
        assert!(
            checked.diagnostics.is_ok(),
            "{}: {:?}",
            example.display(),
            checked.diagnostics.sorted()
        );
        for node in &nodes {
            let view = resource::view(&checked.resources, node);
            let (ok, output) = envoy_validate(&static_bootstrap(&view));
            assert!(
                ok,
                "Envoy rejects {} for {node:?}:\n{output}",
                example.display()
            );
        }
    }
}

/// A fixture's expectations: `error: FILE:LINE` lines, and optionally
/// `envoy: runtime REASON` when Envoy can only see the defect at run time.
struct Expect {
    errors: Vec<(String, u32)>,
    runtime: Option<String>,
}

fn read_expect(dir: &Path) -> Expect {
    let text = std::fs::read_to_string(dir.join("expect")).expect("fixture has expect");
    let mut expect = Expect {
        errors: Vec::new(),
        runtime: None,
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("error: ") {
            let (file, line_no) = rest.trim().rsplit_once(':').expect("FILE:LINE");
            expect
                .errors
                .push((file.to_string(), line_no.parse().expect("line number")));
        } else if let Some(reason) = line.strip_prefix("envoy: runtime") {
            expect.runtime = Some(reason.trim().to_string());
        }
    }
    assert!(
        !expect.errors.is_empty(),
        "{}: expect names no error",
        dir.display()
    );
    expect
}

/// The fixture's documents as Envoy would read them, without xdsd's checks.
fn raw_resources(config: &Path) -> Vec<(ResourceType, serde_json::Value)> {
    let mut files: Vec<_> = walk(config);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let Ok(docs) = xdsd::yaml::parse_documents(&text, Default::default()) else {
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

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

#[test]
fn every_invalid_fixture_is_rejected_by_envoy_and_by_lint_at_the_right_line() {
    let fixtures = subdirs(&root().join("tests/fixtures/invalid"));
    assert!(
        fixtures.len() >= 30,
        "only {} invalid fixtures",
        fixtures.len()
    );
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let config = fixture.join("config");
        let expect = read_expect(fixture);
        let errors = errors_of(&config);
        for (file, line) in &expect.errors {
            let want = format!("{}:{line}:", config.join(file).display());
            if !errors.iter().any(|e| e.starts_with(&want)) {
                failures.push(format!(
                    "{}: no error at {want}; lint said:\n  {}",
                    fixture.display(),
                    errors.join("\n  ")
                ));
            }
        }
        if expect.runtime.is_none() {
            let (accepted, _) =
                envoy_validate(&xdsd::render::envoy_static(&raw_resources(&config)));
            if accepted {
                failures.push(format!(
                    "{}: Envoy accepts it, so it is no invalid fixture",
                    fixture.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
