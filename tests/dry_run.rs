//! `sync --dry-run` through the real binary: what it says it would write is what the real run
//! then writes, counted from the GHL emulator's request log, on a fresh account (notes, tasks and
//! business associations hang off contacts that do not exist yet) and on a synced one with
//! changes on both sides.

mod support;

use std::collections::BTreeMap;

use hotspot_ghl_sync::model::Kind;
use hotspot_ghl_sync::sandbox::SandboxOptions;
use hotspot_ghl_sync::sandbox::ghl::{DateRangeFormat, GhlOptions, GhlRequest};
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use hotspot_ghl_sync::store::Store;
use serde_json::Value;
use support::harness::TestEnv;

/// `[contacts]` and every kind after it: notes of every transaction, two onboarding tasks and a
/// paid follow-up, businesses by latest visit, appointments read.
const CONFIG: &str = r#"conflict = "hotspot_wins"
on_source_delete = "ignore"
on_target_delete = "respect"
max_delete_ratio = 0.5

[notes]
enabled = true

[tasks]
enabled = true

[[tasks.onboarding]]
id = "welcome"
title = "Welcome {name}"
due_in_days = 1

[[tasks.onboarding]]
id = "call"
title = "Call {name}"
due_in_days = 3

[tasks.paid_followup]
id = "paid-followup"
title = "Thank {name}"
due_in_days = 2

[businesses]
enabled = true
associate_by = "latest_visit"
batch_size = 7

[appointments]
enabled = true
"#;

async fn start(name: &str) -> TestEnv {
    start_with(name, GhlOptions::default()).await
}

/// Under one reading of what GHL leaves unsaid (an emulator knob).
async fn start_with(name: &str, ghl: GhlOptions) -> TestEnv {
    let opts = SandboxOptions {
        ghl,
        seed: SeedSpec {
            seed: 15,
            locations: 3,
            customers: 40,
            subscribers: 10,
            subscribers_also_customers: 4,
            transactions: 120,
        },
        ..SandboxOptions::default()
    };
    TestEnv::start(name, opts, CONFIG).await
}

/// The kind a GHL write belongs to, from its path alone.
fn kind_of(r: &GhlRequest) -> &'static str {
    let p = r.path.as_str();
    if p.starts_with("/businesses") || p.ends_with("/bulk/business") {
        "business"
    } else if p.ends_with("/notes") || p.contains("/notes/") {
        "note"
    } else if p.ends_with("/tasks") || p.contains("/tasks/") {
        "task"
    } else {
        "contact"
    }
}

/// GHL writes in the emulator's log, per kind.
fn logged_writes(env: &TestEnv) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in env.ghl_writes() {
        *out.entry(kind_of(&r).to_string()).or_default() += 1;
    }
    out
}

/// Every link of the state, with its status and `extra`, and the journal's pending creates.
fn state_links(env: &TestEnv) -> Vec<String> {
    if !env.state_path().exists() {
        return Vec::new();
    }
    let store = Store::open(env.state_path()).unwrap();
    let mut out: Vec<String> = [
        Kind::Contact,
        Kind::Note,
        Kind::Task,
        Kind::Business,
        Kind::Appointment,
    ]
    .into_iter()
    .flat_map(|k| store.links(k).unwrap())
    .map(|l| format!("{l:?}"))
    .collect();
    out.extend(
        store
            .pending_intents()
            .unwrap()
            .into_iter()
            .map(|i| format!("{i:?}")),
    );
    out
}

/// `sync --dry-run --format json`, which must send no write and change no link.
async fn dry_run(env: &TestEnv) -> Value {
    env.sandbox.ghl.clear_requests();
    let before = state_links(env);
    let out = env.sync(&["--dry-run", "--format", "json"]).await;
    assert_eq!(env.ghl_writes().len(), 0, "a dry run wrote");
    assert_eq!(
        state_links(env),
        before,
        "a dry run changed the state's links"
    );
    let dry: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    // Its report says the same later.
    let text = env.run(&["report", "latest"]).await;
    let would = format!("Would send {} write(s) to GHL:", dry["writes"]);
    assert!(text.stdout.contains(&would), "{}", text.stdout);
    dry
}

