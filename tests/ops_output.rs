//! What scripts and operators read from the real binary: `status`, `check` and `report list`
//! in JSON, a clear exit code for an unknown run, and counts that are not capped by a listing.

mod support;

use hotspot_ghl_sync::sandbox::SandboxOptions;
use hotspot_ghl_sync::sandbox::faults::{ErrorAnswer, FaultKnobs};
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use serde_json::Value;
use support::harness::TestEnv;

const CONTACTS: &str = "conflict = \"hotspot_wins\"\n";

fn opts(customers: usize) -> SandboxOptions {
    SandboxOptions {
        seed: SeedSpec {
            seed: 15,
            locations: 1,
            customers,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 0,
        },
        ..SandboxOptions::default()
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_every_recent_failure_not_only_the_listed_ones() {
    let env = TestEnv::start("status-failures", opts(30), CONTACTS).await;
    // Every GHL write refused: each contact fails, more of them than `status` lists.
    env.sandbox.ghl.set_faults(FaultKnobs {
        error_answer: Some(ErrorAnswer {
            status: 422,
            message: "refused by the test".into(),
            only_writes: true,
        }),
        ..FaultKnobs::default()
    });
    let out = env.run(&["sync"]).await;
    assert_eq!(out.code, 1, "{}", out.show());
    let report = env.report_json().await;
    let failed = report["kinds"]["contact"]["failed"].as_u64().unwrap();
    assert!(failed > 20, "more failures than listed rows: {report:#}");

    let text = env.run(&["status"]).await;
    assert_eq!(text.code, 0, "{}", text.show());
    assert!(
        text.stdout
            .contains(&format!("Failures in the last 5 runs: {failed}\n")),
        "{}",
        text.show()
    );
    assert!(
        text.stdout
            .contains(&format!("... and {} more", failed - 20)),
        "{}",
        text.show()
    );

    let out = env.run(&["status", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let status = json(&out.stdout);
    assert_eq!(status["state"], "present", "{status:#}");
    assert_eq!(status["failures"]["total"], failed, "{status:#}");
    assert_eq!(status["failures"]["runs"], 5, "{status:#}");
    let rows = status["failures"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 20, "{status:#}");
    assert_eq!(rows[0]["kind"], "contact", "{status:#}");
    assert!(
        rows[0]["reason"]
            .as_str()
            .unwrap()
            .contains("refused by the test"),
        "{status:#}"
    );
    let kinds = status["kinds"].as_array().unwrap();
    assert_eq!(kinds.len(), 5, "{status:#}");
    let contact = kinds.iter().find(|k| k["kind"] == "contact").unwrap();
    assert_eq!(contact["linked"], 0, "{status:#}");
    assert_eq!(contact["last_run"]["status"], "partial", "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_without_state_says_so_in_json() {
    let env = TestEnv::start("status-none", opts(1), CONTACTS).await;
    let out = env.run(&["status", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let status = json(&out.stdout);
    assert_eq!(status["state"], "none", "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_list_prints_json_and_an_unknown_run_exits_5() {
    let env = TestEnv::start("report-list", opts(3), CONTACTS).await;
    env.sync(&[]).await;
    env.sync(&["--dry-run"]).await;

    let out = env.run(&["report", "list", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let list = json(&out.stdout);
    let runs = list.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{list:#}");
    // Newest first, as the text list.
    assert_eq!(runs[0]["mode"], "dry-run", "{list:#}");
    assert_eq!(runs[1]["mode"], "normal", "{list:#}");
    assert_eq!(runs[1]["status"], "succeeded", "{list:#}");
    assert!(runs[1]["id"].as_i64().unwrap() < runs[0]["id"].as_i64().unwrap());
    assert!(runs[1]["finished_at"].is_string(), "{list:#}");
    assert!(
        runs[1]["kinds"]
            .as_array()
            .unwrap()
            .contains(&Value::from("contact")),
        "{list:#}"
    );

    let text = env.run(&["report", "list"]).await;
    assert_eq!(text.code, 0, "{}", text.show());
    assert!(text.stdout.contains("dry-run"), "{}", text.show());

    let out = env.run(&["report", "9999"]).await;
    assert_eq!(out.code, 5, "{}", out.show());
    assert!(
        out.stderr.contains("run 9999 is not in the state database"),
        "{}",
        out.show()
    );
    assert!(out.stdout.is_empty(), "{}", out.show());
    // A run that exists still answers.
    let id = runs[1]["id"].as_i64().unwrap().to_string();
    let out = env.run(&["report", &id, "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_its_findings_as_json() {
    let env = TestEnv::start("check-json", opts(1), CONTACTS).await;
    let out = env.run(&["check", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let check = json(&out.stdout);
    assert_eq!(check["errors"], 0, "{check:#}");
    assert_eq!(check["exit_code"], 0, "{check:#}");
    let findings = check["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["level"] == "ok" && f["message"].as_str().unwrap().contains("HotspotSystem")),
        "{check:#}"
    );
    assert!(
        findings
            .iter()
            .all(|f| ["ok", "note", "warning", "error"].contains(&f["level"].as_str().unwrap())),
        "{check:#}"
    );

    // A refused GHL token: the JSON says so and the exit code is still 2.
    let mut cfg = std::fs::read_to_string(&env.config).unwrap();
    cfg = cfg.replace("HGS_TEST_GHL_TOKEN", "HGS_TEST_WRONG_TOKEN");
    std::fs::write(&env.config, cfg).unwrap();
    let out = tokio::process::Command::new(support::BIN)
        .arg("--config")
        .arg(&env.config)
        .args(["check", "--format", "json"])
        .env("HGS_TEST_HS_KEY", env.sandbox.hotspot_api_key())
        .env("HGS_TEST_WRONG_TOKEN", "not-the-token")
        .output()
        .await
        .unwrap();
    let out = support::Out::from_output(out);
    assert_eq!(out.code, 2, "{}", out.show());
    let check = json(&out.stdout);
    assert_eq!(check["exit_code"], 2, "{check:#}");
    assert!(check["errors"].as_u64().unwrap() >= 1, "{check:#}");
    assert!(
        check["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["level"] == "error"),
        "{check:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_fast_on_an_unreachable_api_and_says_what_it_tried() {
    let env = TestEnv::start("check-down", opts(1), CONTACTS).await;
    // A port nobody listens on, and a name that never resolves (.invalid is reserved).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = std::fs::read_to_string(&env.config).unwrap();
    cfg = cfg
        .replace(
            &env.sandbox.hotspot.base_url(),
            &format!("http://127.0.0.1:{port}"),
        )
        .replace(
            &env.sandbox.ghl.base_url(),
            "https://user:pw@ghl.hgs-test.invalid:8702/?key=s3cret",
        );
    std::fs::write(&env.config, cfg).unwrap();

    let started = std::time::Instant::now();
    let out = env.run(&["check"]).await;
    let took = started.elapsed();
    assert_eq!(out.code, 1, "transient: try again later\n{}", out.show());
    assert!(
        took < std::time::Duration::from_secs(10),
        "took {took:?}\n{}",
        out.show()
    );
    assert!(
        out.stdout.contains(&format!(
            "HotspotSystem unreachable: tried http://127.0.0.1:{port}"
        )),
        "{}",
        out.show()
    );
    assert!(
        out.stdout
            .contains("GHL unreachable: tried https://ghl.hgs-test.invalid:8702"),
        "{}",
        out.show()
    );
    for secret in ["s3cret", "user:pw", env.sandbox.ghl_token()] {
        assert!(!out.stdout.contains(secret), "{}", out.show());
        assert!(!out.stderr.contains(secret), "{}", out.show());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retired_report_dir_key_is_accepted_with_a_warning_and_logs_have_no_colour() {
    let env = TestEnv::start("report-dir", opts(2), CONTACTS).await;
    let mut cfg = std::fs::read_to_string(&env.config).unwrap();
    cfg.push_str("\n[report]\ndir = \"state/reports\"\n");
    std::fs::write(&env.config, cfg).unwrap();
    let out = env.sync(&[]).await;
    assert!(
        out.stderr.contains("report.dir is deprecated and ignored"),
        "{}",
        out.show()
    );
    // stderr is a pipe here: no colour codes, whatever the terminal would get.
    assert!(!out.stderr.contains('\u{1b}'), "{}", out.show());
    assert!(
        out.stderr.contains("INFO"),
        "the log is there: {}",
        out.show()
    );
}

/// Retention by age through the binary: a day later, an hour's runs that changed nothing are
/// thinned to the newest, which says how many it stands for; the run that wrote is kept whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_op_runs_older_than_a_day_are_kept_as_one_per_hour_that_says_so() {
    let env = TestEnv::start("retention", opts(5), CONTACTS).await;
    for _ in 0..4 {
        env.sync(&[]).await;
    }
    // All four two days back, in one hour (the first wrote the contacts; three changed nothing).
    let db = rusqlite::Connection::open(env.state_path()).unwrap();
    db.execute(
        "UPDATE runs SET started_at = printf('2020-01-01T10:00:%02d.000Z', id),
                         finished_at = printf('2020-01-01T10:00:%02d.500Z', id)",
        [],
    )
    .unwrap();
    drop(db);
    // keep_days large enough for 2020: the point is the thinning, not the expiry.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("{config}\n[report]\nkeep_days = 36500\n"),
    )
    .unwrap();
    env.sync(&[]).await; // prunes at its end

    let list = json(
        &env.run(&["report", "list", "--format", "json"])
            .await
            .stdout,
    );
    let runs = list.as_array().unwrap();
    let ids: Vec<i64> = runs.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids,
        [5, 4, 1],
        "run 1 wrote; 2 and 3 are thinned into 4: {list:#}"
    );
    let stands: Vec<u64> = runs
        .iter()
        .map(|r| r["stands_for"].as_u64().unwrap())
        .collect();
    assert_eq!(stands, [1, 3, 1], "{list:#}");

    let text = env.run(&["report", "list"]).await;
    assert!(
        text.stdout
            .contains("(stands for 3 no-op runs of its hour)"),
        "{}",
        text.show()
    );
    let kept = env.run(&["report", "4"]).await;
    assert!(
        kept.stdout
            .contains("This run stands for 3 runs of this hour that changed nothing"),
        "{}",
        kept.show()
    );
}
