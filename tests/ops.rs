//! The install-and-operate commands as real processes: `--version` names the commit,
//! completions and the man pages (one per command) are well-formed, and `service install | status | uninstall`
//! write and remove the unit in a private home, with or without a `systemctl` on PATH.
//! The stand-in `systemctl` is a shell script that records its arguments: the real one would
//! act on this machine's user manager. Where `systemd-analyze` exists, the written unit must
//! pass `systemd-analyze verify`.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

fn icsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_icsync"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn version_names_the_package_version_and_the_git_commit() {
    let text = stdout(&icsync(&["--version"]));
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        text.trim(),
        format!("icsync {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    let bash = stdout(&icsync(&["completions", "bash"]));
    assert!(bash.contains("complete -F _icsync"), "{bash}");
    assert!(bash.contains("doctor"), "subcommands are completed");
    let zsh = stdout(&icsync(&["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef icsync"), "{zsh}");
    let fish = stdout(&icsync(&["completions", "fish"]));
    assert!(fish.contains("complete -c icsync"), "{fish}");
    let bad = icsync(&["completions", "tcsh"]);
    assert!(!bad.status.success());
}

#[test]
fn bash_accepts_the_completion_script() {
    if Command::new("bash").arg("--version").output().is_err() {
        eprintln!("skipped: bash is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("icsync.bash");
    std::fs::write(&script, stdout(&icsync(&["completions", "bash"]))).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p icsync", script.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("-F _icsync"), "{text}");
}

#[test]
fn the_man_page_is_roff_with_a_title_and_the_subcommands() {
    let man = stdout(&icsync(&["man"]));
    let title = man
        .lines()
        .find(|l| l.starts_with(".TH "))
        .unwrap_or_else(|| panic!("no .TH line:\n{man}"));
    assert!(title.starts_with(".TH icsync 1"), "{title}");
    // Everything before the title is roff set-up (requests), not text.
    for line in man.lines().take_while(|l| !l.starts_with(".TH ")) {
        assert!(line.starts_with('.'), "{line}");
    }
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS"] {
        assert!(man.contains(section), "{section}");
    }
    assert!(man.contains("doctor"));
    if let Ok(out) = Command::new("man")
        .args(["--warnings", "-l", "-"])
        .env("MANWIDTH", "80")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(man.as_bytes())?;
            child.wait_with_output()
        })
    {
        let rendered = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(rendered.contains("doctor"), "{rendered}");
    } else {
        eprintln!("man is not installed: the page was checked as text only");
    }
}

/// A private home and config for service commands; PATH holds only `bin` (empty unless a
/// test puts a stand-in `systemctl` there).
struct Home {
    dir: TempDir,
    config: PathBuf,
    bin: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("my config.toml");
        std::fs::write(&config, "api_url = \"https://api.example\"\n").unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        Home { dir, config, bin }
    }

    fn unit_path(&self) -> PathBuf {
        self.dir.path().join("xdg/systemd/user/icsync.service")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_icsync"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("PATH", &self.bin)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A `systemctl` that appends its arguments to `systemctl.log` and succeeds.
    fn fake_systemctl(&self) -> PathBuf {
        let log = self.dir.path().join("systemctl.log");
        let script = self.bin.join("systemctl");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\ncase \"$*\" in *is-active*) echo active;; *is-enabled*) echo enabled;; esac\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        log
    }
}

fn exec_start(unit: &str) -> &str {
    unit.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line")
}

fn binary() -> PathBuf {
    std::fs::canonicalize(env!("CARGO_BIN_EXE_icsync")).unwrap()
}

#[test]
fn print_shows_the_unit_for_the_installed_binary_and_config_without_writing_it() {
    let home = Home::new();
    let unit = stdout(&home.run(&["service", "install", "--print"]));
    assert_eq!(
        exec_start(&unit),
        format!(
            "{} --config \"{}\" daemon --verbose",
            binary().display(),
            home.config.display()
        )
    );
    assert!(unit.contains("Restart=on-failure"));
    assert!(!home.unit_path().exists());
}

#[test]
fn without_systemctl_the_unit_is_written_and_the_commands_to_run_are_printed() {
    let home = Home::new();
    let text = stdout(&home.run(&["service", "install"]));
    assert!(text.contains("systemctl was not found"), "{text}");
    assert!(
        text.contains("  systemctl --user daemon-reload\n"),
        "{text}"
    );
    assert!(
        text.contains("  systemctl --user enable --now icsync.service\n"),
        "{text}"
    );
    let unit = std::fs::read_to_string(home.unit_path()).unwrap();
    assert!(exec_start(&unit).contains("daemon --verbose"));

    let status = home.run(&["service", "status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(text.contains("installed, up to date"), "{text}");

    // A unit from another binary or config is shown as out of date.
    std::fs::write(home.unit_path(), unit.replace("daemon --verbose", "daemon")).unwrap();
    let text = stdout(&home.run(&["service", "status"]));
    assert!(
        text.contains("differs from what this icsync would write"),
        "{text}"
    );

    let text = stdout(&home.run(&["service", "uninstall"]));
    assert!(text.contains("removed"), "{text}");
    assert!(!home.unit_path().exists());
    let status = home.run(&["service", "status"]);
    assert_eq!(status.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&status.stdout).contains("not installed"));
    let text = stdout(&home.run(&["service", "uninstall"]));
    assert!(text.contains("no service installed"), "{text}");
}

#[test]
fn with_systemctl_install_enables_and_starts_and_uninstall_disables() {
    let home = Home::new();
    let log = home.fake_systemctl();
    let text = stdout(&home.run(&["service", "install"]));
    assert!(text.contains("and started it"), "{text}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "--user daemon-reload\n--user enable --now icsync.service\n"
    );
    let text = stdout(&home.run(&["service", "status"]));
    assert!(text.contains("enabled:  enabled"), "{text}");
    assert!(text.contains("active:   active"), "{text}");

    std::fs::remove_file(&log).unwrap();
    stdout(&home.run(&["service", "uninstall"]));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "--user disable --now icsync.service\n--user daemon-reload\n"
    );
    assert!(!home.unit_path().exists());
}

