//! The `herald` command line: a clap front over the herald crates.
//!
//! Exit codes: 0 success; 1 failure (the message says why); 2 bad usage (clap's own).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod publish;
mod serve;
mod subscribe;
mod token;

/// herald: a real-time event hub over Server-Sent Events.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, long_about = None)]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Publish(args) => publish::run(args),
        Command::Subscribe(args) => subscribe::run(args),
        Command::Token(args) => token::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("herald: {err:#}");
            ExitCode::FAILURE
        }
    }
}
