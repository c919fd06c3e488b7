//! `icsync man --out-dir DIR` as `just install` runs it: a page per command, each naming
//! only pages that exist and documenting that command's options, each rendered by man(1)
//! where it is installed; and the global options only on commands where they do something.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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
