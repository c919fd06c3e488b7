//! The `icsync` binary: the CLI surface, error reporting and logging set-up. Each subcommand's
//! work lives in the library; this file only parses and dispatches.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use color_eyre::eyre::{Result, WrapErr};
use icsync::cli::commands::{self, AddArgs, EditArgs, ListArgs, ResolveArgs, ShowArgs, StatusArgs};
use icsync::cli::export::{self, ExportArgs};
use icsync::cli::import::{self, ImportArgs, ImportOutcome};
use icsync::cli::keys::{self, PurgeArgs, RekeyArgs, UnlockArgs};
use icsync::cli::recover::{self, RecoverArgs};
use icsync::cli::Backend;
use icsync::config::{self, Overrides, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "icsync",
    version = icsync::ops::VERSION,
    about,
    long_about = None,
    after_help = EXIT_STATUS
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// The exit statuses, as `icsync --help` and `icsync import --help` end.
const EXIT_STATUS: &str = "Exit status: 0 when everything worked; 1 for an error (one line on \
stderr: `error: ...`, with a `hint:` where there is one); 2 when `import` refused some rows or \
files (the rest were queued; the refused rows are written to NAME.refused.csv beside each \
file).";

#[derive(Debug, Args)]
struct GlobalArgs {
    /// Config file (default: icsync.toml in the user's config dir; env ICSYNC_CONFIG).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    config: Option<PathBuf>,
    /// The API's base URL (env ICSYNC_API_URL).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "Global options"
    )]
    api_url: Option<String>,
    /// Where the store, socket and logs live (env ICSYNC_DATA_DIR).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    data_dir: Option<PathBuf>,
    /// The watched drop folder (env ICSYNC_DROP_DIR).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    drop_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DaemonArgs {
    /// Also log to stderr (the log file in the data dir is always written).
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Keep the demo's temporary dir after quitting: its store, and the data key file the
    /// store cannot be read without (both paths are printed).
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// Print the checks as a JSON array of {check, status, message, fix}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sync daemon: sends queued records and answers the CLI and the TUI.
    Daemon(DaemonArgs),
    /// The terminal front end (starts the sync engine in this process if no daemon runs).
    Tui,
    /// Try icsync with nothing set up: a sandbox, the sync engine on a temporary data dir (run
    /// in this process, not as a separate daemon), sample files dropped in, and the TUI.
    /// Quitting stops and removes everything it started.
    Demo(DemoArgs),
    /// Run a local implementation of the Instant Compliance customer API.
    Sandbox(icsync::sandbox::SandboxArgs),
    /// Queue a new customer (or the next revision of the one it matches).
    Add(AddArgs),
    /// Counts per state and whether sync is running.
    Status(StatusArgs),
    /// List records in queue order.
    List(ListArgs),
    /// One record with its payload, server customer and history.
    Show(ShowArgs),
    /// Change a record's fields: a new revision, queued.
    Edit(EditArgs),
    /// Resolve a record that needs a person: a conflict, or a record rejected by the API.
    Resolve(ResolveArgs),
    /// Queue records from files: CRM and spreadsheet exports (.csv, .tsv, .txt, .xlsx),
    /// .json, .ndjson/.jsonl. Rows refused at import are written beside each file to fix.
    #[command(after_help = EXIT_STATUS)]
    Import(ImportArgs),
    /// Write the records of one state to a file (.csv, .ndjson, .json or .xlsx) that can be
    /// fixed and imported again onto the same records.
    Export(ExportArgs),
    /// Open a locked store in the running daemon; sending starts. Asks for the passphrase of
    /// a passphrase keyring; a key file or keychain keyring is read again.
    Unlock(UnlockArgs),
    /// Stop sending and drop the store's key from the daemon's memory.
    Lock,
    /// Rewrap the store's data key: a new passphrase or keychain entry, or move between key
    /// file, passphrase and the OS keychain. No record is rewritten.
    Rekey(RekeyArgs),
    /// Erase the customer data of records synced long enough ago (retention, on demand).
    Purge(PurgeArgs),
    /// Rebuild a damaged store from what is still readable (daemon stopped): the damaged
    /// store is kept aside, and the records recovered and lost are counted.
    Recover(RecoverArgs),
    /// Run the daemon as a user service (systemd on Linux, launchd on macOS).
    #[command(subcommand)]
    Service(icsync::ops::service::ServiceCommand),
    /// Check the setup: config, API URL and key, directories, daemon, store, encryption
    /// key, clock and disk. Exit status 1 when a check fails.
    Doctor(DoctorArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, or with --out-dir write one page per command.
    Man(ManArgs),
}

