//! Diagnostics (issue 15): `explain` a guest and list a run's API `calls`, through the real
//! binary after a sync against the emulators; every answer is checked against what the
//! emulators themselves hold or saw.

mod support;

use hotspot_ghl_sync::sandbox::SandboxOptions;
use hotspot_ghl_sync::sandbox::faults::{ErrorAnswer, FaultKnobs};
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use serde_json::Value;
use support::harness::TestEnv;

const CONTACTS: &str = "conflict = \"hotspot_wins\"\n";

fn opts() -> SandboxOptions {
    SandboxOptions {
        seed: SeedSpec {
            seed: 15,
            locations: 2,
            customers: 30,
            subscribers: 6,
            subscribers_also_customers: 2,
            transactions: 80,
        },
        ..SandboxOptions::default()
    }
}

fn json(out: &support::Out) -> Value {
    assert_eq!(out.code, 0, "{}", out.show());
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.show()))
}

/// A guest is found by its HotspotSystem id, its GHL id, its email in any case and its phone as
/// HotspotSystem wrote it; each answer names the same link, the create that made it, and as
/// many notes as GHL holds for that contact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_finds_a_guest_by_every_key_with_its_history_notes_and_tasks() {
    let env = TestEnv::start("explain", opts(), CONTACTS).await;
    env.sync(&[]).await;

    let customers = env.sandbox.hotspot.with_data(|d| d.customers.clone());
    // A guest with an email, a phone and at least one note in GHL.
    let (guest, target, notes) = customers
        .iter()
        .filter(|c| c.email.is_some() && c.phone.is_some())
        .find_map(|c| {
            let found = json_sync(&env, &c.id);
            let target = found["contacts"][0]["target_id"].as_str()?.to_string();
            let notes = env
                .sandbox
                .ghl
                .with_state(|s| s.notes.values().filter(|n| n.contact_id == target).count());
            (notes > 0).then(|| (c.clone(), target, notes))
        })
        .expect("a guest with email, phone and notes");

    let by_id = json(&env.run(&["explain", &guest.id, "--format", "json"]).await);
    assert_eq!(by_id["contacts"][0]["source_id"], guest.id.as_str());
    assert_eq!(by_id["contacts"][0]["status"], "active");
    assert_eq!(by_id["notes"].as_array().unwrap().len(), notes);
    let history = by_id["history"].as_array().unwrap();
    assert!(
        history.iter().any(|h| h["kind"] == "contact"
            && h["action"] == "create"
            && h["outcome"] == "applied"
            && h["run_id"] == 1),
        "{by_id:#}"
    );
    assert!(!by_id["tasks"].as_array().unwrap().is_empty(), "{by_id:#}");

    let email = guest.email.clone().unwrap().to_uppercase();
    let phone = guest.phone.clone().unwrap();
    for key in [target.as_str(), email.as_str(), phone.as_str()] {
        let other = json(&env.run(&["explain", key, "--format", "json"]).await);
        assert_eq!(other["contacts"], by_id["contacts"], "explain {key}");
        assert_eq!(other["notes"], by_id["notes"], "explain {key}");
    }

    let text = env.run(&["explain", &guest.id]).await;
    assert_eq!(text.code, 0, "{}", text.show());
    assert!(
        text.stdout
            .contains(&format!("Guest {} -> GHL contact {target}", guest.id)),
        "{}",
        text.show()
    );
    assert!(
        text.stdout.contains("run #1 ") && text.stdout.contains("create applied"),
        "{}",
        text.show()
    );
    assert!(
        text.stdout.contains(&format!("Notes ({notes}):")),
        "{}",
        text.show()
    );

    let unknown = env.run(&["explain", "nobody@nowhere.example"]).await;
    assert_eq!(unknown.code, 6, "{}", unknown.show());
    assert!(
        unknown.stderr.contains("no synced guest matches"),
        "{}",
        unknown.show()
    );
    assert!(unknown.stdout.is_empty(), "{}", unknown.show());
}

