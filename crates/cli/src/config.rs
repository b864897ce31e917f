//! Settings of `herald serve` from three places besides its flags, with one precedence:
//! **flag > environment (`HERALD_*`) > config file (`--config`, `HERALD_CONFIG`) > default**.
//!
//! Nothing here lists the settings: they are derived from clap's argument list of `serve`, so a
//! flag added there is a config key and an environment variable at once.
//!
//! - Every long flag `--some-flag` gets the environment variable `HERALD_SOME_FLAG` (unless it
//!   names one itself).
//! - Every long flag is a key of the config file, spelled as the flag: `some-flag = ...`. Values
//!   become the flags' defaults (`Command::mut_arg`) before the command line is parsed again, so
//!   clap applies flag > environment > default as usual, and a file value is checked by the same
//!   parser as the flag, before start-up, with an error naming the key, the file and the line.
//!
//! Types: a flag with a value takes a string, an integer, a float or a boolean (written as the
//! flag's text: `heartbeat = "15s"`, `max-topics = 8`); a repeatable flag also takes an array; a
//! switch (`--demo`) takes a boolean.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::builder::BoolishValueParser;
use clap::{Arg, ArgAction, Command};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The subcommand whose flags are configurable.
pub(crate) const SUBCOMMAND: &str = "serve";
/// Prefix of the environment variables.
const ENV_PREFIX: &str = "HERALD_";
/// The flag that names the config file: not a key of the file itself.
pub(crate) const CONFIG_FLAG: &str = "config";

/// The environment variable of a long flag: `max-topics` -> `HERALD_MAX_TOPICS`.
pub(crate) fn env_name(long: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        long.to_ascii_uppercase().replace('-', "_")
    )
}

/// Gives every long flag of `cmd` its `HERALD_*` environment variable; switches read it as a
/// boolean (`1`, `true`, `yes`, `on` / `0`, `false`, `no`, `off`).
pub(crate) fn with_env_vars(cmd: Command) -> Command {
    cmd.mut_args(|arg| {
        let Some(long) = arg.get_long() else {
            return arg;
        };
        let is_switch = matches!(arg.get_action(), ArgAction::SetTrue);
        let arg = if arg.get_env().is_none() {
            let name = env_name(long);
            arg.env(name)
        } else {
            arg
        };
        if is_switch {
            arg.value_parser(BoolishValueParser::new())
        } else {
            arg
        }
    })
}

/// A config file error: names the file, the line when known, the key and the problem.
#[derive(Debug)]
pub(crate) struct ConfigError {
    path: PathBuf,
    line: Option<usize>,
    message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config file {}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The values of a config file, checked against the flags, as defaults to install.
#[derive(Debug, Default)]
pub(crate) struct FileDefaults {
    /// (argument id, values as the flag's text).
    values: Vec<(String, Vec<String>)>,
}

impl FileDefaults {
    /// Installs the values as the defaults of their flags in `cmd` (the `serve` command).
    pub(crate) fn apply(self, mut cmd: Command) -> Command {
        for (id, values) in self.values {
            cmd = cmd.mut_arg(id, |arg| arg.default_values(values));
        }
        cmd
    }
}

/// Reads and checks the config file at `path` against the flags of `cmd` (the `serve` command,
/// as built by [`with_env_vars`]).
pub(crate) fn load(path: &Path, cmd: &Command) -> Result<FileDefaults, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        path: path.to_owned(),
        line: None,
        message: format!("cannot be read: {err}"),
    })?;
    parse(path, &text, cmd)
}

