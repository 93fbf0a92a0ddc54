//! The client library (`HotspotClient`, `GhlClient`, `OAuthTokens`, the HTTP policy) against the
//! real emulators on 127.0.0.1: paging, decoding, retries, rate limits, OAuth rotation, and the
//! error shapes the reconciler relies on.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::join_all;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use hotspot_ghl_sync::ghl::wire::{ContactCreate, ContactUpdate, NoteInput};
use hotspot_ghl_sync::ghl::{
    GhlClient, GhlError, MemoryTokenStore, OAuthConfig, OAuthTokens, TokenSource, TokenStore,
};
use hotspot_ghl_sync::hotspot::HotspotClient;
use hotspot_ghl_sync::http::{
    AuditRecord, AuditSink, ErrorClass, HttpError, HttpPolicy, Method, PolicyConfig, Request,
};
use hotspot_ghl_sync::sandbox::faults::FaultKnobs;
use hotspot_ghl_sync::sandbox::ghl::{Contact, GhlEmulator, GhlOptions, PRODUCT_SCOPES};
use hotspot_ghl_sync::sandbox::hotspot::{HotspotEmulator, HotspotOptions};
use hotspot_ghl_sync::sandbox::seed::{self, HotspotData, SeedSpec};

const HS_KEY: &str = "hs-test-key";
const PIT: &str = "pit-test-token";

/// A policy whose limits stay out of the way and whose backoff is milliseconds.
fn fast(api: &'static str) -> PolicyConfig {
    PolicyConfig {
        api,
        rate_max: 100_000,
        rate_window: Duration::from_secs(1),
        max_attempts: 8,
        max_elapsed: Duration::from_secs(15),
        timeout: Duration::from_secs(5),
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(40),
        daily_reserve: 0,
        daily_recheck: Duration::from_secs(3600),
        max_response_bytes: 32 << 20,
    }
}

fn policy(cfg: PolicyConfig) -> (HttpPolicy, AuditSink) {
    let sink = AuditSink::new();
    (HttpPolicy::new(cfg, sink.clone()).unwrap(), sink)
}

fn hotspot_client(emu: &HotspotEmulator, page: u32) -> (HotspotClient, AuditSink) {
    let (p, sink) = policy(fast("hotspot"));
    let c = HotspotClient::new(&emu.base_url(), SecretString::from(HS_KEY), p)
        .unwrap()
        .with_page_size(page);
    (c, sink)
}

