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
    use tracing_subscriber::EnvFilter;
    let default = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    // RUST_LOG wins when set, so operators can target one module.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
