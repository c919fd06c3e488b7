//! `icsync service install | uninstall | status`: writes the rendered unit (see `unit`) where
//! the user's service manager looks for it, and drives `systemctl --user` or `launchctl`.
//! Where the manager's tool is missing (a container, a minimal VM) the unit is still written
//! and the exact commands to run elsewhere are printed. It owns nothing but the unit file;
//! the daemon it starts is the ordinary `icsync daemon`.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::unit::{self, Platform, UnitError, UnitSpec, LAUNCHD_LABEL, SYSTEMD_UNIT};

#[derive(Debug, thiserror::Error)]
pub enum ServiceUnitError {
    #[error(transparent)]
    Unit(#[from] UnitError),
    #[error("no home directory found to place the service definition (set HOME)")]
    NoHome,
    #[error("cannot find the icsync binary's own path: {0}")]
    CurrentExe(std::io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{command}` failed: {detail}\nthe unit is written to {unit}; fix the cause and run:\n{todo}"
    )]
    Manager {
        command: String,
        detail: String,
        unit: PathBuf,
        todo: String,
    },
}

/// Where the definition goes and what it is.
#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub platform: Platform,
    pub path: PathBuf,
    pub text: String,
}

/// The inputs a plan needs, all from the caller (main reads them from the settings and the
/// process), so that tests can plan for any home directory.
#[derive(Debug, Clone)]
pub struct PlanInputs {
    pub platform: Platform,
    pub exe: PathBuf,
    /// The config file the user chose (`--config` or `ICSYNC_CONFIG`), if any.
    pub config: Option<PathBuf>,
    /// The data dir the user chose (`--data-dir` or `ICSYNC_DATA_DIR`), if any.
    pub data_dir_override: Option<PathBuf>,
    /// The data dir in effect, for the log file named in the unit.
    pub data_dir: PathBuf,
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME` or `~/.config` (systemd's user unit directory is under it).
    pub config_home: PathBuf,
}

impl PlanInputs {
    /// The running binary and the user's home from the process environment.
    pub fn from_process(
        config: Option<PathBuf>,
        data_dir_override: Option<PathBuf>,
        data_dir: PathBuf,
    ) -> Result<PlanInputs, ServiceUnitError> {
        let dirs = directories::BaseDirs::new().ok_or(ServiceUnitError::NoHome)?;
        let exe = std::env::current_exe().map_err(ServiceUnitError::CurrentExe)?;
        // The unit must name a path that still works from another directory.
        let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
        Ok(PlanInputs {
            platform: Platform::current(),
            exe: std::fs::canonicalize(&exe).unwrap_or(exe),
            config: config.map(absolute),
            data_dir_override: data_dir_override.map(absolute),
            data_dir: absolute(data_dir),
            home: dirs.home_dir().to_path_buf(),
            config_home: dirs.config_dir().to_path_buf(),
        })
    }
}

pub fn plan(inputs: &PlanInputs) -> Result<ServicePlan, ServiceUnitError> {
    let launchd_log_dir = inputs.home.join("Library/Logs/icsync");
    let spec = UnitSpec {
        exe: inputs.exe.clone(),
        args: unit::daemon_args(
            inputs.config.as_deref(),
            inputs.data_dir_override.as_deref(),
        )?,
        log_file: inputs.data_dir.join("logs").join("icsync.log"),
        launchd_log_dir,
    };
    let path = match inputs.platform {
        Platform::Systemd => inputs.config_home.join("systemd/user").join(SYSTEMD_UNIT),
        Platform::Launchd => inputs
            .home
            .join("Library/LaunchAgents")
            .join(format!("{LAUNCHD_LABEL}.plist")),
    };
    Ok(ServicePlan {
        platform: inputs.platform,
        text: unit::render(inputs.platform, &spec)?,
        path,
    })
}

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// Written and started by the service manager.
    Started,
    /// Written; the service manager's tool is not on this machine.
    WrittenOnly { todo: Vec<String> },
}

/// The commands that activate the written unit.
fn activate_commands(platform: Platform) -> Vec<Vec<String>> {
    let words = |s: &[&str]| s.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    match platform {
        Platform::Systemd => vec![
            words(&["systemctl", "--user", "daemon-reload"]),
            words(&["systemctl", "--user", "enable", "--now", SYSTEMD_UNIT]),
        ],
        Platform::Launchd => {
            let domain = format!("gui/{}", current_uid());
            vec![
                // A loaded older version must go first; bootstrap refuses a loaded label.
                vec![
                    "launchctl".into(),
                    "bootout".into(),
                    format!("{domain}/{LAUNCHD_LABEL}"),
                ],
                vec![
                    "launchctl".into(),
                    "bootstrap".into(),
                    domain,
                    "PLIST".into(),
                ],
            ]
        }
    }
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn manager_tool(platform: Platform) -> &'static str {
    match platform {
        Platform::Systemd => "systemctl",
        Platform::Launchd => "launchctl",
    }
}

/// Looks `program` up on PATH, as the shell would.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn shell_line(words: &[String], plist: &Path) -> String {
    words
        .iter()
        .map(|w| {
            let w = if w == "PLIST" {
                plist.display().to_string()
            } else {
                w.clone()
            };
            if w.contains(' ') {
                format!("'{w}'")
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes the unit (atomically, mode 0644 like any unit file: it holds paths, no secret) and
/// starts it when the service manager's tool is present.
pub fn install(plan: &ServicePlan) -> Result<Installed, ServiceUnitError> {
    write_atomically(&plan.path, &plan.text)?;
    if plan.platform == Platform::Launchd {
        let logs = plan
            .path
            .parent()
            .and_then(Path::parent)
            .map(|lib| lib.join("Logs/icsync"));
        if let Some(logs) = logs {
            std::fs::create_dir_all(&logs).map_err(|source| ServiceUnitError::Write {
                path: logs.clone(),
                source,
            })?;
        }
    }
    let commands = activate_commands(plan.platform);
    let todo: Vec<String> = commands.iter().map(|c| shell_line(c, &plan.path)).collect();
    if find_on_path(manager_tool(plan.platform)).is_none() {
        return Ok(Installed::WrittenOnly { todo });
    }
    for (i, words) in commands.iter().enumerate() {
        let args: Vec<String> = words[1..]
            .iter()
            .map(|w| {
                if w == "PLIST" {
                    plan.path.display().to_string()
                } else {
                    w.clone()
                }
            })
            .collect();
        let out = run(&words[0], &args);
        // `launchctl bootout` of an agent that is not loaded fails; that is the usual case.
        let may_fail = plan.platform == Platform::Launchd && i == 0;
        match out {
            Ok(o) if o.success || may_fail => {}
            Ok(o) => {
                return Err(ServiceUnitError::Manager {
                    command: todo[i].clone(),
                    detail: o.detail(),
                    unit: plan.path.clone(),
                    todo: todo.join("\n"),
                })
            }
            Err(e) if may_fail => drop(e),
            Err(e) => {
                return Err(ServiceUnitError::Manager {
                    command: todo[i].clone(),
                    detail: e.to_string(),
                    unit: plan.path.clone(),
                    todo: todo.join("\n"),
                })
            }
        }
    }
    Ok(Installed::Started)
}

/// What `uninstall` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uninstalled {
    Removed,
    NothingInstalled,
}

/// Stops and disables the service (when the manager's tool is present) and removes the unit.
/// The data dir, config and key files are left alone (docs/install.md says how to remove them).
pub fn uninstall(plan: &ServicePlan) -> Result<Uninstalled, ServiceUnitError> {
    if !plan.path.exists() {
        return Ok(Uninstalled::NothingInstalled);
    }
    let tool = manager_tool(plan.platform);
    let have_tool = find_on_path(tool).is_some();
    // A service that is not loaded makes these fail; removing the file is what matters.
    if have_tool {
        match plan.platform {
            Platform::Systemd => {
                let _ = run(tool, &["--user", "disable", "--now", SYSTEMD_UNIT]);
            }
            Platform::Launchd => {
                let target = format!("gui/{}/{LAUNCHD_LABEL}", current_uid());
                let _ = run(tool, &["bootout", target.as_str()]);
            }
        }
    }
    std::fs::remove_file(&plan.path).map_err(|source| ServiceUnitError::Remove {
        path: plan.path.clone(),
        source,
    })?;
    if have_tool && plan.platform == Platform::Systemd {
        let _ = run(tool, &["--user", "daemon-reload"]);
    }
    Ok(Uninstalled::Removed)
}

/// `service status`: the unit file, whether it matches what `install` would write now, and
/// what the manager says.
#[derive(Debug, Clone)]
pub struct ServiceStatus {
    pub path: PathBuf,
    pub installed: bool,
    /// False when the file differs from a fresh render (the binary moved, another config).
    pub up_to_date: bool,
    /// The manager's own words (`active`, `enabled`, ...), or why it was not asked.
    pub manager: Vec<(String, String)>,
}

pub fn status(plan: &ServicePlan) -> ServiceStatus {
    let current = std::fs::read_to_string(&plan.path).ok();
    let installed = current.is_some();
    let up_to_date = current.as_deref() == Some(plan.text.as_str());
    let tool = manager_tool(plan.platform);
    let mut manager = Vec::new();
    if find_on_path(tool).is_none() {
        manager.push((
            tool.to_string(),
            "not found on this machine (no service manager to ask)".to_string(),
        ));
    } else {
        let ask = |args: &[&str]| match run(tool, args) {
            Ok(o) => {
                let text = o.stdout.trim();
                if text.is_empty() {
                    o.detail()
                } else {
                    text.lines().next().unwrap_or_default().to_string()
                }
            }
            Err(e) => e.to_string(),
        };
        match plan.platform {
            Platform::Systemd => {
                manager.push((
                    "enabled".into(),
                    ask(&["--user", "is-enabled", SYSTEMD_UNIT]),
                ));
                manager.push(("active".into(), ask(&["--user", "is-active", SYSTEMD_UNIT])));
            }
            Platform::Launchd => {
                let target = format!("gui/{}/{LAUNCHD_LABEL}", current_uid());
                let loaded = run(tool, &["print", target.as_str()]).is_ok_and(|o| o.success);
                manager.push((
                    "loaded".into(),
                    if loaded { "yes" } else { "no" }.to_string(),
                ));
            }
        }
    }
    ServiceStatus {
        path: plan.path.clone(),
        installed,
        up_to_date,
        manager,
    }
}

struct RunOutput {
    success: bool,
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

impl RunOutput {
    fn detail(&self) -> String {
        let stderr = self.stderr.trim();
        match (stderr.is_empty(), self.code) {
            (false, _) => stderr.to_string(),
            (true, Some(c)) => format!("exit status {c}"),
            (true, None) => "killed by a signal".to_string(),
        }
    }
}

fn run(program: &str, args: &[impl AsRef<OsStr>]) -> std::io::Result<RunOutput> {
    let out = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()?;
    Ok(RunOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    })
}

fn write_atomically(path: &Path, text: &str) -> Result<(), ServiceUnitError> {
    let err = |source| ServiceUnitError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

/// `icsync service ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ServiceCommand {
    /// Write the user service (systemd user unit or launchd agent) for this binary and
    /// config, and start it at once and at every login.
    Install {
        /// Print the unit instead of installing it.
        #[arg(long)]
        print: bool,
    },
    /// Stop the service and remove its unit (data, config and keys stay).
    Uninstall,
    /// Whether the unit is installed and current, and what the service manager says.
    Status,
}

/// Runs a `service` subcommand, printing to `out`. Returns the exit status.
pub fn run_command(
    command: &ServiceCommand,
    inputs: &PlanInputs,
    out: &mut impl Write,
) -> Result<u8, ServiceUnitError> {
    let plan = plan(inputs)?;
    let say = |out: &mut dyn Write, text: String| {
        let _ = writeln!(out, "{text}");
    };
    match command {
        ServiceCommand::Install { print: true } => {
            let _ = out.write_all(plan.text.as_bytes());
            Ok(0)
        }
        ServiceCommand::Install { print: false } => {
            if std::env::var_os(crate::config::ENV_API_KEY).is_some() {
                say(out, format!(
                    "note: the service does not see this shell's {}; put the key in a file and set api_key_file in the config",
                    crate::config::ENV_API_KEY
                ));
            }
            match install(&plan)? {
                Installed::Started => {
                    say(
                        out,
                        format!("installed {} and started it", plan.path.display()),
                    );
                    say(
                        out,
                        "it starts again at every login; `icsync service status` shows its state"
                            .into(),
                    );
                }
                Installed::WrittenOnly { todo } => {
                    say(out, format!("wrote {}", plan.path.display()));
                    say(out, format!(
                        "{} was not found (no service manager here, e.g. a container), so nothing was started; where it exists, run:",
                        manager_tool(plan.platform)
                    ));
                    for line in todo {
                        say(out, format!("  {line}"));
                    }
                }
            }
            Ok(0)
        }
        ServiceCommand::Uninstall => {
            match uninstall(&plan)? {
                Uninstalled::Removed => say(
                    out,
                    format!(
                        "stopped the service and removed {} (data, config and key files are kept)",
                        plan.path.display()
                    ),
                ),
                Uninstalled::NothingInstalled => say(
                    out,
                    format!("no service installed at {}", plan.path.display()),
                ),
            }
            Ok(0)
        }
        ServiceCommand::Status => {
            let st = status(&plan);
            let state = match (st.installed, st.up_to_date) {
                (false, _) => "not installed (run `icsync service install`)",
                (true, true) => "installed, up to date",
                (true, false) => {
                    "installed, but differs from what this icsync would write (binary moved or \
                     another config?): run `icsync service install` again"
                }
            };
            say(out, format!("unit:     {} ({state})", st.path.display()));
            for (what, said) in &st.manager {
                say(out, format!("{:<9} {said}", format!("{what}:")));
            }
            Ok(if st.installed { 0 } else { 3 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(platform: Platform) -> PlanInputs {
        PlanInputs {
            platform,
            exe: "/home/u/.cargo/bin/icsync".into(),
            config: Some("/home/u/ic.toml".into()),
            data_dir_override: None,
            data_dir: "/home/u/.local/share/icsync".into(),
            home: "/home/u".into(),
            config_home: "/home/u/.config".into(),
        }
    }

    #[test]
    fn units_go_where_each_service_manager_looks_for_user_services() {
        let systemd = plan(&inputs(Platform::Systemd)).unwrap();
        assert_eq!(
            systemd.path,
            PathBuf::from("/home/u/.config/systemd/user/icsync.service")
        );
        assert!(systemd.text.contains("--config /home/u/ic.toml daemon"));
        let launchd = plan(&inputs(Platform::Launchd)).unwrap();
        assert_eq!(
            launchd.path,
            PathBuf::from("/home/u/Library/LaunchAgents/com.instantcompliance.icsync.plist")
        );
        assert!(launchd
            .text
            .contains("/home/u/Library/Logs/icsync/icsync.err.log"));
    }

    #[test]
    fn activation_commands_are_the_documented_ones() {
        let lines: Vec<String> = activate_commands(Platform::Systemd)
            .iter()
            .map(|c| shell_line(c, Path::new("/x")))
            .collect();
        assert_eq!(
            lines,
            [
                "systemctl --user daemon-reload",
                "systemctl --user enable --now icsync.service"
            ]
        );
        let launchd: Vec<String> = activate_commands(Platform::Launchd)
            .iter()
            .map(|c| shell_line(c, Path::new("/Users/u/Library/LaunchAgents/a.plist")))
            .collect();
        assert!(launchd[1].starts_with("launchctl bootstrap gui/"));
        assert!(launchd[1].ends_with(" /Users/u/Library/LaunchAgents/a.plist"));
    }
}
