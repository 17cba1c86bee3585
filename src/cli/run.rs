//! placeholder
use std::path::Path;
use std::process::ExitCode;
#[derive(clap::Args, Debug)]
pub struct Args {}
pub fn cmd_run(_cwd: &Path, _args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
