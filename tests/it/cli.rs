//! The `xdsd` command line end to end: `lint`, `render`, `diff` and `--help`
//! run as the built binary, checked by exit code and output.

use crate::common;

use crate::common::{ScratchDir, envoy_validate, root, subdirs, xdsd};
use serde_json::Value;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// One finished run of the binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Panics, showing the whole run, unless the exit code is `code`.
    fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code {} (want {code})\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is no JSON ({e}):\n{}", self.stdout))
    }
}

fn run(args: &[&str]) -> Run {
    let out = xdsd(args);
    Run {
        code: out
            .status
            .code()
            .expect("xdsd exited, not killed by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn example(name: &str) -> PathBuf {
    root().join("config-examples").join(name)
}

fn examples() -> Vec<PathBuf> {
    let all = subdirs(&root().join("config-examples"));
    assert!(all.len() >= 6, "config-examples missing");
    all
}

/// A scratch copy of a (flat) example directory.
fn copy_example(name: &str) -> ScratchDir {
    let copy = ScratchDir::new(name);
    for entry in std::fs::read_dir(example(name))
        .expect("read example")
        .flatten()
    {
        let path = entry.path();
        if path.is_file() {
            std::fs::copy(&path, copy.path().join(entry.file_name())).expect("copy");
        }
    }
    copy
}

/// Replaces every `from` in `rel` (which must contain it) by `to`.
fn edit(dir: &ScratchDir, rel: &str, from: &str, to: &str) {
    let path = dir.path().join(rel);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "{rel} has no `{from}`");
    std::fs::write(&path, text.replace(from, to)).expect("write");
}

/// A bare Cluster document; `rest` is appended as further top-level lines.
fn cluster(name: &str, rest: &str) -> String {
    format!("\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: {name}\n{rest}")
}

/// A valid STATIC cluster nothing has to point at.
fn static_cluster(name: &str) -> String {
    cluster(name, "connect_timeout: 1s\ntype: STATIC\n")
}

/// Node views of the examples: none, an edge proxy, an internal proxy.
const NODE_VIEWS: [&[&str]; 3] = [
    &[],
    &["--node-cluster", "edge-eu", "--node-id", "edge-eu-1"],
    &["--node-cluster", "internal-a", "--node-id", "internal-a-1"],
];

/// A proxyless gRPC client's view (config-examples/grpc-proxyless targets `grpc*`).
const GRPC_VIEW: &[&str] = &["--node-cluster", "grpc-clients", "--node-id", "grpc-1"];

/// The node views worth checking for `dir`: when some document has a
/// `nodes` selector, every view (the three above and a gRPC client's) that
/// is served anything, and at least one must be; else only the plain one
/// (they would all agree).
fn views_of(dir: &Path) -> Vec<&'static [&'static str]> {
    let has_selectors = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .any(|e| {
            std::fs::read_to_string(e.path())
                .is_ok_and(|t| t.contains("\nnodes:") || t.starts_with("nodes:"))
        });
    if !has_selectors {
        return vec![NODE_VIEWS[0]];
    }
    let served: Vec<&'static [&'static str]> = NODE_VIEWS
        .iter()
        .copied()
        .chain([GRPC_VIEW])
        .filter(|view| !render(dir, view).expect_code(0).stdout.is_empty())
        .collect();
    assert!(
        !served.is_empty(),
        "{} serves no node view anything",
        dir.display()
    );
    served
}

/// `lint --dir DIR`; DIR is a string so tests can spell it as they like.
fn lint(dir: &str, extra: &[&str]) -> Run {
    run(&[&["lint", "--dir", dir], extra].concat())
}

fn render(dir: &Path, extra: &[&str]) -> Run {
    run(&[&["render", "--dir", s(dir)], extra].concat())
}

fn diff(old: &Path, new: &Path, extra: &[&str]) -> Run {
    run(&[&["diff", s(old), s(new)], extra].concat())
}

