//! The offline subcommands that review a directory before it ships:
//! `lint` (and `--explain`), `render` and `diff`.

use super::*;
use crate::check::validate::{self, Checked};
use crate::config::diag::{self, Diagnostics};
use crate::config::render;
use crate::config::resource::{self, Resource};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn load(dir: &Path, limits: &FileLimitArg, checks: &CheckArgs) -> Result<Checked, ExitCode> {
    let trouble = |e: String| {
        eprintln!("xdsd: {e}");
        ExitCode::from(EXIT_TROUBLE)
    };
    let settings = checks.settings().map_err(trouble)?;
    validate::check_dir_with(dir, limits.limits(), &settings).map_err(|e| trouble(e.to_string()))
}

/// The referee Envoy: the path given, else $XDSD_ENVOY, else `envoy` on PATH.
fn referee_envoy(given: Option<&Path>) -> PathBuf {
    if let Some(path) = given {
        return path.to_path_buf();
    }
    std::env::var_os("XDSD_ENVOY")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("envoy"), PathBuf::from)
}

/// `lint --explain [RULE]`: one rule's explanation, or the list of rules.
fn explain(id: &str) -> ExitCode {
    if id.is_empty() {
        let rules = crate::check::all();
        let width = rules.iter().map(|r| r.id.len()).max().unwrap_or(0);
        let list: String = rules
            .iter()
            .map(|r| {
                format!(
                    "{:width$}  {:7}  {}\n",
                    r.id,
                    r.severity.as_str(),
                    r.summary
                )
            })
            .collect();
        print(&list);
        return ExitCode::SUCCESS;
    }
    match crate::check::find(id) {
        Some(rule) => {
            print(&crate::check::explain(rule));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("xdsd: unknown rule `{id}`; `xdsd lint --explain` lists them");
            ExitCode::from(EXIT_TROUBLE)
        }
    }
}

pub(super) fn print(text: &str) {
    // A closed pipe (`xdsd render | head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn print_errors(diags: &Diagnostics) {
    eprint!("{}", diag::render(diags, diag::Format::Text));
}

pub(super) fn lint(args: &LintArgs) -> ExitCode {
    if let Some(id) = &args.explain {
        return explain(id);
    }
    let Some(dir) = &args.dir else {
        eprintln!("xdsd: lint needs --dir");
        return ExitCode::from(EXIT_TROUBLE);
    };
    let mut checked = match load(dir, &args.limits, &args.checks) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(envoy) = &args.envoy {
        let envoy = referee_envoy(envoy.as_deref());
        let referee = match crate::check::referee::Referee::new(
            &envoy,
            crate::check::referee::default_cache_dir(),
        ) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("xdsd: --envoy: {e}");
                return ExitCode::from(EXIT_TROUBLE);
            }
        };
        match args.checks.settings() {
            Ok(settings) => checked.referee(&referee, &settings),
            Err(e) => {
                eprintln!("xdsd: {e}");
                return ExitCode::from(EXIT_TROUBLE);
            }
        }
    }
    let diags = &checked.diagnostics;
    print(&diag::render(diags, args.format));
    if args.format == diag::Format::Text {
        eprintln!(
            "{} resources, {} errors, {} warnings",
            checked.resources.len(),
            diags.error_count(),
            diags.warning_count()
        );
    }
    let failed = diags.error_count() > 0 || args.deny_warnings && diags.warning_count() > 0;
    // Freeing tens of thousands of messages takes longer than exiting does.
    std::mem::forget(checked);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Loads and validates, printing errors; `None` when the set is invalid.
fn load_valid(dir: &Path, limits: &FileLimitArg, checks: &CheckArgs) -> Result<Checked, ExitCode> {
    let checked = load(dir, limits, checks)?;
    if !checked.diagnostics.is_ok() {
        print_errors(&checked.diagnostics);
        eprintln!(
            "xdsd: {}: {} errors",
            dir.display(),
            checked.diagnostics.error_count()
        );
        return Err(ExitCode::FAILURE);
    }
    Ok(checked)
}

pub(super) fn render_cmd(args: &RenderArgs) -> ExitCode {
    let checked = match load_valid(&args.dir.dir, &args.dir.limits, &args.checks) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let view: Vec<&Resource> = resource::view(&checked.resources, &args.node.identity())
        .into_iter()
        .filter(|r| args.rtype.is_none_or(|t| r.rtype == t))
        .collect();
    if args.envoy_static {
        let json = if args.redact {
            render::redacted_json
        } else {
            render::to_json
        };
        let typed: Vec<_> = view.iter().map(|r| (r.rtype, json(r))).collect();
        let bootstrap = render::envoy_static(&typed);
        print(&pretty_json(&bootstrap));
    } else {
        print(&render::render(&view, args.format, args.redact));
    }
    ExitCode::SUCCESS
}

pub(super) fn diff_cmd(args: &DiffArgs) -> ExitCode {
    let node = args.node.identity();
    let (old, new) = match (
        load_valid(&args.old, &args.limits, &args.checks),
        load_valid(&args.new, &args.limits, &args.checks),
    ) {
        (Ok(o), Ok(n)) => (o, n),
        // Invalid input is trouble for diff, as for diff(1).
        _ => return ExitCode::from(EXIT_TROUBLE),
    };
    let changes = crate::cli::diff::diff(
        &resource::view(&old.resources, &node),
        &resource::view(&new.resources, &node),
    );
    print(&crate::cli::diff::report(&changes));
    if changes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