async fn ghl_emulator() -> GhlEmulator {
    GhlEmulator::start(GhlOptions {
        rate_limit: 100_000,
        rate_window: Duration::from_secs(1),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn ghl_client_with(emu: &GhlEmulator, cfg: PolicyConfig) -> (GhlClient, AuditSink) {
    let (p, sink) = policy(cfg);
    let c = GhlClient::new(
        &emu.base_url(),
        &emu.location_id(),
        TokenSource::Static(SecretString::from(PIT)),
        p,
    )
    .unwrap();
    (c, sink)
}

fn ghl_client(emu: &GhlEmulator) -> (GhlClient, AuditSink) {
    ghl_client_with(emu, fast("ghl"))
}

fn statuses(audit: &[AuditRecord]) -> Vec<Option<u16>> {
    audit.iter().map(|r| r.status).collect()
}

fn with_email(email: &str) -> ContactCreate {
    ContactCreate {
        email: Some(email.into()),
        first_name: Some("Guest".into()),
        ..Default::default()
    }
}

// ---- HotspotSystem -----------------------------------------------------------------------

fn big_hotspot() -> HotspotData {
    seed::generate(&SeedSpec {
        seed: 11,
        locations: 4,
        customers: 2_500,
        subscribers: 10,
        subscribers_also_customers: 2,
        transactions: 200,
    })
}

/// Drains a customer pager page by page; returns (customers, pages, complete).
async fn drain_customers(
    client: &HotspotClient,
    location: Option<&str>,
) -> (Vec<hotspot_ghl_sync::hotspot::Customer>, usize, bool) {
    let mut pager = client.customers(location);
    let mut all = Vec::new();
    let mut pages = 0;
    while let Some(page) = pager.next_page().await.unwrap() {
        pages += 1;
        all.extend(page);
    }
    (all, pages, pager.complete())
}

#[tokio::test]
async fn hotspot_pages_2500_customers_by_link_in_strict_and_lenient_mode() {
    let data = big_hotspot();
    let expected: BTreeSet<String> = data.customers.iter().map(|c| c.id.clone()).collect();
    assert_eq!(expected.len(), 2_500);
    let emu = HotspotEmulator::start(data.clone(), HotspotOptions::default())
        .await
        .unwrap();

    let mut strict_records = None;
    for (lenient, limit) in [(false, 100u32), (true, 300u32)] {
        emu.set_lenient_types(lenient);
        emu.clear_requests();
        let (client, _) = hotspot_client(&emu, limit);
        let (all, pages, complete) = drain_customers(&client, None).await;
        let ids: Vec<String> = all.iter().map(|c| c.id.clone().unwrap()).collect();
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(ids.len(), 2_500, "lenient={lenient}: every record once");
        assert_eq!(unique, expected, "lenient={lenient}");
        assert!(complete, "lenient={lenient}: listing complete");
        let want_pages = 2_500usize.div_ceil(limit as usize);
        assert_eq!(pages, want_pages, "lenient={lenient}");
        let reqs = emu.requests();
        assert_eq!(reqs.len(), want_pages, "one request per page");
        // After the first page the client follows the server's Link URL.
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!(r.status, 200);
            assert!(
                r.query.contains(&format!("offset={}", i * limit as usize)),
                "page {i}: {}",
                r.query
            );
        }
        // Both date formats decode to the instant the seed holds.
        for (got, want) in all.iter().zip(&data.customers) {
            assert_eq!(got.id.as_deref(), Some(want.id.as_str()));
            assert_eq!(
                got.registered_at,
                Some(want.registered_at),
                "lenient={lenient}"
            );
            assert_eq!(got.email, want.email);
        }
        match &strict_records {
            None => strict_records = Some(all),
            Some(strict) => assert_eq!(strict, &all, "lenient types decode to the same records"),
        }
    }
}

fn small_hotspot() -> HotspotData {
    seed::generate(&SeedSpec {
        seed: 5,
        locations: 3,
        customers: 90,
        subscribers: 10,
        subscribers_also_customers: 3,
        transactions: 160,
    })
}

#[tokio::test]
async fn hotspot_location_listing_and_all_four_transaction_types_decode() {
    let data = small_hotspot();
    let emu = HotspotEmulator::start(data.clone(), HotspotOptions::default())
        .await
        .unwrap();
    for lenient in [false, true] {
        emu.set_lenient_types(lenient);
        let (client, _) = hotspot_client(&emu, 7);
        for loc in &data.locations {
            let (all, _, complete) = drain_customers(&client, Some(&loc.id)).await;
            let want: Vec<&str> = data
                .customers
                .iter()
                .filter(|c| c.location_id == loc.id)
                .map(|c| c.id.as_str())
                .collect();
            let got: Vec<&str> = all.iter().map(|c| c.id.as_deref().unwrap()).collect();
            assert_eq!(got, want, "location {} lenient={lenient}", loc.id);
            assert!(complete);
        }

        let mac = client.mac_transactions(None).collect_all().await.unwrap();
        assert_eq!(mac.len(), data.mac_transactions.len());
        for (g, w) in mac.iter().zip(&data.mac_transactions) {
            assert_eq!(g.common.id, Some(w.id));
            assert_eq!(
                g.common.location_id.as_deref(),
                Some(&*w.location_id.to_string())
            );
            assert_eq!(g.common.action_date_gmt, Some(w.action_date_gmt));
            assert_eq!(g.common.newsletter, Some(w.newsletter != 0));
        }
        let voucher = client
            .voucher_transactions(None)
            .collect_all()
            .await
            .unwrap();
        assert_eq!(voucher.len(), data.voucher_transactions.len());
        for (g, w) in voucher.iter().zip(&data.voucher_transactions) {
            assert_eq!(g.common.id, Some(w.id));
            assert_eq!(g.amount, Some(w.amount), "lenient={lenient}");
        }
        let paid = client.paid_transactions(None).collect_all().await.unwrap();
        assert_eq!(paid.len(), data.paid_transactions.len());
        for (g, w) in paid.iter().zip(&data.paid_transactions) {
            assert_eq!(g.common.id, Some(w.id));
            assert_eq!(g.amount, Some(w.amount), "lenient={lenient}");
            assert_eq!(g.currency, w.currency);
        }
        let social = client
            .social_transactions(None)
            .collect_all()
            .await
            .unwrap();
        assert_eq!(social.len(), data.social_transactions.len());
        for (g, w) in social.iter().zip(&data.social_transactions) {
            assert_eq!(g.common.id, Some(w.id));
            assert_eq!(g.common.action_date_gmt, Some(w.action_date_gmt));
        }
        assert!(
            !mac.is_empty() && !voucher.is_empty() && !paid.is_empty() && !social.is_empty(),
            "the seed has every type"
        );
        // A location-scoped transaction listing holds exactly that location's records.
        let loc = &data.locations[0].id;
        let scoped = client
            .paid_transactions(Some(loc))
            .collect_all()
            .await
            .unwrap();
        let want = data
            .paid_transactions
            .iter()
            .filter(|t| t.location_id.to_string() == *loc)
            .count();
        assert_eq!(scoped.len(), want);
    }
}

#[tokio::test]
async fn hotspot_5xx_from_the_fault_hook_is_retried_to_success() {
    let data = small_hotspot();
    let emu = HotspotEmulator::start(data.clone(), HotspotOptions::default())
        .await
        .unwrap();
    emu.set_faults(FaultKnobs {
        p500: 0.2,
        p502: 0.15,
        p503: 0.15,
        // Reads only: the API has no writes, so this knob must never fire.
        p_drop_after_write: 1.0,
        ..Default::default()
    });
    let (client, sink) = hotspot_client(&emu, 10);
    let (all, pages, complete) = drain_customers(&client, None).await;
    assert_eq!(all.len(), data.customers.len());
    assert!(complete);
    assert_eq!(pages, data.customers.len().div_ceil(10));
    let audit = sink.drain();
    let faults = audit
        .iter()
        .filter(|r| matches!(r.status, Some(500 | 502 | 503)))
        .count();
    assert!(faults > 0, "the knob injected 5xx: {:?}", statuses(&audit));
    assert_eq!(client.policy().stats().retries as usize, faults);
    assert!(
        audit
            .iter()
            .filter(|r| r.status.is_some_and(|s| s >= 500))
            .all(|r| r.error_class == Some(ErrorClass::Transient))
    );
    // The emulator logs only answers its handler gave: one 200 per page.
    assert_eq!(emu.requests().len(), pages);
    emu.set_faults(FaultKnobs::default());
    client.me().await.unwrap();
    assert_eq!(
        client.policy().stats().retries as usize,
        faults,
        "no fault, no retry"
    );
}

// ---- GHL: search paging ------------------------------------------------------------------

#[tokio::test]
async fn ghl_search_pages_12000_contacts_by_page_then_search_after() {
    let emu = ghl_emulator().await;
    let base = Utc::now() - chrono::Duration::days(10);
    let seeded: HashSet<String> = emu.with_state(|s| {
        (0..12_000)
            .map(|i| {
                let id = s.new_id();
                let mut c = Contact::new(id, base + chrono::Duration::seconds(i / 4));
                c.email = Some(format!("p{i}@example.com"));
                s.insert_contact(c)
            })
            .collect()
    });
    assert_eq!(seeded.len(), 12_000);
    let (client, _) = ghl_client(&emu);
    let mut search = client.search_contacts(vec![], vec![], 500);
    let mut seen = HashSet::new();
    while let Some(page) = search.next_page().await.unwrap() {
        for c in page {
            assert!(seen.insert(c.id.unwrap()), "a contact came twice");
        }
    }
    assert_eq!(seen, seeded);
    assert_eq!(search.total(), Some(12_000));
    assert_eq!(search.received(), 12_000);
    assert!(search.complete());
    let searches: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.path == "/contacts/search")
        .collect();
    // Every page is full, so the listing ends on one more (empty) page: `total` is a hint.
    assert_eq!(searches.len(), 12_000usize.div_ceil(500) + 1);
    for (i, r) in searches.iter().enumerate() {
        let body = r.body.as_ref().unwrap();
        assert_eq!(body["pageLimit"], 500);
        if i < 20 {
            assert_eq!(body["page"], i as u64 + 1);
            assert!(body.get("searchAfter").is_none());
        } else {
            assert!(body.get("page").is_none(), "beyond 10,000: {body}");
            assert!(body["searchAfter"].is_array());
        }
    }
}

// ---- GHL: retries and rate limits --------------------------------------------------------

/// Clears the emulator's fault knobs after `after`.
fn clear_faults_after(emu: &Arc<GhlEmulator>, after: Duration) -> tokio::task::JoinHandle<()> {
    let emu = emu.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        emu.set_faults(FaultKnobs::default());
    })
}

