//! State store: opening (migrations, refusals that leave files untouched, mode, lock) and the
//! typed queries round trip.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{Duration, TimeZone, Utc};
use hotspot_ghl_sync::http::{AuditRecord, ErrorClass};
use hotspot_ghl_sync::model::{Digest, Kind};
use hotspot_ghl_sync::store::{
    Appointment, IntentState, ItemOutcome, Link, LinkStatus, MatchMethod, NewIntent, RunItem,
    RunStatus, Store, StoreError, StoredToken, schema,
};
use secrecy::{ExposeSecret, SecretString};
use support::TempDir;

fn tables(store_path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(store_path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<String>, _>>()
        .unwrap()
}

#[test]
fn open_creates_dir_file_and_schema() {
    let dir = TempDir::new("create");
    let path = dir.path("nested/state/sync.db");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), schema::latest_version());
    drop(store);
    let names = tables(&path);
    for t in [
        "hgs_meta",
        "links",
        "cursors",
        "journal",
        "runs",
        "run_items",
        "api_calls",
        "tokens",
        "appointments",
    ] {
        assert!(
            names.contains(&t.to_string()),
            "missing table {t}: {names:?}"
        );
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, schema::APPLICATION_ID);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[cfg(unix)]
#[test]
fn state_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("mode");
    let path = dir.path("sync.db");
    let store = Store::open(&path).unwrap();
    store.set_cursor(Kind::Contact, "", "1").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    // SQLite gives the WAL the main file's mode; it holds the same secrets.
    let wal = dir.path("sync.db-wal");
    let mode = std::fs::metadata(&wal).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "wal mode {mode:o}");
}

#[test]
fn reopen_is_a_no_op_and_keeps_data() {
    let dir = TempDir::new("reopen");
    let path = dir.path("sync.db");
    let store = Store::open(&path).unwrap();
    store.set_cursor(Kind::Note, "loc1", "42").unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), schema::latest_version());
    assert_eq!(
        store.cursor(Kind::Note, "loc1").unwrap().as_deref(),
        Some("42")
    );
    assert_eq!(store.cursor(Kind::Note, "loc2").unwrap(), None);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM hgs_meta WHERE key = 'application'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn newer_schema_is_refused_and_file_unchanged() {
    let dir = TempDir::new("newer");
    let path = dir.path("sync.db");
    drop(Store::open(&path).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA user_version = {}",
            schema::latest_version() + 1
        ))
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
    assert!(err.to_string().contains("newer version"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// Processes that open an older state at the same moment (a daemon's second connection, a
/// `sync` beside it) upgrade it once: a step such as `ALTER TABLE ... ADD COLUMN` applied twice
/// would fail the second opener.
#[test]
fn an_older_schema_opened_by_many_at_once_is_upgraded_once() {
    for round in 0..5 {
        let dir = TempDir::new(&format!("upgrade-race-{round}"));
        let path = dir.path("sync.db");
        drop(Store::open(&path).unwrap());
        {
            // Back to version 3: before the call messages.
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "ALTER TABLE api_calls DROP COLUMN message; PRAGMA user_version = 3",
            )
            .unwrap();
        }
        let start = std::sync::Arc::new(std::sync::Barrier::new(6));
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let (path, start) = (path.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    Store::open(&path).map(|s| s.schema_version().unwrap())
                })
            })
            .collect();
        for o in openers {
            let version = o
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(version, schema::latest_version());
        }
    }
}

#[test]
fn garbage_file_is_refused_and_unchanged() {
    let dir = TempDir::new("garbage");
    let path = dir.path("sync.db");
    let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("is not a hotspot-ghl-sync database"),
        "{err}"
    );
    assert!(err.to_string().contains(path.to_str().unwrap()));
    assert_eq!(std::fs::read(&path).unwrap(), garbage);

    // A SQLite header followed by garbage: corrupt.
    let mut corrupt = b"SQLite format 3\0".to_vec();
    corrupt.extend_from_slice(&garbage);
    std::fs::write(&path, &corrupt).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), corrupt);
}

#[test]
fn foreign_sqlite_is_refused_and_unchanged() {
    let dir = TempDir::new("foreign");
    let path = dir.path("other.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE recipes (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO recipes (name) VALUES ('soup');")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // Right application id but no marker table: still not ours.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}",
            schema::APPLICATION_ID
        ))
        .unwrap();
    }
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
}

