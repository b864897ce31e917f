//! Every `herald <command> ... --flag` written in README.md and docs/*.md is checked against the
//! real binary's `--help` for that command, so the docs cannot promise a flag that does not exist
//! (issue 13: docs/http-api.md documented `herald subscribe --token` before it existed).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

mod docs_support;
use docs_support::{docs, logical_lines};

/// The commands whose flags the docs use, as words after `herald`.
const COMMANDS: &[&str] = &[
    "serve",
    "publish",
    "subscribe",
    "token",
    "bench conns",
    "bench fanout",
    "bench",
];

/// The `--flag`s used after each `herald <command>` in `text`: a use runs to the end of its
/// line (shell continuations `\` joined), code span, or shell command (`|`, `;`, `&&`, `#`).
fn uses(text: &str) -> Vec<(String, String, usize)> {
    let logical = logical_lines(text);
    let mut found = Vec::new();
    for (n, line) in &logical {
        let (n, line) = (*n, line.as_str());
        let mut rest = line;
        while let Some(at) = rest.find("herald ") {
            let after = &rest[at + "herald ".len()..];
            rest = after;
            // Not `herald-hub ...` nor a word ending in herald.
            let before = line[..line.len() - after.len() - "herald ".len()]
                .chars()
                .last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '/') {
                continue;
            }
            let Some(command) = COMMANDS.iter().find(|c| {
                after.starts_with(*c)
                    && !after[c.len()..].starts_with(|ch: char| ch.is_alphanumeric())
            }) else {
                continue;
            };
            let end = after
                .find(['`', '|', ';', '#', ')', '"'])
                .or_else(|| after.find("&&"))
                .unwrap_or(after.len());
            for word in after[..end].split_whitespace() {
                let Some(flag) = word.strip_prefix("--") else {
                    continue;
                };
                let flag: String = flag
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if !flag.is_empty() {
                    found.push((command.to_string(), flag, n + 1));
                }
            }
        }
    }
    found
}

/// The long flags `herald <command> --help` lists.
fn flags_of(command: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(command.split(' '))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "herald {command} --help: {out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[' || c == '<')
        .filter_map(|w| w.strip_prefix("--"))
        .map(|f| f.trim_end_matches([']', '.', ':']).to_owned())
        .filter(|f| !f.is_empty())
        .collect()
}

#[test]
fn every_flag_in_the_docs_exists_in_its_command() {
    let mut known: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut missing = Vec::new();
    let mut checked = 0;
    for file in docs() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (command, flag, line) in uses(&text) {
            let flags = known
                .entry(COMMANDS.iter().find(|c| **c == command).unwrap())
                .or_insert_with(|| flags_of(&command));
            checked += 1;
            if !flags.contains(&flag) {
                let name = file.file_name().unwrap().to_string_lossy();
                missing.push(format!("{name}:{line}: herald {command} --{flag}"));
            }
        }
    }
    assert!(
        checked > 50,
        "the docs' command lines were not found ({checked})"
    );
    assert!(
        missing.is_empty(),
        "the docs use flags that `herald ... --help` does not list:\n{}",
        missing.join("\n")
    );
}

#[test]
fn uses_are_found_in_lines_code_spans_and_continuations() {
    let text = "Run `herald subscribe --token T URL` or `herald serve --x=1 --y`.\n\
                herald publish \\\n  --url U --topic t | herald token --ttl 1h\n\
                herald-hub --not-this; the herald bench conns -n 3 --secs 1 # --comment\n";
    let got: Vec<String> = uses(text)
        .into_iter()
        .map(|(c, f, l)| format!("{l} {c} {f}"))
        .collect();
    assert_eq!(
        got,
        [
            "1 subscribe token",
            "1 serve x",
            "1 serve y",
            "2 publish url",
            "2 publish topic",
            "2 token ttl",
            "4 bench conns secs",
        ]
    );
}