/// Lines joined, each ending in a newline.
fn text(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// `render --format json` of one view: the `@type` message name and the
/// `name` (or `cluster_name`) of each resource, in output order.
fn rendered_resources(dir: &Path, extra: &[&str]) -> Vec<(String, String)> {
    let doc = render(dir, &[extra, &["--format", "json"]].concat())
        .expect_code(0)
        .json();
    doc["resources"]
        .as_array()
        .expect("resources list")
        .iter()
        .map(|r| {
            let url = r["@type"].as_str().expect("@type");
            let kind = url.rsplit('.').next().expect("message name");
            let name = r.get("name").or_else(|| r.get("cluster_name"));
            (
                kind.to_string(),
                name.and_then(Value::as_str).expect("name").to_string(),
            )
        })
        .collect()
}

/// A file with three independent errors (lines 3, 8, 12).
const THREE_ERRORS: &str = "\
\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: a
connect_timeout: 5 seconds
---
\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: b
connect_timeout: 1s
bogus_field: 1
---
\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: c
type: NOT_A_TYPE
";

/// (line, a word the message must contain) for each error of THREE_ERRORS.
const THREE_ERRORS_AT: [(u32, &str); 3] =
    [(3, "5 seconds"), (8, "bogus_field"), (12, "NOT_A_TYPE")];

/// A listener without a name: valid, but a warning.
const UNNAMED_LISTENER: &str = "\
\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener
address:
  socket_address: {address: 127.0.0.1, port_value: 10000}
filter_chains:
- filters:
  - name: envoy.filters.network.tcp_proxy
    typed_config:
      \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
      stat_prefix: tcp
      cluster: db
";

fn warnings_only_dir() -> ScratchDir {
    let dir = ScratchDir::new("warnings");
    dir.write("listener.yaml", UNNAMED_LISTENER);
    dir.write("cluster.yaml", &static_cluster("db"));
    dir
}

// ---------------------------------------------------------------------------
// lint
// ---------------------------------------------------------------------------

#[test]
fn lint_accepts_every_example() {
    for dir in examples() {
        let out = lint(s(&dir), &[]).expect_code(0);
        for line in out.lines() {
            assert!(
                line.contains(": warning: "),
                "{}: not a warning: {line}",
                dir.display()
            );
        }
    }
}

#[test]
fn lint_reports_an_error_at_its_place_with_the_path_as_given() {
    let dir = ScratchDir::new("lint-one");
    dir.write(
        "routes/bad.yaml",
        &cluster("backend", "connect_timeout: 5 seconds\n"),
    );
    // The printed path is `--dir` joined with the file's relative path,
    // however `--dir` was spelled.
    let base = s(dir.path()).to_string();
    for arg in [base.clone(), format!("{base}/")] {
        let out = lint(&arg, &[]).expect_code(1);
        let want = format!("{base}/routes/bad.yaml:3:18: error: ");
        assert_eq!(out.lines().len(), 1, "{}", out.stdout);
        assert!(
            out.stdout.starts_with(&want) && out.stdout.contains("5 seconds"),
            "want `{want}...5 seconds...`, got:\n{}",
            out.stdout
        );
    }
}

#[test]
fn lint_reports_every_error_not_only_the_first() {
    let dir = ScratchDir::new("lint-three");
    let file = dir.write("three.yaml", THREE_ERRORS);
    let out = lint(s(dir.path()), &[]).expect_code(1);
    let errors: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| l.contains(": error: "))
        .collect();
    assert_eq!(errors.len(), 3, "{}", out.stdout);
    for (got, (line, word)) in errors.iter().zip(THREE_ERRORS_AT) {
        let prefix = format!("{}:{line}:", file.display());
        let col = got
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split(':').next())
            .and_then(|c| c.parse::<u32>().ok());
        assert!(
            col.is_some() && got.contains(word),
            "want `{prefix}COL: error: ...{word}...`, got `{got}`"
        );
    }
}