#[tokio::test]
async fn ghl_429_with_retry_after_waits_that_long() {
    let emu = Arc::new(ghl_emulator().await);
    let (client, sink) = ghl_client(&emu);
    emu.set_faults(FaultKnobs {
        p429_retry_after: 1.0,
        retry_after_secs: 1,
        ..Default::default()
    });
    let clear = clear_faults_after(&emu, Duration::from_millis(250));
    let started = Instant::now();
    assert_eq!(client.get_contact("nobody").await.unwrap(), None);
    let took = started.elapsed();
    clear.await.unwrap();
    // Backoff alone would have retried within milliseconds and met more 429s before 250 ms.
    assert!(took >= Duration::from_secs(1), "waited only {took:?}");
    assert_eq!(statuses(&sink.drain()), vec![Some(429), Some(400)]);
    assert_eq!(client.policy().stats().rate_limited, 1);
}

#[tokio::test]
async fn ghl_429_without_retry_after_backs_off() {
    let emu = Arc::new(ghl_emulator().await);
    let (client, sink) = ghl_client_with(
        &emu,
        PolicyConfig {
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            ..fast("ghl")
        },
    );
    emu.set_faults(FaultKnobs {
        p429_no_retry_after: 1.0,
        ..Default::default()
    });
    let clear = clear_faults_after(&emu, Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(client.get_contact("nobody").await.unwrap(), None);
    let took = started.elapsed();
    clear.await.unwrap();
    let audit = sink.drain();
    let n429 = audit.iter().filter(|r| r.status == Some(429)).count();
    assert!(n429 >= 1, "{:?}", statuses(&audit));
    assert_eq!(audit.last().unwrap().status, Some(400));
    assert!(took >= Duration::from_millis(150));
    assert!(
        took < Duration::from_secs(1),
        "backoff, not a 1 s guess: {took:?}"
    );
    // Not a busy loop: 20 ms doubling up to 100 ms allows only a handful in 150 ms.
    assert!(n429 <= 6, "{n429} attempts in 150 ms");
}

#[tokio::test]
async fn ghl_5xx_burst_is_retried_and_audited() {
    let emu = ghl_emulator().await;
    let (client, sink) = ghl_client(&emu);
    let created = client
        .create_contact(&with_email("burst@example.com"), false)
        .await
        .unwrap();
    let id = created.id.unwrap();
    sink.drain();
    emu.set_faults(FaultKnobs {
        p500: 0.5,
        ..Default::default()
    });
    for _ in 0..6 {
        let c = client.get_contact(&id).await.unwrap().unwrap();
        assert_eq!(c.email.as_deref(), Some("burst@example.com"));
    }
    emu.set_faults(FaultKnobs::default());
    let audit = sink.drain();
    let n500 = audit.iter().filter(|r| r.status == Some(500)).count();
    assert!(n500 > 0, "{:?}", statuses(&audit));
    assert_eq!(audit.len(), 6 + n500, "each 500 retried once more");
    let retried = audit.iter().filter(|r| r.attempt > 1).count();
    assert_eq!(retried, n500, "retries counted in the audit");
    assert!(
        audit
            .iter()
            .filter(|r| r.status == Some(500))
            .all(|r| r.error_class == Some(ErrorClass::Transient))
    );
    assert_eq!(client.policy().stats().retries as usize, n500);
}

#[tokio::test]
async fn ghl_rate_limit_20_per_second_is_never_tripped() {
    let emu = GhlEmulator::start(GhlOptions {
        rate_limit: 20,
        rate_window: Duration::from_secs(1),
        ..Default::default()
    })
    .await
    .unwrap();
    let (client, _) = ghl_client_with(
        &emu,
        PolicyConfig {
            rate_max: 20,
            rate_window: Duration::from_secs(1),
            ..fast("ghl")
        },
    );
    let started = Instant::now();
    let results = join_all((0..60).map(|i| {
        let client = client.clone();
        async move { client.get_contact(&format!("missing{i}")).await }
    }))
    .await;
    let took = started.elapsed();
    for r in results {
        assert_eq!(r.unwrap(), None);
    }
    let n429 = emu.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(n429, 0, "the emulator refused {n429} calls");
    assert_eq!(client.policy().stats().rate_limited, 0);
    assert!(
        took >= Duration::from_secs(2),
        "60 calls at 20/s took {took:?}"
    );
}

// ---- GHL: error shapes -------------------------------------------------------------------

#[tokio::test]
async fn ghl_unknown_field_is_a_permanent_422_naming_it() {
    let emu = ghl_emulator().await;
    let (p, sink) = policy(fast("ghl"));
    let req = Request::new(
        Method::POST,
        format!("{}/contacts/", emu.base_url()),
        "/contacts/",
    )
    .header("version", "2021-07-28")
    .unwrap()
    .secret_header("authorization", &format!("Bearer {PIT}"))
    .unwrap()
    .json(json!({"locationId": emu.location_id(), "email": "x@example.com", "favouriteColour": "teal"}));
    let err = p.send(&req).await.unwrap_err();
    let HttpError::Api(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.status, Some(422));
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.attempts, 1, "a permanent error is not retried");
    assert!(e.message.contains("favouriteColour"), "{}", e.message);
    assert!(err.to_string().contains("favouriteColour"));
    assert_eq!(sink.drain().len(), 1);
    assert!(emu.with_state(|s| s.contacts.is_empty()));
}

