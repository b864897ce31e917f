//! `herald subscribe` (not built yet).

use std::process::ExitCode;

/// Arguments of `herald subscribe`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`herald subscribe` is not built yet")
}
