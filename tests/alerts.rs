//! Alerts (`[notify]`) through the real binary: a webhook receiver on 127.0.0.1 records what is
//! posted, and a command records what it is given. Failures come from the emulators' fault
//! knobs; "an hour later" is the alert state's timestamps moved back in the state file.

mod support;

use std::time::{Duration, Instant};

use hotspot_ghl_sync::sandbox::faults::{ErrorAnswer, FaultKnobs};
use hotspot_ghl_sync::sandbox::ghl::PitRotation;
use support::Out;
use support::receiver::Receiver;
use support::reliability::{Env, Setup, opts};

/// The path of the receiver's URL: stands for the token a real webhook URL carries.
const TOKEN_PATH: &str = "/hooks/T000/B000/sEcReT-wEbHoOk-ToKeN";

/// Writes the config with `notify` as its `[notify]` body (and `extra` tables after it).
fn with_notify(env: &Env, notify: &str, extra: &str) {
    let text = format!("{}\n[notify]\n{notify}\n{extra}", env.config_text());
    std::fs::write(&env.config, text).unwrap();
}

/// Runs the binary with the webhook URL in `HGS_T_HOOK`.
async fn run_with_hook(env: &Env, hook: &str, args: &[&str]) -> Out {
    let out = env
        .command(args)
        .env("HGS_T_HOOK", hook)
        .output()
        .await
        .expect("binary runs");
    Out::from_output(out)
}

/// Moves the alert state's times `minutes` into the past, as if the next pass came that much
/// later.
fn an_hour_passes(env: &Env, minutes: i64) {
    let db = rusqlite::Connection::open(env.state_path()).expect("state opens");
    let shift = format!("-{minutes} minutes");
    db.execute(
        "UPDATE alert_conditions SET
            active_since = strftime('%Y-%m-%dT%H:%M:%fZ', active_since, ?1),
            last_alerted_at = strftime('%Y-%m-%dT%H:%M:%fZ', last_alerted_at, ?1)",
        [&shift],
    )
    .expect("alert state back-dated");
}

fn every_write_refused() -> FaultKnobs {
    FaultKnobs {
        error_answer: Some(ErrorAnswer {
            status: 422,
            message: "refused by the test".into(),
            only_writes: true,
        }),
        ..FaultKnobs::default()
    }
}