#[test]
fn lint_cannot_run_exits_2() {
    let dir = ScratchDir::new("lint-trouble");
    let missing = dir.path().join("no-such-dir");
    let out = lint(s(&missing), &[]).expect_code(2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains(s(&missing)), "{}", out.stderr);

    let file = dir.write("file.yaml", &static_cluster("c"));
    lint(s(&file), &[]).expect_code(2);

    let quickstart = example("quickstart");
    for bad in [&["--format", "nope"][..], &["--frobnicate"]] {
        let out = lint(s(&quickstart), bad).expect_code(2);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert!(out.stderr.contains("error"), "{}", out.stderr);
    }
    run(&["lint"]).expect_code(2);
    run(&[]).expect_code(2);
}

#[test]
fn lint_json_lists_every_finding_with_its_location() {
    let dir = ScratchDir::new("lint-json");
    let file = dir.write("three.yaml", THREE_ERRORS);
    let findings = lint(s(dir.path()), &["--format", "json"])
        .expect_code(1)
        .json();
    let errors: Vec<&Value> = findings
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 3, "{findings:#}");
    for (f, (line, word)) in errors.iter().zip(THREE_ERRORS_AT) {
        assert_eq!(f["file"], s(&file), "{f}");
        assert_eq!(f["line"], line, "{f}");
        assert!(f["column"].as_u64().is_some_and(|c| c > 0), "{f}");
        let message = f["message"].as_str().expect("message");
        assert!(message.contains(word), "{f}");
    }

    let clean = lint(s(&example("quickstart")), &["--format", "json"]).expect_code(0);
    assert_eq!(clean.stdout, "[]\n");
}

#[test]
fn lint_github_prints_workflow_annotations() {
    let dir = ScratchDir::new("lint-github");
    // `:` in a property is escaped as %3A.
    dir.write("ci:checks/three.yaml", THREE_ERRORS);
    let escaped_file = format!("{}/ci%3Achecks/three.yaml", s(dir.path()));
    let out = lint(s(dir.path()), &["--format", "github"]).expect_code(1);
    let errors: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert_eq!(errors.len(), 3, "{}", out.stdout);
    for (got, (line, word)) in errors.iter().zip(THREE_ERRORS_AT) {
        let prefix = format!("::error file={escaped_file},line={line},col=");
        let (props, message) = got
            .strip_prefix("::error ")
            .and_then(|rest| rest.split_once("::"))
            .unwrap_or_else(|| panic!("no `::message` in `{got}`"));
        assert!(got.starts_with(&prefix), "want `{prefix}...`, got `{got}`");
        let col = props
            .split(",col=")
            .nth(1)
            .and_then(|rest| rest.split(',').next());
        assert!(col.is_some_and(|c| c.parse::<u32>().is_ok()), "{got}");
        assert!(message.contains(word), "{got}");
    }
    for line in out.lines() {
        assert!(line.starts_with("::"), "not an annotation: {line}");
    }
}

#[test]
fn lint_deny_warnings_fails_on_warnings_only() {
    let dir = warnings_only_dir();
    let listener = dir.path().join("listener.yaml");
    for (flags, code) in [(&[][..], 0), (&["--deny-warnings"], 1)] {
        let out = lint(s(dir.path()), flags).expect_code(code);
        assert_eq!(out.lines().len(), 1, "{}", out.stdout);
        let want = format!("{}:1:1: warning: ", listener.display());
        assert!(out.stdout.starts_with(&want), "{}", out.stdout);
        assert!(out.stdout.contains("127.0.0.1_10000"), "{}", out.stdout);
    }
}

/// A route to cluster `ghost`, which the directory does not define.
fn route_to_ghost(comment: &str) -> String {
    format!(
        "{comment}\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\nname: r\nvirtual_hosts:\n- name: a\n  domains: [\"*\"]\n  routes:\n  - match: {{prefix: /}}\n    route: {{cluster: ghost}}\n"
    )
}

