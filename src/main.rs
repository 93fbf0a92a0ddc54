//! Thin edge: parse arguments, start tracing, dispatch, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use hotspot_ghl_sync::cli::{Cli, LogFormat};
use hotspot_ghl_sync::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(commands::EXIT_FAILURE);
        }
    };
    let code = runtime.block_on(commands::dispatch(cli));
    ExitCode::from(code)
}

fn init_tracing(cli: &Cli) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let level = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    // The cron engine's own INFO lines (job added, scheduler ticking) say nothing an operator
    // acts on; our scheduler logs what matters (run started, finished, next run at).
    let default = if cli.quiet {
        level.to_string()
    } else {
        format!("{level},tokio_cron_scheduler=warn")
    };
    // RUST_LOG wins when set, so operators can target one module.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(use_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Colour only on a terminal, and not when `NO_COLOR` is set to anything but the empty string
/// (https://no-color.org): escape codes in a redirected log or journal are noise.
fn use_colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::use_colour;

    #[test]
    fn colour_only_on_a_terminal_and_never_under_no_color() {
        assert!(use_colour(true, None));
        assert!(!use_colour(false, None));
        assert!(!use_colour(true, Some("1".into())));
        // The standard says a set but empty NO_COLOR does not count.
        assert!(use_colour(true, Some("".into())));
        assert!(!use_colour(false, Some("".into())));
    }
}
