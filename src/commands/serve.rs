//! `serve`: the read-only dashboard over the state database of each pair.

use std::time::Duration;

use crate::cli::ServeArgs;
use crate::config::Installation;
use crate::dashboard;

use super::EXIT_OK;

pub async fn run(inst: &Installation, args: &ServeArgs) -> anyhow::Result<u8> {
    dashboard::check_listen(args.listen, args.allow_remote)?;
    // `dashboard::serve` prints the address once it is bound (the real port when given 0).
    let shutdown = async {
        let _ = crate::schedule::wait_for_signal().await;
    };
    dashboard::serve_installation(
        inst,
        args.listen,
        args.allow_remote,
        args.health_max_age_secs.map(Duration::from_secs),
        shutdown,
    )
    .await?;
    Ok(EXIT_OK)
}
