//! `herald serve` (not built yet).

use std::process::ExitCode;

/// Arguments of `herald serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`herald serve` is not built yet")
}
