//! `herald publish` (not built yet).

use std::process::ExitCode;

/// Arguments of `herald publish`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`herald publish` is not built yet")
}
