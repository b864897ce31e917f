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
#[command(name = "herald", version = env!("HERALD_VERSION"), about, long_about = None,
          after_help = EXAMPLES)]
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

/// The first hour with herald, at the end of `herald --help`: a hub, a subscriber, a publish, a
/// token, each a line that runs as written (on one machine, in two terminals).
const EXAMPLES: &str = "\
Examples:
  # A hub on http://127.0.0.1:3000 (demo page at /, dashboard at /dashboard):
  herald serve --demo
  # In another terminal, print what arrives on a topic, then publish to it:
  herald subscribe 'http://127.0.0.1:3000/events?topic=chat/demo'
  herald publish --url http://127.0.0.1:3000 --topic chat/demo --data hello
  # A hub with tokens, and a token that may publish and read everything under chat/:
  export HERALD_JWT_SECRET=\"$(head -c 32 /dev/urandom | base64)\"
  herald serve
  herald token --publish 'chat/**' --subscribe 'chat/**' --ttl 1h
  # Every flag of a command, with examples:
  herald serve --help";

/// Examples appended to each subcommand's help (after the notes its own `after_help` gives),
/// kept here with [`EXAMPLES`] so that the commands shown agree with each other.
const SUBCOMMAND_EXAMPLES: &[(&str, &str)] = &[
    (
        "serve",
        "\
Examples:
  herald serve --demo                           # http://127.0.0.1:3000, demo page and dashboard
  herald serve --store memory --addr 127.0.0.1:0 # nothing kept, any free port
  HERALD_JWT_SECRET=\"$(head -c 32 /dev/urandom | base64)\" herald serve --addr 0.0.0.0:3000
  herald serve --config herald.toml            # keys are the long flags: heartbeat = \"15s\"
  herald serve --tls-cert cert.pem --tls-key key.pem --addr 127.0.0.1:3443",
    ),
    (
        "publish",
        "\
Examples:
  herald publish --url http://127.0.0.1:3000 --topic chat/demo --data hello
  echo '{\"n\":1}' | herald publish --url http://127.0.0.1:3000 --topic jobs/42 --event progress
  HERALD_TOKEN=\"$(herald token --publish 'chat/**')\" herald publish --url http://127.0.0.1:3000 \\
      --topic chat/demo --private --data 'for token holders only'",
    ),
    (
        "subscribe",
        "\
Examples:
  herald subscribe 'http://127.0.0.1:3000/events?topic=chat/demo'
  herald subscribe 'http://127.0.0.1:3000/events?topic=chat/**&topic=demo/time' --json --count 5
  HERALD_TOKEN=\"$(herald token --subscribe 'chat/**')\" herald subscribe \\
      'http://127.0.0.1:3000/events?topic=chat/**'
  herald subscribe -H 'Authorization: Bearer eyJ...' 'http://127.0.0.1:3000/events?topic=chat/demo'",
    ),
    (
        "token",
        "\
Examples:
  export HERALD_JWT_SECRET=\"$(head -c 32 /dev/urandom | base64)\"   # the hub's secret too
  herald token --publish 'chat/**' --subscribe 'chat/**' --ttl 1h --subject alice
  herald token --private-key key.pem --subscribe 'orders/*'     # for a hub with --jwt-public-key
Patterns: '*' is one segment ('chat/*' covers chat/lobby, not chat/a/b); '**' is one or more and \
only last ('chat/**' covers both); '**' alone covers every topic.",
    ),
    (
        "bench",
        "\
Examples:
  herald bench conns --url 'http://127.0.0.1:3000/events?topic=idle' -n 1000 --secs 5
  herald bench fanout --sub-url 'http://127.0.0.1:3000/events?topic=bench' \\
      --pub-url http://127.0.0.1:3000/publish --subs 100 --rate 1000 --secs 5
  herald bench fanout ... -H \"Authorization: Bearer $(herald token --publish bench --subscribe bench)\"",
    ),
];

/// The full command definition, as parsed, completed and documented (`--help`, `herald man`):
/// the derived one with `serve`'s `HERALD_*` environment variables and every subcommand's
/// examples.
fn command() -> clap::Command {
    let mut command = Cli::command().mut_subcommand(config::SUBCOMMAND, config::with_env_vars);
    for &(name, examples) in SUBCOMMAND_EXAMPLES {
        command = command.mut_subcommand(name, |sub| {
            let text = match sub.get_after_help() {
                Some(notes) => format!("{notes}\n\n{examples}"),
                None => examples.to_owned(),
            };
            sub.after_help(text)
        });
    }
    command
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
