//! Contacts reconcile end to end (issue 3): the real binary against the emulators.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use hotspot_ghl_sync::model::PhoneNormalizer;
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use hotspot_ghl_sync::sandbox::{CRM_OWN_TAG, SandboxOptions};
use serde_json::Value;
use support::harness::TestEnv;

const DEFAULT_CONTACTS: &str = r#"conflict = "hotspot_wins"
on_source_delete = "ignore"
on_target_delete = "respect"
max_delete_ratio = 0.1
"#;

fn opts(customers: usize, subscribers: usize, also: usize) -> SandboxOptions {
    SandboxOptions {
        seed: SeedSpec {
            seed: 11,
            locations: 3,
            customers,
            subscribers,
            subscribers_also_customers: also,
            transactions: 0,
        },
        ..SandboxOptions::default()
    }
}

fn kind_counts(report: &Value) -> &Value {
    &report["kinds"]["contact"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_adopts_then_nothing_then_only_what_changed() {
    let env = TestEnv::start("first", opts(500, 100, 60), DEFAULT_CONTACTS).await;
    let existing = env.sandbox.seed_existing_contacts(50);
    assert_eq!(existing.len(), 50);
    let eligible = support::census::eligible_people(&env.sandbox.hotspot);

    // First sync: every eligible person exactly once, the 50 adopted, their own tag kept.
    let first = env.sync(&[]).await;
    assert!(
        !first.stdout.contains("No write was sent"),
        "{}",
        first.stdout
    );
    let report = env.report_json().await;
    let ghl_posts = env
        .sandbox
        .ghl
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && !r.path.ends_with("/search"))
        .count();
    assert_eq!(
        report["api"]["ghl"]["writes"].as_u64().unwrap(),
        (ghl_posts + 50) as u64,
        "writes = creates + tag adds + the 50 PUTs"
    );
    let counts = kind_counts(&report);
    assert_eq!(counts["adopted"], 50, "{report:#}");
    assert_eq!(
        counts["created"].as_u64().unwrap() + 50,
        eligible as u64,
        "{report:#}"
    );
    let total = env.sandbox.ghl.with_state(|s| s.contacts.len());
    assert_eq!(total, eligible, "one GHL contact per eligible person");
    let anchors = env.anchors();
    let unique: BTreeSet<&String> = anchors.iter().collect();
    assert_eq!(
        anchors.len(),
        eligible,
        "every contact carries its HotspotSystem id"
    );
    assert_eq!(
        unique.len(),
        anchors.len(),
        "no HotspotSystem id on two contacts"
    );
    let emails: Vec<String> = env.sandbox.ghl.with_state(|s| {
        s.contacts
            .values()
            .filter_map(|c| c.email.as_deref().map(str::to_lowercase))
            .collect()
    });
    assert_eq!(
        emails.iter().collect::<BTreeSet<_>>().len(),
        emails.len(),
        "no email on two contacts"
    );
    env.sandbox.ghl.with_state(|s| {
        for (_, ghl_id) in &existing {
            let c = &s.contacts[ghl_id];
            assert!(
                c.tags.iter().any(|t| t == CRM_OWN_TAG),
                "own tag kept on {ghl_id}: {:?}",
                c.tags
            );
            assert!(
                c.tags.iter().any(|t| t == "hotspotsystem"),
                "sync tag added on {ghl_id}"
            );
        }
    });

    // Second sync with nothing changed: zero writes, and the report says so.
    env.sandbox.ghl.clear_requests();
    let out = env.sync(&[]).await;
    assert!(
        env.ghl_writes().is_empty(),
        "writes on a no-change run: {:?}",
        env.ghl_writes()
    );
    assert!(
        out.stdout.contains("No write was sent to GHL"),
        "{}",
        out.stdout
    );
    let report = env.report_json().await;
    assert_eq!(kind_counts(&report)["updated"], 0);
    assert_eq!(kind_counts(&report)["created"], 0);

    // Ten customers change: exactly those ten contacts are written, and only the changed fields.
    let changed: Vec<String> = env.sandbox.hotspot.with_data(|d| {
        d.customers
            .iter_mut()
            .skip(100)
            .filter(|c| c.email.is_some())
            .take(10)
            .map(|c| {
                c.city = Some(format!("Newtown {}", c.id));
                c.id.clone()
            })
            .collect()
    });
    env.sandbox.ghl.clear_requests();
    env.sync(&[]).await;
    let writes = env.ghl_writes();
    assert_eq!(
        writes.len(),
        10,
        "one write per changed customer: {writes:?}"
    );
    let by_anchor = contact_ids_by_anchor(&env);
    let written: BTreeSet<String> = writes
        .iter()
        .map(|w| {
            assert_eq!(w.method, "PUT");
            let body = w.body.as_ref().unwrap().as_object().unwrap();
            assert_eq!(
                body.keys().collect::<Vec<_>>(),
                vec!["city"],
                "only the changed field: {body:?}"
            );
            w.path.trim_start_matches("/contacts/").to_string()
        })
        .collect();
    let expected: BTreeSet<String> = changed.iter().map(|id| by_anchor[id].clone()).collect();
    assert_eq!(written, expected);
    assert_eq!(kind_counts(&env.report_json().await)["updated"], 10);
}

fn contact_ids_by_anchor(env: &TestEnv) -> BTreeMap<String, String> {
    env.sandbox.ghl.with_state(|s| {
        let field = s
            .custom_field("contact.hotspot_customer_id")
            .map(|f| f.id.clone())
            .unwrap();
        s.contacts
            .values()
            .filter_map(|c| {
                let v = c
                    .custom_fields
                    .iter()
                    .find(|(id, _)| *id == field)?
                    .1
                    .as_str()?
                    .to_string();
                Some((v, c.id.clone()))
            })
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_edits_are_kept_as_drift_and_conflicts_follow_the_policy() {
    let env = TestEnv::start("drift", opts(40, 0, 0), DEFAULT_CONTACTS).await;
    env.sync(&[]).await;
    let ids = contact_ids_by_anchor(&env);
    let customers: Vec<String> = env.sandbox.hotspot.with_data(|d| {
        d.customers
            .iter()
            .skip(20)
            .filter(|c| ids.contains_key(&c.id) && c.name.is_some())
            .take(3)
            .map(|c| c.id.clone())
            .collect()
    });
    let (drifted, conflicted, both) = (&customers[0], &customers[1], &customers[2]);

    // A sales rep edits the city of one contact (HotspotSystem unchanged) …
    env.sandbox.ghl.with_state(|s| {
        let c = s.contacts.get_mut(&ids[drifted]).unwrap();
        c.city = Some("Typed By Sales".into());
        c.touch(chrono::Utc::now());
        // … and of another whose city also changes in HotspotSystem: a conflict.
        let c = s.contacts.get_mut(&ids[conflicted]).unwrap();
        c.city = Some("Sales City".into());
        c.touch(chrono::Utc::now());
        // … and the first name of a third whose city changes in HotspotSystem: different
        // fields, so no conflict: each side's change stands (this needs the per-field base).
        let c = s.contacts.get_mut(&ids[both]).unwrap();
        c.first_name = Some("Named-By-Sales".into());
        c.touch(chrono::Utc::now());
    });
    env.sandbox.hotspot.with_data(|d| {
        d.customer_mut(conflicted).unwrap().city = Some("Hotspot City".into());
        d.customer_mut(both).unwrap().city = Some("Moved City".into());
    });
    env.sandbox.ghl.clear_requests();
    env.sync(&[]).await;

    let (kept, won) = env.sandbox.ghl.with_state(|s| {
        (
            s.contacts[&ids[drifted]].city.clone(),
            s.contacts[&ids[conflicted]].city.clone(),
        )
    });
    assert_eq!(
        kept.as_deref(),
        Some("Typed By Sales"),
        "the CRM edit survives under drift = keep"
    );
    assert_eq!(won.as_deref(), Some("Hotspot City"), "hotspot_wins");
    let (first_name, city) = env.sandbox.ghl.with_state(|s| {
        let c = &s.contacts[&ids[both]];
        (c.first_name.clone(), c.city.clone())
    });
    assert_eq!(
        first_name.as_deref(),
        Some("Named-By-Sales"),
        "the CRM's edit stands"
    );
    assert_eq!(
        city.as_deref(),
        Some("Moved City"),
        "HotspotSystem's change is written"
    );
    let writes = env.ghl_writes();
    assert_eq!(
        writes.len(),
        2,
        "only the conflict and the other side's city are written: {writes:?}"
    );
    let put = writes
        .iter()
        .find(|r| r.path.ends_with(ids[both].as_str()))
        .expect("a PUT of the third contact");
    assert_eq!(put.body, Some(serde_json::json!({"city": "Moved City"})));

    let report = env.report_json().await;
    // Drift: the city kept on one contact, the first name kept on the third.
    assert_eq!(kind_counts(&report)["drift"], 2, "{report:#}");
    assert_eq!(kind_counts(&report)["conflicts"], 1, "{report:#}");
    let items = report["items"].as_array().unwrap();
    let drift = items
        .iter()
        .find(|i| i["outcome"] == "drift")
        .expect("drift item");
    assert_eq!(drift["source_id"], drifted.as_str());
    let conflict = items
        .iter()
        .find(|i| i["outcome"] == "conflict")
        .expect("conflict item");
    let text = conflict.to_string();
    assert!(
        text.contains("Sales City") && text.contains("Hotspot City"),
        "both values reported: {text}"
    );

    // Nothing more to do afterwards.
    env.sandbox.ghl.clear_requests();
    env.sync(&[]).await;
    assert!(env.ghl_writes().is_empty());

    let status = env.run(&["status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let contact_line = status
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("contact"))
        .unwrap_or("");
    assert!(
        contact_line.split_whitespace().nth(1) == Some(ids.len().to_string().as_str()),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("Parked conflicts: 0"),
        "{}",
        status.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_in_ghl_is_not_recreated_and_mass_source_deletion_is_withheld() {
    let contacts = r#"conflict = "hotspot_wins"
on_source_delete = "delete"
on_target_delete = "respect"
max_delete_ratio = 0.1
"#;
    let env = TestEnv::start("deletes", opts(60, 0, 0), contacts).await;
    env.sync(&[]).await;
    let before = env.sandbox.ghl.with_state(|s| s.contacts.len());

    // A CRM user deletes one contact: the next run respects it.
    let victim = env
        .sandbox
        .ghl
        .with_state(|s| s.contacts.keys().next().cloned().unwrap());
    env.sandbox.ghl.with_state(|s| s.delete_contact(&victim));
    env.sync(&[]).await;
    assert_eq!(
        env.sandbox.ghl.with_state(|s| s.contacts.len()),
        before - 1,
        "not recreated"
    );
    env.sync(&[]).await;
    assert_eq!(
        env.sandbox.ghl.with_state(|s| s.contacts.len()),
        before - 1,
        "still not recreated"
    );

    // Half the customers disappear from HotspotSystem: the guard withholds every delete.
    env.sandbox.hotspot.with_data(|d| {
        let keep = d.customers.len() / 2;
        d.customers.truncate(keep);
    });
    env.sandbox.ghl.clear_requests();
    env.sync(&[]).await;
    assert!(
        env.ghl_writes().iter().all(|w| w.method != "DELETE"),
        "nothing deleted"
    );
    assert_eq!(env.sandbox.ghl.with_state(|s| s.contacts.len()), before - 1);
    let out = env.run(&["report"]).await;
    assert!(
        out.stdout
            .contains("above max_delete_ratio 0.1: deletions withheld"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_sends_nothing() {
    let env = TestEnv::start("dry", opts(30, 5, 2), DEFAULT_CONTACTS).await;
    env.sandbox.ghl.clear_requests();
    let out = env.sync(&["--dry-run"]).await;
    assert!(env.ghl_writes().is_empty(), "{:?}", env.ghl_writes());
    assert!(out.stdout.contains("create contact for"), "{}", out.stdout);
    assert!(out.stdout.contains("Dry run"), "{}", out.stdout);
    assert_eq!(env.sandbox.ghl.with_state(|s| s.contacts.len()), 0);
    // The real run afterwards creates what the dry run announced.
    env.sync(&[]).await;
    assert!(env.sandbox.ghl.with_state(|s| s.contacts.len()) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_with_no_setup() {
    let out = tokio::process::Command::new(support::harness::BIN)
        .arg("demo")
        .env_remove("HGS_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("adopted"), "{stdout}");
    assert!(stdout.contains("Run 1 (full): succeeded"), "{stdout}");
    // The commands it suggests name this binary as it was run, not a name that may not be on
    // PATH (after `cargo run` it is not).
    let cwd = std::env::current_dir().unwrap();
    let bin = std::path::Path::new(support::harness::BIN);
    let bin = bin.strip_prefix(&cwd).unwrap_or(bin);
    assert!(
        stdout.contains(&format!(
            "  {} --config config/demo.toml serve",
            bin.display()
        )),
        "{stdout}"
    );
}

#[test]
fn phone_formats_of_the_seed_normalise_to_e164() {
    let p = PhoneNormalizer::new("US").unwrap();
    assert_eq!(
        p.normalize(Some("+1 (555) 010-2000")).0.as_deref(),
        Some("+15550102000")
    );
    assert_eq!(
        p.normalize(Some("0044 20 7946 0958")).0.as_deref(),
        Some("+442079460958")
    );
}

/// `[contacts.fields]` naming a custom field by key (here without the `contact.` prefix).
const SOCIAL_FIELD: &str = r#"conflict = "hotspot_wins"
on_source_delete = "ignore"
on_target_delete = "respect"

[contacts.fields]
social_network = "customField:social_network"
"#;

fn with_social_field(by_id_only: bool) -> SandboxOptions {
    let mut o = opts(60, 0, 0);
    o.ghl.custom_fields.push((
        "contact.social_network".into(),
        "Social network".into(),
        "TEXT".into(),
    ));
    o.ghl.custom_fields_by_id_only = by_id_only;
    o
}

/// The spec's contact write schemas disagree on custom fields (`TextField` requires `id`;
/// `customFieldsInputStringSchema` takes "either `id` or `key`"). Keys are resolved to ids at
/// the start, every write goes by id, and values read back by id compare with the configured
/// key: under both readings the values land and a second run writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_fields_are_written_by_id_and_read_back_by_id() {
    for by_id_only in [false, true] {
        let env = TestEnv::start("cf-by-id", with_social_field(by_id_only), SOCIAL_FIELD).await;
        env.sync(&[]).await;
        let (ids, socials) = env.sandbox.ghl.with_state(|s| {
            let ids: BTreeSet<String> = s.custom_fields.iter().map(|f| f.id.clone()).collect();
            let social = s.custom_field("contact.social_network").unwrap().id.clone();
            let n = s
                .contacts
                .values()
                .filter(|c| c.custom_fields.iter().any(|(id, _)| *id == social))
                .count();
            (ids, n)
        });
        let expected = env.sandbox.hotspot.with_data(|d| {
            d.customers
                .iter()
                .filter(|c| c.social_network.is_some())
                .count()
        });
        assert!(expected > 0, "the seed has social customers");
        assert!(
            socials > 0 && socials <= expected,
            "{by_id_only}: {socials} contacts carry the social network"
        );
        for w in env.ghl_writes() {
            for item in w
                .body
                .as_ref()
                .and_then(|b| b["customFields"].as_array())
                .into_iter()
                .flatten()
            {
                let id = item["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a write by key: {item}"));
                assert!(ids.contains(id), "{id} is not a custom field id");
                assert!(item.get("key").is_none(), "{item}");
            }
        }
        env.sandbox.ghl.clear_requests();
        env.sync(&[]).await;
        assert!(
            env.ghl_writes().is_empty(),
            "{by_id_only}: values read back by id differ from the configured key's: {:?}",
            env.ghl_writes()
        );
    }
}

/// A configured custom field key the location does not have stops the run before any write,
/// exit 2, naming the key and where it is configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_custom_field_key_stops_the_run_before_any_write() {
    for by_id_only in [false, true] {
        let mut o = opts(20, 0, 0);
        o.ghl.custom_fields_by_id_only = by_id_only;
        let env = TestEnv::start(
            "cf-unknown",
            o,
            &SOCIAL_FIELD.replace("customField:social_network", "customField:contact.no_such"),
        )
        .await;
        let out = env.run(&["sync"]).await;
        assert_eq!(out.code, 2, "{by_id_only}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("contact.no_such")
                && out.stderr.contains("contacts.fields.social_network"),
            "{}",
            out.stderr
        );
        assert!(env.ghl_writes().is_empty(), "{:?}", env.ghl_writes());
    }
}
