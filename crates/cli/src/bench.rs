//! `herald bench` (not built yet).

use std::process::ExitCode;

/// Arguments of `herald bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`herald bench` is not built yet")
}
