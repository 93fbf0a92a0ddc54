//! The commands of DESIGN.md §8. Each returns an exit code or an error; `dispatch` turns errors
//! into one clear message on stderr and the exit code the contract promises.

mod auth;
mod calls;
mod check;
mod demo;
mod explain;
mod generate;
mod report;
mod run;
mod sandbox;
mod serve;
mod status;
mod sync;

use crate::cli::{Cli, Command};
use crate::config::{ConfigError, Form, Installation, Pair, UnknownPair};
use crate::secret::InsecureFiles;
use crate::store::StoreError;

/// Everything planned was done.
pub const EXIT_OK: u8 = 0;
/// The run finished but some records failed (they are in the report).
pub const EXIT_FAILURE: u8 = 1;
/// Configuration or authentication error: nothing was synced.
pub const EXIT_CONFIG: u8 = 2;
/// Another process holds the state file.
pub const EXIT_LOCKED: u8 = 3;
/// The state database cannot be used (corrupt, foreign, newer version, unwritable).
pub const EXIT_STATE: u8 = 4;
/// The run asked for is not in the state database (or no run is recorded yet).
pub const EXIT_UNKNOWN_RUN: u8 = 5;
/// No synced guest matches what `explain` was given.
pub const EXIT_UNKNOWN_GUEST: u8 = 6;

/// A read-only command was asked about something the state does not hold.
#[derive(Debug, thiserror::Error)]
pub enum NotFound {
    #[error(
        "no synced guest matches `{0}` (give a HotspotSystem id, a GHL contact id, or the email or phone of a guest the sync has linked)"
    )]
    Guest(String),
    #[error("run {0} is not in the state database (see `report list`)")]
    Run(i64),
    #[error("no run recorded yet in {}; run `sync` first", .0.display())]
    NoRun(std::path::PathBuf),
}

pub async fn dispatch(cli: Cli) -> u8 {
    let result = match &cli.command {
        // The sandbox and the demo need no configuration file.
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Generate(args) => generate::run(args),
        command => match load_installation(&cli, read_only(command)) {
            Ok(inst) => on_installation(&inst, &cli, command).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if refused_hotspot_key(&err) {
                // Named plainly: the server's own words ("Invalid API key", "Authorization
                // Required") do not say which of the two APIs refused, nor what to fix.
                eprintln!(
                    "error: the HotspotSystem API key was refused (check hotspot.api_key_env or hotspot.api_key_file): {}",
                    render_error(&err)
                );
            } else {
                eprintln!("error: {}", render_error(&err));
            }
            exit_code_for(&err)
        }
    }
}

/// Runs `command` on the pairs `--pair` selects (see `Cli::pair`).
async fn on_installation(inst: &Installation, cli: &Cli, command: &Command) -> anyhow::Result<u8> {
    let pair = cli.pair.as_deref();
    let selected = inst.select(pair)?;
    match command {
        Command::Sync(args) => sync::run_pairs(inst, &selected, args).await,
        Command::Status(args) => match (inst.form, pair) {
            (Form::Pairs, None) => status::overview(&selected, args),
            _ => status::run(&one_pair(inst, &selected, "status")?.config, args),
        },
        Command::Check(args) => check::run_pairs(inst, &selected, args).await,
        Command::Report(args) => report::run(&one_pair(inst, &selected, "report")?.config, args),
        Command::Explain(args) => explain::run(&one_pair(inst, &selected, "explain")?.config, args),
        Command::Calls(args) => calls::run(&one_pair(inst, &selected, "calls")?.config, args),
        Command::Auth(cmd) => auth::run(&one_pair(inst, &selected, "auth")?.config, cmd).await,
        Command::Run(args) => run::run(inst, run::ConfigSource::of(cli), args).await,
        // Every pair's pages (an overview first), or, with --pair, the one pair's as if alone.
        Command::Serve(args) => match pair {
            None => serve::run(inst, args).await,
            Some(_) => {
                let one = Installation::single(one_pair(inst, &selected, "serve")?.config.clone());
                serve::run(&one, args).await
            }
        },
        Command::Sandbox(_) | Command::Demo(_) | Command::Generate(_) => {
            unreachable!("these need no configuration")
        }
    }
}

