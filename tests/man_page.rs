//! `man/xdsd.1` is generated from the clap definitions, so help, man page and
//! behaviour cannot drift apart. Regenerate with
//! `XDSD_UPDATE_MAN=1 cargo test --test man_page`.

use clap::CommandFactory;

fn render(cmd: clap::Command) -> String {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("man page renders");
    String::from_utf8(out).expect("man page is UTF-8")
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
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut stale = Vec::new();
    for (file, text) in pages {
        let path = dir.join(&file);
        if std::env::var_os("XDSD_UPDATE_MAN").is_some() {
            std::fs::create_dir_all(&dir).expect("mkdir man");
            std::fs::write(&path, &text).expect("write man page");
        }
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "stale man pages {stale:?}; run XDSD_UPDATE_MAN=1 cargo test --test man_page"
    );
}