/// No output of any run may show the webhook's token.
fn assert_secret_kept(out: &Out) {
    assert!(
        !out.stderr.contains("sEcReT") && !out.stdout.contains("sEcReT"),
        "the webhook URL leaked: {}",
        out.show()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_alerts_once_an_hour_and_its_recovery_once() {
    let env = Env::start("alerts-fail", opts(81, 12), Setup::default()).await;
    let rx = Receiver::start().await;
    let hook = rx.url(TOKEN_PATH);
    with_notify(&env, "webhook_url_env = \"HGS_T_HOOK\"\n", "");
    env.sandbox.ghl.set_faults(every_write_refused());

    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 1, "every write refused: {}", out.show());
    assert_secret_kept(&out);
    let posts = rx.posts();
    assert_eq!(posts.len(), 1, "one alert: {posts:#?}\n{}", out.show());
    let post = &posts[0];
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", TOKEN_PATH)
    );
    assert!(
        post.content_type.starts_with("application/json"),
        "{post:?}"
    );
    assert_eq!(
        post.body
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["text".to_string()]),
        "a Slack-compatible body: {post:?}"
    );
    let text = &rx.texts()[0];
    assert!(text.contains("Run failed (all kinds)"), "{text}");
    assert!(text.contains("eligible records left unsynced"), "{text}");
    assert!(text.contains(&env.sandbox.ghl.location_id()), "{text}");
    assert!(
        out.stderr.contains("alert sent")
            && out.stderr.contains(&format!("webhook http://{}", rx.addr)),
        "the log names the target by host: {}",
        out.show()
    );

    // Still failing, within the hour: nothing more.
    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 1, "{}", out.show());
    assert_eq!(rx.texts().len(), 1, "{:#?}", rx.texts());

    // An hour later, still failing: one reminder.
    an_hour_passes(&env, 61);
    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 1, "{}", out.show());
    let texts = rx.texts();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    assert!(
        texts[1].contains("Runs still fail (all kinds)"),
        "{}",
        texts[1]
    );

    // The API takes writes again: one "resolved", then silence.
    env.sandbox.ghl.set_faults(FaultKnobs::default());
    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let texts = rx.texts();
    assert_eq!(texts.len(), 3, "{texts:#?}");
    assert!(
        texts[2].contains("Resolved: runs (all kinds) succeed again"),
        "{}",
        texts[2]
    );
    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    assert_eq!(rx.texts().len(), 3, "{:#?}", rx.texts());
    assert_secret_kept(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_authentication_alerts_and_its_return_is_announced() {
    let env = Env::start("alerts-auth", opts(82, 12), Setup::default()).await;
    let rx = Receiver::start().await;
    let hook = rx.url(TOKEN_PATH);
    // The URL from a file, as a daemon would read it.
    let hook_file = env.dir.join("webhook.url");
    std::fs::write(&hook_file, format!("{hook}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    with_notify(
        &env,
        &format!("webhook_url_file = \"{}\"\n", hook_file.display()),
        "",
    );

    // The operator regenerated the HotspotSystem key and the sync still has the old one.
    env.sandbox.hotspot.rotate_api_key("regenerated-key");
    let dry = env.run(&["sync", "--dry-run"]).await;
    assert_eq!(dry.code, 2, "{}", dry.show());
    assert!(
        rx.posts().is_empty(),
        "a dry run does not alert: {:#?}",
        rx.texts()
    );

    let out = env.run(&["sync"]).await;
    assert_eq!(out.code, 2, "{}", out.show());
    assert_secret_kept(&out);
    let texts = rx.texts();
    assert_eq!(
        texts.len(),
        1,
        "one alert, not one per condition: {texts:#?}"
    );
    assert!(texts[0].contains("Authentication lost"), "{}", texts[0]);
    assert!(texts[0].contains("hotspot"), "names the API: {}", texts[0]);
    assert!(!texts[0].contains("Run failed"), "{}", texts[0]);

    let key = env.sandbox.hotspot_api_key().to_string();
    env.sandbox.hotspot.rotate_api_key(&key);
    let out = env.run(&["sync"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let texts = rx.texts();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    assert!(
        texts[1].contains("Resolved: authentication accepted again"),
        "{}",
        texts[1]
    );

    // Later, GHL refuses its token (rotated in GHL, not in the config).
    an_hour_passes(&env, 61);
    let old = env.sandbox.ghl_token().to_string();
    env.sandbox
        .ghl
        .rotate_private_token(&old, "pit-rotated", PitRotation::ExpireOldNow);
    let out = env.run(&["sync"]).await;
    assert_eq!(out.code, 2, "{}", out.show());
    let texts = rx.texts();
    assert_eq!(texts.len(), 3, "{texts:#?}");
    assert!(
        texts[2].contains("Authentication lost") && texts[2].contains("ghl"),
        "{}",
        texts[2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_reserve_alerts_and_so_does_writing_again() {
    let setup = Setup {
        ghl_extra: "daily_reserve = 100\n".into(),
        ..Setup::default()
    };
    let env = Env::start("alerts-quota", opts(83, 40), setup).await;
    let rx = Receiver::start().await;
    let hook = rx.url(TOKEN_PATH);
    with_notify(&env, "webhook_url_env = \"HGS_T_HOOK\"\n", "");
    env.sandbox.ghl.set_daily_remaining(115);

    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 0, "reaching the reserve is clean: {}", out.show());
    let texts = rx.texts();
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert!(
        texts[0].contains("Daily quota reserve reached"),
        "{}",
        texts[0]
    );
    assert!(texts[0].contains("reserve 100"), "{}", texts[0]);
    assert!(!texts[0].contains("Run failed"), "{}", texts[0]);

    env.sandbox.ghl.set_daily_remaining(200_000);
    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let texts = rx.texts();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    assert!(
        texts[1].contains("Resolved: writing goes on"),
        "{}",
        texts[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_gets_the_alert_and_a_dead_webhook_does_not_change_the_run() {
    let env = Env::start("alerts-cmd", opts(84, 12), Setup::default()).await;
    // A port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let hook = format!("http://{dead}{TOKEN_PATH}");
    let out_dir = env.dir.join("alert");
    std::fs::create_dir_all(&out_dir).unwrap();
    with_notify(
        &env,
        &format!(
            "webhook_url_env = \"HGS_T_HOOK\"\ncommand = [\"/bin/sh\", \"-c\", \"cat > \\\"$0/stdin.json\\\"; env > \\\"$0/env.txt\\\"\", \"{}\"]\ntimeout_secs = 5\n",
            out_dir.display()
        ),
        "",
    );
    env.sandbox.ghl.set_faults(every_write_refused());
    let t = Instant::now();
    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 1, "the run's own exit code: {}", out.show());
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_secret_kept(&out);
    assert!(
        out.stderr.contains("alert not delivered")
            && out.stderr.contains(&format!("webhook http://{dead}")),
        "the dead webhook is a warning naming its host: {}",
        out.show()
    );
    assert!(out.stderr.contains("command /bin/sh"), "{}", out.show());

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("stdin.json")).unwrap())
            .expect("the command gets JSON on stdin");
    assert_eq!(json["source"], "hotspot-ghl-sync");
    assert_eq!(json["location_id"], env.sandbox.ghl.location_id().as_str());
    assert_eq!(json["run"]["status"], "partial");
    assert_eq!(json["run"]["scope"], "all");
    assert_eq!(json["alerts"][0]["condition"], "run_failed");
    assert_eq!(json["alerts"][0]["state"], "firing");
    assert!(
        json["text"].as_str().unwrap().contains("Run failed"),
        "{json:#}"
    );

    let vars = std::fs::read_to_string(out_dir.join("env.txt")).unwrap();
    assert!(
        vars.contains("HGS_ALERT_CONDITIONS=run_failed:firing"),
        "{vars}"
    );
    assert!(vars.contains("HGS_ALERT_RUN_STATUS=partial"), "{vars}");
    assert!(
        vars.contains(&format!("HGS_ALERT_RUN_ID={}", json["run"]["id"])),
        "{vars}"
    );
    assert!(vars.contains("PATH="), "{vars}");
    for secret in [
        env.sandbox.ghl_token(),
        env.sandbox.hotspot_api_key(),
        "sEcReT",
    ] {
        assert!(!vars.contains(secret), "the command gets no secret: {vars}");
    }

    // The command took the alert: within the hour, the next failing run sends nothing.
    std::fs::remove_file(out_dir.join("stdin.json")).unwrap();
    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(!out_dir.join("stdin.json").exists(), "{}", out.show());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_alerts_once_for_a_failing_job_and_once_when_it_recovers() {
    let setup = Setup {
        http: "timeout_secs = 5\nmax_attempts = 1\nmax_elapsed_secs = 5\n".into(),
        ..Setup::default()
    };
    let env = Env::start("alerts-daemon", opts(85, 6), setup).await;
    let rx = Receiver::start().await;
    let hook = rx.url(TOKEN_PATH);
    with_notify(
        &env,
        "webhook_url_env = \"HGS_T_HOOK\"\n",
        "[schedule]\ncontacts = \"*/1 * * * * *\"\nnotes = \"off\"\ntasks = \"off\"\nfull = \"off\"\n",
    );
    // HotspotSystem answers 500 to everything: every pass of the contacts job fails.
    env.sandbox.hotspot.set_faults(FaultKnobs {
        p500: 1.0,
        ..FaultKnobs::default()
    });
    let log = env.dir.join("daemon.log");
    let mut daemon = env
        .command(&["run"])
        .env("HGS_T_HOOK", &hook)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("daemon starts");
    let wait_for = |n: usize| {
        let rx = &rx;
        let log = &log;
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while rx.posts().len() < n {
                assert!(
                    Instant::now() < deadline,
                    "{n} alert(s) expected, got {:#?}\n{}",
                    rx.texts(),
                    std::fs::read_to_string(log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for(1).await;
    assert!(
        rx.texts()[0].contains("Run failed (contact)"),
        "{}",
        rx.texts()[0]
    );
    // Several more failing passes: no second alert.
    let failed_runs = |log: &std::path::Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("run failed")
            .count()
    };
    let before = failed_runs(&log);
    let deadline = Instant::now() + Duration::from_secs(20);
    while failed_runs(&log) < before + 3 {
        assert!(
            Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rx.posts().len(), 1, "{:#?}", rx.texts());

    env.sandbox.hotspot.set_faults(FaultKnobs::default());
    wait_for(2).await;
    assert!(
        rx.texts()[1].contains("Resolved: runs (contact) succeed again"),
        "{}",
        rx.texts()[1]
    );
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().unwrap().to_string())
        .status();
    let status = tokio::time::timeout(Duration::from_secs(15), daemon.wait())
        .await
        .expect("the daemon stops")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(!log_text.contains("sEcReT"), "{log_text}");
    assert_eq!(rx.posts().len(), 2, "{:#?}", rx.texts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_hangs_is_killed_at_the_timeout_and_the_run_goes_on() {
    let env = Env::start("alerts-slow", opts(86, 6), Setup::default()).await;
    let marker = env.dir.join("still-running");
    with_notify(
        &env,
        &format!(
            "command = [\"/bin/sh\", \"-c\", \"(sleep 3; touch \\\"$0\\\") & wait\", \"{}\"]\ntimeout_secs = 1\n",
            marker.display()
        ),
        "",
    );
    env.sandbox.ghl.set_faults(every_write_refused());
    let t = Instant::now();
    let out = env.run(&["sync"]).await;
    assert_eq!(out.code, 1, "the run's own exit code: {}", out.show());
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(
        out.stderr.contains("alert not delivered") && out.stderr.contains("no answer within 1 s"),
        "{}",
        out.show()
    );
    // Undelivered, so due again at the next pass (the hour starts only once one is delivered).
    let out = env.run(&["sync"]).await;
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(
        out.stderr.contains("no answer within 1 s"),
        "{}",
        out.show()
    );
    // What the command started went with it: its child, which would have touched the marker
    // 3 s after it started, was killed too.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!marker.exists(), "the command's child outlived the timeout");
}

/// Services answer a webhook differently: Slack 200 `ok`, Teams workflows 202. Any 2xx is
/// delivered; an error answer (a webhook revoked: 404) is a warning, and the alert is sent again
/// by the next pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_2xx_is_delivered_and_an_error_answer_is_tried_again_next_pass() {
    let env = Env::start("alerts-answers", opts(87, 6), Setup::default()).await;
    let rx = Receiver::start().await;
    let hook = rx.url(TOKEN_PATH);
    with_notify(&env, "webhook_url_env = \"HGS_T_HOOK\"\n", "");
    env.sandbox.ghl.set_faults(every_write_refused());

    rx.answer(404);
    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(
        out.stderr.contains("alert not delivered")
            && out.stderr.contains("answered HTTP 404")
            && out.stderr.contains(&format!("webhook http://{}", rx.addr)),
        "{}",
        out.show()
    );
    assert_secret_kept(&out);
    assert_eq!(rx.posts().len(), 1);

    rx.answer(202);
    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 1, "{}", out.show());
    let texts = rx.texts();
    assert_eq!(
        texts.len(),
        2,
        "the undelivered alert is sent again: {texts:#?}"
    );
    assert!(texts[1].contains("Run failed (all kinds)"), "{}", texts[1]);
    assert!(out.stderr.contains("alert sent"), "{}", out.show());

    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 1, "{}", out.show());
    assert_eq!(rx.posts().len(), 2, "202 was a delivery: {:#?}", rx.texts());
}

/// OAuth: GHL refuses the stored refresh token (another process redeemed it and never stored
/// what it got): the connection is lost, and someone must connect again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_oauth_refresh_alerts_as_authentication_lost() {
    let setup = Setup {
        oauth: true,
        ..Setup::default()
    };
    let env = Env::start("alerts-oauth", opts(88, 6), setup).await;
    env.oauth_connect().await;
    let rx = Receiver::start().await;
    let hook = rx.url(TOKEN_PATH);
    with_notify(&env, "webhook_url_env = \"HGS_T_HOOK\"\n", "");
    env.sandbox.ghl.expire_access_tokens();
    env.sandbox
        .ghl
        .race_next_refresh(|_lost: hotspot_ghl_sync::sandbox::ghl::RotatedPair| {});
    let out = run_with_hook(&env, &hook, &["sync"]).await;
    assert_eq!(out.code, 2, "{}", out.show());
    let texts = rx.texts();
    assert_eq!(texts.len(), 1, "{texts:#?}\n{}", out.show());
    assert!(
        texts[0].contains("Authentication lost") && texts[0].contains("refresh token"),
        "{}",
        texts[0]
    );
    assert!(!texts[0].contains("Run failed"), "{}", texts[0]);
}
