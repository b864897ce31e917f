//! herald installed like real software (issue 18, item 5): `--version` names the git revision,
//! shell completions and man pages come from the clap definition and load in the real shell and
//! roff, `herald health` is the container's probe, and dist/herald.service passes
//! `systemd-analyze verify` where systemd-analyze is installed (a skipped check says so on
//! stderr; scripts/test does not install systemd).

mod hub_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hub_support::Hub;

fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(command: &mut Command) -> Output {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{command:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn has(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

#[test]
fn version_names_the_git_revision() {
    let out = run(herald().arg("--version"));
    let version = String::from_utf8(out.stdout).unwrap();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success());
    match head {
        Some(head) => {
            let rev = String::from_utf8(head.stdout).unwrap();
            let expected = format!("herald {} ({})\n", env!("CARGO_PKG_VERSION"), rev.trim());
            assert_eq!(version, expected);
        }
        // Built outside a git checkout: the plain version, and the build did not fail.
        None => assert_eq!(version, format!("herald {}\n", env!("CARGO_PKG_VERSION"))),
    }
}

#[test]
fn bash_completion_sources_cleanly_and_completes_subcommands() {
    let script = String::from_utf8(run(herald().args(["completions", "bash"])).stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.bash");
    std::fs::write(&file, &script).unwrap();
    run(Command::new("bash").arg("-n").arg(&file));
    // Sourced for real, then asked what `herald se<TAB>` and `herald serve --data<TAB>` offer.
    let probe = format!(
        "set -e; source {file}; complete -p herald; \
         COMP_WORDS=(herald se); COMP_CWORD=1; COMP_LINE='herald se'; COMP_POINT=9; \
         _herald herald se herald; echo \"sub: ${{COMPREPLY[*]}}\"; \
         COMP_WORDS=(herald serve --data); COMP_CWORD=2; COMP_LINE='herald serve --data'; COMP_POINT=19; \
         _herald herald --data serve; echo \"flag: ${{COMPREPLY[*]}}\"",
        file = file.display()
    );
    let out = run(Command::new("bash").arg("-c").arg(probe));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("sub: serve"), "{text}");
    assert!(text.contains("flag: --data-dir"), "{text}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn zsh_and_fish_completions_are_generated_and_parse_where_the_shell_is_installed() {
    let zsh = String::from_utf8(run(herald().args(["completions", "zsh"])).stdout).unwrap();
    assert!(zsh.starts_with("#compdef herald"), "{zsh:.80}");
    let fish = String::from_utf8(run(herald().args(["completions", "fish"])).stdout).unwrap();
    assert!(fish.contains("complete -c herald"), "{fish:.80}");
    let dir = tempfile::tempdir().unwrap();
    for (shell, script) in [("zsh", zsh), ("fish", fish)] {
        if !has(shell) {
            eprintln!("{shell} is not installed: only the script's text was checked");
            continue;
        }
        let file = dir.path().join(shell);
        std::fs::write(&file, script).unwrap();
        run(Command::new(shell).arg("-n").arg(&file));
    }
}

/// Renders a roff page with groff (as `man` does) and returns the text; groff's warnings fail.
fn render(page: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("page.1");
    std::fs::write(&file, page).unwrap();
    let out = run(Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file));
    assert!(
        out.stderr.is_empty(),
        "groff warned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(Command::new("groff")
        .args(["-man", "-Tascii", "-P-cbou"])
        .arg(&file));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn man_page_renders_with_its_sections_and_subcommands() {
    let page = run(herald().arg("man")).stdout;
    let serve = run(herald().args(["man", "serve"])).stdout;
    let text = String::from_utf8_lossy(&page).into_owned();
    assert!(text.starts_with(".ie \\n(.g .ds Aq"), "{text:.80}");
    assert!(text.contains(".TH herald 1"), "{text:.200}");
    if !has("groff") {
        eprintln!("groff is not installed: only the roff source was checked");
        for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS", ".SH VERSION"] {
            assert!(text.contains(section), "no {section}");
        }
        return;
    }
    let text = render(&page);
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "SUBCOMMANDS", "VERSION"] {
        assert!(
            text.lines().any(|l| l == section),
            "no {section} in:\n{text}"
        );
    }
    assert!(text.contains("herald-serve(1)"), "{text}");
    let text = render(&serve);
    assert!(text.contains("herald-serve"), "{text}");
    assert!(text.contains("--data-dir"), "{text}");
    // The environment variables that config.rs adds are in the page, as they are in --help.
    assert!(text.contains("HERALD_DATA_DIR"), "{text}");

    let out = herald().args(["man", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no subcommand \"nope\""));
}

#[test]
fn health_exits_zero_on_a_running_hub_and_one_when_nothing_answers() {
    // The memory store: the default embedded one would leave ./herald-data in the crate.
    let hub = Hub::start(&["--store", "memory"]);
    let out = run(herald().arg("health").arg(format!("http://{}", hub.addr)));
    let body = String::from_utf8(out.stdout).unwrap();
    assert!(body.contains("\"status\""), "{body}");
    drop(hub);

    // A port nobody listens on (bound, then closed): unhealthy, exit 1, the reason on stderr.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = herald()
        .args([
            "health",
            &format!("http://127.0.0.1:{port}"),
            "--timeout",
            "2s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/healthz"));
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(root().join("dist/herald.service")).unwrap();
    for line in [
        "DynamicUser=yes",
        "StateDirectory=herald",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line}");
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    // The ExecStart's flags are ones `herald serve` takes.
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert_eq!(args[0], "serve");
    let help = String::from_utf8(run(herald().args(["serve", "--help"])).stdout).unwrap();
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(flag), "serve has no {flag}");
    }
    if !has("systemd-analyze") {
        eprintln!("systemd-analyze is not installed: the unit was not verified");
        return;
    }
    // verify checks that ExecStart's binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.service");
    let unit = unit.replace("/usr/local/bin/herald", env!("CARGO_BIN_EXE_herald"));
    std::fs::write(&file, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Warnings about the unit itself (not the host's other units) fail too.
    assert!(
        !stderr.lines().any(|l| l.contains("herald.service")),
        "{stderr}"
    );
}

#[test]
fn containerfile_probes_with_herald_health_as_a_non_root_user() {
    let file = std::fs::read_to_string(root().join("dist/Containerfile")).unwrap();
    assert!(file.matches("\nFROM ").count() >= 2, "not multi-stage");
    assert!(file.contains("\nUSER herald:herald\n"));
    assert!(file.contains("\nVOLUME [\"/var/lib/herald\"]\n"));
    let probe = file
        .lines()
        .find_map(|l| l.trim().strip_prefix("CMD [\"herald\", \"health\""))
        .expect("a HEALTHCHECK through herald health");
    assert!(probe.contains("--timeout"), "{probe}");
    assert!(file.contains("--profile dist"));
}
