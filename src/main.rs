//! The `icsync` binary: the CLI surface, error reporting and logging set-up. Each subcommand's
//! work lives in the library; this file only parses and dispatches.

use clap::{Parser, Subcommand};
use color_eyre::eyre::Result;

#[derive(Debug, Parser)]
#[command(name = "icsync", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local implementation of the Instant Compliance customer API.
    Sandbox(icsync::sandbox::SandboxArgs),
}

fn main() -> Result<()> {
    color_eyre::install()?;
    let cli = Cli::parse();
    match cli.command {
        Command::Sandbox(args) => icsync::sandbox::run_cli(args),
    }
}