#[tokio::test]
async fn ghl_deleted_contact_reads_as_none() {
    let emu = ghl_emulator().await;
    let (client, _) = ghl_client(&emu);
    let a = client
        .create_contact(&with_email("gone@example.com"), false)
        .await
        .unwrap()
        .id
        .unwrap();
    let b = client
        .create_contact(&with_email("crm-deleted@example.com"), false)
        .await
        .unwrap()
        .id
        .unwrap();
    assert!(client.get_contact(&a).await.unwrap().is_some());
    assert!(client.delete_contact(&a).await.unwrap());
    // A CRM user deletes the other one.
    emu.with_state(|s| s.delete_contact(&b)).unwrap();
    assert_eq!(client.get_contact(&a).await.unwrap(), None);
    assert_eq!(client.get_contact(&b).await.unwrap(), None);
    let gets: Vec<u16> = emu
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.status)
        .collect();
    assert_eq!(gets, vec![200, 400, 400], "GHL answers 400, not 404");
}

#[tokio::test]
async fn ghl_duplicate_create_names_the_existing_contact() {
    let emu = ghl_emulator().await;
    let (client, _) = ghl_client(&emu);
    let first = client
        .create_contact(&with_email("dup@example.com"), false)
        .await
        .unwrap()
        .id
        .unwrap();
    let err = client
        .create_contact(&with_email("dup@example.com"), false)
        .await
        .unwrap_err();
    match &err {
        GhlError::Duplicate {
            contact_id,
            matching_field,
            ..
        } => {
            assert_eq!(contact_id, &first);
            assert_eq!(matching_field.as_deref(), Some("email"));
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
    assert_eq!(err.class(), Some(ErrorClass::Permanent));
    assert_eq!(emu.with_state(|s| s.contacts.len()), 1);
}

#[tokio::test]
async fn ghl_tags_add_and_remove_touch_only_those_and_put_never_changes_tags() {
    let emu = ghl_emulator().await;
    let (client, _) = ghl_client(&emu);
    let id = client
        .create_contact(
            &ContactCreate {
                tags: Some(vec!["crm-vip".into(), "newsletter".into()]),
                ..with_email("tags@example.com")
            },
            false,
        )
        .await
        .unwrap()
        .id
        .unwrap();
    let stored = |emu: &GhlEmulator| -> BTreeSet<String> {
        emu.with_state(|s| s.contacts[&id].tags.iter().cloned().collect())
    };
    let set = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };
    let after_add = client
        .add_tags(&id, &["hs-cafe".into(), "hs-paid".into()])
        .await
        .unwrap();
    // The answer echoes the tags sent (as the spec example does); the contact holds the union.
    assert_eq!(
        after_add,
        vec!["hs-cafe".to_string(), "hs-paid".to_string()]
    );
    let want = set(&["crm-vip", "newsletter", "hs-cafe", "hs-paid"]);
    assert_eq!(stored(&emu), want);
    let after_remove = client.remove_tags(&id, &["hs-cafe".into()]).await.unwrap();
    assert_eq!(after_remove, vec!["hs-cafe".to_string()]);
    let want = set(&["crm-vip", "newsletter", "hs-paid"]);
    assert_eq!(stored(&emu), want);
    let read = client.get_contact(&id).await.unwrap().unwrap();
    assert_eq!(read.tags.into_iter().collect::<BTreeSet<_>>(), want);

    let updated = client
        .update_contact(
            &id,
            &ContactUpdate {
                first_name: Some(Some("Renamed".into())),
                city: Some(Some("Lisbon".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        updated.and_then(|c| c.first_name).as_deref(),
        Some("Renamed")
    );
    assert_eq!(
        stored(&emu),
        want,
        "a PUT through the client keeps every tag"
    );
    let put = emu
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert!(put.body.unwrap().get("tags").is_none());
}

#[tokio::test]
async fn ghl_note_dropped_after_write_is_transient_and_exists() {
    let emu = ghl_emulator().await;
    let (client, _) = ghl_client(&emu);
    let cid = client
        .create_contact(&with_email("notes@example.com"), false)
        .await
        .unwrap()
        .id
        .unwrap();
    emu.set_faults(FaultKnobs {
        p_drop_after_write: 1.0,
        ..Default::default()
    });
    let note = NoteInput {
        body: Some("WiFi login at Cafe [hs:mac:77]".into()),
        ..Default::default()
    };
    let err = client.create_note(&cid, &note, false).await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Transient), "{err}");
    emu.set_faults(FaultKnobs::default());
    let stored: Vec<String> = emu.with_state(|s| {
        s.notes
            .values()
            .filter(|n| n.contact_id == cid)
            .map(|n| n.body.clone())
            .collect()
    });
    assert_eq!(stored, vec!["WiFi login at Cafe [hs:mac:77]".to_string()]);
    let posts = emu
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/notes"))
        .count();
    assert_eq!(posts, 1, "a create that is not retry-safe is sent once");
    // The journal's recovery path: the note is found by listing.
    let listed = client.list_notes(&cid).await.unwrap();
    assert_eq!(listed.len(), 1);
}

// ---- GHL: OAuth --------------------------------------------------------------------------

struct OAuthSetup {
    emu: GhlEmulator,
    store: Arc<MemoryTokenStore>,
    tokens: Arc<OAuthTokens>,
    client: GhlClient,
}

async fn oauth_setup() -> OAuthSetup {
    let emu = ghl_emulator().await;
    let store = Arc::new(MemoryTokenStore::new(None));
    let (auth_policy, _) = policy(fast("ghl-oauth"));
    let tokens = Arc::new(
        OAuthTokens::new(
            OAuthConfig::new(
                &emu.base_url(),
                "emu-client-id",
                SecretString::from("emu-client-secret"),
            ),
            store.clone(),
            auth_policy,
        )
        .unwrap(),
    );
    let code = emu.issue_auth_code(PRODUCT_SCOPES);
    tokens.exchange_code(&code, None).await.unwrap();
    let (p, _) = policy(fast("ghl"));
    let client = GhlClient::new(
        &emu.base_url(),
        &emu.location_id(),
        TokenSource::OAuth(tokens.clone()),
        p,
    )
    .unwrap();
    OAuthSetup {
        emu,
        store,
        tokens,
        client,
    }
}

#[tokio::test]
async fn oauth_rotation_refreshes_once_and_stores_the_new_pair() {
    let s = oauth_setup().await;
    let first = s.store.load().unwrap().expect("exchange saved a pair");
    assert_eq!(s.store.saves(), 1);
    assert_eq!(s.client.get_contact("nobody").await.unwrap(), None);
    assert_eq!(s.emu.token_refreshes(), 0);

    s.emu.expire_access_tokens();
    assert_eq!(s.client.get_contact("nobody").await.unwrap(), None);
    assert_eq!(s.emu.token_refreshes(), 1);
    assert_eq!(s.tokens.refresh_count(), 1);
    let second = s.store.load().unwrap().unwrap();
    assert_eq!(s.store.saves(), 2);
    assert_ne!(
        second.refresh_token.expose_secret(),
        first.refresh_token.expose_secret()
    );
    assert_ne!(
        second.access_token.expose_secret(),
        first.access_token.expose_secret()
    );
    let statuses: Vec<u16> = s
        .emu
        .requests()
        .iter()
        .filter(|r| r.path == "/contacts/nobody")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![400, 401, 400]);

    // The old refresh token died at the emulator; the stored one works.
    let http = reqwest::Client::new();
    let grant = |rt: &str| {
        http.post(format!("{}/oauth/token", s.emu.base_url()))
            .form(&[
                ("client_id", "emu-client-id"),
                ("client_secret", "emu-client-secret"),
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("user_type", "Location"),
            ])
            .send()
    };
    let old = grant(first.refresh_token.expose_secret()).await.unwrap();
    assert_eq!(old.status(), 400);
    let body: serde_json::Value = old.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    let new = grant(second.refresh_token.expose_secret()).await.unwrap();
    assert_eq!(
        new.status(),
        200,
        "the stored refresh token is the live one"
    );
}

#[tokio::test]
async fn oauth_20_concurrent_calls_over_an_expired_token_refresh_once() {
    let s = oauth_setup().await;
    s.emu.expire_access_tokens();
    let results = join_all((0..20).map(|i| {
        let c = s.client.clone();
        async move { c.get_contact(&format!("nobody{i}")).await }
    }))
    .await;
    for r in results {
        assert_eq!(r.unwrap(), None);
    }
    assert_eq!(s.emu.token_refreshes(), 1);
    assert_eq!(s.tokens.refresh_count(), 1);
    assert_eq!(s.store.saves(), 2);
}

// ---- GHL: contacts updated since a bound ---------------------------------------------------

/// 600 contacts last updated ten days ago, 7 of them edited an hour ago; returns the 7 ids and
/// the newest `dateUpdated`.
fn seed_with_recent_edits(emu: &GhlEmulator) -> (BTreeSet<String>, chrono::DateTime<Utc>) {
    let old = Utc::now() - chrono::Duration::days(10);
    // GHL dates carry milliseconds.
    let recent = (Utc::now() - chrono::Duration::hours(1)).timestamp_millis();
    let recent = chrono::DateTime::from_timestamp_millis(recent).unwrap();
    emu.with_state(|s| {
        let mut edited = BTreeSet::new();
        let mut newest = old;
        for i in 0..600i64 {
            let id = s.new_id();
            let mut c = Contact::new(id, old + chrono::Duration::seconds(i));
            if i % 90 == 3 {
                c.date_updated = recent + chrono::Duration::seconds(i);
                newest = c.date_updated;
                edited.insert(c.id.clone());
            }
            s.insert_contact(c);
        }
        (edited, newest)
    })
}

async fn read_all(search: &mut hotspot_ghl_sync::ghl::client::ContactSearch) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    while let Some(page) = search.next_page().await.unwrap() {
        ids.extend(page.into_iter().filter_map(|c| c.id));
    }
    ids
}

