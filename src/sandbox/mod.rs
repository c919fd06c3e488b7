//! placeholder (being written on another branch)
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {}
pub fn run_cli(_args: SandboxArgs) -> color_eyre::Result<()> {
    Ok(())
}
