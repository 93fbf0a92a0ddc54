//! Incremental reads of GHL contacts, end to end: a plain `sync` asks GHL only for the contacts
//! updated since the last pass, takes every other linked contact as unchanged, and lists every
//! contact only where it must (`--full`, a first pass, a date filter GHL refused).

mod support;

use chrono::{Duration, Utc};
use hotspot_ghl_sync::sandbox::SandboxOptions;
use hotspot_ghl_sync::sandbox::ghl::{DateRangeFormat, GhlRequest};
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use serde_json::Value;
use support::harness::TestEnv;

const CONTACTS: &str = r#"conflict = "hotspot_wins"
on_source_delete = "ignore"
on_target_delete = "respect"
max_delete_ratio = 0.1
"#;

fn opts(format: DateRangeFormat, keep_date: bool) -> SandboxOptions {
    let mut o = SandboxOptions {
        seed: SeedSpec {
            seed: 13,
            locations: 2,
            customers: 30,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 0,
        },
        ..SandboxOptions::default()
    };
    o.ghl.date_range_format = format;
    o.ghl.edits_keep_date_updated = keep_date;
    o
}

/// Two syncs (the first creates every contact, the second lists them and sets the cursor),
/// then every contact's `dateUpdated` moved an hour back: as if the next pass ran an hour
/// later with nothing touched in between (outside the overlap margin).
async fn synced_an_hour_ago(name: &str, format: DateRangeFormat, keep_date: bool) -> TestEnv {
    let env = TestEnv::start(name, opts(format, keep_date), CONTACTS).await;
    env.sync(&[]).await;
    env.sync(&[]).await;
    env.an_hour_passes();
    env.sandbox.ghl.clear_requests();
    env
}

fn searches(env: &TestEnv) -> Vec<GhlRequest> {
    env.sandbox
        .ghl
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/contacts/search"))
        .collect()
}

fn bounded(r: &GhlRequest) -> bool {
    r.body
        .as_ref()
        .is_some_and(|b| b["filters"].to_string().contains("dateUpdated"))
}

fn counts(report: &Value) -> &Value {
    &report["kinds"]["contact"]
}

/// GHL contact id by the HotspotSystem id in its anchor field.
fn contact_of(env: &TestEnv, customer: &str) -> String {
    env.sandbox.ghl.with_state(|s| {
        let field = s.custom_field(support::ANCHOR).unwrap().id.clone();
        s.contacts
            .values()
            .find(|c| {
                c.custom_fields
                    .iter()
                    .any(|(id, v)| *id == field && v.as_str() == Some(customer))
            })
            .map(|c| c.id.clone())
            .expect("the customer's contact")
    })
}

/// A synced customer with a name and a city to change.
fn some_customer(env: &TestEnv) -> String {
    env.sandbox.hotspot.with_data(|d| {
        d.customers
            .iter()
            .rev()
            .find(|c| c.name.is_some() && c.email.is_some())
            .map(|c| c.id.clone())
            .unwrap()
    })
}