/// Per kind, the writes the dry run announced (kinds with none left out).
fn announced(dry: &Value) -> BTreeMap<String, u64> {
    dry["kinds"]
        .as_object()
        .expect("kinds")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Runs the dry run, then the real run, and checks the two agree; returns the dry run's JSON.
async fn dry_then_real(env: &TestEnv) -> Value {
    let dry = dry_run(env).await;
    let writes = dry["writes"].as_u64().expect("writes");
    let by_kind = announced(&dry);
    assert_eq!(by_kind.values().sum::<u64>(), writes, "{dry:#}");
    let reads = dry["reads"].as_u64().unwrap();
    assert_eq!(dry["requests"].as_u64().unwrap(), writes + reads);
    assert!(dry["seconds"].as_u64().is_some());

    env.sandbox.ghl.clear_requests();
    let real = env.sync(&["--format", "json"]).await;
    let real: Value = serde_json::from_str(&real.stdout).unwrap();
    let sent = logged_writes(env);
    eprintln!(
        "dry run: {writes} writes {}, {} requests estimated; real run: {sent:?}, {} requests",
        dry["writes_by_kind"],
        dry["requests"],
        env.sandbox.ghl.requests().len()
    );
    assert_eq!(
        sent.values().sum::<u64>(),
        writes,
        "the real run sent {sent:?}; the dry run announced {by_kind:?}"
    );
    assert_eq!(sent, by_kind, "per kind");
    // The requests estimated: the real run's writes and reads, give or take a look-up.
    let made = env.sandbox.ghl.requests().len() as u64;
    let estimated = dry["requests"].as_u64().unwrap();
    assert!(
        estimated.abs_diff(made) <= (made / 10).max(2),
        "estimated {estimated} requests, the real run made {made}"
    );
    // The real run's own count (from its API-call records) says the same.
    assert_eq!(real["writes"].as_u64(), Some(writes), "{}", real["report"]);
    assert_eq!(real["dry_run"], false);
    dry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_account_dry_run_counts_the_writes_the_real_run_sends() {
    let env = start("dry-fresh").await;
    // A few guests already in GHL: linked, and filled where they differ.
    env.sandbox.seed_existing_contacts(6);
    let dry = dry_then_real(&env).await;
    let plan = &dry["writes_by_kind"];
    // What the dry run used to leave out: the notes and tasks of the contacts it would create,
    // and their business associations.
    assert!(plan["contact"]["create"].as_u64().unwrap() > 30, "{dry:#}");
    assert!(plan["note"]["create"].as_u64().unwrap() > 50, "{dry:#}");
    assert!(plan["task"]["create"].as_u64().unwrap() > 60, "{dry:#}");
    assert!(plan["business"]["create"].as_u64().unwrap() == 3, "{dry:#}");
    assert!(
        plan["business"]["associate"].as_u64().unwrap() >= 3,
        "{dry:#}"
    );
    assert_eq!(dry["report"]["kinds"]["note"]["created"], 0);
    // The appointment lists of the linked contacts are reads it left out.
    assert!(dry["reads"].as_u64().unwrap() > 0);
}

/// Changes on both sides after a first sync: new guests, new visits (some at other locations),
/// a guest edited in HotspotSystem and a contact edited by a CRM user in GHL.
fn change_both_sides(env: &TestEnv) {
    env.sandbox.hotspot.with_data(|d| {
        d.add_customers(7, 5);
        d.add_transactions(8, 30);
        let c = d
            .customers
            .iter_mut()
            .rev()
            .nth(8)
            .expect("a guest to edit");
        c.city = Some("Renamedville".into());
    });
    env.sandbox.ghl.with_state(|s| {
        let id = s.contacts.keys().next().expect("a contact").clone();
        s.crm_edit(&id, |c| c.city = Some("Elsewhere".into()));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_account_dry_run_counts_the_writes_of_its_changes() {
    let env = start("dry-synced").await;
    env.sync(&[]).await;
    env.an_hour_passes();
    change_both_sides(&env);
    let dry = dry_then_real(&env).await;
    let plan = &dry["writes_by_kind"];
    assert!(plan["contact"]["create"].as_u64().unwrap() >= 5, "{dry:#}");
    assert!(plan["note"]["create"].as_u64().unwrap() > 0, "{dry:#}");
    assert!(plan["task"]["create"].as_u64().unwrap() >= 10, "{dry:#}");
    // Nothing changed after that: both say nothing.
    env.an_hour_passes();
    let again = dry_then_real(&env).await;
    assert_eq!(again["writes"], 0, "{again:#}");
}

/// The same agreement whatever GHL does where its reference is silent: the incremental contact
/// search's date filter (refused, or ignored), whether a CRM edit moves `dateUpdated`, and
/// whether the location allows duplicate contacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_agrees_with_the_real_run_under_every_reading_of_ghl() {
    let readings = [
        GhlOptions {
            date_range_format: DateRangeFormat::Neither,
            ..GhlOptions::default()
        },
        GhlOptions {
            date_range_format: DateRangeFormat::Ignored,
            allow_duplicates: true,
            ..GhlOptions::default()
        },
        GhlOptions {
            edits_keep_date_updated: true,
            ..GhlOptions::default()
        },
    ];
    for (i, ghl) in readings.into_iter().enumerate() {
        let env = start_with(&format!("dry-reading-{i}"), ghl).await;
        env.sandbox.seed_existing_contacts(4);
        let fresh = dry_then_real(&env).await;
        assert!(fresh["writes"].as_u64().unwrap() > 200, "{fresh:#}");
        env.an_hour_passes();
        change_both_sides(&env);
        let synced = dry_then_real(&env).await;
        assert!(synced["writes"].as_u64().unwrap() > 20, "{synced:#}");
    }
}

/// Pilot mode: the dry run counts only what `[filter]` lets through, and once the filter is
/// gone, the rest; each time the real run agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pilot_dry_run_counts_only_what_the_filter_lets_through() {
    let env = start("dry-pilot").await;
    let domain = env.sandbox.hotspot.with_data(|d| {
        let email = d.customers.iter().find_map(|c| c.email.clone());
        let email = email.expect("a guest with an email");
        email.rsplit('@').next().unwrap().to_lowercase()
    });
    env.write_config(&format!(
        "{CONFIG}\n[filter]\nemail_domains = [\"{domain}\"]\n"
    ));
    let pilot = dry_then_real(&env).await;
    assert!(pilot["writes"].as_u64().unwrap() > 0, "{pilot:#}");
    let kept_out = pilot["report"]["kept_out"]["guests"].as_u64();
    assert!(kept_out.is_some_and(|n| n > 0), "{pilot:#}");
    let piloted = pilot["writes_by_kind"]["contact"]["create"]
        .as_u64()
        .unwrap();

    env.write_config(CONFIG);
    env.an_hour_passes();
    let rest = dry_then_real(&env).await;
    let created = rest["writes_by_kind"]["contact"]["create"]
        .as_u64()
        .unwrap();
    assert!(created > piloted, "the rest: {rest:#}");
    assert!(rest["report"]["kept_out"].is_null(), "{rest:#}");
}