#[tokio::test]
async fn ghl_updated_since_reads_only_recent_edits_whichever_date_form_ghl_takes() {
    use hotspot_ghl_sync::ghl::client::SinceFilter;
    use hotspot_ghl_sync::ghl::wire::DateForm;
    use hotspot_ghl_sync::sandbox::ghl::DateRangeFormat;
    let emu = ghl_emulator().await;
    let (edited, newest) = seed_with_recent_edits(&emu);
    let (client, _) = ghl_client(&emu);
    let since = Utc::now() - chrono::Duration::days(1);
    for (format, remembered, works, refusals) in [
        (DateRangeFormat::Both, None, DateForm::Iso, 0),
        (DateRangeFormat::Iso, None, DateForm::Iso, 0),
        (
            DateRangeFormat::Iso,
            Some(DateForm::Millis),
            DateForm::Iso,
            1,
        ),
        (DateRangeFormat::Millis, None, DateForm::Millis, 1),
        (
            DateRangeFormat::Millis,
            Some(DateForm::Millis),
            DateForm::Millis,
            0,
        ),
    ] {
        emu.set_date_range_format(format);
        emu.clear_requests();
        let mut search = client.search_contacts_updated_since(since, remembered, 500);
        assert_eq!(search.since_filter(), SinceFilter::Pending);
        assert_eq!(
            read_all(&mut search).await,
            edited,
            "{format:?} {remembered:?}"
        );
        assert_eq!(search.since_filter(), SinceFilter::Applied(works));
        assert_eq!(search.since_filter().form(), Some(works));
        assert!(search.complete());
        assert!(!search.lists_every_contact(), "no deletion may be inferred");
        assert_eq!(search.latest_update(), Some(newest));
        let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
        let mut want = vec![422; refusals];
        want.push(200);
        assert_eq!(statuses, want, "{format:?} {remembered:?}");
        let sent = emu.requests().last().unwrap().body.clone().unwrap();
        let bound = &sent["filters"][0]["value"]["gte"];
        assert_eq!(bound.is_number(), works == DateForm::Millis, "{sent}");
    }
}