#[test]
fn every_diagnostic_names_its_rule_and_explain_describes_it() {
    let dir = ScratchDir::new("rule-ids");
    dir.write("route.yaml", &route_to_ghost(""));
    let out = lint(s(dir.path()), &[]).expect_code(1);
    assert!(
        out.stdout
            .contains(": error: cluster `ghost` does not exist")
            && out.stdout.trim_end().ends_with("[missing-reference]"),
        "{}",
        out.stdout
    );
    let json = lint(s(dir.path()), &["--format", "json"])
        .expect_code(1)
        .json();
    let rules: Vec<&str> = json
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["rule"].as_str())
        .collect();
    assert_eq!(rules, ["unreferenced", "missing-reference"]);
    let explained = run(&["lint", "--explain", "missing-reference"]).expect_code(0);
    assert!(
        explained.stdout.starts_with("missing-reference (error): ")
            && explained.stdout.contains("--known-cluster")
            && explained
                .stdout
                .contains("source/common/router/config_impl.cc"),
        "{}",
        explained.stdout
    );
    let listed = run(&["lint", "--explain"]).expect_code(0);
    assert!(
        listed.lines().len() == xdsd::check::all().len()
            && listed.stdout.contains("proto-constraint"),
        "{}",
        listed.stdout
    );
    run(&["lint", "--explain", "no-such-rule"]).expect_code(2);
}

#[test]
fn allow_and_deny_change_what_counts() {
    let dir = ScratchDir::new("allow-deny");
    dir.write("route.yaml", &route_to_ghost(""));
    lint(s(dir.path()), &["--allow", "missing-reference"]).expect_code(0);
    // Unknown rules and rules that cannot be allowed are refused.
    lint(s(dir.path()), &["--allow", "no-such-rule"]).expect_code(2);
    let refused = lint(s(dir.path()), &["--allow", "yaml-syntax"]).expect_code(2);
    assert!(
        refused.stderr.contains("cannot be allowed"),
        "{}",
        refused.stderr
    );
    // A warning denied is an error.
    let warnings = warnings_only_dir();
    lint(s(warnings.path()), &[]).expect_code(0);
    let denied = lint(s(warnings.path()), &["--deny", "listener-name-derived"]).expect_code(1);
    assert!(denied.stdout.contains(": error: "), "{}", denied.stdout);
}

#[test]
fn an_inline_allow_comment_covers_its_document_only() {
    let dir = ScratchDir::new("inline-allow");
    let second = route_to_ghost("").replace("name: r\n", "name: r2\n");
    dir.write(
        "route.yaml",
        &format!(
            "{}---\n{second}",
            route_to_ghost(
                "# Served by the proxies' bootstrap. # xdsd: allow(missing-reference)\n"
            )
        ),
    );
    let out = lint(s(dir.path()), &[]).expect_code(1);
    let errors: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| l.contains(": error: "))
        .collect();
    // Only the second document's reference is still an error.
    assert_eq!(errors.len(), 1, "{}", out.stdout);
    assert!(errors[0].contains("route.yaml:18:"), "{}", out.stdout);
    // A comment naming an unknown rule is a warning at the comment.
    dir.write(
        "route.yaml",
        &route_to_ghost("# xdsd: allow(missing-referense)\n"),
    );
    let out = lint(s(dir.path()), &[]).expect_code(1);
    assert!(
        out.stdout
            .contains("route.yaml:1:1: warning: unknown rule `missing-referense`"),
        "{}",
        out.stdout
    );
}

#[test]
fn known_clusters_satisfy_references_from_flags_and_files() {
    let dir = ScratchDir::new("known-cluster");
    dir.write("route.yaml", &route_to_ghost(""));
    lint(s(dir.path()), &["--known-cluster", "ghost"]).expect_code(0);
    let list = ScratchDir::new("known-list");
    list.write(
        "clusters.txt",
        "# defined in /etc/envoy/bootstrap.yaml\nxds_cluster\nghost  # the old backend\n",
    );
    let file = list.path().join("clusters.txt");
    lint(s(dir.path()), &["--known-clusters-file", s(&file)]).expect_code(0);
    render(dir.path(), &["--known-cluster", "ghost"]).expect_code(0);
}