#[derive(Debug, Args)]
struct ManArgs {
    /// Write icsync.1 and one icsync-<command>.1 per command (each with its options) into
    /// DIR instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Commands that read no settings: the global options do nothing there, so their help and
/// man pages leave them out (clap still accepts them, as it must for global options).
const NO_SETTINGS: [&str; 4] = ["sandbox", "demo", "man", "completions"];

/// The command line as parsed and documented: `Cli` with the global options hidden where
/// they do nothing, and no `help` subcommand (`--help` is on every command), so every
/// command the main man page lists has a page of its own.
fn cli_command() -> clap::Command {
    let mut cli = Cli::command().disable_help_subcommand(true);
    // Build first: global options are copied onto the subcommands only then.
    cli.build();
    let globals: Vec<String> = cli
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().to_string())
        .collect();
    cli.mut_subcommands(|sub| {
        if NO_SETTINGS.contains(&sub.get_name()) {
            sub.mut_args(|a| {
                let hide = globals.iter().any(|g| g == a.get_id().as_str());
                a.hide(hide)
            })
        } else {
            sub
        }
    })
}

/// `icsync man`: the main page to `out`, or every page into a folder.
fn man(args: &ManArgs, out: &mut impl std::io::Write) -> Result<ExitCode> {
    match &args.out_dir {
        None => clap_mangen::Man::new(cli_command()).render(out)?,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cli_command(), dir)
                .wrap_err_with(|| format!("cannot write the man pages into {}", dir.display()))?;
            writeln!(out, "man pages written to {}", dir.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn overrides(global: &GlobalArgs) -> Overrides {
    Overrides {
        api_url: global.api_url.clone(),
        api_key: None,
        data_dir: global.data_dir.clone(),
        drop_dir: global.drop_dir.clone(),
        key_file: None,
        default_country: None,
    }
}

fn settings(global: &GlobalArgs) -> Result<Settings> {
    config::load(global.config.as_deref(), overrides(global))
        .wrap_err("cannot load the configuration")
}

/// The install and diagnosis commands, which need no daemon; None for every other command.
fn run_ops(cli: &Cli) -> Option<Result<ExitCode>> {
    let global = &cli.global;
    let mut out = std::io::stdout().lock();
    Some(match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut cli_command(), "icsync", &mut out);
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(args) => man(args, &mut out),
        Command::Doctor(args) => tokio::runtime::Runtime::new()
            .wrap_err("cannot start the async runtime")
            .and_then(|rt| {
                let run = icsync::ops::doctor::run(
                    global.config.as_deref(),
                    overrides(global),
                    args.json,
                    &mut out,
                );
                Ok(ExitCode::from(rt.block_on(run)?))
            }),
        Command::Service(command) => settings(global).and_then(|settings| {
            // The service sees none of this shell's variables: what they chose goes in the unit.
            let env_path = |name| {
                std::env::var_os(name)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            };
            let inputs = icsync::ops::service::PlanInputs::from_process(
                global
                    .config
                    .clone()
                    .or_else(|| env_path(config::ENV_CONFIG)),
                global
                    .data_dir
                    .clone()
                    .or_else(|| env_path(config::ENV_DATA_DIR)),
                settings.data_dir.clone(),
            )?;
            let code = icsync::ops::service::run_command(command, &inputs, &mut out)?;
            Ok(ExitCode::from(code))
        }),
        _ => return None,
    })
}

