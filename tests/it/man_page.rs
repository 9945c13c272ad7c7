//! Files generated from the clap definitions are checked in: the man pages
//! in `man/` and the shell completions in `packaging/completions/`, so help,
//! man page, completions and behaviour cannot drift apart, and packaging
//! needs no build step of its own. The lint rules reference (`docs/rules.md`)
//! comes from the rule registry the same way. Regenerate all of them with
//! `XDSD_UPDATE_MAN=1 cargo test --test it man_page`.

use clap::CommandFactory;
use clap_complete::{Generator, Shell};

fn render(cmd: clap::Command) -> String {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("man page renders");
    String::from_utf8(out).expect("man page is UTF-8")
}

/// Compares each `(file, text)` with the checked-in `folder/file` (relative
/// to the repository), after writing them first when `XDSD_UPDATE_MAN` is
/// set; fails naming every stale file.
fn assert_current(folder: &str, files: Vec<(String, String)>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut stale = Vec::new();
    for (file, text) in files {
        let path = dir.join(&file);
        if std::env::var_os("XDSD_UPDATE_MAN").is_some() {
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(&path, &text).expect("write generated file");
        }
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(format!("{folder}/{file}"));
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}; run XDSD_UPDATE_MAN=1 cargo test --test it man_page"
    );
}

#[test]
fn man_pages_are_current() {
    let cli = xdsd::cli::Cli::command();
    let mut pages = vec![("xdsd.1".to_string(), render(cli.clone()))];
    for sub in cli.get_subcommands() {
        let name = format!("xdsd-{}", sub.get_name());
        pages.push((
            format!("{name}.1"),
            render(
                sub.clone()
                    .display_name(name.clone())
                    .bin_name(name.replace('-', " ")),
            ),
        ));
    }
    assert_current("man", pages);
}

/// bash, zsh and fish completions, named as each shell's vendor directory
/// expects (`xdsd.bash` is installed as `.../bash-completion/completions/xdsd`).
#[test]
fn completions_are_current() {
    let scripts = [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut xdsd::cli::Cli::command(), "xdsd", &mut out);
            let text = String::from_utf8(out).expect("completion script is UTF-8");
            (shell.file_name("xdsd"), text)
        })
        .collect();
    assert_current("packaging/completions", scripts);
}

#[test]
fn rules_reference_is_current() {
    assert_current(
        "docs",
        vec![("rules.md".to_string(), xdsd::check::docs::rules_markdown())],
    );
}