/// A command that works on one pair's state was not told which pair, in a file with several.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path} has {count} pairs: `{command}` works on one, name it with --pair NAME (the pairs are: {known})"
)]
pub struct PairNeeded {
    pub path: String,
    pub command: &'static str,
    pub count: usize,
    pub known: String,
}

/// The one pair selected: in the single form the file's pair, with `[[pairs]]` the one
/// `--pair` names.
fn one_pair<'a>(
    inst: &Installation,
    selected: &[&'a Pair],
    command: &'static str,
) -> Result<&'a Pair, PairNeeded> {
    match selected {
        [one] => Ok(one),
        _ => Err(PairNeeded {
            path: inst.source_path.display().to_string(),
            command,
            count: inst.pairs.len(),
            known: inst
                .pairs
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The worst of several pairs' exit codes: any problem outranks success, and among problems
/// the higher code (a configuration, lock or state problem) outranks a failed record.
pub(crate) fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    codes.into_iter().max().unwrap_or(EXIT_OK)
}

/// Commands that only read the state database and never call an API: they load the config
/// without requiring the API secrets ([`Config::load_read_only`]), so that `serve` works right
/// after `demo` or on a machine that only looks at the results.
fn read_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Report(_)
            | Command::Status(_)
            | Command::Serve(_)
            | Command::Explain(_)
            | Command::Calls(_)
    )
}

pub(crate) fn load_installation(cli: &Cli, read_only: bool) -> anyhow::Result<Installation> {
    let insecure = if cli.allow_insecure_secret_files {
        InsecureFiles::Warn
    } else {
        InsecureFiles::Refuse
    };
    Ok(Installation::load_with(&cli.config, read_only, insecure)?)
}

/// The error and its causes on one line, outermost first, without repeating a cause that the
/// message already contains.
pub(crate) fn render_error(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

pub(crate) fn exit_code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(n) = cause.downcast_ref::<NotFound>() {
            return match n {
                NotFound::Guest(_) => EXIT_UNKNOWN_GUEST,
                NotFound::Run(_) | NotFound::NoRun(_) => EXIT_UNKNOWN_RUN,
            };
        }
        if cause.downcast_ref::<ConfigError>().is_some()
            || cause.downcast_ref::<UnknownPair>().is_some()
            || cause.downcast_ref::<PairNeeded>().is_some()
            || cause
                .downcast_ref::<crate::dashboard::DashboardError>()
                .is_some()
            || cause
                .downcast_ref::<crate::server::auth::AuthError>()
                .is_some()
            || cause
                .downcast_ref::<crate::reconcile::snapshot::UnknownCustomFields>()
                .is_some()
        {
            return EXIT_CONFIG;
        }
        if cause.downcast_ref::<report::UnknownRun>().is_some() {
            return EXIT_UNKNOWN_RUN;
        }
        if let Some(s) = cause.downcast_ref::<StoreError>() {
            return match s {
                StoreError::Locked { .. } => EXIT_LOCKED,
                _ => EXIT_STATE,
            };
        }
        if let Some(g) = cause.downcast_ref::<crate::ghl::GhlError>()
            && g.class() == Some(crate::http::ErrorClass::Auth)
        {
            return EXIT_CONFIG;
        }
    }
    if refused_hotspot_key(err) {
        return EXIT_CONFIG;
    }
    EXIT_FAILURE
}

/// True when HotspotSystem answered 401/403: its key is wrong or lacks a permission.
fn refused_hotspot_key(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<crate::http::HttpError>(),
            Some(crate::http::HttpError::Api(e))
                if e.api == "hotspot" && e.class == crate::http::ErrorClass::Auth
        )
    })
}
