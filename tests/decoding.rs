//! Per-record decoding (issue 12, point 2): a value that cannot be read never fails a page. The
//! field is taken as empty and counted per field in the report; the record syncs if it still
//! can; a record that cannot be used is named in the report and the run does not exit 0.
//! Every test runs the REAL binary against the emulators, with each knob off and on.

mod support;

use support::reliability as reliab;

use std::collections::BTreeSet;

use hotspot_ghl_sync::sandbox::SandboxOptions;
use hotspot_ghl_sync::sandbox::hotspot::{OddValues, Oddity};
use hotspot_ghl_sync::sandbox::seed::{HotspotData, SeedSpec};
use reliab::{Env, Out, Setup};
use serde_json::Value;

/// An account of `customers` guests (no subscribers) over 2 locations with `transactions`
/// transactions, served with `odd` values.
fn account(customers: usize, transactions: usize, odd: OddValues, lenient: bool) -> SandboxOptions {
    let mut o = SandboxOptions {
        seed: SeedSpec {
            seed: 12,
            locations: 2,
            customers,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions,
        },
        ..SandboxOptions::default()
    };
    o.ghl.rate_limit = 100_000;
    o.hotspot.odd_values = odd;
    o.hotspot.lenient_types = lenient;
    o
}

/// How many records of each list carry `oddity`, keyed as the report keys a date field.
fn odd_dates(d: &HotspotData, oddity: Oddity) -> Vec<(String, u64)> {
    let count = |n: usize| (0..n).filter(|i| Oddity::at(*i) == Some(oddity)).count() as u64;
    [
        ("customers.registered_at", count(d.customers.len())),
        (
            "transactions/mac.action_date_gmt",
            count(d.mac_transactions.len()),
        ),
        (
            "transactions/voucher.action_date_gmt",
            count(d.voucher_transactions.len()),
        ),
        (
            "transactions/paid.action_date_gmt",
            count(d.paid_transactions.len()),
        ),
        (
            "transactions/social.action_date_gmt",
            count(d.social_transactions.len()),
        ),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| (k.to_string(), n))
    .collect::<std::collections::BTreeMap<_, _>>()
    .into_iter()
    .collect()
}

