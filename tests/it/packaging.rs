//! What `packaging/` ships, checked the way an operator's machine uses it:
//! the systemd unit as systemd reads it, the flags in /etc/default/xdsd as
//! `xdsd serve` parses them, the example config as `lint` and Envoy see it,
//! and the built Debian package (`XDSD_DEB`, set by `.ci/run` after
//! `packaging/build-deb.sh`) as dpkg lists it.
//!
//! A tool a check needs may be missing on a developer's machine; the check
//! is then skipped with a note, except under `CI=true`, where it fails, so
//! CI cannot pass without having run it.

use crate::common;

use crate::common::{ChildGuard, ScratchDir, Xdsd, free_port, root, xdsd};
use clap::CommandFactory;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The text of `packaging/<file>`.
fn packaging(file: &str) -> String {
    let path = root().join("packaging").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `program`'s path, if it is on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Skips the calling check with a note, or fails it under `CI=true`.
fn skip(reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{reason}, and CI must run this check"
    );
    eprintln!("skipped: {reason}");
}

/// Runs `command`, returning its output and its stdout and stderr as one text.
fn run(command: &mut Command) -> (Output, String) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// Runs `command`, panicking with its output unless it exits 0; returns stdout.
fn run_ok(command: &mut Command) -> String {
    let (out, text) = run(command);
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------
// The systemd unit
// ---------------------------------------------------------------------------

/// `packaging/xdsd.service` written to `dir` as systemd would find it on
/// an installed machine: systemd-analyze checks that every Exec binary
/// exists, so the installed paths are pointed at this test's build (and at
/// kill(1) wherever this machine has it); `Documentation=` man pages are
/// made findable through `MANPATH` (see [`man_path`]).
fn installable_unit(dir: &ScratchDir) -> PathBuf {
    let mut unit = packaging("xdsd.service").replace("/usr/bin/xdsd", env!("CARGO_BIN_EXE_xdsd"));
    if !Path::new("/bin/kill").exists()
        && let Some(kill) = on_path("kill")
    {
        unit = unit.replace("/bin/kill", &kill.to_string_lossy());
    }
    dir.write("xdsd.service", &unit)
}

/// A `MANPATH` holding the repository's man pages (`man1/xdsd*.1`), so a
/// `Documentation=man:...` naming a page that does not exist is reported.
fn man_path(dir: &ScratchDir) -> PathBuf {
    let man1 = dir.path().join("man/man1");
    std::fs::create_dir_all(&man1).expect("mkdir man1");
    for page in man_pages() {
        std::fs::copy(root().join("man").join(&page), man1.join(&page)).expect("copy man page");
    }
    dir.path().join("man")
}

/// The file names in `man/`.
fn man_pages() -> Vec<String> {
    let mut pages: Vec<String> = std::fs::read_dir(root().join("man"))
        .expect("read man/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".1"))
        .collect();
    pages.sort();
    pages
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let Some(analyze) = on_path("systemd-analyze") else {
        return skip("systemd-analyze is not on PATH");
    };
    let dir = ScratchDir::new("unit-verify");
    let unit = installable_unit(&dir);
    let mut command = Command::new(analyze);
    command.arg("verify");
    if on_path("man").is_some() {
        command.env("MANPATH", man_path(&dir));
    } else {
        command.arg("--man=no");
    }
    let (out, text) = run(command.arg(&unit));
    // systemd-analyze exits 0 after most warnings (an unknown key, a value
    // it cannot parse: the setting is ignored, so the unit would run with
    // less hardening than written). Every line that names the unit fails
    // the test; lines about other units on this machine are only shown.
    let about_unit: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("xdsd.service"))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify ({}):\n{text}",
        out.status
    );
    if !text.trim().is_empty() {
        eprintln!("systemd-analyze verify, about other units:\n{text}");
    }
}

/// The service runs as the package's own system user, so /etc/xdsd can be
/// group-readable instead of world-readable; the sysusers file that creates
/// it is valid (systemd-sysusers --dry-run into a scratch root).
#[test]
fn unit_runs_as_the_packages_system_user() {
    let unit = packaging("xdsd.service");
    let settings: Vec<&str> = unit.lines().map(str::trim).collect();
    assert!(settings.contains(&"User=xdsd") && settings.contains(&"Group=xdsd"));
    assert!(
        !settings.iter().any(|l| l.starts_with("DynamicUser=")),
        "a dynamic user cannot be given the group of /etc/xdsd"
    );
    let Some(sysusers) = on_path("systemd-sysusers") else {
        return skip("systemd-sysusers is not on PATH");
    };
    let dir = ScratchDir::new("sysusers");
    std::fs::create_dir_all(dir.path().join("etc")).expect("scratch etc");
    let (_, text) = run(Command::new(sysusers)
        .arg(format!("--root={}", dir.path().display()))
        .arg("--dry-run")
        .arg(root().join("packaging/xdsd.sysusers")));
    assert!(
        text.contains("Creating group 'xdsd'") && text.contains("Creating user 'xdsd'"),
        "systemd-sysusers --dry-run:\n{text}"
    );
}