#[tokio::test]
async fn ghl_updated_since_lists_every_contact_when_the_bound_is_refused_or_ignored() {
    use hotspot_ghl_sync::ghl::client::SinceFilter;
    use hotspot_ghl_sync::ghl::wire::DateForm;
    use hotspot_ghl_sync::sandbox::ghl::DateRangeFormat;
    let emu = ghl_emulator().await;
    seed_with_recent_edits(&emu);
    let every: BTreeSet<String> = emu.with_state(|s| s.contacts.keys().cloned().collect());
    let (client, _) = ghl_client(&emu);
    let since = Utc::now() - chrono::Duration::days(1);

    // No range filter on dates at all: both forms are refused, then the plain listing runs.
    emu.set_date_range_format(DateRangeFormat::Neither);
    emu.clear_requests();
    let mut search = client.search_contacts_updated_since(since, None, 500);
    assert_eq!(read_all(&mut search).await, every);
    assert_eq!(search.since_filter(), SinceFilter::Refused);
    assert_eq!(search.since_filter().form(), None);
    assert!(search.complete() && search.lists_every_contact());
    let reqs = emu.requests();
    let statuses: Vec<u16> = reqs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![422, 422, 200, 200]);
    assert!(reqs[2].body.as_ref().unwrap().get("filters").is_none());

    // A filter accepted and ignored: every contact comes, and the listing says so.
    emu.set_date_range_format(DateRangeFormat::Ignored);
    let mut search = client.search_contacts_updated_since(since, Some(DateForm::Iso), 500);
    assert_eq!(read_all(&mut search).await, every);
    assert_eq!(search.since_filter(), SinceFilter::Ignored(DateForm::Iso));
    assert!(search.complete() && search.lists_every_contact());

    // A plain listing asks for no bound.
    emu.set_date_range_format(DateRangeFormat::Both);
    let mut plain = client.search_contacts(vec![], vec![], 500);
    assert_eq!(plain.since_filter(), SinceFilter::NotAsked);
    assert!(plain.lists_every_contact());
    assert_eq!(read_all(&mut plain).await, every);
}