#[test]
fn enum_names_in_any_case_are_read_with_a_warning() {
    let dir = ScratchDir::new("enum-case");
    dir.write(
        "cluster.yaml",
        &cluster(
            "db",
            "connect_timeout: 1s\ntype: strict_dns\nlb_policy: Round_Robin\n",
        ),
    );
    let out = lint(s(dir.path()), &[]).expect_code(0);
    assert!(
        out.stdout
            .contains("`strict_dns` is read as DiscoveryType value `STRICT_DNS`")
            && out.stdout.contains("[enum-case]"),
        "{}",
        out.stdout
    );
}

#[test]
fn lint_envoy_reports_what_only_envoy_rejects_at_the_resource_and_caches_it() {
    let dir = ScratchDir::new("lint-envoy");
    // Both rewrites: xdsd's own rule is allowed, so only the referee sees it.
    let route = route_to_ghost("# xdsd: allow(route-rewrite-conflict)\n").replace(
        "{cluster: ghost}",
        "{cluster: db, prefix_rewrite: /a, regex_rewrite: {pattern: {regex: x}, substitution: z}}",
    );
    dir.write("route.yaml", &route);
    dir.write("cluster.yaml", &static_cluster("db"));
    let listener = "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\nname: l\naddress: {socket_address: {address: 127.0.0.1, port_value: 10000}}\nfilter_chains:\n- filters:\n  - name: hcm\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n      stat_prefix: s\n      rds: {route_config_name: r, config_source: {ads: {}}}\n      http_filters:\n      - name: router\n        typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n";
    dir.write("listener.yaml", listener);
    lint(s(dir.path()), &[]).expect_code(0);
    let cache = ScratchDir::new("lint-envoy-cache");
    let envoy = common::envoy_bin();
    let with_envoy = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_xdsd"))
            .args(["lint", "--dir", s(dir.path()), "--envoy"])
            .env("XDSD_ENVOY", &envoy)
            .env("XDG_CACHE_HOME", cache.path())
            .output()
            .expect("xdsd runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, stdout) = with_envoy();
    assert_eq!(code, Some(1), "{stdout}");
    // Bisection blames the listener whose inlined routes Envoy refuses.
    let want = format!(
        "{}:1:1: error: envoy 1.40.0: Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy [envoy-rejects]",
        dir.path().join("listener.yaml").display()
    );
    assert_eq!(stdout.trim_end(), want);
    // The second run answers from the cache: same verdict.
    assert_eq!(with_envoy(), (Some(1), stdout));
    let cached = walk_files(cache.path());
    assert!(!cached.is_empty(), "nothing cached");
    // A missing Envoy is trouble, not a verdict.
    lint(s(dir.path()), &["--envoy", "/nonexistent/envoy"]).expect_code(2);
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            found.extend(walk_files(&p));
        } else {
            found.push(p);
        }
    }
    found
}

// ---------------------------------------------------------------------------
// render
// ---------------------------------------------------------------------------

/// Renders `dir` (with `extra`) and writes the output to a fresh scratch dir.
fn render_into(dir: &Path, extra: &[&str], file: &str) -> (ScratchDir, String) {
    let text = render(dir, extra).expect_code(0).stdout;
    assert!(!text.is_empty(), "{} renders nothing", dir.display());
    let out = ScratchDir::new("rendered");
    out.write(file, &text);
    (out, text)
}

#[test]
fn render_of_rendered_output_is_identical() {
    for dir in examples() {
        for view in views_of(&dir) {
            let (copy, first) = render_into(&dir, view, "rendered.yaml");
            lint(s(copy.path()), &[]).expect_code(0);
            let second = render(copy.path(), view).expect_code(0).stdout;
            assert_eq!(first, second, "{} {view:?}", dir.display());
        }
    }
}

#[test]
fn render_json_is_a_clean_config_that_renders_to_the_same_yaml() {
    for dir in examples() {
        for view in views_of(&dir) {
            let yaml = render(&dir, view).expect_code(0).stdout;
            let json_view = [view, &["--format", "json"]].concat();
            let (copy, _) = render_into(&dir, &json_view, "rendered.json");
            let out = lint(s(copy.path()), &[]).expect_code(0);
            // A gRPC node's view, rendered without its `nodes` selectors,
            // holds a client's api_listener and a server's listener served
            // to everyone: lint rightly says Envoys must not get them.
            // Nothing else may be reported.
            let unexpected: Vec<&str> = out
                .lines()
                .into_iter()
                .filter(|l| {
                    !(view == GRPC_VIEW
                        && (l.ends_with("[grpc-api-listener-for-envoy]")
                            || l.ends_with("[grpc-server-listener-for-envoy]")))
                })
                .collect();
            assert!(unexpected.is_empty(), "{}", out.stdout);
            let again = render(copy.path(), view).expect_code(0).stdout;
            assert_eq!(again, yaml, "{} {view:?}", dir.display());
        }
    }
}