#[test]
fn unwritable_path_is_reported() {
    let dir = TempDir::new("unwritable");
    let blocker = dir.path("file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = Store::open(blocker.join("sync.db")).unwrap_err();
    assert!(matches!(err, StoreError::Unwritable { .. }), "{err}");
    assert!(err.to_string().contains("cannot be created"), "{err}");
}

#[test]
fn second_lock_holder_is_refused() {
    let dir = TempDir::new("lock");
    let path = dir.path("sync.db");
    let lock = Store::lock(&path).unwrap();
    assert!(lock.path().ends_with("sync.db.lock"));
    let err = Store::lock(&path).unwrap_err();
    match &err {
        StoreError::Locked { holder, .. } => assert_eq!(*holder, Some(std::process::id())),
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("in use by another"), "{err}");
    drop(lock);
    let _again = Store::lock(&path).unwrap();
}

fn sample_link(source: &str, target: &str) -> Link {
    let mut link = Link::new(Kind::Contact, source, target, MatchMethod::Email);
    link.source_hash = Some(Digest::of(b"source"));
    link.target_hash = Some(Digest::of(b"target"));
    link.owned_tags = BTreeSet::from(["hotspotsystem".to_string(), "location:Cafe".to_string()]);
    link.first_linked_at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    link.updated_at = link.first_linked_at;
    link.extra = serde_json::json!({"completed": false});
    link
}

#[test]
fn links_round_trip() {
    let dir = TempDir::new("links");
    let store = Store::open(dir.path("sync.db")).unwrap();
    let a = sample_link("c1", "g1");
    let b = sample_link("c2", "g2");
    store.upsert_link(&a).unwrap();
    store.upsert_link(&b).unwrap();
    assert_eq!(
        store.links(Kind::Contact).unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert!(store.links(Kind::Note).unwrap().is_empty());
    assert_eq!(store.link(Kind::Contact, "c2").unwrap(), Some(b.clone()));
    assert_eq!(
        store.link_by_target(Kind::Contact, "g1").unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.link_by_target(Kind::Note, "g1").unwrap(), None);

    // Upsert keeps first_linked_at, replaces the rest.
    let mut a2 = a.clone();
    a2.first_linked_at = a.first_linked_at + Duration::days(10);
    a2.updated_at = a.updated_at + Duration::days(10);
    a2.source_hash = Some(Digest::of(b"changed"));
    a2.owned_tags.remove("location:Cafe");
    store.upsert_link(&a2).unwrap();
    let got = store.link(Kind::Contact, "c1").unwrap().unwrap();
    assert_eq!(got.first_linked_at, a.first_linked_at);
    assert_eq!(got.source_hash, a2.source_hash);
    assert_eq!(got.owned_tags.len(), 1);

    assert!(store.tombstone(Kind::Contact, "c1").unwrap());
    assert!(!store.tombstone(Kind::Contact, "missing").unwrap());
    assert_eq!(
        store.link(Kind::Contact, "c1").unwrap().unwrap().status,
        LinkStatus::Tombstoned
    );
    assert!(
        store
            .set_link_extra(
                Kind::Contact,
                "c2",
                &serde_json::json!({"completed": true, "edited": true})
            )
            .unwrap()
    );
    assert_eq!(
        store.link(Kind::Contact, "c2").unwrap().unwrap().extra["edited"],
        serde_json::json!(true)
    );
    let counts = store.link_counts().unwrap();
    assert!(counts.contains(&(Kind::Contact, LinkStatus::Active, 1)));
    assert!(counts.contains(&(Kind::Contact, LinkStatus::Tombstoned, 1)));
    assert!(store.has_links(Kind::Contact).unwrap());
    assert!(!store.has_links(Kind::Task).unwrap());
}

#[test]
fn journal_intent_then_complete_create_is_atomic() {
    let dir = TempDir::new("journal");
    let store = Store::open(dir.path("sync.db")).unwrap();
    let run = store.start_run(&[Kind::Note], false, false).unwrap();
    let intent = NewIntent {
        kind: Kind::Note,
        source_id: "mac:77".into(),
        op: "create_note".into(),
        marker: "hgs:mac:77".into(),
        payload_hash: Some(Digest::of(b"note body")),
        run_id: Some(run),
    };
    let id = store.journal_intent(&intent).unwrap();
    let pending = store.pending_intents().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, id);
    assert_eq!(pending[0].marker, "hgs:mac:77");
    assert_eq!(pending[0].payload_hash, intent.payload_hash);
    assert_eq!(pending[0].state, IntentState::Pending);

    let link = Link::new(Kind::Note, "mac:77", "note-1", MatchMethod::Created);
    store.complete_create(id, &link).unwrap();
    assert!(store.pending_intents().unwrap().is_empty());
    let done = store.intent(id).unwrap().unwrap();
    assert_eq!(done.state, IntentState::Done);
    assert_eq!(done.target_id.as_deref(), Some("note-1"));
    assert_eq!(
        store.link(Kind::Note, "mac:77").unwrap().unwrap().target_id,
        "note-1"
    );
    assert!(
        store
            .link(Kind::Note, "mac:77")
            .unwrap()
            .unwrap()
            .created_by_us
    );

    // Completing an intent that is no longer pending fails and writes no link.
    let other = Link::new(Kind::Note, "mac:78", "note-2", MatchMethod::Created);
    let err = store.complete_create(id, &other).unwrap_err();
    assert!(
        matches!(err, StoreError::IntentNotPending(i) if i == id),
        "{err}"
    );
    assert_eq!(
        store.link(Kind::Note, "mac:78").unwrap(),
        None,
        "link written without intent"
    );

    // Atomic the other way: the link write fails inside the transaction, so the intent stays
    // pending. (A failing statement inside `transaction` rolls back the journal update.)
    let id2 = store
        .journal_intent(&NewIntent {
            source_id: "mac:79".into(),
            marker: "hgs:mac:79".into(),
            ..intent.clone()
        })
        .unwrap();
    let res: Result<(), StoreError> = store.transaction(|s| {
        s.journal_done(id2, "note-3")?;
        Err(StoreError::IntentNotPending(-1))
    });
    assert!(res.is_err());
    assert_eq!(
        store.intent(id2).unwrap().unwrap().state,
        IntentState::Pending
    );

    store.journal_abandon(id2).unwrap();
    assert_eq!(
        store.intent(id2).unwrap().unwrap().state,
        IntentState::Abandoned
    );
    assert!(store.pending_intents().unwrap().is_empty());
}

#[test]
fn pending_intent_survives_reopen() {
    let dir = TempDir::new("journal-reopen");
    let path = dir.path("sync.db");
    let store = Store::open(&path).unwrap();
    let id = store
        .journal_intent(&NewIntent {
            kind: Kind::Task,
            source_id: "welcome:c1".into(),
            op: "create_task".into(),
            marker: "hgs:task:welcome:c1".into(),
            payload_hash: None,
            run_id: None,
        })
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    let pending = store.pending_intents().unwrap();
    assert_eq!(pending.iter().map(|i| i.id).collect::<Vec<_>>(), vec![id]);
}

#[test]
fn nested_transactions_roll_back_inner_only() {
    let dir = TempDir::new("nested");
    let store = Store::open(dir.path("sync.db")).unwrap();
    store
        .transaction(|s| {
            s.set_cursor(Kind::Contact, "a", "1")?;
            let inner: Result<(), StoreError> = s.transaction(|s| {
                s.set_cursor(Kind::Contact, "b", "2")?;
                Err(StoreError::IntentNotPending(0))
            });
            assert!(inner.is_err());
            Ok(())
        })
        .unwrap();
    assert_eq!(
        store.cursor(Kind::Contact, "a").unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(store.cursor(Kind::Contact, "b").unwrap(), None);
}

#[test]
fn runs_items_and_api_calls_round_trip() {
    let dir = TempDir::new("runs");
    let store = Store::open(dir.path("sync.db")).unwrap();
    assert_eq!(store.latest_run().unwrap(), None);
    let r1 = store
        .start_run(&[Kind::Contact, Kind::Note], false, true)
        .unwrap();
    let r2 = store.start_run(&[Kind::Task], true, false).unwrap();
    let run = store.run(r1).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert!(run.dry_run);
    assert_eq!(run.kinds, vec![Kind::Contact, Kind::Note]);
    assert!(run.finished_at.is_none());

    let summary = serde_json::json!({"created": 3, "failed": 1});
    store.finish_run(r1, RunStatus::Partial, &summary).unwrap();
    let run = store.run(r1).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Partial);
    assert_eq!(run.summary, summary);
    assert!(run.finished_at.is_some());
    assert_eq!(store.latest_run().unwrap().unwrap().id, r2);
    assert_eq!(
        store
            .runs(10)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![r2, r1]
    );
    assert_eq!(store.latest_run_for(Kind::Note).unwrap().unwrap().id, r1);
    assert_eq!(store.latest_run_for(Kind::Business).unwrap(), None);
    assert_eq!(store.abort_stale_runs().unwrap(), 1);
    assert_eq!(store.run(r2).unwrap().unwrap().status, RunStatus::Aborted);

    let items = vec![
        RunItem {
            kind: Kind::Contact,
            source_id: "c1".into(),
            target_id: Some("g1".into()),
            action: "create".into(),
            outcome: ItemOutcome::Applied,
            reason: None,
            detail: serde_json::json!({"fields": ["email"]}),
        },
        RunItem {
            kind: Kind::Contact,
            source_id: "c2".into(),
            target_id: None,
            action: "create".into(),
            outcome: ItemOutcome::Skipped,
            reason: Some("no email or phone".into()),
            detail: serde_json::Value::Null,
        },
    ];
    store.insert_run_items(r1, &items).unwrap();
    assert_eq!(store.run_items(r1).unwrap(), items);
    assert!(store.run_items(r2).unwrap().is_empty());
    // A report lists the skip, not the plain create; a page of the listed items counts them all.
    let skips: Vec<RunItem> = (0..5)
        .map(|i| RunItem {
            source_id: format!("s{i}"),
            ..items[1].clone()
        })
        .collect();
    store.insert_run_items(r2, &items).unwrap();
    store.insert_run_items(r2, &skips).unwrap();
    let (page, total) = store.listed_run_items(r2, 2, Some(3)).unwrap();
    assert_eq!(total, 6);
    assert_eq!(
        page.iter()
            .map(|i| i.source_id.as_str())
            .collect::<Vec<_>>(),
        ["s1", "s2", "s3"]
    );
    let (all, total) = store.listed_run_items(r2, 0, None).unwrap();
    assert_eq!((all.len(), total), (6, 6));
    assert!(all.iter().all(|i| i.outcome == ItemOutcome::Skipped));
    let counts = store.run_item_counts(r1).unwrap();
    assert!(counts.contains(&(Kind::Contact, ItemOutcome::Applied, 1)));
    assert!(counts.contains(&(Kind::Contact, ItemOutcome::Skipped, 1)));

    let call = |method: &str,
                status: Option<u16>,
                attempt: u32,
                latency: u64,
                class: Option<ErrorClass>| AuditRecord {
        api: "ghl".into(),
        method: method.into(),
        path: "/contacts/{id}".into(),
        status,
        attempt,
        latency_ms: latency,
        error_class: class,
        message: None,
    };
    let records = vec![
        call("POST", Some(429), 1, 10, Some(ErrorClass::RateLimited)),
        call("POST", Some(201), 2, 30, None),
        call("GET", None, 1, 50, Some(ErrorClass::Transient)),
        call("GET", Some(200), 2, 10, None),
    ];
    let at = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
    store.insert_api_calls(Some(r1), &records, at).unwrap();
    let stored = store.api_calls(r1).unwrap();
    assert_eq!(
        stored.iter().map(|c| c.record.clone()).collect::<Vec<_>>(),
        records
    );
    assert!(stored.iter().all(|c| c.at == at && c.run_id == Some(r1)));
    let stats = store.api_call_stats(r1).unwrap();
    assert_eq!(stats.total, 4);
    assert_eq!(stats.retries, 2);
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.errors, 2);
    assert_eq!(stats.max_latency_ms, 50);
    assert_eq!(stats.avg_latency_ms, 25);
    assert_eq!(stats.by_method.len(), 2);
    assert_eq!(
        (stats.by_method[0].method.as_str(), stats.by_method[0].calls),
        ("GET", 2)
    );
    assert_eq!(store.api_call_stats(r2).unwrap().total, 0);

    // Pruning drops the old run with its items and calls.
    assert_eq!(store.prune_runs(1).unwrap(), 1);
    assert_eq!(store.run(r1).unwrap(), None);
    assert!(store.run_items(r1).unwrap().is_empty());
    assert!(store.api_calls(r1).unwrap().is_empty());
}