#[test]
fn unit_sandbox_exposure_stays_low() {
    let Some(analyze) = on_path("systemd-analyze") else {
        return skip("systemd-analyze is not on PATH");
    };
    let dir = ScratchDir::new("unit-security");
    let unit = installable_unit(&dir);
    // The overall exposure, 0.0 (locked down) to 10.0, is compared as ten
    // times that. The unit scores 1.2 with systemd 252 (packaging/README.md
    // says which settings cost the rest); dropping most sandbox settings
    // raises it (a few, such as ProtectSystem=strict, DynamicUser= implies).
    let (out, text) = run(Command::new(analyze)
        .args(["security", "--offline=true", "--threshold=12", "--no-pager"])
        .arg(&unit));
    assert!(
        out.status.success(),
        "systemd-analyze security: exposure above 1.2 ({}):\n{text}",
        out.status
    );
}

// ---------------------------------------------------------------------------
// /etc/default/xdsd
// ---------------------------------------------------------------------------

/// The variables `packaging/xdsd.default` sets, as systemd's
/// `EnvironmentFile=` reads them (comments skipped, quotes removed).
fn default_vars() -> BTreeMap<String, String> {
    packaging("xdsd.default")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (key.to_string(), value.to_string())
        })
        .collect()
}

#[test]
fn default_file_sets_the_config_dir_and_opts() {
    let vars = default_vars();
    let keys: Vec<&str> = vars.keys().map(String::as_str).collect();
    assert_eq!(keys, ["XDSD_CONFIG_DIR", "XDSD_OPTS"]);
    assert_eq!(vars["XDSD_CONFIG_DIR"], "/etc/xdsd");
    // The unit's own default must agree, for machines without the file.
    assert!(packaging("xdsd.service").contains("Environment=XDSD_CONFIG_DIR=/etc/xdsd\n"));
}

#[test]
fn default_file_documents_every_serve_flag() {
    let cli = xdsd::cli::Cli::command();
    let serve = cli.find_subcommand("serve").expect("a serve subcommand");
    let text = packaging("xdsd.default");
    let words: Vec<&str> = text.split_whitespace().collect();
    let missing: Vec<String> = serve
        .get_arguments()
        .filter_map(|arg| arg.get_long())
        // --dir is XDSD_CONFIG_DIR.
        .filter(|long| !matches!(*long, "dir" | "help" | "version"))
        .map(|long| format!("--{long}"))
        .filter(|flag| !words.contains(&flag.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "packaging/xdsd.default does not document {missing:?}"
    );
}

#[test]
fn default_file_opts_start_serve() {
    // XDSD_OPTS as systemd passes it ($XDSD_OPTS: split at whitespace),
    // with the addresses moved to free loopback ports, as every server a
    // test starts must be.
    let (listen, admin) = (free_port(), free_port());
    let mut opts: Vec<String> = default_vars()["XDSD_OPTS"]
        .split_whitespace()
        .map(String::from)
        .collect();
    for (flag, port) in [("--listen", listen), ("--admin", admin)] {
        match opts.iter().position(|o| o == flag) {
            Some(i) => opts[i + 1] = format!("127.0.0.1:{port}"),
            None => opts.extend([flag.to_string(), format!("127.0.0.1:{port}")]),
        }
    }
    // What a fresh install serves: the config dir holding only the
    // commented-out example.
    let dir = ScratchDir::new("default-opts");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir config");
    std::fs::write(config.join("example.yaml"), packaging("example.yaml")).expect("write");
    let mut command = Command::new(env!("CARGO_BIN_EXE_xdsd"));
    command.arg("serve").arg("--dir").arg(&config).args(&opts);
    let mut server = Xdsd {
        guard: ChildGuard::spawn("xdsd", command, &dir.path().join("xdsd.log")),
        listen,
        admin,
    };
    server.wait_ready();
    server.guard.signal("TERM");
    let status = server.guard.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "xdsd serve {opts:?} did not exit 0 on SIGTERM: {status:?}\n{}",
        server.log()
    );
}

