//! Timer mode through the real binary: an outside timer or cron runs `sync` and a daily
//! `sync --full`, and `serve`'s `/healthz` judges what that mode promises (a recent pass and a
//! recent full), not the daemon's per-kind jobs.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use hotspot_ghl_sync::sandbox::SandboxOptions;
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use support::harness::TestEnv;
use support::{BIN, Out, http_client};

fn opts() -> SandboxOptions {
    SandboxOptions {
        seed: SeedSpec {
            seed: 15,
            locations: 1,
            customers: 6,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 1,
        },
        ..SandboxOptions::default()
    }
}

/// `[contacts]` is the harness config's last table, so a `[schedule]` table can follow it.
const TIMER: &str = "[schedule]\nmode = \"timer\"\nfull = \"0 3 * * *\"\n";

/// `serve` on a free loopback port over `env`'s state, killed on drop; `GET /healthz` once.
async fn healthz(env: &TestEnv) -> (u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(serve.try_wait().unwrap().is_none(), "serve exited early");
        assert!(Instant::now() < deadline, "serve did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = http_client()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    let _ = serve.start_kill();
    (status, body)
}

#[tokio::test]
async fn timer_mode_is_healthy_after_a_sync_and_a_full_sync() {
    let env = TestEnv::start("timer-health", opts(), TIMER).await;

    env.sync(&[]).await;
    let (status, body) = healthz(&env).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("full: no successful run recorded"), "{body}");
    assert!(
        !body.contains("contacts:"),
        "the plain sync counts as the frequent pass; no per-kind job is expected: {body}"
    );

    env.sync(&["--full"]).await;
    let (status, body) = healthz(&env).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // The daemon has nothing to run in this mode, and says so instead of half-running.
    // Killed if it does not exit, so a regression fails here instead of leaving a daemon behind.
    let run = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("run")
        .env("HGS_TEST_HS_KEY", env.sandbox.hotspot_api_key())
        .env("HGS_TEST_GHL_TOKEN", env.sandbox.ghl_token())
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("`run` in timer mode exits at once instead of scheduling")
        .unwrap();
    let out = Out::from_output(out);
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(out.stderr.contains("schedule.mode"), "{}", out.show());
}

#[tokio::test]
async fn timer_mode_with_only_a_full_run_still_wants_it_recent_and_refuses_per_kind_entries() {
    let env = TestEnv::start("timer-full-only", opts(), TIMER).await;
    let (status, body) = healthz(&env).await;
    assert_eq!(status, 503, "{body}");

    env.sync(&["--full"]).await;
    let (status, body) = healthz(&env).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "ok\n"),
        "a full pass is a pass"
    );

    // A per-kind cron in timer mode would promise a schedule nothing runs.
    env.write_config(&format!("{TIMER}contacts = \"*/5 * * * *\"\n"));
    let out = env.run(&["status"]).await;
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(out.stderr.contains("schedule.contacts"), "{}", out.show());
}

#[tokio::test]
async fn daemon_mode_after_a_plain_sync_still_expects_its_scheduled_full() {
    // The default mode is unchanged: the daemon's `full` job has not run yet.
    let env = TestEnv::start("daemon-health", opts(), "").await;
    env.sync(&[]).await;
    let (status, body) = healthz(&env).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("full: no successful run recorded"), "{body}");
}

/// Moves every recorded run `hours` into the past, as if no pass had run since.
fn runs_age(env: &TestEnv, hours: i64) {
    let db = rusqlite::Connection::open(env.state_path()).unwrap();
    let shift = format!("-{hours} hours");
    db.execute(
        "UPDATE runs SET started_at = strftime('%Y-%m-%dT%H:%M:%fZ', started_at, ?1),
                         finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', finished_at, ?1)",
        [&shift],
    )
    .unwrap();
}

/// Each check has its own allowance, twice its own interval: a frequent timer that stopped is
/// flagged within the hour, while the daily full is still recent enough.
#[tokio::test]
async fn a_stopped_frequent_timer_is_flagged_before_the_full_is_overdue() {
    let env = TestEnv::start(
        "timer-pass-stale",
        opts(),
        &format!("{TIMER}pass = \"*/5 * * * *\"\n"),
    )
    .await;
    env.sync(&["--full"]).await;
    let (status, body) = healthz(&env).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    runs_age(&env, 1);
    let (status, body) = healthz(&env).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("pass: last successful run") && body.contains("allowed 10m"),
        "{body}"
    );
    assert!(
        !body.contains("full:"),
        "the full is an hour old, well within 48 h: {body}"
    );

    // `pass` describes the outside timer: the daemon's jobs are the per-kind entries.
    env.write_config("[schedule]\npass = \"*/5 * * * *\"\n");
    let out = env.run(&["status"]).await;
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(out.stderr.contains("schedule.pass"), "{}", out.show());
}
