//! `herald token` (not built yet).

use std::process::ExitCode;

/// Arguments of `herald token`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`herald token` is not built yet")
}