// ---------------------------------------------------------------------------
// /etc/xdsd/example.yaml
// ---------------------------------------------------------------------------

/// The example as an operator enables it: the first `#` of every line
/// removed (`##` lines stay comments).
fn uncommented_example() -> String {
    packaging("example.yaml")
        .lines()
        .map(|line| line.strip_prefix('#').unwrap_or(line))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// `xdsd lint --deny-warnings` of a directory holding only `text` as
/// `example.yaml`; panics unless it is clean; returns the summary line
/// (`N resources, N errors, N warnings`).
fn lint_clean(tag: &str, text: &str) -> String {
    let dir = ScratchDir::new(tag);
    dir.write("example.yaml", text);
    let out = xdsd(&[
        "lint",
        "--deny-warnings",
        "--dir",
        dir.path().to_str().expect("UTF-8 path"),
    ]);
    // Findings go to stdout, the summary line to stderr.
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "lint of the {tag} example ({}):\n{stdout}{stderr}",
        out.status
    );
    stderr.lines().last().unwrap_or_default().to_string()
}

#[test]
fn example_is_all_comments_and_lints_clean_both_ways() {
    let example = packaging("example.yaml");
    let live: Vec<&str> = example.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        live.is_empty(),
        "example.yaml lines not commented: {live:?}"
    );
    // A fresh install serves an empty set...
    assert_eq!(
        lint_clean("commented", &example),
        "0 resources, 0 errors, 0 warnings"
    );
    // ...and the example, once uncommented, is a complete one.
    assert_eq!(
        lint_clean("uncommented", &uncommented_example()),
        "4 resources, 0 errors, 0 warnings"
    );
}

#[test]
fn uncommented_example_is_accepted_by_envoy() {
    let dir = ScratchDir::new("example-envoy");
    dir.write("example.yaml", &uncommented_example());
    let out = xdsd(&[
        "render",
        "--envoy-static",
        "--dir",
        dir.path().to_str().expect("UTF-8 path"),
    ]);
    assert!(out.status.success(), "render --envoy-static: {out:?}");
    let bootstrap: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("render --envoy-static prints JSON");
    let (accepted, text) = common::envoy_validate(&bootstrap);
    assert!(accepted, "Envoy rejects the uncommented example:\n{text}");
}

// ---------------------------------------------------------------------------
// The Debian package
// ---------------------------------------------------------------------------

/// Every file the package must install, with its mode as `dpkg-deb -c`
/// prints it.
fn expected_package_files() -> Vec<(String, &'static str)> {
    let mut files: Vec<(String, &str)> = [
        ("./usr/bin/xdsd", "-rwxr-xr-x"),
        ("./usr/lib/systemd/system/xdsd.service", "-rw-r--r--"),
        ("./etc/default/xdsd", "-rw-r--r--"),
        ("./etc/xdsd/example.yaml", "-rw-r--r--"),
        ("./usr/lib/sysusers.d/xdsd.conf", "-rw-r--r--"),
        ("./usr/share/bash-completion/completions/xdsd", "-rw-r--r--"),
        ("./usr/share/zsh/vendor-completions/_xdsd", "-rw-r--r--"),
        (
            "./usr/share/fish/vendor_completions.d/xdsd.fish",
            "-rw-r--r--",
        ),
        ("./usr/share/doc/xdsd/README.md", "-rw-r--r--"),
        ("./usr/share/doc/xdsd/rules.md", "-rw-r--r--"),
        ("./usr/share/doc/xdsd/copyright", "-rw-r--r--"),
    ]
    .into_iter()
    .map(|(path, mode)| (path.to_string(), mode))
    .collect();
    for page in man_pages() {
        files.push((format!("./usr/share/man/man1/{page}.gz"), "-rw-r--r--"));
    }
    files
}

/// Installed path in the package → the repository file it must equal.
const SHIPPED_AS_IS: [(&str, &str); 9] = [
    (
        "usr/lib/systemd/system/xdsd.service",
        "packaging/xdsd.service",
    ),
    ("etc/default/xdsd", "packaging/xdsd.default"),
    ("etc/xdsd/example.yaml", "packaging/example.yaml"),
    ("usr/lib/sysusers.d/xdsd.conf", "packaging/xdsd.sysusers"),
    (
        "usr/share/bash-completion/completions/xdsd",
        "packaging/completions/xdsd.bash",
    ),
    (
        "usr/share/zsh/vendor-completions/_xdsd",
        "packaging/completions/_xdsd",
    ),
    (
        "usr/share/fish/vendor_completions.d/xdsd.fish",
        "packaging/completions/xdsd.fish",
    ),
    ("usr/share/doc/xdsd/README.md", "README.md"),
    ("usr/share/doc/xdsd/rules.md", "docs/rules.md"),
];

