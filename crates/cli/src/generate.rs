//! `herald completions SHELL` and `herald man [COMMAND]`: shell completions and man pages
//! generated from the same clap definition that parses the command line, so they cannot drift
//! from the flags.
//!
//! Both print to stdout; where to put the result is the packager's choice (see README.md,
//! "Install"), e.g. `herald completions bash > /usr/share/bash-completion/completions/herald`
//! and `herald man > /usr/share/man/man1/herald.1`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};

/// Arguments of `herald completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  source <(herald completions bash)
  herald completions zsh > \"${fpath[1]}/_herald\"
  herald completions fish > ~/.config/fish/completions/herald.fish")]
pub(crate) struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_name = "SHELL")]
    shell: clap_complete::Shell,
}

/// Arguments of `herald man`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  herald man | man -l -
  herald man serve > herald-serve.1")]
pub(crate) struct ManArgs {
    /// A subcommand whose page to print (`herald-serve(1)`); without it, `herald(1)`.
    #[arg(value_name = "COMMAND")]
    command: Option<String>,
}

/// Writes the completion script for `args.shell` for `command` to stdout.
pub(crate) fn completions(
    args: CompletionsArgs,
    mut command: clap::Command,
) -> anyhow::Result<ExitCode> {
    let name = command.get_name().to_owned();
    // Into a buffer first: clap_complete panics on a failed write, which a closed pipe is.
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut out);
    std::io::stdout()
        .write_all(&out)
        .context("writing the completions")?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the man page of `command` (or of one of its subcommands) to stdout, in roff.
pub(crate) fn man(args: ManArgs, command: clap::Command) -> anyhow::Result<ExitCode> {
    // Built, so that subcommands carry their full names (`herald-serve`) and inherited version.
    let mut command = command;
    command.build();
    let page = match &args.command {
        None => command,
        Some(name) => match command.find_subcommand(name) {
            Some(sub) => {
                let full = format!("{}-{}", command.get_name(), sub.get_name());
                sub.clone().name(full)
            }
            None => bail!(
                "no subcommand {name:?}; the commands are: {}",
                command
                    .get_subcommands()
                    .map(clap::Command::get_name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .context("rendering the man page")?;
    std::io::stdout()
        .write_all(&out)
        .context("writing the man page")?;
    Ok(ExitCode::SUCCESS)
}