fn unreadable(report: &Value) -> Vec<(String, u64)> {
    report["unreadable"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v["count"].as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Every guest is one contact and every transaction one note, with the dates served as
/// `odd` says; returns the run and its report.
async fn everything_syncs(name: &str, odd: OddValues) -> (Env, Out, Value) {
    let env = Env::start(name, account(100, 198, odd, false), Setup::default()).await;
    let notes = env.expected_note_refs();
    let out = env.run(&["sync"]).await;
    assert_eq!(out.code, 0, "{name}: {}", out.show());
    env.assert_exact(name);
    env.assert_notes_and_tasks_exact(name, &notes, 0);
    let report = env.report_json().await;
    (env, out, report)
}

/// The reproduction of the issue: one customer of 100 eligible guests has the MySQL zero date
/// as `registered_at` (198 transactions, a few of them with a zero `action_date_gmt`). It used
/// to fail the whole customers page: exit 1 with 5 guests synced and no note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_zero_date_no_longer_stops_the_account() {
    let (_, _, off) = everything_syncs("zero-off", OddValues::default()).await;
    assert!(unreadable(&off).is_empty(), "{off:#}");

    let odd = OddValues {
        zero_dates: true,
        ..OddValues::default()
    };
    let (env, out, report) = everything_syncs("zero-on", odd).await;
    let want = env
        .sandbox
        .hotspot
        .with_data(|d| odd_dates(d, Oddity::ZeroDate));
    assert_eq!(
        want.iter().find(|(k, _)| k == "customers.registered_at"),
        Some(&("customers.registered_at".to_string(), 1)),
        "one zero date among the customers"
    );
    assert_eq!(unreadable(&report), want, "{report:#}");
    assert_eq!(
        report["unreadable"]["customers.registered_at"]["sample"],
        "0000-00-00 00:00:00"
    );
    assert!(
        out.stdout
            .contains("customers.registered_at: 1 value could not be read (0000-00-00 00:00:00)"),
        "{}",
        out.show()
    );
    eprintln!(
        "RESULT zero dates: {} eligible guests, {} notes; counted {want:?}",
        env.eligible_people(),
        env.expected_note_refs().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_dates_are_counted_and_everything_syncs() {
    let odd = OddValues {
        malformed_dates: true,
        ..OddValues::default()
    };
    let (env, _, report) = everything_syncs("malformed-on", odd).await;
    let want = env
        .sandbox
        .hotspot
        .with_data(|d| odd_dates(d, Oddity::MalformedDate));
    assert!(!want.is_empty());
    assert_eq!(unreadable(&report), want, "{report:#}");
    assert_eq!(
        report["unreadable"]["customers.registered_at"]["sample"],
        "2023-02-30 25:61:00"
    );
}

/// Numbers sent as text (`lenient_types`) and digit-only text sent as numbers
/// (`text_as_numbers`), each off and on: every value reads, nothing is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_values_read_whichever_json_type_carries_them() {
    for (lenient, text_as_numbers) in [(false, false), (true, false), (false, true), (true, true)] {
        let name = format!("types-{lenient}-{text_as_numbers}");
        let odd = OddValues {
            text_as_numbers,
            ..OddValues::default()
        };
        let env = Env::start(&name, account(40, 80, odd, lenient), Setup::default()).await;
        let notes = env.expected_note_refs();
        let out = env.run(&["sync"]).await;
        assert_eq!(out.code, 0, "{name}: {}", out.show());
        env.assert_exact(&name);
        env.assert_notes_and_tasks_exact(&name, &notes, 0);
        let report = env.report_json().await;
        assert!(unreadable(&report).is_empty(), "{name}: {report:#}");
        // A second run finds both sides in step: the values read the same each time.
        let again = env.run(&["sync"]).await;
        assert_eq!(again.code, 0, "{name}: {}", again.show());
        let report = env.report_json().await;
        assert_eq!(
            report["kinds"]["contact"]["updated"], 0,
            "{name}: {report:#}"
        );
    }
}

/// Nulls where values belong: a record whose fields are all null but its id is read (the guest
/// has no email or phone left, so it is skipped by id), and a `null` in place of a record is
/// skipped, named in the report, and fails the run (exit 1). Every other guest and all their
/// transactions sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unexpected_nulls_skip_only_their_record_and_fail_the_run() {
    let (_, _, off) = everything_syncs("nulls-off", OddValues::default()).await;
    assert!(unreadable(&off).is_empty(), "{off:#}");

    let odd = OddValues {
        nulls: true,
        ..OddValues::default()
    };
    let env = Env::start("nulls-on", account(100, 198, odd, false), Setup::default()).await;
    let nulled = |i: usize| matches!(Oddity::at(i), Some(Oddity::NullFields | Oddity::NullRecord));
    // What the wire still lets the sync do: guests with an email or a phone on the wire, and
    // the transactions of those guests that are not nulled themselves.
    let (odd_guests, want_contacts, want_notes) = env.sandbox.hotspot.with_data(|d| {
        let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        let mut gone_keys = BTreeSet::new();
        let mut odd_guests = Vec::new();
        let mut contacts = 0;
        for (i, c) in d.customers.iter().enumerate() {
            if nulled(i) {
                odd_guests.push((c.id.clone(), Oddity::at(i)));
                for k in [c.email.clone(), c.phone.clone(), Some(c.user_name.clone())]
                    .into_iter()
                    .flatten()
                {
                    gone_keys.insert(k.trim().to_lowercase());
                }
            } else if has(&c.email) || has(&c.phone) {
                contacts += 1;
            }
        }
        let mut notes = BTreeSet::new();
        let mut add = |kind: &str, i: usize, id: i64, keys: [&Option<String>; 2], user: &str| {
            let gone = [keys[0].clone(), keys[1].clone(), Some(user.to_string())]
                .into_iter()
                .flatten()
                .any(|k| gone_keys.contains(&k.trim().to_lowercase()));
            if !nulled(i) && !gone && (has(keys[0]) || has(keys[1])) {
                notes.insert(format!("Ref: hgs:{kind}:{id}"));
            }
        };
        for (i, t) in d.mac_transactions.iter().enumerate() {
            add("mac", i, t.id, [&t.email, &t.phone], &t.user_name);
        }
        for (i, t) in d.voucher_transactions.iter().enumerate() {
            add("voucher", i, t.id, [&t.email, &t.phone], &t.user_name);
        }
        for (i, t) in d.paid_transactions.iter().enumerate() {
            add("paid", i, t.id, [&t.email, &t.phone], &t.user_name);
        }
        for (i, t) in d.social_transactions.iter().enumerate() {
            add("social", i, t.id, [&t.email, &t.phone], &t.user_name);
        }
        (odd_guests, contacts, notes)
    });
    let out = env.run(&["sync"]).await;
    assert_eq!(
        out.code,
        1,
        "a record that could not be used fails the run\n{}",
        out.show()
    );
    let c = env.assert_no_duplicate("nulls-on");
    assert_eq!(c.contacts, want_contacts, "every other guest synced: {c:?}");
    env.assert_notes_and_tasks_exact("nulls-on", &want_notes, 0);
    let report = env.report_json().await;
    let items = report["items"].as_array().cloned().unwrap_or_default();
    let failed: Vec<&Value> = items.iter().filter(|i| i["outcome"] == "failed").collect();
    assert!(
        failed.iter().any(|i| i["kind"] == "contact"
            && i["reason"]
                .as_str()
                .is_some_and(|r| r.contains("customers") && r.contains("not a record (null)"))),
        "the null customer is named with its reason: {report:#}"
    );
    assert!(
        failed.iter().any(|i| i["kind"] == "note"
            && i["reason"]
                .as_str()
                .is_some_and(|r| r.contains("transactions/"))),
        "a null transaction is named: {report:#}"
    );
    assert!(report["kinds"]["contact"]["failed"].as_u64() >= Some(1));
    // The guest whose fields were all null is still known by its id: skipped with a reason.
    for (id, oddity) in &odd_guests {
        if *oddity == Some(Oddity::NullFields) {
            assert!(
                items
                    .iter()
                    .any(|i| i["source_id"] == id.as_str() && i["outcome"] == "skipped"),
                "guest {id} is skipped by id: {report:#}"
            );
        }
    }
    assert!(
        out.stdout.contains("could not be used"),
        "the text report names the skip\n{}",
        out.show()
    );
}

/// A GHL contact whose `dateOfBirth` is an object made the whole search page fail to decode
/// (the run failed, no guest synced); now the value is counted and every guest syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_ghl_value_does_not_fail_the_contacts_listing() {
    let env = Env::start(
        "ghl-odd",
        account(30, 0, OddValues::default(), false),
        Setup::default(),
    )
    .await;
    env.sandbox.ghl.with_state(|s| {
        let now = chrono::Utc::now();
        let mut c = hotspot_ghl_sync::sandbox::ghl::Contact::new(s.new_id(), now);
        c.email = Some("crm-only@example.org".into());
        c.extra.insert(
            "dateOfBirth".into(),
            serde_json::json!({"day": 1, "month": 2}),
        );
        s.insert_contact(c);
    });
    let out = env.run(&["sync"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let c = env.ghl_census();
    assert_eq!(
        c.anchored,
        env.eligible_people(),
        "every guest synced: {c:?}"
    );
    let report = env.report_json().await;
    assert_eq!(
        unreadable(&report),
        vec![("contacts.dateOfBirth".to_string(), 1)],
        "{report:#}"
    );
    assert_eq!(
        report["unreadable"]["contacts.dateOfBirth"]["sample"],
        "an object"
    );
}

/// The guest at position 13 of the customers (the one [`Oddity::ObjectCity`] names), given a
/// city and an email to find its contact by; returns its HotspotSystem id.
fn city_guest(env: &Env) -> String {
    assert_eq!(Oddity::at(13), Some(Oddity::ObjectCity));
    env.sandbox.hotspot.with_data(|d| {
        let c = &mut d.customers[13];
        c.city = Some("Springfield".into());
        c.email = Some("object-city@example.org".into());
        c.id.clone()
    })
}

/// The city of the GHL contact of [`city_guest`]: `None` when there is no such contact.
fn ghl_city(env: &Env) -> Option<Option<String>> {
    env.sandbox.ghl.with_state(|s| {
        s.contacts
            .values()
            .find(|c| c.email.as_deref() == Some("object-city@example.org"))
            .map(|c| c.city.clone())
    })
}

/// A linked guest whose `city` arrives as an object for one run used to have its city cleared
/// in GHL (the empty value taken for a change made in HotspotSystem). Now the guest is held
/// for that run: no write reaches GHL, the run exits 1 naming the guest and the field. An
/// unreadable value no mapped field reads (a zero `registered_at`) holds nothing. Once the
/// value reads again, the guest is in step and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_value_never_changes_a_linked_contact() {
    let env = Env::start(
        "object-city-linked",
        account(30, 0, OddValues::default(), false),
        Setup::default(),
    )
    .await;
    let id = city_guest(&env);
    env.sync_ok().await;
    assert_eq!(ghl_city(&env), Some(Some("Springfield".into())));

    env.sandbox.hotspot.set_odd_values(OddValues {
        object_cities: true,
        zero_dates: true,
        ..OddValues::default()
    });
    env.sandbox.ghl.clear_requests();
    let out = env.run(&["sync"]).await;
    assert_eq!(
        ghl_city(&env),
        Some(Some("Springfield".into())),
        "the city in GHL is kept\n{}",
        out.show()
    );
    assert_eq!(env.ghl_writes(), 0, "nothing written\n{}", out.show());
    assert_eq!(out.code, 1, "a held guest is not a success\n{}", out.show());
    let report = env.report_json().await;
    assert_eq!(
        report["unsynced"],
        serde_json::json!([{
            "kind": "contact",
            "source_id": id,
            "why": {"unreadable_value": {"fields": ["city"]}},
        }]),
        "only the guest with the unreadable city is held: {report:#}"
    );
    assert_eq!(
        unreadable(&report),
        vec![
            ("customers.city".to_string(), 1),
            ("customers.registered_at".to_string(), 1)
        ],
        "{report:#}"
    );
    assert!(
        out.stdout.contains(&format!(
            "contact {id}: held, its GHL contact left as it is: city could not be read"
        )),
        "the text report names the guest and the field\n{}",
        out.show()
    );

    env.sandbox.hotspot.set_odd_values(OddValues::default());
    env.sandbox.ghl.clear_requests();
    let out = env.sync_ok().await;
    assert_eq!(env.ghl_writes(), 0, "in step again\n{}", out.show());
    assert_eq!(ghl_city(&env), Some(Some("Springfield".into())));
    env.assert_exact("object-city-linked");
}

/// A guest not linked yet syncs with the unreadable value left empty: a create writes nothing
/// over an existing value, and the next run with the value readable fills it in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_guest_with_an_unreadable_value_syncs_without_it() {
    let odd = OddValues {
        object_cities: true,
        ..OddValues::default()
    };
    let env = Env::start(
        "object-city-new",
        account(30, 0, odd, false),
        Setup::default(),
    )
    .await;
    city_guest(&env);
    let out = env.sync_ok().await;
    env.assert_exact("object-city-new");
    assert_eq!(ghl_city(&env), Some(None), "{}", out.show());
    let report = env.report_json().await;
    assert_eq!(
        report["unreadable"]["customers.city"]["sample"],
        "an object"
    );
    assert!(report["unsynced"].as_array().is_none_or(Vec::is_empty));

    env.sandbox.hotspot.set_odd_values(OddValues::default());
    env.sync_ok().await;
    assert_eq!(ghl_city(&env), Some(Some("Springfield".into())));
}