#[test]
fn tokens_round_trip_without_leaking() {
    let dir = TempDir::new("tokens");
    let store = Store::open(dir.path("sync.db")).unwrap();
    assert!(store.token("ghl").unwrap().is_none());
    let expires = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let mut token = StoredToken {
        provider: "ghl".into(),
        access_token: SecretString::from("access-secret-1"),
        refresh_token: Some(SecretString::from("refresh-secret-1")),
        expires_at: Some(expires),
        scope: Some("contacts.readonly contacts.write".into()),
        location_id: Some("loc1".into()),
        user_type: Some("Location".into()),
        updated_at: expires - Duration::hours(1),
    };
    store.save_token(&token).unwrap();
    token.refresh_token = Some(SecretString::from("refresh-secret-2"));
    store.save_token(&token).unwrap();
    let got = store.token("ghl").unwrap().unwrap();
    assert_eq!(got.access_token.expose_secret(), "access-secret-1");
    assert_eq!(
        got.refresh_token.as_ref().unwrap().expose_secret(),
        "refresh-secret-2"
    );
    assert_eq!(got.expires_at, Some(expires));
    assert_eq!(got.location_id.as_deref(), Some("loc1"));
    let debug = format!("{got:?}");
    assert!(!debug.contains("secret-"), "secret in Debug: {debug}");
    assert!(store.delete_token("ghl").unwrap());
    assert!(store.token("ghl").unwrap().is_none());
}