#[test]
fn a_failing_systemctl_is_reported_with_the_commands_to_retry() {
    let home = Home::new();
    let script = home.bin.join("systemctl");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'Failed to connect to bus' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = home.run(&["service", "install"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Failed to connect to bus"), "{err}");
    assert!(
        err.contains("systemctl --user enable --now icsync.service"),
        "{err}"
    );
    assert!(
        home.unit_path().exists(),
        "the unit is written before activation"
    );
}

fn systemd_analyze() -> Option<PathBuf> {
    ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[test]
fn systemd_analyze_verify_accepts_the_written_unit() {
    let Some(analyze) = systemd_analyze() else {
        eprintln!("skipped: systemd-analyze is not installed (tool availability, not a feature)");
        return;
    };
    let home = Home::new();
    stdout(&home.run(&["service", "install"]));
    let runtime = home.dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--user"])
        .arg(home.unit_path())
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("HOME", home.dir.path())
        .env("XDG_CONFIG_HOME", home.dir.path().join("xdg"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify refused the unit:\n{err}"
    );
    // Older systemd only notes the two back-off keys it does not know yet.
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.contains("RestartSteps") || line.contains("RestartMaxDelaySec"),
            "unexpected complaint: {line}"
        );
    }
    assert!(Path::new(&home.unit_path()).exists());
}

// `icsync man --out-dir DIR` as `just install` runs it: a page per command, each naming only
// pages that exist and documenting that command's options, each rendered by man(1) where it
// is installed; and the global options only on commands where they do something.

/// The long options `--help` lists for `args` (without `--help` itself).
fn long_options(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("-").map_or(l, |rest| {
                // `-v, --verbose`
                rest.split_once(", ").map_or(l, |(_, long)| long)
            });
            let name = l.strip_prefix("--")?;
            let name: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!name.is_empty() && name != "help").then_some(name)
        })
        .collect()
}

/// `icsync-service-install(1)` and the like named in a page.
fn pages_named(page: &str) -> BTreeSet<String> {
    let text = page.replace("\\-", "-");
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("icsync-") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if text[i + name.len()..].starts_with("(1)") {
            out.insert(name);
        }
    }
    out
}

fn renders(path: &Path) -> Option<Result<(), String>> {
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(path)
        .env("MANWIDTH", "80")
        .output()
        .ok()?;
    let err = String::from_utf8_lossy(&out.stderr);
    Some(if out.status.success() && err.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {err}", out.status))
    })
}

#[test]
fn every_command_has_a_man_page_listing_its_options_and_naming_only_pages_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    stdout(&icsync(&["man", "--out-dir", out_dir.to_str().unwrap()]));
    let written: BTreeSet<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for want in [
        "icsync.1",
        "icsync-daemon.1",
        "icsync-import.1",
        "icsync-sandbox.1",
        "icsync-service.1",
        "icsync-service-install.1",
    ] {
        assert!(written.contains(want), "{want} not in {written:?}");
    }
    assert!(!written.contains("icsync-help.1"), "{written:?}");

    let mut man_missing = false;
    for file in &written {
        let path = out_dir.join(file);
        let page = std::fs::read_to_string(&path).unwrap();
        for named in pages_named(&page) {
            assert!(
                written.contains(&format!("{named}.1")),
                "{file} names {named}(1), which was not written"
            );
        }
        // The command's own options, as its --help lists them, are documented.
        let words: Vec<&str> = file.trim_end_matches(".1").split('-').skip(1).collect();
        let mut args = words.clone();
        args.push("--help");
        let help = stdout(&icsync(&args));
        for option in long_options(&help) {
            let roff = format!("\\-\\-{}", option.replace('-', "\\-"));
            assert!(page.contains(&roff), "{file} does not document --{option}");
        }
        match renders(&path) {
            Some(result) => result.unwrap_or_else(|e| panic!("man cannot render {file}: {e}")),
            None => man_missing = true,
        }
    }
    if man_missing {
        eprintln!("man is not installed: the pages were checked as text only");
    }
}

#[test]
fn global_options_are_left_out_where_they_do_nothing() {
    for verb in ["sandbox", "demo", "man", "completions"] {
        let help = stdout(&icsync(&[verb, "--help"]));
        for option in ["--config", "--api-url", "--data-dir", "--drop-dir"] {
            assert!(
                !help.contains(option),
                "{verb} --help lists {option}:\n{help}"
            );
        }
    }
    for verb in ["status", "import", "daemon", "doctor"] {
        let help = stdout(&icsync(&[verb, "--help"]));
        assert!(help.contains("--data-dir"), "{verb}:\n{help}");
    }
}