#[test]
fn deb_package_installs_everything() {
    let Some(deb) = std::env::var_os("XDSD_DEB").map(PathBuf::from) else {
        return skip("XDSD_DEB is not set (bash packaging/build-deb.sh builds the package)");
    };
    assert!(deb.is_file(), "XDSD_DEB={} is not a file", deb.display());

    // Paths and modes: `-rwxr-xr-x root/root 123 2026-01-01 00:00 ./usr/bin/xdsd`.
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let modes: BTreeMap<&str, &str> = listing
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((*fields.get(5)?, *fields.first()?))
        })
        .collect();
    let wrong: Vec<String> = expected_package_files()
        .into_iter()
        .filter(|(path, mode)| modes.get(path.as_str()) != Some(mode))
        .map(|(path, mode)| format!("{path} {mode} (packaged: {:?})", modes.get(path.as_str())))
        .collect();
    assert!(
        wrong.is_empty(),
        "missing or wrong mode: {wrong:#?}\n{listing}"
    );

    let info = run_ok(Command::new("dpkg-deb").arg("-I").arg(&deb));
    for field in [
        "Package: xdsd",
        "Section: net",
        "Priority: optional",
        "Depends: libc6",
    ] {
        assert!(info.contains(field), "control lacks {field:?}:\n{info}");
    }

    // Maintainer scripts and conffiles.
    let dir = ScratchDir::new("deb");
    let control = dir.path().join("DEBIAN");
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let read = |name: &str| std::fs::read_to_string(control.join(name)).unwrap_or_default();
    let mut conffiles: Vec<String> = read("conffiles").lines().map(String::from).collect();
    conffiles.sort();
    assert_eq!(conffiles, ["/etc/default/xdsd", "/etc/xdsd/example.yaml"]);
    // Never started (nor enabled) by installing: an xdsd serving the empty
    // example set would tell every Envoy pointed at this host to drop its
    // listeners and clusters. Upgrades restart it only if it runs.
    let (postinst, prerm) = (read("postinst"), read("prerm"));
    assert!(
        postinst.contains("try-restart") && !postinst.contains("_dh_action=start"),
        "postinst must only try-restart:\n{postinst}"
    );
    // dh_installsystemd's --no-enable form: enable only on an upgrade of
    // a unit the operator had enabled.
    assert!(
        postinst.contains("if deb-systemd-helper debian-installed xdsd.service; then"),
        "postinst must not enable the unit on install:\n{postinst}"
    );
    // The service user and group exist before /etc/xdsd is given to the
    // group, and the directory is closed to other local users (resource
    // files may hold private keys inline).
    let sysusers = postinst.find("systemd-sysusers");
    let chown = postinst.find("chown root:xdsd /etc/xdsd");
    assert!(
        sysusers.is_some() && chown.is_some() && sysusers < chown,
        "postinst must create the user, then chown /etc/xdsd:\n{postinst}"
    );
    assert!(postinst.contains("chmod 0750 /etc/xdsd"), "{postinst}");
    assert!(
        prerm.contains("deb-systemd-invoke stop xdsd.service"),
        "prerm must stop the service on removal:\n{prerm}"
    );

    // The files themselves: the repository's, byte for byte.
    let tree = dir.path().join("root");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree));
    for (installed, source) in SHIPPED_AS_IS {
        assert!(
            std::fs::read(tree.join(installed)).ok() == std::fs::read(root().join(source)).ok(),
            "{installed} in the package differs from {source}"
        );
    }
    for page in man_pages() {
        let gz = tree.join(format!("usr/share/man/man1/{page}.gz"));
        let text = run_ok(Command::new("gzip").arg("-dc").arg(&gz));
        assert!(
            Some(text) == std::fs::read_to_string(root().join("man").join(&page)).ok(),
            "{} differs from man/{page}",
            gz.display()
        );
    }
    let version = run_ok(Command::new(tree.join("usr/bin/xdsd")).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("xdsd {}", env!("CARGO_PKG_VERSION")),
        "the packaged binary"
    );
}