fn parse(path: &Path, text: &str, cmd: &Command) -> Result<FileDefaults, ConfigError> {
    let error = |span: Option<std::ops::Range<usize>>, message: String| ConfigError {
        path: path.to_owned(),
        line: span.map(|span| line_of(text, span.start)),
        message,
    };
    let table = DeTable::parse(text)
        .map_err(|err| error(err.span(), format!("not valid TOML: {}", err.message())))?;
    let mut cmd = cmd.clone();
    cmd.build();
    let mut defaults = FileDefaults::default();
    for (key, value) in table.get_ref() {
        let key_name: &str = key.get_ref();
        let at = key.span();
        let Some(arg) = cmd
            .get_arguments()
            .find(|arg| arg.get_long() == Some(key_name) && key_name != CONFIG_FLAG)
        else {
            return Err(error(
                Some(at),
                format!(
                    "unknown key `{key_name}`; the keys are the long flags of `herald serve`: {}",
                    known_keys(&cmd).join(", ")
                ),
            ));
        };
        let values = flag_values(arg, value)
            .map_err(|problem| error(Some(at.clone()), format!("`{key_name}`: {problem}")))?;
        check_values(arg, &values).map_err(|reason| {
            let shown = match values.as_slice() {
                [one] => format!("{one:?}"),
                many => format!("{many:?}"),
            };
            error(
                Some(at.clone()),
                format!("`{key_name}` = {shown}: {reason}"),
            )
        })?;
        defaults
            .values
            .push((arg.get_id().as_str().to_owned(), values));
    }
    Ok(defaults)
}

/// The values of `arg` written in the file as `value`, as the flag's text.
fn flag_values(arg: &Arg, value: &Spanned<DeValue<'_>>) -> Result<Vec<String>, String> {
    let is_switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
    let is_list = matches!(arg.get_action(), ArgAction::Append);
    match value.get_ref() {
        DeValue::Boolean(b) if is_switch => Ok(vec![b.to_string()]),
        _ if is_switch => Err(format!(
            "expected a boolean (true or false), found {}",
            value.get_ref().type_str()
        )),
        DeValue::Array(items) if is_list => items.iter().map(scalar).collect(),
        DeValue::Array(_) => Err("takes one value, not an array".into()),
        _ => Ok(vec![scalar(value)?]),
    }
}

/// A string, number or boolean as flag text.
fn scalar(value: &Spanned<DeValue<'_>>) -> Result<String, String> {
    match value.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(|i| i.to_string())
            .map_err(|_| format!("integer {} is out of range", i.as_str())),
        DeValue::Float(f) => Ok(f.as_str().to_owned()),
        DeValue::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "expected a string or a number, found {}",
            other.type_str()
        )),
    }
}

/// Runs the flag's own value parser over `values`, as if given as `--flag=value`, so that a file
/// value is refused at start-up exactly when the same flag value would be. Switches are already
/// checked (a TOML boolean).
fn check_values(arg: &Arg, values: &[String]) -> Result<(), String> {
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return Ok(());
    }
    let probe = Command::new("herald serve").no_binary_name(true).arg(
        Arg::new("probe")
            .long(long.to_owned())
            .value_name("VALUE")
            .value_parser(arg.get_value_parser().clone())
            .action(ArgAction::Append),
    );
    let flags = values
        .iter()
        .map(|v| OsString::from(format!("--{long}={v}")));
    match probe.try_get_matches_from(flags) {
        Ok(_) => Ok(()),
        // clap's message without its `error: ` and usage tips.
        Err(err) => Err(err
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
            .map(|l| l.trim_start_matches("error: "))
            .collect::<Vec<_>>()
            .join(" ")),
    }
}

fn known_keys(cmd: &Command) -> Vec<&str> {
    cmd.get_arguments()
        .filter_map(Arg::get_long)
        .filter(|long| !matches!(*long, CONFIG_FLAG | "help" | "version"))
        .collect()
}

/// 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Prints clap's error and exits; when the bad value is that of a `HERALD_*` variable, says so
/// (clap names only the flag).
pub(crate) fn exit_naming_env(err: clap::Error, command: &Command) -> ! {
    use clap::error::{ContextKind, ContextValue};
    let _ = err.print();
    if let (Some(ContextValue::String(value)), Some(serve)) = (
        err.get(ContextKind::InvalidValue),
        command.find_subcommand(SUBCOMMAND),
    ) {
        for env in serve.get_arguments().filter_map(Arg::get_env) {
            if std::env::var_os(env).is_some_and(|v| v == value.as_str()) {
                eprintln!("note: the value comes from ${}", env.to_string_lossy());
            }
        }
    }
    std::process::exit(err.exit_code())
}

