//! Every pass is bounded (issue 12, point 7): the real binary against emulators that answer
//! slowly, lie in their rate-limit headers, send bodies far larger than any page, put newlines
//! and terminal escapes in their error messages, or refuse the HotspotSystem key. Each test
//! ends within a stated wall-time limit (the child is killed past it), with a clear message, and
//! where writes happened, a clean follow-up sync shows nothing lost and nothing twice.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hotspot_ghl_sync::sandbox::SandboxOptions;
use hotspot_ghl_sync::sandbox::faults::{BodyPadding, ErrorAnswer, FaultKnobs};
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use support::harness::{BIN, Out, TestEnv};

const CONTACTS: &str = r#"conflict = "hotspot_wins"
"#;

fn opts(customers: usize) -> SandboxOptions {
    SandboxOptions {
        seed: SeedSpec {
            seed: 12,
            locations: 1,
            customers,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 0,
        },
        ..SandboxOptions::default()
    }
}

/// Adds `lines` to the `[http]` table and a `[sync]` table with `pass_budget_secs`.
fn tune(env: &TestEnv, http_lines: &str, budget_secs: Option<u64>) {
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text = text.replace(
        "max_elapsed_secs = 20\n",
        &format!("max_elapsed_secs = 20\n{http_lines}"),
    );
    if let Some(b) = budget_secs {
        text.push_str(&format!("\n[sync]\npass_budget_secs = {b}\n"));
    }
    std::fs::write(&env.config, text).unwrap();
}

/// Runs the binary; panics if it has not exited within `limit` (it is killed then). Returns its
/// output and wall time. `hs_key` replaces the HotspotSystem key the sandbox expects.
async fn run_within(
    env: &TestEnv,
    args: &[&str],
    hs_key: Option<&str>,
    limit: Duration,
) -> (Out, Duration) {
    let started = Instant::now();
    let child = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .env(
            "HGS_TEST_HS_KEY",
            hs_key.unwrap_or_else(|| env.sandbox.hotspot_api_key()),
        )
        .env("HGS_TEST_GHL_TOKEN", env.sandbox.ghl_token())
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(limit, child)
        .await
        .unwrap_or_else(|_| panic!("`{}` did not end within {limit:?}", args.join(" ")))
        .expect("binary runs");
    let took = started.elapsed();
    eprintln!("`{}` took {took:?} (limit {limit:?})", args.join(" "));
    (
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        took,
    )
}

/// HotspotSystem id → how many GHL contacts carry it in the anchor field.
fn anchor_counts(env: &TestEnv) -> BTreeMap<String, usize> {
    env.sandbox.ghl.with_state(|s| {
        let field = s
            .custom_field("contact.hotspot_customer_id")
            .map(|f| f.id.clone())
            .expect("anchor field exists");
        let mut n = BTreeMap::new();
        for c in s.contacts.values() {
            if let Some(v) = c
                .custom_fields
                .iter()
                .find(|(id, _)| *id == field)
                .and_then(|(_, v)| v.as_str())
            {
                *n.entry(v.to_string()).or_insert(0) += 1;
            }
        }
        n
    })
}

/// A clean sync after the hostile one: exit 0, every eligible guest exactly once in GHL.
async fn nothing_lost_nothing_twice(env: &TestEnv) {
    env.sandbox.ghl.set_faults(FaultKnobs::default());
    env.sandbox.hotspot.set_faults(FaultKnobs::default());
    let (o, _) = run_within(env, &["sync"], None, Duration::from_secs(60)).await;
    assert_eq!(o.code, 0, "{}", o.show());
    let anchors = anchor_counts(env);
    let twice: Vec<_> = anchors.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "duplicates: {twice:?}");
    assert_eq!(
        anchors.len(),
        support::census::eligible_people(&env.sandbox.hotspot),
        "every eligible guest in GHL"
    );
}