fn contact_count(env: &TestEnv) -> usize {
    env.sandbox.ghl.with_state(|s| s.contacts.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_change_sync_sends_one_bounded_search_and_writes_nothing() {
    let env = synced_an_hour_ago("inc-nochange", DateRangeFormat::Both, false).await;
    let linked = contact_count(&env);
    env.sync(&[]).await;
    let s = searches(&env);
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(bounded(&s[0]), "a dateUpdated bound: {:?}", s[0].body);
    assert!(env.ghl_writes().is_empty(), "{:?}", env.ghl_writes());
    let gets = env
        .sandbox
        .ghl
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/contacts/"))
        .count();
    assert_eq!(gets, 0, "no contact fetched by id");
    let report = env.report_json().await;
    assert_eq!(counts(&report)["unchanged"], linked as u64, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_edit_is_seen_by_a_plain_sync_when_it_moves_date_updated() {
    let env = synced_an_hour_ago("inc-edit", DateRangeFormat::Both, false).await;
    let id = contact_of(&env, &some_customer(&env));
    env.sandbox.ghl.with_state(|s| {
        s.crm_edit(&id, |c| c.city = Some("Typed By Sales".into()));
    });
    env.sync(&[]).await;
    let s = searches(&env);
    assert!(
        !s.is_empty() && s.iter().all(bounded),
        "read through the dateUpdated bound alone: {s:?}"
    );
    let report = env.report_json().await;
    assert_eq!(counts(&report)["drift"], 1, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_edit_that_keeps_date_updated_is_caught_by_the_full_sync() {
    let env = synced_an_hour_ago("inc-keepdate", DateRangeFormat::Both, true).await;
    let id = contact_of(&env, &some_customer(&env));
    env.sandbox.ghl.with_state(|s| {
        s.crm_edit(&id, |c| c.city = Some("Typed By Sales".into()));
    });
    env.sync(&[]).await;
    let report = env.report_json().await;
    assert_eq!(
        counts(&report)["drift"],
        0,
        "the plain sync reads only contacts updated since: {report:#}"
    );
    env.sync(&["--full"]).await;
    let report = env.report_json().await;
    assert_eq!(counts(&report)["drift"], 1, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_date_form_gives_one_update_and_no_duplicate() {
    for format in [
        DateRangeFormat::Iso,
        DateRangeFormat::Millis,
        DateRangeFormat::Both,
        DateRangeFormat::Neither,
        DateRangeFormat::Ignored,
    ] {
        let env = synced_an_hour_ago("inc-forms", format, false).await;
        let before = contact_count(&env);
        let customer = some_customer(&env);
        let id = contact_of(&env, &customer);
        env.sandbox.hotspot.with_data(|d| {
            d.customer_mut(&customer).unwrap().city = Some("Moved City".into());
        });
        env.sync(&[]).await;
        let report = env.report_json().await;
        let c = counts(&report);
        assert_eq!(
            (c["updated"].as_u64(), c["created"].as_u64()),
            (Some(1), Some(0)),
            "{format:?}: {report:#}"
        );
        assert_eq!(contact_count(&env), before, "{format:?}: no duplicate");
        let city = env.sandbox.ghl.with_state(|s| s.contacts[&id].city.clone());
        assert_eq!(city.as_deref(), Some("Moved City"), "{format:?}");

        let s = searches(&env);
        let answered: Vec<&GhlRequest> = s.iter().filter(|r| r.status == 200).collect();
        match format {
            DateRangeFormat::Neither => {
                assert!(
                    s.iter().filter(|r| r.status == 422 && bounded(r)).count() == 2,
                    "both forms asked and refused: {s:?}"
                );
                assert!(
                    answered.iter().all(|r| !bounded(r)),
                    "then every contact is listed: {s:?}"
                );
            }
            _ => assert!(
                !answered.is_empty() && answered.iter().all(|r| bounded(r)),
                "{format:?}: the bound was taken: {s:?}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_guest_matching_an_old_unchanged_contact_is_linked_not_duplicated() {
    let env = TestEnv::start("inc-newguest", opts(DateRangeFormat::Both, false), CONTACTS).await;
    let old = env.sandbox.ghl.with_state(|s| {
        let mut c = hotspot_ghl_sync::sandbox::ghl::Contact::new(String::new(), Utc::now());
        c.email = Some("late.guest@example.org".into());
        c.first_name = Some("Late".into());
        s.insert_contact(c)
    });
    env.sync(&[]).await;
    env.sync(&[]).await;
    env.sandbox.ghl.with_state(|s| {
        for c in s.contacts.values_mut() {
            c.date_updated -= Duration::hours(1);
            c.date_added -= Duration::hours(1);
        }
    });
    let guest = env.sandbox.hotspot.with_data(|d| {
        let id = d.add_customers(7, 1).remove(0);
        d.customer_mut(&id).unwrap().email = Some("late.guest@example.org".into());
        id
    });
    let before = contact_count(&env);
    env.sandbox.ghl.clear_requests();
    env.sync(&[]).await;
    assert_eq!(contact_count(&env), before, "no duplicate");
    let report = env.report_json().await;
    assert_eq!(
        (
            counts(&report)["adopted"].as_u64(),
            counts(&report)["created"].as_u64()
        ),
        (Some(1), Some(0)),
        "{report:#}"
    );
    assert_eq!(contact_of(&env, &guest), old, "linked to the old contact");
    let fetched = env
        .sandbox
        .ghl
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path.ends_with(&format!("/contacts/{old}")));
    assert!(
        fetched,
        "found through the stored identity, not a full listing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_deleted_in_ghl_is_inferred_deleted_only_by_a_full_sync() {
    let env = synced_an_hour_ago("inc-deleted", DateRangeFormat::Both, false).await;
    let id = contact_of(&env, &some_customer(&env));
    let linked = contact_count(&env) as u64;
    env.sandbox.ghl.with_state(|s| s.delete_contact(&id));
    env.sync(&[]).await;
    let report = env.report_json().await;
    assert_eq!(
        counts(&report)["unchanged"],
        linked,
        "absent from an incremental answer is not deleted: {report:#}"
    );
    let skipped = counts(&report)["skipped"].as_u64().unwrap();
    env.sync(&["--full"]).await;
    let report = env.report_json().await;
    assert_eq!(
        counts(&report)["skipped"].as_u64(),
        Some(skipped + 1),
        "the full listing infers the deletion (on_target_delete = respect): {report:#}"
    );
    assert_eq!(counts(&report)["unchanged"], linked - 1, "{report:#}");
    assert_eq!(counts(&report)["created"], 0, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_changed_in_hotspot_whose_contact_is_unchanged_gets_its_update() {
    let env = synced_an_hour_ago("inc-fetch", DateRangeFormat::Both, false).await;
    let customer = some_customer(&env);
    let id = contact_of(&env, &customer);
    env.sandbox.hotspot.with_data(|d| {
        d.customer_mut(&customer).unwrap().city = Some("Moved City".into());
    });
    env.sync(&[]).await;
    let requests = env.sandbox.ghl.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with(&format!("/contacts/{id}"))),
        "the contact is fetched by id for the merge: {requests:?}"
    );
    let writes = env.ghl_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        writes[0].body,
        Some(serde_json::json!({"city": "Moved City"}))
    );
}
