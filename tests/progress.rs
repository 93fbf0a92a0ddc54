//! Progress bars of `sync` (issue 8): drawn only when stderr is a terminal. Under a test
//! harness, cron or a pipe, stderr must hold no cursor-movement codes; under a pseudo-terminal
//! (`script`, when installed) the bars appear.

mod support;

use hotspot_ghl_sync::sandbox::SandboxOptions;
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use support::harness::{BIN, TestEnv};

const CONTACTS: &str = r#"conflict = "hotspot_wins"
on_source_delete = "ignore"
on_target_delete = "respect"
max_delete_ratio = 0.1
"#;

fn opts() -> SandboxOptions {
    SandboxOptions {
        seed: SeedSpec {
            seed: 3,
            locations: 2,
            customers: 30,
            subscribers: 5,
            subscribers_also_customers: 2,
            transactions: 0,
        },
        ..SandboxOptions::default()
    }
}

/// The codes indicatif redraws with (erase line, cursor up), and the bar's own frame.
fn has_progress(s: &str) -> bool {
    s.contains("\x1b[2K") || s.contains("\x1b[1A") || s.contains("contacts [")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_without_a_terminal_draws_no_progress() {
    let env = TestEnv::start("progress-pipe", opts(), CONTACTS).await;
    let out = env.sync(&[]).await;
    assert!(
        out.stdout.contains("contact") && env.sandbox.ghl.with_state(|s| s.contacts.len()) > 0,
        "the sync wrote contacts:\n{}",
        out.stdout
    );
    assert!(
        !has_progress(&out.stderr) && !has_progress(&out.stdout),
        "progress drawn without a terminal:\nstderr: {:?}",
        out.stderr
    );
}

/// What `sync` draws on a pseudo-terminal (`script`), or `None` when `script` is missing.
async fn sync_on_a_terminal(env: &TestEnv) -> Option<String> {
    let script = std::path::Path::new("/usr/bin/script");
    if !script.is_file() {
        eprintln!("*** SKIPPED: no /usr/bin/script to give sync a pseudo-terminal");
        return None;
    }
    // The report goes to /dev/null: what the pseudo-terminal shows is stderr, the bars.
    let cmd = format!(
        "'{BIN}' --config '{}' sync >/dev/null",
        env.config.display()
    );
    let out = tokio::process::Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .env("HGS_TEST_HS_KEY", env.sandbox.hotspot_api_key())
        .env("HGS_TEST_GHL_TOKEN", env.sandbox.ghl_token())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("script runs");
    let tty = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "sync under script failed: {tty}");
    Some(tty)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_on_a_terminal_draws_bars() {
    let env = TestEnv::start("progress-pty", opts(), CONTACTS).await;
    let Some(tty) = sync_on_a_terminal(&env).await else {
        return;
    };
    let linked = env.sandbox.ghl.with_state(|s| s.contacts.len());
    assert!(
        tty.contains("contacts [") && tty.contains(&format!("{linked}/{linked}")),
        "no finished contacts bar on the terminal: {tty:?}"
    );
    assert!(
        !tty.contains("rate limit"),
        "no wait at a limit this high: {tty:?}"
    );
}

/// A bar held back by the rate limiter says so, rather than showing a stalled ETA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bar_says_when_it_waits_for_the_rate_limit() {
    let mut few = opts();
    few.seed.customers = 8;
    few.seed.subscribers = 2;
    // The client believes the server's window (`X-RateLimit-Interval-Milliseconds`).
    few.ghl.rate_window = std::time::Duration::from_secs(2);
    let env = TestEnv::start("progress-pty-limited", few, CONTACTS).await;
    // Some 30 requests at 8 per 2 s: the limiter holds the writes back a few times.
    let config = std::fs::read_to_string(&env.config).unwrap();
    let limited = config.replace("rate_limit = 50000", "rate_limit = 8\nrate_window_secs = 2");
    assert_ne!(config, limited, "the harness config sets ghl.rate_limit");
    std::fs::write(&env.config, limited).unwrap();
    let Some(tty) = sync_on_a_terminal(&env).await else {
        return;
    };
    assert!(
        tty.contains("for the GHL rate limit"),
        "no word of the rate-limit wait on the terminal: {tty:?}"
    );
    let linked = env.sandbox.ghl.with_state(|s| s.contacts.len());
    assert!(tty.contains(&format!("{linked}/{linked}")), "{tty:?}");
}