// ---- time budget ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_that_runs_out_of_its_budget_stops_cleanly_records_aborted_and_exits_1() {
    // 300 ms per GHL answer, 120 guests, 8 writes in flight: the creates alone take ~5 s.
    let mut o = opts(120);
    o.ghl.latency = Duration::from_millis(300);
    let env = TestEnv::start("budget-writes", o, CONTACTS).await;
    tune(&env, "", Some(2));
    let budget = Duration::from_secs(2);
    // Budget, then at most the stop grace (6 s) for the writes in flight, plus start-up.
    let limit = budget + Duration::from_secs(6 + 4);
    let (out, took) = run_within(&env, &["sync"], None, limit).await;
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(
        out.stderr
            .contains("time budget (sync.pass_budget_secs = 2s)"),
        "{}",
        out.show()
    );
    let written = anchor_counts(&env).len();
    let eligible = support::census::eligible_people(&env.sandbox.hotspot);
    assert!(
        written > 0 && written < eligible,
        "stopped part-way: {written} of {eligible}; took {took:?}"
    );
    let report = env.report_json().await;
    assert_eq!(report["status"], "aborted", "{report:#}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("time budget") && notes.contains("writes in flight finished"),
        "{notes}"
    );

    nothing_lost_nothing_twice(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_stuck_reading_a_slow_api_is_dropped_when_its_budget_is_spent() {
    // Each HotspotSystem answer takes 30 s (the client gives up after 5 s and retries for 20 s):
    // the pass would sit in its first listing for a long time.
    let mut o = opts(5);
    o.hotspot.latency = Duration::from_secs(30);
    let env = TestEnv::start("budget-stuck", o, CONTACTS).await;
    tune(&env, "", Some(2));
    let limit = Duration::from_secs(2 + 6 + 4);
    let (out, took) = run_within(&env, &["sync"], None, limit).await;
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(
        took >= Duration::from_secs(2 + 6),
        "given its budget and grace: {took:?}"
    );
    let report = env.report_json().await;
    assert_eq!(report["status"], "aborted", "{report:#}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("time budget") && notes.contains("still running"),
        "{notes}"
    );
    assert!(anchor_counts(&env).is_empty(), "nothing written");
}

// ---- rate-limit headers ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_headers_out_of_bounds_are_ignored_with_a_warning() {
    let env = TestEnv::start("ratelimit-headers", opts(20), CONTACTS).await;
    // Every answer claims a one-request, day-long window that is used up.
    env.sandbox.ghl.set_faults(FaultKnobs {
        headers: vec![
            ("x-ratelimit-remaining".into(), "0".into()),
            ("x-ratelimit-max".into(), "1".into()),
            (
                "x-ratelimit-interval-milliseconds".into(),
                "86400000".into(),
            ),
        ],
        ..FaultKnobs::default()
    });
    let (out, _) = run_within(&env, &["sync"], None, Duration::from_secs(20)).await;
    assert_eq!(out.code, 0, "{}", out.show());
    assert!(
        out.stderr
            .contains("X-RateLimit-Interval-Milliseconds = 86400000 is outside"),
        "{}",
        out.show()
    );
    assert_eq!(
        out.stderr.matches("ignoring the X-RateLimit").count(),
        1,
        "warned once: {}",
        out.show()
    );
    nothing_lost_nothing_twice(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sane_rate_limit_is_obeyed_and_its_long_waits_are_logged_with_the_reason() {
    let env = TestEnv::start("ratelimit-wait", opts(3), CONTACTS).await;
    // A real, strict limit: 4 requests per 9 s window, told in the headers of every answer. The
    // pass makes 8 GHL requests: the 5th waits for the window.
    env.sandbox.ghl.set_rate_limit(4, Duration::from_secs(9));
    let (out, took) = run_within(&env, &["sync"], None, Duration::from_secs(60)).await;
    assert_eq!(out.code, 0, "{}", out.show());
    assert!(
        took >= Duration::from_secs(7),
        "the limit was obeyed: {took:?}"
    );
    let waits: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("waiting before the next request"))
        .collect();
    assert!(!waits.is_empty(), "{}", out.show());
    assert!(
        waits.iter().all(|l| l.contains("\"ghl\"")
            && l.contains("wait_secs")
            && l.contains("4 requests were sent in the last 9000 ms")),
        "{waits:#?}"
    );
    let rejected = env
        .sandbox
        .ghl
        .requests()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(rejected, 0, "no request over the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_waits_are_logged_and_one_past_max_elapsed_is_not_waited_for() {
    let env = TestEnv::start("retry-after", opts(3), CONTACTS).await;
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace("max_attempts = 3\n", "max_attempts = 2\n"),
    )
    .unwrap();
    let always_429 = |secs| FaultKnobs {
        p429_retry_after: 1.0,
        retry_after_secs: secs,
        ..FaultKnobs::default()
    };

    // An hour: more than http.max_elapsed_secs (20 s) allows, so not waited for at all.
    env.sandbox.ghl.set_faults(always_429(3_600));
    let (out, took) = run_within(&env, &["sync"], None, Duration::from_secs(10)).await;
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        out.stderr.contains(
            "not retrying: the server's Retry-After asks for a wait past http.max_elapsed_secs"
        ),
        "{}",
        out.show()
    );

    // 6 s: waited for once (2 attempts), and said so with the API, path and status.
    env.sandbox.ghl.set_faults(always_429(6));
    let (out, took) = run_within(&env, &["sync"], None, Duration::from_secs(20)).await;
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(took >= Duration::from_secs(6), "{took:?}");
    let waits: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("waiting before retrying: the server's Retry-After (answered 429)"))
        .collect();
    assert_eq!(waits.len(), 1, "{}", out.show());
    assert!(
        waits[0].contains("\"ghl\"") && waits[0].contains("wait_secs"),
        "{waits:?}"
    );

    nothing_lost_nothing_twice(&env).await;
}

