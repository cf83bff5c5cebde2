//! Settings, read one way everywhere. Each variable is declared once, as a clap argument with `env` in the crate
//! that uses it, and composed (`#[command(flatten)]`) into each binary's settings: the runner's `orders --help`
//! lists them all with their defaults, and each Lambda parses the part it needs the same way.
//!
//! One rule for every variable: set to an empty or blank value, it counts as unset (its default applies, or it is
//! missing). A missing or malformed value stops start-up with a message naming the variable; every argument's
//! value name is its variable's name, so clap's own messages name it too.

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{Arg, Args, Command, FromArgMatches, Parser};

/// `T` from the process's arguments and environment.
pub fn parse<T: Parser>() -> Result<T, clap::Error> {
    parse_from(std::env::args_os())
}

/// A part of the settings (`clap::Args`) from the process's arguments and environment: what a Lambda reads.
pub fn parse_args<T: Args>() -> Result<T, clap::Error> {
    from_process(T::augment_args(Command::new("settings")), std::env::args_os())
}

/// `T` from `args` (the program's name first) and the process's environment.
pub fn parse_from<T, I, A>(args: I) -> Result<T, clap::Error>
where
    T: Parser,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    from_process(T::command(), args)
}

/// `T` from `pairs` as if they were the whole environment (no arguments): what tests use instead of the process's
/// environment. A name no argument of `T` declares is an error, so a test cannot set a variable nobody reads.
pub fn parse_pairs<T: Args>(pairs: &[(&str, &str)]) -> Result<T, clap::Error> {
    let declared = T::augment_args(Command::new("settings"));
    let mut command = declared.clone().mut_args(|arg| arg.env(None));
    let mut args: Vec<OsString> = vec![command.get_name().into()];
    for (name, value) in pairs {
        let Some(arg) = declared.get_arguments().find(|a| a.get_env().is_some_and(|e| e == *name)) else {
            return Err(command.error(ErrorKind::UnknownArgument, format!("no setting reads {name}")));
        };
        if is_blank(value) {
            continue;
        }
        args.push(format!("--{}={value}", long(arg)).into());
    }
    from_matches(&mut command, args)
}

fn from_process<T, I, A>(command: Command, args: I) -> Result<T, clap::Error>
where
    T: FromArgMatches,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let mut command = command.mut_args(|arg| {
        let blank = arg.get_env().and_then(std::env::var_os).is_some_and(|v| is_blank(&v.to_string_lossy()));
        if blank { arg.env(None) } else { arg }
    });
    from_matches(&mut command, args)
}

/// A setting that is needed because of another one (e.g. `ATHENA_WORKGROUP` when `QUERY_ENGINE=athena`).
pub fn missing(name: &str, why: &str) -> clap::Error {
    clap::Error::raw(ErrorKind::MissingRequiredArgument, format!("{name} is not set: {why}\n"))
}

/// A value that parsed but does not fit with the others.
pub fn invalid(name: &str, value: &str, reason: &str) -> clap::Error {
    clap::Error::raw(ErrorKind::ValueValidation, format!("{name}={value:?} is invalid: {reason}\n"))
}

/// `error`'s message on its own (no "error:" prefix, usage or help hint): for a reason sent elsewhere, such as
/// a CloudFormation response.
pub fn message(error: &clap::Error) -> String {
    let text = error.to_string();
    let text = text.split("\n\nUsage:").next().unwrap_or_default();
    let text = text.split("\n\nFor more information").next().unwrap_or_default();
    let text = text.trim().strip_prefix("error:").unwrap_or(text).trim();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every variable `T` reads, with its help line and default, in declaration order (for docs and checks).
pub fn variables<T: Args>() -> Vec<Variable> {
    T::augment_args(Command::new("settings"))
        .get_arguments()
        .filter_map(|arg| {
            Some(Variable {
                name: arg.get_env()?.to_string_lossy().into_owned(),
                help: arg.get_help().map(|h| h.to_string()).unwrap_or_default(),
                default: arg.get_default_values().first().map(|d| d.to_string_lossy().into_owned()),
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub help: String,
    pub default: Option<String>,
}

fn from_matches<T, I, A>(command: &mut Command, args: I) -> Result<T, clap::Error>
where
    T: FromArgMatches,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let mut matches = command.try_get_matches_from_mut(args)?;
    T::from_arg_matches_mut(&mut matches).map_err(|e| e.format(command))
}

fn long(arg: &Arg) -> String {
    arg.get_long().map(str::to_owned).unwrap_or_else(|| arg.get_id().as_str().replace('_', "-"))
}

fn is_blank(value: &str) -> bool {
    value.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct Example {
        /// Where to listen.
        #[arg(long, env = "EXAMPLE_ADDR", default_value = "127.0.0.1:3000")]
        example_addr: std::net::SocketAddr,
        /// A name that has no default.
        #[arg(long, env = "EXAMPLE_NAME")]
        example_name: Option<String>,
    }

    #[test]
    fn given_no_variables_then_defaults_apply() {
        let example: Example = parse_pairs(&[]).unwrap();
        assert_eq!(example.example_addr.port(), 3000);
        assert_eq!(example.example_name, None);
    }

    #[test]
    fn given_a_blank_variable_then_it_counts_as_unset() {
        let example: Example = parse_pairs(&[("EXAMPLE_ADDR", ""), ("EXAMPLE_NAME", "  ")]).unwrap();
        assert_eq!(example.example_addr.port(), 3000);
        assert_eq!(example.example_name, None);
    }

    #[test]
    fn given_a_malformed_value_then_the_error_names_the_variable() {
        let err = parse_pairs::<Example>(&[("EXAMPLE_ADDR", "localhost:x")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("EXAMPLE_ADDR") && text.contains("localhost:x"), "{text}");
        let message = message(&err);
        assert!(message.starts_with("invalid value 'localhost:x'") && !message.contains("Usage"), "{message}");
    }

    #[test]
    fn given_a_variable_nobody_reads_then_it_is_refused() {
        let err = parse_pairs::<Example>(&[("EXAMPLE_TYPO", "1")]).unwrap_err().to_string();
        assert!(err.contains("EXAMPLE_TYPO"), "{err}");
    }

    #[test]
    fn every_variable_is_listed_with_its_help_and_default() {
        let vars = variables::<Example>();
        assert_eq!(vars[0].name, "EXAMPLE_ADDR");
        assert_eq!(vars[0].default.as_deref(), Some("127.0.0.1:3000"));
        assert_eq!(
            vars[1],
            Variable { name: "EXAMPLE_NAME".into(), help: "A name that has no default".into(), default: None }
        );
    }
}