/// `explain` reads the state synchronously in a blocking child; a helper for `find_map`.
fn json_sync(env: &TestEnv, key: &str) -> Value {
    let out = std::process::Command::new(support::BIN)
        .arg("--config")
        .arg(&env.config)
        .args(["explain", key, "--format", "json"])
        .env_remove("RUST_LOG")
        .output()
        .expect("binary runs");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// `calls` lists each attempt the run made: as many as GHL and HotspotSystem answered, the
/// failed ones under `--failed` with their class, and filters by status and path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_lists_each_attempt_and_filters_failures_status_and_path() {
    let env = TestEnv::start("calls", opts(), CONTACTS).await;
    env.sandbox.ghl.set_faults(FaultKnobs {
        p500: 0.15,
        ..FaultKnobs::default()
    });
    let first = env.run(&["sync"]).await;
    assert!(first.code == 0 || first.code == 1, "{}", first.show());
    let ghl_500s = env
        .sandbox
        .ghl
        .requests()
        .iter()
        .filter(|r| r.status == 500)
        .count();
    assert!(ghl_500s > 0, "the fault knob injected no 500");

    let all = json(
        &env.run(&["calls", "--format", "json", "--limit", "100000"])
            .await,
    );
    let ghl_calls = all["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["api"] == "ghl")
        .count();
    assert_eq!(ghl_calls, env.sandbox.ghl.requests().len(), "{all:#}");
    assert_eq!(
        all["total"].as_u64().unwrap() as usize,
        all["calls"].as_array().unwrap().len()
    );

    let failed = json(
        &env.run(&["calls", "latest", "--failed", "--format", "json"])
            .await,
    );
    let failed_calls = failed["calls"].as_array().unwrap();
    assert!(
        failed_calls.iter().all(|c| !c["error_class"].is_null()),
        "{failed:#}"
    );
    let failed_500 = failed_calls
        .iter()
        .filter(|c| c["api"] == "ghl" && c["status"] == 500)
        .count();
    assert_eq!(failed_500, ghl_500s, "{failed:#}");
    // Each failed attempt keeps the server's message.
    assert!(
        failed_calls
            .iter()
            .filter(|c| c["api"] == "ghl" && c["status"] == 500)
            .all(|c| c["message"] == "Internal Server Error"),
        "{failed:#}"
    );
    assert!(failed_calls.iter().any(|c| c["error_class"] == "transient"));

    let status = json(
        &env.run(&["calls", "1", "--status", "500", "--format", "json"])
            .await,
    );
    assert_eq!(status["total"].as_u64().unwrap() as usize, ghl_500s);

    let notes = json(
        &env.run(&["calls", "--path", "/notes", "--format", "json"])
            .await,
    );
    let notes = notes["calls"].as_array().unwrap();
    assert!(!notes.is_empty());
    assert!(
        notes
            .iter()
            .all(|c| c["path"].as_str().unwrap().contains("/notes"))
    );

    let limited = env.run(&["calls", "--limit", "3"]).await;
    assert_eq!(limited.code, 0, "{}", limited.show());
    assert!(
        limited.stdout.contains("the first 3 shown"),
        "{}",
        limited.show()
    );
    assert_eq!(
        limited
            .stdout
            .lines()
            .filter(|l| l.contains(" ms "))
            .count(),
        3,
        "{}",
        limited.show()
    );

    let unknown = env.run(&["calls", "999"]).await;
    assert_eq!(unknown.code, 5, "{}", unknown.show());
    assert!(
        unknown
            .stderr
            .contains("run 999 is not in the state database"),
        "{}",
        unknown.show()
    );
}

/// A failed call keeps the server's message, escaped and with the guest's email masked (a server
/// may quote what it refused); `calls` shows it under the attempt, and the JSON has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_keep_the_error_message_masked() {
    let env = TestEnv::start("calls-message", opts(), CONTACTS).await;
    env.sandbox.ghl.set_faults(FaultKnobs {
        error_answer: Some(ErrorAnswer {
            status: 422,
            message: "email anna.smith@example.com is not allowed\u{1b}[2J here".into(),
            only_writes: true,
        }),
        ..FaultKnobs::default()
    });
    let out = env.run(&["sync"]).await;
    assert_eq!(out.code, 1, "{}", out.show());
    let failed = json(
        &env.run(&["calls", "--failed", "--status", "422", "--format", "json"])
            .await,
    );
    let calls = failed["calls"].as_array().unwrap();
    assert!(!calls.is_empty(), "{failed:#}");
    for c in calls {
        let m = c["message"].as_str().unwrap_or_else(|| panic!("{c}"));
        assert!(
            m.starts_with("email ") && m.contains("is not allowed"),
            "{m}"
        );
        assert!(!m.contains("anna.smith@example.com"), "email kept: {m}");
        assert!(!m.contains('\u{1b}'), "escape code kept: {m:?}");
    }
    let text = env.run(&["calls", "--failed", "--limit", "2"]).await;
    assert_eq!(text.code, 0, "{}", text.show());
    assert_eq!(
        text.stdout.matches("is not allowed").count(),
        2,
        "{}",
        text.show()
    );
    assert!(
        !text.stdout.contains("anna.smith@example.com"),
        "{}",
        text.show()
    );
}