// ---- answer size cap ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_the_size_cap_is_refused_naming_api_and_path_announced_or_not() {
    for announce_length in [true, false] {
        let env = TestEnv::start("oversize", opts(5), CONTACTS).await;
        tune(&env, "max_response_bytes = 1048576\n", None);
        let pad = FaultKnobs {
            pad_body: Some(BodyPadding {
                bytes: 5 * 1024 * 1024,
                announce_length,
            }),
            ..FaultKnobs::default()
        };
        // HotspotSystem first (its listing comes first), then GHL.
        env.sandbox.hotspot.set_faults(pad.clone());
        let (out, _) = run_within(&env, &["sync"], None, Duration::from_secs(15)).await;
        assert_eq!(out.code, 1, "{}", out.show());
        let size = if announce_length {
            "its Content-Length of 52"
        } else {
            "its body (no Content-Length) grew"
        };
        let error = out
            .stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_default();
        assert!(
            error.contains("hotspot GET /locations")
                && error.contains(size)
                && error.contains("cap of 1048576 bytes (http.max_response_bytes)"),
            "{announce_length}: {}",
            out.show()
        );

        env.sandbox.hotspot.set_faults(FaultKnobs::default());
        env.sandbox.ghl.set_faults(pad.clone());
        let (out, _) = run_within(&env, &["sync"], None, Duration::from_secs(15)).await;
        assert_eq!(out.code, 1, "{}", out.show());
        let error = out
            .stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_default();
        assert!(
            error.contains("ghl GET /locations/{id}/customFields") && error.contains(size),
            "{announce_length}: {}",
            out.show()
        );
        assert!(anchor_counts(&env).is_empty(), "nothing written");

        // The same padded answers under the default cap (32 MiB): read and synced.
        let text = std::fs::read_to_string(&env.config).unwrap();
        std::fs::write(
            &env.config,
            text.replace("max_response_bytes = 1048576\n", ""),
        )
        .unwrap();
        let (out, _) = run_within(&env, &["sync"], None, Duration::from_secs(30)).await;
        assert_eq!(out.code, 0, "{announce_length}: {}", out.show());
        nothing_lost_nothing_twice(&env).await;
    }
}

// ---- control characters ---------------------------------------------------------------------

/// A message that, printed raw, forges a log line and clears the terminal.
const FORGED: &str = "phone invalid\n2026-12-01T00:00:00.000000Z  INFO hotspot_ghl_sync: all 20 contacts synced\u{1b}[2J\u{1b}[31m";

fn assert_no_raw_forgery(what: &str, text: &str) {
    assert!(
        !text.lines().any(|l| l.starts_with("2026-12-01T00:00:00")),
        "{what} carries a forged line:\n{text}"
    );
    assert!(
        !text.contains("\u{1b}[2J"),
        "{what} carries a raw escape:\n{text}"
    );
    assert!(
        text.contains(r"phone invalid\n2026-12-01"),
        "{what} shows the message, escaped:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_an_api_error_message_never_reach_the_log_or_report_raw() {
    let env = TestEnv::start("ctrl-chars", opts(4), CONTACTS).await;
    // Every GHL write refused with the forged message: the records fail, the run goes on.
    env.sandbox.ghl.set_faults(FaultKnobs {
        error_answer: Some(ErrorAnswer {
            status: 422,
            message: FORGED.into(),
            only_writes: true,
        }),
        ..FaultKnobs::default()
    });
    let (out, _) = run_within(&env, &["sync"], None, Duration::from_secs(20)).await;
    assert_eq!(out.code, 1, "{}", out.show());
    assert_no_raw_forgery("sync stderr (log)", &out.stderr);
    assert_no_raw_forgery("sync stdout (report)", &out.stdout);
    let (report, _) = run_within(&env, &["report", "latest"], None, Duration::from_secs(10)).await;
    assert_no_raw_forgery("report", &report.stdout);

    // HotspotSystem refusing the listing with it: the run fails, one error line.
    env.sandbox.ghl.set_faults(FaultKnobs::default());
    env.sandbox.hotspot.set_faults(FaultKnobs {
        error_answer: Some(ErrorAnswer {
            status: 400,
            message: FORGED.into(),
            only_writes: false,
        }),
        ..FaultKnobs::default()
    });
    let (out, _) = run_within(&env, &["sync"], None, Duration::from_secs(20)).await;
    assert_eq!(out.code, 1, "{}", out.show());
    assert_no_raw_forgery("failed sync stderr", &out.stderr);
    let (report, _) = run_within(&env, &["report", "latest"], None, Duration::from_secs(10)).await;
    assert_no_raw_forgery("failed run's report", &report.stdout);

    nothing_lost_nothing_twice(&env).await;
}

// ---- authentication -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_hotspot_key_exits_2_saying_so_without_printing_the_key() {
    let env = TestEnv::start("hs-key", opts(3), CONTACTS).await;
    let wrong = "wrong-key-7f3a9c";
    let (out, _) = run_within(&env, &["sync"], Some(wrong), Duration::from_secs(15)).await;
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(
        out.stderr.contains("the HotspotSystem API key was refused"),
        "{}",
        out.show()
    );
    assert!(!out.stderr.contains(wrong) && !out.stdout.contains(wrong));
    assert!(anchor_counts(&env).is_empty(), "nothing written");

    let (out, _) = run_within(&env, &["check"], Some(wrong), Duration::from_secs(15)).await;
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(
        out.stdout.contains("HotspotSystem rejected the API key"),
        "{}",
        out.show()
    );
    assert!(!out.stderr.contains(wrong) && !out.stdout.contains(wrong));
}