/// The config file named by `--config` (or `HERALD_CONFIG`) among already parsed `serve`
/// matches.
pub(crate) fn path_in(matches: &clap::ArgMatches) -> Option<PathBuf> {
    matches.get_one::<PathBuf>(CONFIG_FLAG).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::value_parser;

    fn command() -> Command {
        with_env_vars(
            Command::new("serve")
                .arg(
                    Arg::new("config")
                        .long("config")
                        .value_parser(value_parser!(PathBuf)),
                )
                .arg(
                    Arg::new("addr")
                        .long("addr")
                        .value_parser(value_parser!(std::net::SocketAddr)),
                )
                .arg(
                    Arg::new("max_topics")
                        .long("max-topics")
                        .value_parser(value_parser!(usize)),
                )
                .arg(Arg::new("demo").long("demo").action(ArgAction::SetTrue))
                .arg(
                    Arg::new("cors_origin")
                        .long("cors-origin")
                        .action(ArgAction::Append),
                )
                .arg(
                    Arg::new("log_format")
                        .long("log-format")
                        .value_parser(["text", "json"]),
                ),
        )
    }

    fn err(text: &str) -> String {
        parse(Path::new("herald.toml"), text, &command())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn env_names_follow_the_flags() {
        assert_eq!(env_name("max-topics"), "HERALD_MAX_TOPICS");
        let cmd = command();
        let arg = cmd.get_arguments().find(|a| a.get_id() == "cors_origin");
        assert_eq!(
            arg.unwrap().get_env().unwrap().to_str(),
            Some("HERALD_CORS_ORIGIN")
        );
    }

    #[test]
    fn values_become_flag_text() {
        let file = parse(
            Path::new("herald.toml"),
            "addr = \"127.0.0.1:9\"\nmax-topics = 0x10\ndemo = true\ncors-origin = [\"https://a\", \"https://b\"]\n",
            &command(),
        )
        .unwrap();
        let mut values = file.values;
        values.sort();
        assert_eq!(
            values,
            [
                ("addr".into(), vec!["127.0.0.1:9".to_owned()]),
                (
                    "cors_origin".into(),
                    vec!["https://a".into(), "https://b".into()]
                ),
                ("demo".into(), vec!["true".into()]),
                ("max_topics".into(), vec!["16".into()]),
            ]
        );
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_key() {
        let e = err("max-topics = 3\n\nbogus = 1\n");
        assert!(
            e.starts_with("config file herald.toml, line 3: unknown key `bogus`"),
            "{e}"
        );
        assert!(e.contains("max-topics"), "{e}");
        let e = err("config = \"other.toml\"\n");
        assert!(e.contains("unknown key `config`"), "{e}");
        let e = err("max-topics = \"many\"\n");
        assert!(
            e.starts_with("config file herald.toml, line 1: `max-topics` = \"many\""),
            "{e}"
        );
        let e = err("addr = \"nowhere\"\n");
        assert!(
            e.contains("`addr`") && e.contains("invalid socket address"),
            "{e}"
        );
        let e = err("demo = \"yes\"\n");
        assert!(e.contains("`demo`: expected a boolean"), "{e}");
        let e = err("max-topics = [1, 2]\n");
        assert!(e.contains("`max-topics`: takes one value"), "{e}");
        let e = err("addr = { a = 1 }\n");
        assert!(e.contains("`addr`: expected a string or a number"), "{e}");
        let e = err("log-format = \"xml\"\n");
        assert!(
            e.contains("`log-format`") && e.contains("text, json"),
            "{e}"
        );
        let e = err("[serve]\naddr = 1\n");
        assert!(e.contains("line 1: unknown key `serve`"), "{e}");
        let e = err("addr = \n");
        assert!(
            e.starts_with("config file herald.toml, line 1: not valid TOML"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = load(Path::new("/nonexistent/herald.toml"), &command())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config file /nonexistent/herald.toml: cannot be read"),
            "{e}"
        );
    }
}
