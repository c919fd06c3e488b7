//! The service definitions, rendered from the templates in `assets/service/`: a systemd user
//! unit (Linux) and a launchd agent (macOS). Pure: the caller passes the binary, its
//! arguments and the paths; nothing here reads the environment or writes a file, so the
//! rendered text is what the tests check.

use std::path::{Path, PathBuf};

const SYSTEMD_TEMPLATE: &str = include_str!("../../assets/service/icsync.service");
const LAUNCHD_TEMPLATE: &str =
    include_str!("../../assets/service/com.instantcompliance.icsync.plist");

/// The systemd unit's file name (and so its name for `systemctl`).
pub const SYSTEMD_UNIT: &str = "icsync.service";
/// The launchd agent's label; the plist is named after it.
pub const LAUNCHD_LABEL: &str = "com.instantcompliance.icsync";

/// Which service manager a definition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Systemd,
    Launchd,
}

impl Platform {
    /// launchd on macOS, systemd everywhere else (the BSDs get a unit they can read and a
    /// clear message that no systemctl was found).
    pub fn current() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::Launchd
        } else {
            Platform::Systemd
        }
    }
}

/// What the service runs and where it logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    /// The absolute path of the installed binary.
    pub exe: PathBuf,
    /// The arguments after it (see [`daemon_args`]).
    pub args: Vec<String>,
    /// The daemon's own log file (`<data_dir>/logs/icsync.log`), named in a comment.
    pub log_file: PathBuf,
    /// launchd only: where stdout and stderr go (`~/Library/Logs/icsync`).
    pub launchd_log_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error("{what} {path} is not valid UTF-8; a service definition cannot name it")]
    NotUtf8 { what: &'static str, path: PathBuf },
    #[error("{what} {path} contains a line break; a service definition cannot name it")]
    LineBreak { what: &'static str, path: PathBuf },
}

/// `[--config FILE] [--data-dir DIR] daemon --verbose`: the config and data dir only when the
/// user chose them (a flag or an `ICSYNC_*` variable), since the service does not see the
/// shell's environment. `--verbose` sends the log to stderr too, which the service manager
/// keeps (the journal, or launchd's log file).
pub fn daemon_args(
    config: Option<&Path>,
    data_dir: Option<&Path>,
) -> Result<Vec<String>, UnitError> {
    let mut args = Vec::new();
    if let Some(c) = config {
        args.push("--config".to_string());
        args.push(path_text("config file", c)?);
    }
    if let Some(d) = data_dir {
        args.push("--data-dir".to_string());
        args.push(path_text("data dir", d)?);
    }
    args.extend(["daemon".to_string(), "--verbose".to_string()]);
    Ok(args)
}

fn path_text(what: &'static str, path: &Path) -> Result<String, UnitError> {
    let text = path.to_str().ok_or_else(|| UnitError::NotUtf8 {
        what,
        path: path.to_path_buf(),
    })?;
    if text.contains(['\n', '\r']) {
        return Err(UnitError::LineBreak {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(text.to_string())
}

pub fn render(platform: Platform, spec: &UnitSpec) -> Result<String, UnitError> {
    match platform {
        Platform::Systemd => render_systemd(spec),
        Platform::Launchd => render_launchd(spec),
    }
}

pub fn render_systemd(spec: &UnitSpec) -> Result<String, UnitError> {
    let exe = path_text("binary", &spec.exe)?;
    let log_file = path_text("log file", &spec.log_file)?;
    let exec_start = std::iter::once(exe.as_str())
        .chain(spec.args.iter().map(String::as_str))
        .map(systemd_quote)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(SYSTEMD_TEMPLATE
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        .replace("{{LOG_FILE}}", &log_file)
        .replace("{{EXEC_START}}", &exec_start))
}

pub fn render_launchd(spec: &UnitSpec) -> Result<String, UnitError> {
    let exe = path_text("binary", &spec.exe)?;
    let log_file = path_text("log file", &spec.log_file)?;
    let log_dir = path_text("log dir", &spec.launchd_log_dir)?;
    let program_arguments = std::iter::once(exe.as_str())
        .chain(spec.args.iter().map(String::as_str))
        .map(|a| format!("\t\t<string>{}</string>", xml_escape(a)))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(LAUNCHD_TEMPLATE
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        .replace("{{LABEL}}", LAUNCHD_LABEL)
        // The comment names the paths too: `--` may not appear inside an XML comment.
        .replace(
            "{{LOG_FILE}}",
            &xml_escape(&log_file).replace("--", "-&#45;"),
        )
        .replace("{{LOG_DIR}}", &xml_escape(&log_dir))
        .replace("{{PROGRAM_ARGUMENTS}}", &program_arguments))
}

/// One ExecStart word: `%` and `$` are doubled (systemd would expand specifiers and
/// variables), and a word with spaces, quotes or backslashes is double-quoted with C escapes.
fn systemd_quote(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    let needs_quotes = escaped.is_empty()
        || escaped
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'));
    if !needs_quotes {
        return escaped;
    }
    let inner = escaped.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{inner}\"")
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(exe: &str, config: Option<&str>) -> UnitSpec {
        UnitSpec {
            exe: exe.into(),
            args: daemon_args(config.map(Path::new), None).unwrap(),
            log_file: "/home/u/.local/share/icsync/logs/icsync.log".into(),
            launchd_log_dir: "/Users/u/Library/Logs/icsync".into(),
        }
    }

    fn line<'a>(text: &'a str, key: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line in:\n{text}"))
    }

    #[test]
    fn systemd_unit_runs_the_installed_binary_with_the_config_and_restarts_with_backoff() {
        let unit =
            render_systemd(&spec("/home/u/.cargo/bin/icsync", Some("/etc/ic.toml"))).unwrap();
        assert_eq!(
            line(&unit, "ExecStart="),
            "ExecStart=/home/u/.cargo/bin/icsync --config /etc/ic.toml daemon --verbose"
        );
        assert_eq!(line(&unit, "Restart="), "Restart=on-failure");
        assert_eq!(line(&unit, "RestartSec="), "RestartSec=5");
        assert_eq!(line(&unit, "StartLimitBurst="), "StartLimitBurst=5");
        assert!(line(&unit, "StartLimitIntervalSec=").len() > "StartLimitIntervalSec=".len());
        assert_eq!(line(&unit, "StandardError="), "StandardError=journal");
        assert_eq!(line(&unit, "WantedBy="), "WantedBy=default.target");
        assert!(unit.contains("/home/u/.local/share/icsync/logs/icsync.log"));
        assert!(!unit.contains("{{"), "a placeholder was left:\n{unit}");
        // The start limit belongs to [Unit] (systemd ignores it in [Service]).
        let unit_section = &unit[unit.find("[Unit]").unwrap()..unit.find("[Service]").unwrap()];
        assert!(unit_section.contains("StartLimitBurst="));
    }

    #[test]
    fn systemd_unit_without_a_config_passes_no_config_flag() {
        let unit = render_systemd(&spec("/usr/bin/icsync", None)).unwrap();
        assert_eq!(
            line(&unit, "ExecStart="),
            "ExecStart=/usr/bin/icsync daemon --verbose"
        );
    }

    #[test]
    fn systemd_words_with_spaces_percent_and_dollar_are_quoted_and_escaped() {
        assert_eq!(systemd_quote("/a b/icsync"), "\"/a b/icsync\"");
        assert_eq!(systemd_quote("/x/100%/c"), "/x/100%%/c");
        assert_eq!(systemd_quote("/x/$HOME"), "/x/$$HOME");
        assert_eq!(systemd_quote("/x/a\"b"), "\"/x/a\\\"b\"");
        let unit = render_systemd(&spec("/opt/my apps/icsync", Some("/c/my cfg.toml"))).unwrap();
        assert_eq!(
            line(&unit, "ExecStart="),
            "ExecStart=\"/opt/my apps/icsync\" --config \"/c/my cfg.toml\" daemon --verbose"
        );
    }

    #[test]
    fn launchd_agent_lists_each_argument_keeps_alive_and_logs_under_library_logs() {
        let plist = render_launchd(&spec(
            "/Users/u/.cargo/bin/icsync",
            Some("/Users/u/a&b.toml"),
        ))
        .unwrap();
        assert!(plist.contains("<string>com.instantcompliance.icsync</string>"));
        let args: Vec<&str> = plist
            .lines()
            .skip_while(|l| !l.contains("<array>"))
            .skip(1)
            .take_while(|l| !l.contains("</array>"))
            .map(str::trim)
            .collect();
        assert_eq!(
            args,
            [
                "<string>/Users/u/.cargo/bin/icsync</string>",
                "<string>--config</string>",
                "<string>/Users/u/a&amp;b.toml</string>",
                "<string>daemon</string>",
                "<string>--verbose</string>",
            ]
        );
        assert!(plist.contains("<key>KeepAlive</key>"));
        assert!(plist.contains("<key>ThrottleInterval</key>"));
        assert!(plist.contains("<string>/Users/u/Library/Logs/icsync/icsync.err.log</string>"));
        assert!(!plist.contains("{{"), "a placeholder was left:\n{plist}");
        // Well-formed enough for plutil: every <dict>, <array> and <plist> is closed.
        for tag in ["dict", "array", "plist"] {
            assert_eq!(
                plist.matches(&format!("<{tag}>")).count()
                    + plist.matches(&format!("<{tag} ")).count(),
                plist.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
    }

    #[test]
    fn a_path_with_a_line_break_is_refused() {
        let e = daemon_args(Some(Path::new("/a\nExecStartPre=/bin/evil")), None).unwrap_err();
        assert!(matches!(e, UnitError::LineBreak { .. }), "{e}");
    }
}
