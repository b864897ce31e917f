//! The `herald` command line: a clap front over the herald crates.
//!
//! Exit codes: 0 success; 1 failure (the message says why); 2 bad usage: a bad flag, environment
//! variable or config file value (the message names it).

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

mod bench;
mod config;
mod duration;
mod generate;
mod health;
mod publish;
mod range;
mod serve;
mod subscribe;
mod token;

/// herald: a real-time event hub over Server-Sent Events.
#[derive(Debug, Parser)]
#[command(name = "herald", version = env!("HERALD_VERSION"), about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub: topics, publish over HTTP, durable log, lossless resume.
    Serve(serve::Args),
    /// Publish one event to a hub.
    Publish(publish::Args),
    /// Print the events of an SSE stream as they arrive (curl for SSE), reconnecting as a browser does.
    Subscribe(subscribe::Args),
    /// Mint a JWT for a hub.
    Token(token::Args),
    /// Load-test an SSE server.
    Bench(bench::Args),
    /// Ask a hub's /healthz; exit 0 when healthy (for container and supervisor probes).
    Health(health::Args),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(generate::CompletionsArgs),
    /// Print the man page, herald(1), or a subcommand's.
    Man(generate::ManArgs),
}

/// The full command definition: the derived one with `serve`'s `HERALD_*` environment variables,
/// as parsed, completed and documented.
fn command() -> clap::Command {
    Cli::command().mut_subcommand(config::SUBCOMMAND, config::with_env_vars)
}

/// Exit code of bad usage, as clap's.
pub(crate) const USAGE_ERROR: u8 = 2;

/// Parses the command line with `serve`'s `HERALD_*` environment variables and, when `--config`
/// (or `HERALD_CONFIG`) names one, its config file (see [`config`]): the first parse finds the
/// file, whose values then become defaults for the second. Then `serve`'s rules between flags are
/// checked over all three (see [`serve::RULES`]).
fn parse_cli() -> Result<Cli, ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut command = command();
    let mut matches = command
        .clone()
        .try_get_matches_from(&args)
        .unwrap_or_else(|err| config::exit_naming_env(err, &command));
    let path = match matches.subcommand() {
        Some((config::SUBCOMMAND, serve)) => config::path_in(serve),
        _ => None,
    };
    let mut file = None;
    if let Some(path) = path {
        let serve = command
            .find_subcommand(config::SUBCOMMAND)
            .expect("serve is a subcommand");
        let defaults = config::load(&path, serve).map_err(|err| {
            eprintln!("herald: {err}");
            ExitCode::from(USAGE_ERROR)
        })?;
        command = command.mut_subcommand(config::SUBCOMMAND, |serve| defaults.apply(serve));
        matches = command
            .clone()
            .try_get_matches_from(&args)
            .unwrap_or_else(|err| config::exit_naming_env(err, &command));
        file = Some(defaults);
    }
    if let Some((config::SUBCOMMAND, serve_matches)) = matches.subcommand() {
        let serve = command
            .find_subcommand(config::SUBCOMMAND)
            .expect("serve is a subcommand");
        config::check_rules(serve::RULES, serve, serve_matches, file.as_ref()).map_err(
            |message| {
                eprintln!("herald: {message}");
                ExitCode::from(USAGE_ERROR)
            },
        )?;
    }
    Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit()))
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Publish(args) => publish::run(args),
        Command::Subscribe(args) => subscribe::run(args),
        Command::Token(args) => token::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Health(args) => health::run(args),
        Command::Completions(args) => generate::completions(args, command()),
        Command::Man(args) => generate::man(args, command()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // Whatever URL an error quotes (a --redis-url with its password, a subscribe URL
            // with an access_token, an HTTP client's "error sending request for url (...)"),
            // its credentials are not printed.
            eprintln!("herald: {}", herald_wire::redact_text(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}