#[test]
fn appointments_replace_and_list() {
    let dir = TempDir::new("appts");
    let store = Store::open(dir.path("sync.db")).unwrap();
    let appt = |id: &str, start: &str| Appointment {
        contact_target_id: "g1".into(),
        event_id: id.into(),
        start: Some(start.into()),
        end: None,
        status: Some("confirmed".into()),
        title: Some("Visit".into()),
    };
    store
        .replace_appointments(
            "g1",
            &[
                appt("e2", "2026-02-01T10:00:00Z"),
                appt("e1", "2026-01-01T10:00:00Z"),
            ],
        )
        .unwrap();
    let list = store.appointments_for("g1").unwrap();
    assert_eq!(
        list.iter().map(|a| a.event_id.as_str()).collect::<Vec<_>>(),
        vec!["e1", "e2"]
    );
    store
        .replace_appointments("g1", &[appt("e2", "2026-02-01T10:00:00Z")])
        .unwrap();
    assert_eq!(store.appointments().unwrap().len(), 1);
    let mut changed = appt("e2", "2026-02-01T11:00:00Z");
    changed.status = Some("cancelled".into());
    store.upsert_appointment(&changed).unwrap();
    assert_eq!(store.appointments_for("g1").unwrap(), vec![changed]);
}

#[test]
fn cursors_per_kind_and_scope() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.schema_version().unwrap(), schema::latest_version());
    store.set_cursor(Kind::Note, "mac", "10").unwrap();
    store.set_cursor(Kind::Note, "mac", "11").unwrap();
    store.set_cursor(Kind::Note, "paid", "3").unwrap();
    assert_eq!(
        store.cursor(Kind::Note, "mac").unwrap().as_deref(),
        Some("11")
    );
    store.clear_cursors(Kind::Note).unwrap();
    assert_eq!(store.cursor(Kind::Note, "paid").unwrap(), None);
}

#[test]
fn links_stream_in_source_order_and_recent_targets_are_found_by_time() {
    let store = Store::open_in_memory().unwrap();
    let now = Utc::now();
    for (sid, tid, age_min) in [("s2", "t2", 1), ("s1", "t1", 60), ("s3", "t3", 0)] {
        let mut l = Link::new(Kind::Contact, sid, tid, MatchMethod::Created);
        l.first_linked_at = now - Duration::minutes(age_min);
        store.upsert_link(&l).unwrap();
    }
    store
        .upsert_link(&Link::new(Kind::Note, "n1", "t9", MatchMethod::Created))
        .unwrap();
    let mut seen = Vec::new();
    store
        .each_link(Kind::Contact, |l| {
            seen.push(l.source_id);
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, ["s1", "s2", "s3"]);
    let recent = store
        .targets_linked_since(Kind::Contact, now - Duration::minutes(2))
        .unwrap();
    assert_eq!(recent, BTreeSet::from(["t2".to_string(), "t3".to_string()]));
}
