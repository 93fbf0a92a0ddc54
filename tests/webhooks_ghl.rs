//! GHL webhooks through the real binary: the GHL emulator signs and sends the events of
//! changes made through its API (or emitted as a CRM user's), `run` verifies them on
//! `/hooks/ghl` and records them in the state at once. The contacts job ticks once a year in
//! these configs, so no pass explains what the state shows.
//!
//! Times from the change to the state showing it are printed (`--nocapture`).

mod support;

use std::time::{Duration, Instant};

use hotspot_ghl_sync::model::Kind;
use hotspot_ghl_sync::sandbox::ghl::webhooks::{Scheme, SignedBytes, TimestampForm};
use hotspot_ghl_sync::sandbox::hotspot::NewRecord;
use hotspot_ghl_sync::store::{LinkStatus, Store};
use reqwest::Method;
use serde_json::json;
use support::ghl_webhooks::{
    answered, configure, contact_with_task, ghl_api, link_to, recorded, run, start, start_with,
    status_of, stop, url,
};
use support::webhooks::{guest, mac_transaction};

const AT_ONCE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_contact_is_tombstoned_at_once_and_the_next_pass_leaves_it_alone() {
    let env = start("ghl-delete", 3).await;
    let daemon = env.spawn_daemon().await;
    configure(
        &env,
        Scheme::Ed25519,
        SignedBytes::Raw,
        TimestampForm::Rfc3339,
    );
    let (contact, _) = contact_with_task(&env);
    let email = env
        .sandbox
        .ghl
        .with_state(|s| s.contacts[&contact].email.clone().unwrap());
    assert_eq!(
        status_of(&env, Kind::Contact, &contact),
        Some(LinkStatus::Active)
    );
    let deleted_at = Instant::now();
    ghl_api(&env, Method::DELETE, &format!("/contacts/{contact}"), None).await;
    let known = env
        .wait_until(AT_ONCE, |e| {
            status_of(e, Kind::Contact, &contact) == Some(LinkStatus::Tombstoned)
        })
        .await
        .unwrap_or_else(|| panic!("not tombstoned; log:\n{}", daemon.log()));
    println!("ContactDelete → link tombstoned: {:?}", known - deleted_at);
    assert!(
        Store::open(env.state_path())
            .unwrap()
            .contact_identity(&env.sandbox.ghl.location_id(), &contact)
            .unwrap()
            .is_none(),
        "the deleted contact's identity is forgotten"
    );
    assert!(
        daemon.log().contains("GHL webhook event handled"),
        "{}",
        daemon.log()
    );
    stop(daemon).await;

    // The next pass: the guest is not recreated, and GHL is not asked about its contact.
    let before = env.sandbox.ghl.requests().len();
    let out = run(&env, &["sync"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    assert_eq!(env.contacts_with(&email), 0, "recreated: {}", out.show());
    let asked: Vec<String> = env.sandbox.ghl.requests()[before..]
        .iter()
        .filter(|r| {
            r.path.contains(&contact) || r.query.as_deref().unwrap_or("").contains(&contact)
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        asked.is_empty(),
        "GHL asked about the deleted contact: {asked:?}"
    );
    assert_eq!(
        status_of(&env, Kind::Contact, &contact),
        Some(LinkStatus::Tombstoned)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_or_deleted_task_is_known_at_once() {
    let env = start("ghl-task", 3).await;
    let daemon = env.spawn_daemon().await;
    configure(
        &env,
        Scheme::Rsa,
        SignedBytes::Compact,
        TimestampForm::EpochMillis,
    );
    let (contact, task) = contact_with_task(&env);
    let completed = |e: &support::webhooks::HookEnv| {
        link_to(e, Kind::Task, &task).is_some_and(|l| l.extra["completed"] == json!(true))
    };
    assert!(!completed(&env));
    let done_at = Instant::now();
    ghl_api(
        &env,
        Method::PUT,
        &format!("/contacts/{contact}/tasks/{task}/completed"),
        Some(r#"{"completed":true}"#),
    )
    .await;
    let known = env
        .wait_until(AT_ONCE, completed)
        .await
        .unwrap_or_else(|| panic!("completion not recorded; log:\n{}", daemon.log()));
    println!("TaskComplete → task link completed: {:?}", known - done_at);
    assert_eq!(status_of(&env, Kind::Task, &task), Some(LinkStatus::Active));

    ghl_api(
        &env,
        Method::DELETE,
        &format!("/contacts/{contact}/tasks/{task}"),
        None,
    )
    .await;
    env.wait_until(AT_ONCE, |e| {
        status_of(e, Kind::Task, &task) == Some(LinkStatus::Tombstoned)
    })
    .await
    .unwrap_or_else(|| panic!("deletion not recorded; log:\n{}", daemon.log()));
    let l = link_to(&env, Kind::Task, &task).unwrap();
    assert_eq!(l.extra["deleted"], json!(true));
    stop(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_badly_signed_or_stale_body_is_refused_and_changes_nothing() {
    let env = start("ghl-refused", 2).await;
    let daemon = env.spawn_daemon().await;
    let (contact, _) = contact_with_task(&env);
    let body = json!({
        "type": "ContactDelete",
        "locationId": env.sandbox.ghl.location_id(),
        "id": contact,
        "webhookId": "forged-1",
        "timestamp": chrono::Utc::now().to_rfc3339(),
    })
    .to_string();
    for (header, sig) in [
        (
            "x-ghl-signature",
            base64ct::Base64::encode_string(&[7u8; 64]),
        ),
        (
            "x-wh-signature",
            base64ct::Base64::encode_string(&[7u8; 256]),
        ),
        ("x-other", "x".to_string()),
    ] {
        let status = support::http_client()
            .post(url(&env))
            .header("content-type", "application/json")
            .header(header, sig)
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, 401, "{header}");
    }

    // Signed with the right key, but ten minutes old (and then ten minutes ahead).
    for offset in [-10, 10] {
        env.sandbox.ghl.webhooks().configure(
            hotspot_ghl_sync::sandbox::ghl::webhooks::GhlWebhookOptions {
                clock_offset: chrono::Duration::minutes(offset),
                ..hotspot_ghl_sync::sandbox::ghl::webhooks::GhlWebhookOptions::new(url(&env))
            },
        );
        env.sandbox.ghl.webhooks().emit(
            &env.sandbox.ghl.location_id(),
            "ContactDelete",
            json!({"id": contact}),
        );
    }
    let sent = answered(&env, "ContactDelete", 6).await;
    assert!(
        sent.iter().all(|d| d.status == Some(401)),
        "stale bodies accepted: {sent:#?}"
    );
    assert_eq!(
        status_of(&env, Kind::Contact, &contact),
        Some(LinkStatus::Active),
        "log:\n{}",
        daemon.log()
    );
    assert!(recorded(&env).is_empty(), "{:?}", recorded(&env));
    stop(daemon).await;
}

use base64ct::Encoding;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_webhook_id_changes_nothing_even_after_a_restart() {
    let env = start("ghl-replay", 2).await;
    let daemon = env.spawn_daemon().await;
    configure(&env, Scheme::Both, SignedBytes::Raw, TimestampForm::Rfc3339);
    let (contact, _) = contact_with_task(&env);
    let hooks = env.sandbox.ghl.webhooks();
    hooks.emit(
        &env.sandbox.ghl.location_id(),
        "ContactDelete",
        json!({"id": contact}),
    );
    env.wait_until(AT_ONCE, |e| {
        status_of(e, Kind::Contact, &contact) == Some(LinkStatus::Tombstoned)
    })
    .await
    .unwrap_or_else(|| panic!("not tombstoned; log:\n{}", daemon.log()));
    let first = answered(&env, "ContactDelete", 1).await;
    stop(daemon).await;

    // The link made active again behind the daemon's back: a replay must not tombstone it.
    {
        let s = Store::open(env.state_path()).unwrap();
        let l = s.link_by_target(Kind::Contact, &contact).unwrap().unwrap();
        s.set_link_status(Kind::Contact, &l.source_id, LinkStatus::Active)
            .unwrap();
    }
    let daemon = env.spawn_daemon().await;
    assert!(hooks.replay(&first[0].webhook_id));
    let replays = answered(&env, "replay", 1).await;
    assert_eq!(replays[0].status, Some(200), "a replay is answered 200");
    assert_eq!(
        status_of(&env, Kind::Contact, &contact),
        Some(LinkStatus::Active),
        "the replay changed the state; log:\n{}",
        daemon.log()
    );
    assert_eq!(recorded(&env).len(), 1);
    stop(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_signature_and_timestamp_reading_is_accepted() {
    let env = start("ghl-readings", 1).await;
    let daemon = env.spawn_daemon().await;
    let location = env.sandbox.ghl.location_id();
    let mut n = 0;
    for scheme in [Scheme::Ed25519, Scheme::Rsa, Scheme::Both] {
        for signed in [SignedBytes::Raw, SignedBytes::Compact] {
            for timestamp in [TimestampForm::Rfc3339, TimestampForm::EpochMillis] {
                configure(&env, scheme, signed, timestamp);
                n += 1;
                // A note the sync does not own: answered 200, recorded as seen, nothing else.
                env.sandbox.ghl.webhooks().emit(
                    &location,
                    "NoteDelete",
                    json!({"id": format!("note-{n}"), "contactId": "c"}),
                );
                let sent = answered(&env, "NoteDelete", n).await;
                let last = sent.last().unwrap();
                assert_eq!(
                    last.status,
                    Some(200),
                    "{scheme:?}/{signed:?}/{timestamp:?}; log:\n{}",
                    daemon.log()
                );
                assert!(
                    recorded(&env)
                        .iter()
                        .any(|e| e.record_id == last.webhook_id),
                    "{scheme:?}/{signed:?}/{timestamp:?}"
                );
            }
        }
    }
    assert!(
        daemon
            .log()
            .contains("GHL webhooks verify by x-ghl-signature (Ed25519), else the legacy"),
        "{}",
        daemon.log()
    );
    // A location no pair syncs: 200 (GHL must not retry it), dropped, nothing recorded.
    let before = recorded(&env).len();
    env.sandbox.ghl.webhooks().emit(
        "SomeOtherLocation000",
        "ContactDelete",
        json!({"id": "c-elsewhere"}),
    );
    let sent = answered(&env, "ContactDelete", 1).await;
    assert_eq!(sent[0].status, Some(200));
    assert_eq!(recorded(&env).len(), before);
    assert!(daemon.log().contains("location no pair syncs"));
    stop(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_recreate_a_deleted_contact_comes_back_at_once() {
    let env = start_with(
        "ghl-recreate",
        2,
        "\n[contacts]\non_target_delete = \"recreate\"\n",
        Vec::new(),
    )
    .await;
    let daemon = env.spawn_daemon().await;
    configure(
        &env,
        Scheme::Ed25519,
        SignedBytes::Compact,
        TimestampForm::Rfc3339,
    );
    let (contact, _) = contact_with_task(&env);
    let email = env
        .sandbox
        .ghl
        .with_state(|s| s.contacts[&contact].email.clone().unwrap());
    ghl_api(&env, Method::DELETE, &format!("/contacts/{contact}"), None).await;
    // No tick explains a pass: the event wakes the pair, whose pass recreates the guest.
    env.wait_until(AT_ONCE, |e| {
        e.contact_id(&email).is_some_and(|id| id != contact)
    })
    .await
    .unwrap_or_else(|| panic!("not recreated; log:\n{}", daemon.log()));
    assert_eq!(env.contacts_with(&email), 1);
    stop(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_edit_wakes_a_pass_that_keeps_the_typed_value() {
    let env = start("ghl-update", 2).await;
    let daemon = env.spawn_daemon().await;
    configure(
        &env,
        Scheme::Ed25519,
        SignedBytes::Raw,
        TimestampForm::EpochMillis,
    );
    let (contact, _) = contact_with_task(&env);
    let runs = env.runs().len();
    ghl_api(
        &env,
        Method::PUT,
        &format!("/contacts/{contact}"),
        Some(r#"{"firstName":"Typedbysales"}"#),
    )
    .await;
    env.wait_until(AT_ONCE, |e| {
        e.runs().iter().skip(runs).any(|r| r.finished_at.is_some())
    })
    .await
    .unwrap_or_else(|| panic!("no pass after the edit; log:\n{}", daemon.log()));
    stop(daemon).await;
    let first = env
        .sandbox
        .ghl
        .with_state(|s| s.contacts[&contact].first_name.clone());
    assert_eq!(
        first.as_deref(),
        Some("Typedbysales"),
        "the CRM edit was wiped"
    );
    // The pass took the edit into the base: GHL's value is the agreed one now.
    let l = link_to(&env, Kind::Contact, &contact).unwrap();
    assert_eq!(
        l.extra["target_fields"]["firstName"],
        json!("Typedbysales"),
        "{}",
        l.extra
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_note_is_tombstoned_at_once_and_never_written_again() {
    let g = guest(1);
    let records = vec![
        NewRecord::Customer(g.clone()),
        NewRecord::Mac(mac_transaction(&g, 81_000)),
    ];
    let env = start_with("ghl-note", 1, "", records).await;
    let contact = env
        .contact_id(g.email.as_deref().unwrap())
        .expect("the guest synced");
    let note = env
        .sandbox
        .ghl
        .with_state(|s| {
            s.notes
                .values()
                .find(|n| n.contact_id == contact)
                .map(|n| n.id.clone())
        })
        .expect("the transaction's note");
    assert_eq!(status_of(&env, Kind::Note, &note), Some(LinkStatus::Active));
    let daemon = env.spawn_daemon().await;
    configure(&env, Scheme::Rsa, SignedBytes::Raw, TimestampForm::Rfc3339);
    ghl_api(
        &env,
        Method::DELETE,
        &format!("/contacts/{contact}/notes/{note}"),
        None,
    )
    .await;
    env.wait_until(AT_ONCE, |e| {
        status_of(e, Kind::Note, &note) == Some(LinkStatus::Tombstoned)
    })
    .await
    .unwrap_or_else(|| panic!("not tombstoned; log:\n{}", daemon.log()));
    stop(daemon).await;
    let out = run(&env, &["sync", "--full"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    assert_eq!(
        env.notes_and_tasks(&contact).0,
        0,
        "the note was written again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_legacy_header_refused_only_ed25519_is_accepted() {
    let env = start_with(
        "ghl-no-legacy",
        1,
        "ghl_accept_legacy_rsa = false\n",
        Vec::new(),
    )
    .await;
    let daemon = env.spawn_daemon().await;
    let location = env.sandbox.ghl.location_id();
    for (n, scheme) in [Scheme::Rsa, Scheme::Ed25519].into_iter().enumerate() {
        configure(&env, scheme, SignedBytes::Raw, TimestampForm::Rfc3339);
        env.sandbox
            .ghl
            .webhooks()
            .emit(&location, "TaskDelete", json!({"id": format!("t-{n}")}));
    }
    // Three refused sends of the RSA-signed event, then the Ed25519 one.
    let sent = answered(&env, "TaskDelete", 4).await;
    let statuses: Vec<Option<u16>> = sent.iter().map(|d| d.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == Some(401)).count(),
        3,
        "{sent:#?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == Some(200)).count(),
        1,
        "{sent:#?}"
    );
    assert_eq!(recorded(&env).len(), 1);
    assert!(
        daemon
            .log()
            .contains("GHL webhooks verify by x-ghl-signature (Ed25519) only"),
        "{}",
        daemon.log()
    );
    stop(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_edit_that_leaves_date_updated_alone_is_read_by_id() {
    let env = start("ghl-update-same-date", 2).await;
    // The first sync found GHL empty: a second one leaves the high-water mark an incremental
    // listing starts from.
    let out = run(&env, &["sync"]).await;
    assert_eq!(out.code, 0, "{}", out.show());
    let daemon = env.spawn_daemon().await;
    configure(
        &env,
        Scheme::Ed25519,
        SignedBytes::Raw,
        TimestampForm::Rfc3339,
    );
    let (contact, _) = contact_with_task(&env);
    let runs = env.runs().len();
    // A user's edit in GHL's UI that GHL's search cannot see: it left `dateUpdated` alone, an
    // hour old, before the incremental listing's bound. Only the webhook tells of it.
    env.sandbox.ghl.with_state(|s| {
        let c = s.contacts.get_mut(&contact).unwrap();
        c.first_name = Some("Quietlytyped".into());
        c.date_updated = chrono::Utc::now() - chrono::Duration::hours(1);
    });
    env.sandbox.ghl.webhooks().emit(
        &env.sandbox.ghl.location_id(),
        "ContactUpdate",
        json!({"id": contact, "firstName": "Quietlytyped"}),
    );
    env.wait_until(AT_ONCE, |e| {
        e.runs().iter().skip(runs).any(|r| r.finished_at.is_some())
    })
    .await
    .unwrap_or_else(|| panic!("no pass after the edit; log:\n{}", daemon.log()));
    stop(daemon).await;
    let l = link_to(&env, Kind::Contact, &contact).unwrap();
    assert_eq!(
        l.extra["target_fields"]["firstName"],
        json!("Quietlytyped"),
        "the pass did not read the edited contact: {}",
        l.extra
    );
    assert!(l.extra.get("ghl_changed").is_none(), "{}", l.extra);
    let first = env
        .sandbox
        .ghl
        .with_state(|s| s.contacts[&contact].first_name.clone());
    assert_eq!(
        first.as_deref(),
        Some("Quietlytyped"),
        "the CRM edit was wiped"
    );
}