#[test]
fn render_type_filter_accepts_kind_any_case_and_type_url() {
    let dir = example("node-targeting");
    let all = rendered_resources(&dir, &[]);
    let clusters: Vec<_> = all
        .iter()
        .filter(|(k, _)| k == "Cluster")
        .cloned()
        .collect();
    assert_eq!(clusters.len(), 2, "{all:?}");
    assert!(clusters.len() < all.len(), "{all:?}");

    let spellings = [
        "Cluster",
        "cluster",
        "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    ];
    for t in spellings {
        assert_eq!(rendered_resources(&dir, &["--type", t]), clusters, "{t}");
    }
    let yaml: Vec<String> = spellings
        .iter()
        .map(|t| render(&dir, &["--type", t]).expect_code(0).stdout)
        .collect();
    assert!(yaml.iter().all(|y| *y == yaml[0]), "{yaml:#?}");

    render(&dir, &["--type", "Clusterz"]).expect_code(2);
}

#[test]

fn render_type_filter_accepts_aliases_in_any_case() {
    let dir = example("quickstart");
    for (alias, kind) in [
        ("Endpoints", "ClusterLoadAssignment"),
        ("endpoints", "ClusterLoadAssignment"),
        ("Route", "RouteConfiguration"),
        ("route", "RouteConfiguration"),
    ] {
        let got = rendered_resources(&dir, &["--type", alias]);
        assert!(
            !got.is_empty() && got.iter().all(|(k, _)| k == kind),
            "--type {alias}: {got:?}"
        );
    }
}

#[test]
fn render_honours_node_selectors() {
    let dir = example("node-targeting");
    let views = views_of(&dir);
    assert!(
        NODE_VIEWS.iter().all(|v| views.contains(v)),
        "node-targeting serves every proxy view"
    );
    let route_of = |view: &[&str]| {
        let doc = render(&dir, &[view, &["--type", "RouteConfiguration"]].concat())
            .expect_code(0)
            .stdout;
        assert!(doc.contains("name: local_route"), "{doc}");
        doc
    };
    let edge = route_of(NODE_VIEWS[1]);
    let internal = route_of(NODE_VIEWS[2]);
    assert_ne!(edge, internal);
    assert!(
        edge.contains("value: edge") && edge.contains("status: 403"),
        "{edge}"
    );
    assert!(
        internal.contains("value: internal") && !internal.contains("status: 403"),
        "{internal}"
    );

    // Everything but the route is the same for both groups.
    let without_routes = |view: &[&str]| {
        let mut all = rendered_resources(&dir, view);
        all.retain(|(k, _)| k != "RouteConfiguration");
        all
    };
    assert_eq!(without_routes(NODE_VIEWS[1]), without_routes(NODE_VIEWS[2]));

    // No node flags: only the resources without `nodes`.
    let mut plain = rendered_resources(&dir, &[]);
    plain.sort();
    let want = [
        ("Cluster", "api"),
        ("Cluster", "web"),
        ("ClusterLoadAssignment", "api"),
        ("ClusterLoadAssignment", "web"),
    ]
    .map(|(k, n)| (k.to_string(), n.to_string()));
    assert_eq!(plain, want);
}

#[test]
fn render_envoy_static_of_every_example_is_accepted_by_envoy() {
    for dir in examples() {
        // Envoy views only: a gRPC client's API listener is not for Envoy.
        for view in views_of(&dir).into_iter().filter(|v| *v != GRPC_VIEW) {
            let bootstrap = render(&dir, &[view, &["--envoy-static"]].concat())
                .expect_code(0)
                .json();
            assert!(bootstrap["static_resources"].is_object(), "{bootstrap:#}");
            let (ok, output) = envoy_validate(&bootstrap);
            assert!(ok, "Envoy rejects {} {view:?}:\n{output}", dir.display());
        }
    }
}

#[test]
fn render_refuses_invalid_and_missing_dirs() {
    let dir = ScratchDir::new("render-bad");
    let file = dir.write(
        "bad.yaml",
        &cluster("backend", "connect_timeout: 5 seconds\n"),
    );
    let out = render(dir.path(), &[]).expect_code(1);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let want = format!("{}:3:18: error: ", file.display());
    assert!(
        out.stderr.contains(&want),
        "want `{want}` in:\n{}",
        out.stderr
    );

    let out = render(&dir.path().join("missing"), &[]).expect_code(2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

/// A Struct holding an integer (`count: 3`), as Envoy's YAML reads it.
const STRUCT_METADATA: &str = "\
connect_timeout: 1s
type: STATIC
metadata:
  filter_metadata:
    demo:
      count: 3
      word: \"yes\"
";

#[test]

fn render_keeps_struct_numbers() {
    let dir = ScratchDir::new("struct");
    dir.write("cluster.yaml", &cluster("meta", STRUCT_METADATA));
    let (copy, first) = render_into(dir.path(), &[], "rendered.yaml");
    diff(dir.path(), copy.path(), &[]).expect_code(0);
    let second = render(copy.path(), &[]).expect_code(0).stdout;
    assert_eq!(first, second);
}

// ---------------------------------------------------------------------------
// diff
// ---------------------------------------------------------------------------

#[test]
fn diff_of_the_same_content_is_empty() {
    for dir in examples() {
        let out = diff(&dir, &dir, &[]).expect_code(0);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        // The same resources in other files (here: one rendered file).
        for view in views_of(&dir) {
            let (copy, _) = render_into(&dir, view, "all.yaml");
            let out = diff(&dir, copy.path(), view).expect_code(0);
            assert!(
                out.stdout.is_empty(),
                "{} {view:?}:\n{}",
                dir.display(),
                out.stdout
            );
        }
    }
}

#[test]
fn diff_lists_added_removed_and_changed_fields() {
    let old = copy_example("quickstart");
    old.write("legacy.yaml", &static_cluster("legacy"));
    let new = copy_example("quickstart");
    new.write("extra.yaml", &static_cluster("extra"));
    edit(
        &new,
        "clusters.yaml",
        "connect_timeout: 1s",
        "connect_timeout: 2s",
    );

    let out = diff(old.path(), new.path(), &[]).expect_code(1);
    assert_eq!(
        out.stdout,
        text(&[
            "Cluster:",
            "  + extra",
            "  - legacy",
            "  ~ backend",
            "      connect_timeout: \"1s\" -> \"2s\"",
        ])
    );
    // The other way round.
    let back = diff(new.path(), old.path(), &[]).expect_code(1);
    assert!(
        back.stdout.contains("  + legacy\n  - extra\n"),
        "{}",
        back.stdout
    );
    assert!(
        back.stdout.contains("connect_timeout: \"2s\" -> \"1s\""),
        "{}",
        back.stdout
    );
}

#[test]
fn diff_of_an_invalid_or_missing_dir_exits_2() {
    let quickstart = example("quickstart");
    let bad = ScratchDir::new("diff-bad");
    let file = bad.write(
        "bad.yaml",
        &cluster("backend", "connect_timeout: 5 seconds\n"),
    );
    let missing = bad.path().join("missing");
    for (old, new) in [
        (bad.path(), quickstart.as_path()),
        (quickstart.as_path(), bad.path()),
        (quickstart.as_path(), missing.as_path()),
        (missing.as_path(), quickstart.as_path()),
    ] {
        let out = diff(old, new, &[]).expect_code(2);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
    let out = diff(&quickstart, bad.path(), &[]).expect_code(2);
    let want = format!("{}:3:18: error: ", file.display());
    assert!(
        out.stderr.contains(&want),
        "want `{want}` in:\n{}",
        out.stderr
    );
    run(&["diff", s(&quickstart)]).expect_code(2);
}

#[test]
fn diff_uses_the_node_view() {
    let old = example("node-targeting");
    let new = copy_example("node-targeting");
    edit(&new, "routes-internal.yaml", "timeout: 60s", "timeout: 30s");

    for view in [NODE_VIEWS[0], NODE_VIEWS[1], &["--node-cluster", "edge-eu"]] {
        let out = diff(&old, new.path(), view).expect_code(0);
        assert!(out.stdout.is_empty(), "{view:?}: {}", out.stdout);
    }
    let out = diff(&old, new.path(), &["--node-cluster", "internal-a"]).expect_code(1);
    assert_eq!(
        out.stdout,
        text(&[
            "RouteConfiguration:",
            "  ~ local_route",
            "      virtual_hosts[0].routes[0].route.timeout: \"60s\" -> \"30s\"",
            "      virtual_hosts[0].routes[1].route.timeout: \"60s\" -> \"30s\"",
        ])
    );
}

// ---------------------------------------------------------------------------
// help
// ---------------------------------------------------------------------------

/// Runs `ARGS --help` and checks that it succeeds and mentions every word.
fn assert_help_mentions(args: &[&str], words: &[&str]) {
    let out = run(&[args, &["--help"]].concat()).expect_code(0);
    for word in words {
        assert!(
            out.stdout.contains(word),
            "`xdsd {} --help` lacks `{word}`:\n{}",
            args.join(" "),
            out.stdout
        );
    }
}

#[test]
fn help_describes_subcommands_and_flags() {
    assert_help_mentions(&[], &["lint", "render", "diff"]);
    let lint_words = [
        "--dir",
        "--format",
        "--deny-warnings",
        "text",
        "json",
        "github",
    ];
    assert_help_mentions(&["lint"], &lint_words);
    let render_words = [
        "--dir",
        "--node-id",
        "--node-cluster",
        "--type",
        "--format",
        "--envoy-static",
    ];
    assert_help_mentions(&["render"], &render_words);
    assert_help_mentions(
        &["diff"],
        &["OLD_DIR", "NEW_DIR", "--node-id", "--node-cluster"],
    );
}

// ---------------------------------------------------------------------------
// bootstrap
// ---------------------------------------------------------------------------

#[test]
fn bootstrap_envoy_is_accepted_by_envoy() {
    let out = run(&[
        "bootstrap",
        "--format",
        "envoy",
        "--server",
        "127.0.0.1:18000",
        "--node-id",
        "edge-1",
        "--node-cluster",
        "edge",
    ])
    .expect_code(0);
    let doc = xdsd::config::yaml::parse_documents(&out.stdout, Default::default())
        .expect("YAML")
        .remove(0)
        .to_json();
    assert_eq!(doc["node"]["id"], "edge-1");
    assert_eq!(doc["dynamic_resources"]["ads_config"]["api_type"], "GRPC");
    let (ok, output) = common::envoy_validate(&doc);
    assert!(ok, "Envoy rejects the bootstrap:\n{output}\n{}", out.stdout);
}

#[test]
fn bootstrap_grpc_names_server_and_node() {
    let doc = run(&[
        "bootstrap",
        "--format",
        "grpc",
        "--server",
        "127.0.0.1:18000",
        "--node-id",
        "app-1",
        "--node-cluster",
        "app",
    ])
    .expect_code(0)
    .json();
    assert_eq!(doc["xds_servers"][0]["server_uri"], "127.0.0.1:18000");
    assert_eq!(
        doc["xds_servers"][0]["channel_creds"][0]["type"],
        "insecure"
    );
    assert_eq!(doc["xds_servers"][0]["server_features"][0], "xds_v3");
    assert_eq!(
        (doc["node"]["id"].as_str(), doc["node"]["cluster"].as_str()),
        (Some("app-1"), Some("app"))
    );
    run(&["bootstrap", "--format", "nope"]).expect_code(2);
}
