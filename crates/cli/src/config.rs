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
//! - Rules between flags (one needing or excluding another) are not clap's, which would not see a
//!   default: `serve` lists them as [`Rule`]s, and [`check_rules`] checks them after parsing, a
//!   file value counting as given like a flag or an environment variable.
//!
//! Types: a flag with a value takes a string, an integer, a float or a boolean (written as the
//! flag's text: `heartbeat = "15s"`, `max-topics = 8`); a repeatable flag also takes an array; a
//! switch (`--demo`) takes a boolean.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
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
#[derive(Debug)]
pub(crate) struct FileDefaults {
    path: PathBuf,
    values: Vec<FileValue>,
}

/// One key of the config file.
#[derive(Debug)]
struct FileValue {
    /// The argument id of its flag.
    id: String,
    /// As the flag's text.
    values: Vec<String>,
    /// Where the key is, for errors found after parsing.
    line: usize,
}

impl FileDefaults {
    /// Installs the values as the defaults of their flags in `cmd` (the `serve` command).
    pub(crate) fn apply(&self, mut cmd: Command) -> Command {
        for value in &self.values {
            cmd = cmd.mut_arg(&value.id, |arg| arg.default_values(&value.values));
        }
        cmd
    }

    /// The line of the key of argument `id`, if the file sets it.
    fn line_of(&self, id: &str) -> Option<usize> {
        self.values.iter().find(|v| v.id == id).map(|v| v.line)
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
    let mut defaults = FileDefaults {
        path: path.to_owned(),
        values: Vec::new(),
    };
    for (key, value) in table.get_ref() {
        let key_name: &str = key.get_ref();
        let at = key.span();
        let Some(arg) = cmd
            .get_arguments()
            .find(|arg| arg.get_long() == Some(key_name) && key_name != CONFIG_FLAG)
        else {
            let keys = known_keys(&cmd);
            let hint = nearest_key(key_name, &keys)
                .map(|near| format!(" (did you mean `{near}`?)"))
                .unwrap_or_default();
            return Err(error(
                Some(at),
                format!(
                    "unknown key `{key_name}`{hint}; the keys are the long flags of `herald serve`: {}",
                    keys.join(", ")
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
        defaults.values.push(FileValue {
            id: arg.get_id().as_str().to_owned(),
            values,
            line: line_of(text, at.start),
        });
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

/// The key nearest to an unknown `key`, as clap suggests the nearest flag: `_` read as `-` (TOML
/// habit: `data_dir` for `data-dir`), then the fewest edits, if few enough to be a typo.
fn nearest_key<'a>(key: &str, keys: &[&'a str]) -> Option<&'a str> {
    let key = key.replace('_', "-");
    keys.iter()
        .map(|&k| (edit_distance(&key, k), k))
        .filter(|&(d, k)| d <= (k.len() / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (keys are ASCII), one row at a time.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A rule between flags of `herald serve`, by argument id. clap has the same rules (`requires`,
/// `conflicts_with`, `required_if_eq`), but to clap a config file value is a default, which
/// neither breaks nor meets them; so `serve` declares its rules as these instead, and
/// [`check_rules`] applies them to flags, environment variables and the file alike.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rule {
    /// The first flag needs the second.
    Requires(&'static str, &'static str),
    /// The first flag, with the second as its value, needs the third.
    RequiresIfEq(&'static str, &'static str, &'static str),
    /// The two flags exclude each other.
    ConflictsWith(&'static str, &'static str),
}

/// Where a setting was given.
#[derive(Debug, Clone, Copy)]
enum Given {
    Flag,
    Env,
    File { line: usize },
}

/// One setting of `herald serve`, as far as a rule needs it.
struct Setting<'a> {
    arg: &'a Arg,
    given: Option<Given>,
}

impl<'a> Setting<'a> {
    fn of(id: &str, cmd: &'a Command, matches: &ArgMatches, file: Option<&FileDefaults>) -> Self {
        let arg = cmd
            .get_arguments()
            .find(|arg| arg.get_id() == id)
            .unwrap_or_else(|| panic!("a rule names `{id}`, not an argument of `herald serve`"));
        let given = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => Some(Given::Flag),
            Some(ValueSource::EnvVariable) => Some(Given::Env),
            // The file's values are the flags' defaults; a built-in default is not given.
            Some(ValueSource::DefaultValue) => file
                .and_then(|file| file.line_of(id))
                .map(|line| Given::File { line }),
            _ => None,
        };
        Self { arg, given }
    }

    fn long(&self) -> &str {
        self.arg.get_long().unwrap_or(self.arg.get_id().as_str())
    }

    /// Its name as `given` spells it: `--flag`, `$HERALD_FLAG` or the file's `flag`.
    fn name(&self, given: Given) -> String {
        match given {
            Given::Flag => format!("--{}", self.long()),
            Given::Env => match self.arg.get_env() {
                Some(env) => format!("${}", env.to_string_lossy()),
                None => format!("${}", env_name(self.long())),
            },
            Given::File { .. } => format!("`{}`", self.long()),
        }
    }

    /// Its name as it was given, with the line in the file; `with_value` as well when set.
    fn as_given(&self, with_value: Option<&str>) -> String {
        let given = self.given.expect("only a given setting breaks a rule");
        let name = self.name(given);
        match (given, with_value) {
            (Given::Flag, Some(value)) => format!("{name} {value}"),
            (Given::Env, Some(value)) => format!("{name}={value}"),
            (Given::File { line }, Some(value)) => format!("{name} = {value:?} (line {line})"),
            (Given::File { line }, None) => format!("{name} (line {line})"),
            (_, None) => name,
        }
    }

    fn is_from_file(&self) -> bool {
        matches!(self.given, Some(Given::File { .. }))
    }
}

/// Checks `rules` over the settings in `matches`, parsed by `cmd` (the `serve` command); a value
/// from the config file `file` counts as given, as a flag or an environment variable does. The
/// error names each setting as the user spelled it (`--flag`, `$HERALD_FLAG`, or the file's key
/// and line) and the file when one of them comes from it.
pub(crate) fn check_rules(
    rules: &[Rule],
    cmd: &Command,
    matches: &ArgMatches,
    file: Option<&FileDefaults>,
) -> Result<(), String> {
    let setting = |id| Setting::of(id, cmd, matches, file);
    let has_value = |id, value: &str| {
        matches
            .get_raw(id)
            .is_some_and(|mut raw| raw.any(|v| v == value))
    };
    for rule in rules {
        let broken = match *rule {
            Rule::Requires(id, needed) => unmet(setting(id), None, setting(needed)),
            Rule::RequiresIfEq(id, value, needed) if has_value(id, value) => {
                unmet(setting(id), Some(value), setting(needed))
            }
            Rule::RequiresIfEq(..) => None,
            Rule::ConflictsWith(id, other) => conflict(setting(id), setting(other)),
        };
        let Some((from_file, message)) = broken else {
            continue;
        };
        return Err(match file.filter(|_| from_file) {
            Some(file) => ConfigError {
                path: file.path.clone(),
                line: None,
                message,
            }
            .to_string(),
            None => message,
        });
    }
    Ok(())
}

/// When `arg` (with `value`) is given and `needed` is not: whether `arg` is from the file, and
/// the message, naming `needed` as `arg` was given (`--flag`, `$HERALD_FLAG` or the file's key).
fn unmet(arg: Setting<'_>, value: Option<&str>, needed: Setting<'_>) -> Option<(bool, String)> {
    let (Some(given), None) = (arg.given, needed.given) else {
        return None;
    };
    let message = format!("{} needs {}", arg.as_given(value), needed.name(given));
    Some((arg.is_from_file(), message))
}

/// When both are given: whether one is from the file, and the message.
fn conflict(a: Setting<'_>, b: Setting<'_>) -> Option<(bool, String)> {
    a.given?;
    b.given?;
    let message = format!(
        "{} cannot be used with {}: give one of them",
        a.as_given(None),
        b.as_given(None)
    );
    Some((a.is_from_file() || b.is_from_file(), message))
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
        let mut values: Vec<_> = file.values.into_iter().map(|v| (v.id, v.values)).collect();
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
        // A typo or TOML's `_` gets the nearest flag; a key like none gets no guess.
        for (typo, near) in [
            ("max-topic", "max-topics"),
            ("max_topics", "max-topics"),
            ("log-fromat", "log-format"),
            ("cors_orign", "cors-origin"),
        ] {
            let e = parse(Path::new("herald.toml"), &format!("{typo} = 1"), &command())
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("(did you mean `{near}`?)")), "{e}");
        }
        let e = parse(Path::new("herald.toml"), "bogus = 1", &command())
            .unwrap_err()
            .to_string();
        assert!(!e.contains("did you mean"), "{e}");
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

    /// `check_rules` over `herald serve <flags>` with the config file `text`.
    fn check(text: &str, flags: &[&str]) -> Result<(), String> {
        let rules = [
            Rule::ConflictsWith("addr", "cors_origin"),
            Rule::Requires("max_topics", "addr"),
            Rule::RequiresIfEq("log_format", "json", "max_topics"),
        ];
        let file = parse(Path::new("herald.toml"), text, &command()).unwrap();
        let cmd = file.apply(command());
        let matches = cmd
            .clone()
            .try_get_matches_from(std::iter::once(&"serve").chain(flags))
            .unwrap();
        check_rules(&rules, &cmd, &matches, Some(&file))
    }

    #[test]
    fn rules_see_file_values_as_given() {
        let both = "addr = \"127.0.0.1:9\"\ncors-origin = [\"https://a\"]\n";
        assert_eq!(
            check(both, &[]).unwrap_err(),
            "config file herald.toml: `addr` (line 1) cannot be used with `cors-origin` (line 2): give one of them"
        );
        assert_eq!(
            check(
                "cors-origin = [\"https://a\"]\n",
                &["--addr", "127.0.0.1:9"]
            )
            .unwrap_err(),
            "config file herald.toml: --addr cannot be used with `cors-origin` (line 1): give one of them"
        );
        assert_eq!(
            check("demo = true\nmax-topics = 3\n", &[]).unwrap_err(),
            "config file herald.toml: `max-topics` (line 2) needs `addr`"
        );
        assert_eq!(
            check("log-format = \"json\"\n", &[]).unwrap_err(),
            "config file herald.toml: `log-format` = \"json\" (line 1) needs `max-topics`"
        );
        // A file value meets a flag's requirement, as a flag would.
        assert_eq!(
            check("addr = \"127.0.0.1:9\"\n", &["--max-topics", "3"]),
            Ok(())
        );
        assert_eq!(check("log-format = \"text\"\n", &[]), Ok(()));
        assert_eq!(check("", &[]), Ok(()));
    }

    #[test]
    fn rules_broken_by_flags_alone_do_not_blame_the_file() {
        assert_eq!(
            check("demo = true\n", &["--max-topics", "3"]).unwrap_err(),
            "--max-topics needs --addr"
        );
        assert_eq!(
            check("", &["--log-format", "json"]).unwrap_err(),
            "--log-format json needs --max-topics"
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
