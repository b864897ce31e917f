//! Shared by `docs_flags` and `docs_commands`: the files whose command lines are checked, and
//! how their lines are read (shell continuations joined), so both tests see the same commands.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part

use std::path::{Path, PathBuf};

/// README.md, then docs/*.md in name order.
pub fn docs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    let mut md: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    md.sort();
    files.extend(md);
    files
}

/// The logical lines of `text` (shell continuations `\` joined), each with the 0-based number of
/// its first line.
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut continued = false;
    for (n, line) in text.lines().enumerate() {
        let (body, continues) = match line.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (line, false),
        };
        match logical.last_mut() {
            Some((_, joined)) if continued => {
                joined.push(' ');
                joined.push_str(body);
            }
            _ => logical.push((n, body.to_owned())),
        }
        continued = continues;
    }
    logical
}

/// One command of a ```` ```sh ```` block: its 1-based line in the file and its text (a logical
/// line, with comments and blank lines left out).
#[derive(Debug, Clone)]
pub struct ShellCommand {
    pub line: usize,
    pub text: String,
}

/// The commands of every ```` ```sh ```` block of `text`, one inner `Vec` per block, in order.
pub fn shell_blocks(text: &str) -> Vec<Vec<ShellCommand>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<ShellCommand>> = None;
    let mut body = String::new();
    let mut first = 0;
    for (n, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match (&mut current, fence) {
            (None, true) if line.trim() == "```sh" => {
                current = Some(Vec::new());
                body.clear();
                first = n + 1;
            }
            (Some(_), true) => {
                let mut block = current.take().unwrap();
                for (k, text) in logical_lines(&body) {
                    let text = text.trim();
                    if !text.is_empty() && !text.starts_with('#') {
                        block.push(ShellCommand {
                            line: first + k + 1,
                            text: text.to_owned(),
                        });
                    }
                }
                blocks.push(block);
            }
            (Some(_), false) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}