fn main() -> ExitCode {
    install_error_reports();
    // A usage mistake is a user error like any other: status 1 (2 means "some input
    // refused" for import). clap colours only on a terminal and honours NO_COLOR.
    let parsed = cli_command()
        .try_get_matches()
        .and_then(|mut m| <Cli as clap::FromArgMatches>::from_arg_matches_mut(&mut m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(report) => {
            match icsync::cli::error::classify(report.chain()) {
                Some(user) => eprint!("{user}"),
                None => eprintln!("Error: {report:?}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// color-eyre reports (internal errors and panics only) without colour off a terminal or
/// with `NO_COLOR`, and without the "run with RUST_BACKTRACE" section.
fn install_error_reports() {
    let colour = icsync::cli::error::stderr_colour();
    let hooks = color_eyre::config::HookBuilder::default().display_env_section(false);
    let hooks = if colour {
        hooks
    } else {
        hooks.theme(color_eyre::config::Theme::new())
    };
    if let Err(e) = hooks.install() {
        eprintln!("icsync: cannot install the error reporter: {e}");
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Some(result) = run_ops(&cli) {
        return result;
    }
    if let Command::Demo(args) = &cli.command {
        let runtime = tokio::runtime::Runtime::new().wrap_err("cannot start the async runtime")?;
        runtime
            .block_on(icsync::cli::demo::run(args.keep))
            .wrap_err("icsync demo failed")?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Sandbox(args) = cli.command {
        return icsync::sandbox::run_cli(args).map(|()| ExitCode::SUCCESS);
    }
    let settings = settings(&cli.global)?;
    if let Command::Recover(args) = cli.command {
        let done = recover::recover(&settings, args)?;
        print!("{}", recover::summary(&done));
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Rekey(args) = cli.command {
        keys::rekey(&settings, args)?;
        return Ok(ExitCode::SUCCESS);
    }
    match &cli.command {
        Command::Daemon(args) => {
            let log = icsync::daemon::logging::init(&settings.log_dir(), args.verbose)
                .wrap_err("cannot set up logging")?;
            if args.verbose {
                eprintln!("logging to {}", log.display());
            }
        }
        // The terminal belongs to the TUI: an in-process engine logs to the file only.
        Command::Tui => {
            icsync::daemon::logging::init(&settings.log_dir(), false)
                .wrap_err("cannot set up logging")?;
        }
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .wrap_err("cannot start the async runtime")?;
    runtime.block_on(async move {
        if let Command::Daemon(_) = cli.command {
            let data_dir = settings.data_dir.clone();
            return icsync::daemon::run(settings, icsync::daemon::signals())
                .await
                .map(|()| ExitCode::SUCCESS)
                .wrap_err_with(|| {
                    format!(
                        "icsync daemon failed (its log is in {}/logs)",
                        data_dir.display()
                    )
                });
        }
        if let Command::Tui = cli.command {
            icsync::cli::interactive::run_tui(settings)
                .await
                .wrap_err("icsync tui failed")?;
            return Ok(ExitCode::SUCCESS);
        }
        if let Command::Status(StatusArgs { wait: true, .. }) = &cli.command {
            commands::wait_until_sent(&settings).await?;
        }
        let mut backend = match Backend::connect(&settings).await {
            // A full disk keeps the store shut (sled writes when it opens): status reads its
            // counts from the files instead.
            Err(e) if commands::is_full_disk(&e) => match cli.command {
                Command::Status(a) => {
                    commands::status_on_full_disk(&settings, a).await?;
                    return Ok(ExitCode::SUCCESS);
                }
                _ => return Err(e.into()),
            },
            other => other?,
        };
        match cli.command {
            Command::Sandbox(_)
            | Command::Daemon(_)
            | Command::Tui
            | Command::Demo(_)
            | Command::Rekey(_)
            | Command::Recover(_)
            | Command::Service(_)
            | Command::Doctor(_)
            | Command::Completions { .. }
            | Command::Man(_) => {
                unreachable!("handled above")
            }
            Command::Unlock(a) => keys::unlock(&mut backend, &settings, a).await?,
            Command::Lock => keys::lock(&mut backend).await?,
            Command::Purge(a) => keys::purge(&mut backend, &settings, a).await?,
            Command::Add(a) => commands::add(&mut backend, a).await?,
            Command::Status(a) => commands::status(&mut backend, &settings, a).await?,
            Command::List(a) => commands::list(&mut backend, a).await?,
            Command::Show(a) => commands::show(&mut backend, a).await?,
            Command::Edit(a) => commands::edit(&mut backend, a).await?,
            Command::Resolve(a) => commands::resolve(&mut backend, a).await?,
            Command::Export(a) => export::export(&mut backend, a).await?,
            Command::Import(a) => {
                if let ImportOutcome::SomeRejected =
                    import::import(&mut backend, &settings, a).await?
                {
                    return Ok(ExitCode::from(2));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand, its subcommands too, with its path (`icsync service install`).
    fn commands(command: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        out.push((path.clone(), command.clone()));
        for sub in command.get_subcommands() {
            commands(sub, format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_flag_and_argument_of_every_command_is_described() {
        let mut all = Vec::new();
        commands(&Cli::command(), "icsync".into(), &mut all);
        let mut missing = Vec::new();
        for (path, command) in &all {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if ["help", "version"].contains(&id) {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
        }
        assert!(missing.is_empty(), "undescribed: {missing:?}");
    }

    #[test]
    fn global_options_are_under_their_own_heading() {
        let mut cli = Cli::command();
        cli.build();
        let help = cli
            .find_subcommand_mut("import")
            .expect("import")
            .render_help()
            .to_string();
        let global = help.find("Global options:").expect(&help);
        for option in ["--config", "--api-url", "--data-dir", "--drop-dir"] {
            let at = help.find(option).expect(option);
            assert!(at > global, "{option} is not under Global options:\n{help}");
        }
        // The command's own options come first.
        assert!(
            help.find("--mapping").expect("--mapping") < global,
            "{help}"
        );
    }
}
