//! Notes, tasks, businesses and appointments through the real binary against the emulators
//! started in this process (config in a temporary directory, secrets in the child's environment).

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use hotspot_ghl_sync::mapping::note_reference;
use hotspot_ghl_sync::model::Kind;
use hotspot_ghl_sync::reconcile::tasks::{onboarding_completion, task_views};
use hotspot_ghl_sync::sandbox::ghl::Appointment;
use hotspot_ghl_sync::sandbox::ghl::{GhlOptions, GhlRequest, PRODUCT_SCOPES, normalize_phone};
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use hotspot_ghl_sync::sandbox::{Sandbox, SandboxOptions};
use hotspot_ghl_sync::store::{LinkStatus, NewIntent, Store};
use serde_json::Value;

use support::{BIN, Out};

struct Env {
    sandbox: Sandbox,
    dir: PathBuf,
    config: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    async fn new(name: &str, seed: SeedSpec, extra_config: &str) -> Env {
        Env::with_ghl(name, seed, extra_config, GhlOptions::default()).await
    }

    async fn with_ghl(name: &str, seed: SeedSpec, extra_config: &str, ghl: GhlOptions) -> Env {
        let sandbox = Sandbox::start(SandboxOptions {
            seed,
            ghl: GhlOptions {
                rate_limit: 100_000,
                ..ghl
            },
            ..SandboxOptions::default()
        })
        .await
        .expect("sandbox");
        let dir = support::temp_dir(&format!("ntb-{name}"));
        let config = dir.join("config.toml");
        let text = format!(
            r#"[state]
path = "{state}"

[hotspot]
base_url = "{hs}"
api_key_env = "HGS_T_HOTSPOT_KEY"
page_size = 500
rate_limit = 10000

[ghl]
base_url = "{ghl}"
location_id = "{loc}"
auth = "private_token"
token_env = "HGS_T_GHL_TOKEN"
rate_limit = 50000
max_concurrency = 8

[http]
timeout_secs = 10
max_attempts = 2
max_elapsed_secs = 10

{extra_config}
"#,
            state = dir.join("state.db").display(),
            hs = sandbox.hotspot.base_url(),
            ghl = sandbox.ghl.base_url(),
            loc = sandbox.ghl.location_id(),
        );
        std::fs::write(&config, text).unwrap();
        Env {
            sandbox,
            dir,
            config,
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        let out = tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("HGS_CONFIG")
            .env_remove("RUST_LOG")
            .env("HGS_T_HOTSPOT_KEY", self.sandbox.hotspot_api_key())
            .env("HGS_T_GHL_TOKEN", self.sandbox.ghl_token())
            .output()
            .await
            .expect("run the binary");
        Out::from_output(out)
    }

    async fn sync(&self, args: &[&str]) -> Out {
        let mut all = vec!["sync"];
        all.extend_from_slice(args);
        let t = std::time::Instant::now();
        let o = self.run(&all).await;
        eprintln!("  sync {args:?}: {:.1}s", t.elapsed().as_secs_f64());
        assert_eq!(o.code, 0, "{}", o.show());
        o
    }

    /// `report --format json` of the latest run.
    async fn report(&self) -> Value {
        let o = self.run(&["report", "--format", "json"]).await;
        assert_eq!(o.code, 0, "{}", o.show());
        serde_json::from_str(&o.stdout).expect("json report")
    }

    fn store(&self) -> Store {
        Store::open(self.dir.join("state.db")).unwrap()
    }

    fn requests(&self) -> Vec<GhlRequest> {
        self.sandbox.ghl.requests()
    }
}

/// GHL writes in a request log (searches are POSTs that only read).
fn writes(log: &[GhlRequest]) -> Vec<String> {
    log.iter()
        .filter(|r| r.method != "GET" && !r.path.ends_with("/search"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn count(report: &Value, kind: &str, field: &str) -> u64 {
    report["kinds"][kind][field].as_u64().unwrap_or(0)
}

/// (type, id, email, phone) of every transaction the emulator holds.
fn transactions(env: &Env) -> Vec<(String, i64, Option<String>, Option<String>)> {
    env.sandbox.hotspot.with_data(|d| {
        let mut v = Vec::new();
        for t in &d.mac_transactions {
            v.push(("mac".to_string(), t.id, t.email.clone(), t.phone.clone()));
        }
        for t in &d.voucher_transactions {
            v.push((
                "voucher".to_string(),
                t.id,
                t.email.clone(),
                t.phone.clone(),
            ));
        }
        for t in &d.social_transactions {
            v.push(("social".to_string(), t.id, t.email.clone(), t.phone.clone()));
        }
        for t in &d.paid_transactions {
            v.push(("paid".to_string(), t.id, t.email.clone(), t.phone.clone()));
        }
        v
    })
}

fn present(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Checks that every transaction of a guest with an email or phone has exactly one note, on the
/// contact with that email (or phone). Returns (notes expected, transactions without contact).
fn check_notes(env: &Env) -> (usize, usize) {
    let txns = transactions(env);
    let (notes, contacts) = env.sandbox.ghl.with_state(|s| {
        let notes: Vec<(String, String)> = s
            .notes
            .values()
            .map(|n| (n.contact_id.clone(), n.body.clone()))
            .collect();
        let contacts: HashMap<String, (Option<String>, Option<String>)> = s
            .contacts
            .values()
            .map(|c| (c.id.clone(), (c.email.clone(), c.phone.clone())))
            .collect();
        (notes, contacts)
    });
    let mut by_ref: HashMap<String, Vec<&str>> = HashMap::new();
    for (cid, body) in &notes {
        let r = body
            .lines()
            .find_map(|l| l.trim().strip_prefix("Ref: hgs:"))
            .expect("every note carries its reference line");
        by_ref.entry(r.to_string()).or_default().push(cid);
    }
    let mut expected = 0;
    let mut without = 0;
    for (kind, id, email, phone) in &txns {
        let key = format!("{kind}:{id}");
        let (email, phone) = (present(email), present(phone));
        if email.is_none() && phone.is_none() {
            without += 1;
            assert!(
                !by_ref.contains_key(&key),
                "{key} has no guest contact yet got a note"
            );
            continue;
        }
        expected += 1;
        let on = by_ref
            .get(&key)
            .unwrap_or_else(|| panic!("no note for transaction {key}"));
        assert_eq!(on.len(), 1, "transaction {key} has {} notes", on.len());
        let (c_email, c_phone) = &contacts[on[0]];
        let right = match (&email, c_email) {
            (Some(e), Some(ce)) => e.to_lowercase() == ce.to_lowercase(),
            _ => {
                phone.as_deref().and_then(normalize_phone)
                    == c_phone.as_deref().and_then(normalize_phone)
            }
        };
        assert!(right, "note of {key} is on the wrong contact");
    }
    assert_eq!(notes.len(), expected, "one note per transaction, no more");
    (expected, without)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_become_one_note_each_incrementally_and_deleted_notes_stay_deleted() {
    let env = Env::new(
        "notes",
        SeedSpec {
            seed: 11,
            locations: 5,
            customers: 500,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 2_000,
        },
        "[tasks]\nenabled = false\n",
    )
    .await;
    assert_eq!(transactions(&env).len(), 2_000);

    let started = std::time::Instant::now();
    env.sync(&[]).await;
    let first = started.elapsed();
    let (expected, without) = check_notes(&env);
    assert_eq!(expected + without, 2_000);
    let report = env.report().await;
    assert_eq!(count(&report, "note", "created"), expected as u64);
    assert_eq!(count(&report, "note", "skipped"), without as u64);
    let log = env.requests();
    let note_posts = log
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/notes"))
        .count();
    assert_eq!(
        note_posts, expected,
        "one POST per note, no retry, no duplicate"
    );
    eprintln!(
        "run 1: {expected} notes ({without} transactions without contact), {} GHL requests, {:.1}s",
        log.len(),
        first.as_secs_f64()
    );

    // Nothing new: nothing written.
    env.sandbox.ghl.clear_requests();
    env.sync(&[]).await;
    let log = env.requests();
    assert_eq!(writes(&log), Vec::<String>::new(), "second run wrote");
    eprintln!("run 2 (no change): {} GHL requests, 0 writes", log.len());
    let report = env.report().await;
    assert_eq!(count(&report, "note", "created"), 0);

    // 200 new transactions: exactly their notes.
    env.sandbox
        .hotspot
        .with_data(|d| d.add_transactions(99, 200));
    // A dry run says what it would write and writes nothing.
    env.sandbox.ghl.clear_requests();
    env.sync(&["--dry-run"]).await;
    assert_eq!(writes(&env.requests()), Vec::<String>::new());
    let dry = env.report().await;
    let would = count(&dry, "note", "deferred");
    assert!(would > 150, "dry run planned {would} notes");
    env.sandbox.ghl.clear_requests();
    env.sync(&[]).await;
    let (expected_after, without_after) = check_notes(&env);
    assert_eq!((expected_after - expected) as u64, would);
    assert_eq!(expected_after + without_after, 2_200);
    let new_notes = expected_after - expected;
    let log = env.requests();
    assert_eq!(
        writes(&log).len(),
        new_notes,
        "only the new transactions' notes were written"
    );
    assert_eq!(new_notes + (without_after - without), 200);
    eprintln!(
        "run 3 (+200 transactions): {new_notes} notes, {} GHL requests",
        log.len()
    );

    // A crash after GHL created a note but before its link was stored: the pending intent is
    // resolved by finding the reference line on the contact, and nothing is posted twice. A
    // second intent whose note never reached GHL is abandoned and its note written.
    let store = env.store();
    let mut links = store
        .links(Kind::Note)
        .unwrap()
        .into_iter()
        .filter(|l| l.status == LinkStatus::Active);
    let (made, lost) = (links.next().unwrap(), links.next().unwrap());
    for l in [&made, &lost] {
        store.delete_link(Kind::Note, &l.source_id).unwrap();
        let (kind, id) = l.source_id.split_once(':').unwrap();
        let contact = l.extra["contact_id"].as_str().unwrap();
        store
            .journal_intent(&NewIntent {
                kind: Kind::Note,
                source_id: l.source_id.clone(),
                op: format!("create_note:{contact}"),
                marker: note_reference(kind, id),
                payload_hash: None,
                run_id: None,
            })
            .unwrap();
    }
    store.clear_cursors(Kind::Note).unwrap();
    env.sandbox
        .ghl
        .with_state(|s| s.notes.remove(&lost.target_id));
    drop(store);
    env.sandbox.ghl.clear_requests();
    env.sync(&[]).await;
    let log = env.requests();
    let lists = log
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/notes"))
        .count();
    assert_eq!(lists, 2, "one notes listing per pending intent");
    assert_eq!(writes(&log).len(), 1, "only the lost note is written again");
    check_notes(&env);
    let store = env.store();
    assert!(store.pending_intents().unwrap().is_empty());
    let recovered = store.link(Kind::Note, &made.source_id).unwrap().unwrap();
    assert_eq!(recovered.target_id, made.target_id);
    drop(store);

    // A note a CRM user deleted is not recreated, not even by a full rescan.
    let victim = env
        .sandbox
        .ghl
        .with_state(|s| s.notes.keys().next().cloned().unwrap());
    env.sandbox.ghl.with_state(|s| s.notes.remove(&victim));
    env.sandbox.ghl.clear_requests();
    env.sync(&["--full"]).await;
    assert_eq!(writes(&env.requests()), Vec::<String>::new());
    let now = env.sandbox.ghl.with_state(|s| s.notes.len());
    assert_eq!(now, expected_after - 1);
    let report = env.report().await;
    assert_eq!(count(&report, "note", "created"), 0);
    assert_eq!(
        count(&report, "note", "unchanged"),
        expected_after as u64 - 1 + 1
    );
}

fn tasks_of(env: &Env) -> BTreeMap<String, Vec<(String, String, bool)>> {
    env.sandbox.ghl.with_state(|s| {
        let mut m: BTreeMap<String, Vec<(String, String, bool)>> = BTreeMap::new();
        for c in s.contacts.keys() {
            m.insert(c.clone(), Vec::new());
        }
        for t in s.tasks.values() {
            m.entry(t.contact_id.clone()).or_default().push((
                t.id.clone(),
                t.title.clone(),
                t.completed,
            ));
        }
        m
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_tasks_read_back_and_businesses_by_location() {
    let env = Env::new(
        "tasks",
        SeedSpec {
            seed: 5,
            locations: 5,
            customers: 40,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 40,
        },
        r#"[notes]
enabled = false

[[tasks.onboarding]]
id = "welcome"
title = "Welcome {name}"
body = "Registered at {location}."
due_in_days = 1

[[tasks.onboarding]]
id = "call"
title = "Call {name}"
due_in_days = 3

[[tasks.onboarding]]
id = "survey"
title = "Send the survey to {email}"
due_in_days = 7

[businesses]
enabled = true
batch_size = 10

[appointments]
enabled = true
"#,
    )
    .await;

    for round in 0..3 {
        env.sandbox.ghl.clear_requests();
        env.sync(&[]).await;
        let tasks = tasks_of(&env);
        for (contact, list) in &tasks {
            assert_eq!(
                list.len(),
                3,
                "round {round}: contact {contact} has {} tasks",
                list.len()
            );
        }
        let contacts = tasks.len();
        let log = env.requests();
        let task_posts = log
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/tasks"))
            .count();
        eprintln!(
            "round {round}: {contacts} contacts, {task_posts} task creates, {} GHL requests",
            log.len()
        );
        // Next round: new guests.
        env.sandbox
            .hotspot
            .with_data(|d| d.add_customers(100 + round, 7));
    }

    // Businesses: one per location, every contact with its registration location's.
    let (businesses, contact_business) = env.sandbox.ghl.with_state(|s| {
        let b: HashMap<String, String> = s
            .businesses
            .values()
            .map(|b| (b.id.clone(), b.name.clone()))
            .collect();
        let c: HashMap<String, Option<String>> = s
            .contacts
            .values()
            .map(|c| (c.id.clone(), c.business_id.clone()))
            .collect();
        (b, c)
    });
    assert_eq!(businesses.len(), 5);
    let store = env.store();
    let location_names: HashMap<String, String> = env.sandbox.hotspot.with_data(|d| {
        d.locations
            .iter()
            .map(|l| (l.id.clone(), l.name.clone()))
            .collect()
    });
    for link in store.links(Kind::Contact).unwrap() {
        if link.status != LinkStatus::Active {
            continue;
        }
        let loc = link.extra["location_id"].as_str().unwrap();
        let bid = contact_business[&link.target_id]
            .clone()
            .unwrap_or_else(|| panic!("contact {} has no business", link.target_id));
        assert_eq!(businesses[&bid], location_names[loc]);
    }

    // Association calls: at most ceil(members / batch) per business.
    // (Rebuild from a fresh state to count the first run's calls.)
    let fresh = Env::new(
        "assoc",
        SeedSpec {
            seed: 6,
            locations: 5,
            customers: 60,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 0,
        },
        "[notes]\nenabled = false\n[tasks]\nenabled = false\n[businesses]\nenabled = true\nbatch_size = 10\n",
    )
    .await;
    fresh.sync(&[]).await;
    let calls = fresh
        .requests()
        .iter()
        .filter(|r| r.path == "/contacts/bulk/business")
        .count();
    let per_business: HashMap<String, usize> = fresh.sandbox.ghl.with_state(|s| {
        let mut m = HashMap::new();
        for c in s.contacts.values() {
            *m.entry(c.business_id.clone().expect("associated"))
                .or_default() += 1;
        }
        m
    });
    let contacts: usize = per_business.values().sum();
    let bound: usize = per_business.values().map(|n| n.div_ceil(10)).sum();
    assert_eq!(per_business.len(), 5);
    assert!(
        calls <= bound,
        "{calls} association calls for {contacts} contacts (bound {bound})"
    );
    assert!(calls < contacts.div_ceil(10) + per_business.len());
    eprintln!(
        "associations: {contacts} contacts, 5 businesses, {calls} bulk calls (ceil(contacts/10) = {})",
        contacts.div_ceil(10)
    );
    fresh.sandbox.ghl.clear_requests();
    fresh.sync(&[]).await;
    assert_eq!(writes(&fresh.requests()), Vec::<String>::new());

    // A CRM user completes one task and edits another: recorded, never changed back.
    let tasks = tasks_of(&env);
    let mut ids = tasks.values().flatten();
    let (done_id, _, _) = ids.next().unwrap().clone();
    let (edited_id, _, _) = ids.next().unwrap().clone();
    env.sandbox.ghl.with_state(|s| {
        s.tasks.get_mut(&done_id).unwrap().completed = true;
        s.tasks.get_mut(&edited_id).unwrap().title = "Call back on Monday".into();
    });
    env.sandbox.ghl.clear_requests();
    env.sync(&["--only", "tasks"]).await;
    assert_eq!(writes(&env.requests()), Vec::<String>::new());
    let title = env
        .sandbox
        .ghl
        .with_state(|s| s.tasks[&edited_id].title.clone());
    assert_eq!(title, "Call back on Monday");
    let store = env.store();
    let links = store.links(Kind::Task).unwrap();
    let by_target: HashMap<&str, &Value> = links
        .iter()
        .map(|l| (l.target_id.as_str(), &l.extra))
        .collect();
    assert_eq!(by_target[done_id.as_str()]["completed"], true);
    assert_eq!(by_target[edited_id.as_str()]["edited"], true);
    assert_eq!(by_target[edited_id.as_str()]["completed"], false);
    let rules: HashSet<&str> = ["welcome", "call", "survey"].into();
    let (done, total) = onboarding_completion(&task_views(&store).unwrap(), &rules);
    assert_eq!((done, total), (1, links.len() as u64));
    let report = env.report().await;
    let notes: Vec<&str> = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let line = format!("Onboarding tasks: 1 of {total} completed");
    assert!(
        notes.iter().any(|n| n.starts_with(&line)),
        "no completion figure in {notes:?}"
    );

    // Appointments of linked contacts are read into the state (all of them with --full).
    let some_contact = store
        .links(Kind::Contact)
        .unwrap()
        .into_iter()
        .find(|l| l.status == LinkStatus::Active)
        .unwrap()
        .target_id;
    env.sandbox.ghl.with_state(|s| {
        for (id, start) in [
            ("ev-past", "2020-01-01T10:00:00Z"),
            ("ev-next", "2099-01-01T10:00:00Z"),
        ] {
            s.appointments.push(Appointment {
                id: id.into(),
                calendar_id: "cal1".into(),
                contact_id: some_contact.clone(),
                title: format!("Visit {id}"),
                status: "booked".into(),
                appointment_status: "confirmed".into(),
                assigned_user_id: None,
                start_time: start.into(),
                end_time: start.into(),
                notes: None,
                address: None,
            });
        }
    });
    env.sync(&["--only", "appointments", "--full"]).await;
    let stored = store.appointments_for(&some_contact).unwrap();
    assert_eq!(stored.len(), 2);
    let report = env.report().await;
    let notes = report["notes"].to_string();
    assert!(notes.contains("1 upcoming and 1 past"), "{notes}");

    // A location renamed in HotspotSystem renames its business on the next run.
    let (loc_id, new_name) = env.sandbox.hotspot.with_data(|d| {
        d.locations[0].name = "Renamed Lobby".into();
        (d.locations[0].id.clone(), d.locations[0].name.clone())
    });
    env.sync(&["--only", "businesses"]).await;
    let bid = store
        .link(Kind::Business, &loc_id)
        .unwrap()
        .unwrap()
        .target_id;
    let name = env
        .sandbox
        .ghl
        .with_state(|s| s.businesses[&bid].name.clone());
    assert_eq!(name, new_name);
    let _ = Duration::ZERO;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_task_search_scope_tasks_are_read_per_contact_with_open_tasks() {
    let mut ghl = GhlOptions::default();
    let scopes: Vec<String> = PRODUCT_SCOPES
        .iter()
        .filter(|s| **s != "locations/tasks.readonly")
        .map(|s| s.to_string())
        .collect();
    ghl.tokens = vec![("pit-no-task-search".into(), scopes)];
    let env = Env::with_ghl(
        "taskscope",
        SeedSpec {
            seed: 3,
            locations: 2,
            customers: 24,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 0,
        },
        "[notes]\nenabled = false\n",
        ghl,
    )
    .await;
    env.sync(&[]).await;
    let tasks = tasks_of(&env);
    assert!(
        tasks.values().all(|t| t.len() == 1),
        "one default onboarding task each"
    );
    let contacts = tasks.len();
    // Half the tasks are done in GHL.
    let done: Vec<String> = tasks
        .values()
        .flatten()
        .step_by(2)
        .map(|(id, _, _)| id.clone())
        .collect();
    env.sandbox.ghl.with_state(|s| {
        for id in &done {
            s.tasks.get_mut(id).unwrap().completed = true;
        }
    });
    env.sandbox.ghl.clear_requests();
    env.sync(&["--only", "tasks", "--full"]).await;
    let log = env.requests();
    let lists = log
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/tasks"))
        .count();
    assert_eq!(
        lists, contacts,
        "every contact had an open task (full pass)"
    );
    assert_eq!(writes(&log), Vec::<String>::new());
    let links = env.store().links(Kind::Task).unwrap();
    let completed = links
        .iter()
        .filter(|l| l.extra["completed"] == true)
        .count();
    assert_eq!(completed, done.len());
    // Next run: only the contacts whose task is still open are listed, at most 10 of them
    // outside a full pass (one call each).
    env.sandbox.ghl.clear_requests();
    env.sync(&["--only", "tasks"]).await;
    let lists = env
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/tasks"))
        .count();
    assert!(
        contacts - done.len() > 10,
        "the test needs more open tasks than the cap"
    );
    assert_eq!(lists, 10);
    eprintln!(
        "per-contact read-back: {contacts} contacts, {lists} task listings once {} were completed",
        done.len()
    );
}

/// Tasks are never written again, so reading them back only feeds the report: outside a full
/// pass, at most 500 contacts (10 searches) are read per pass, the ones checked longest ago
/// first, so a completion is still noticed within a few passes and the quota is not spent
/// re-reading every open task every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_read_back_is_spread_over_passes() {
    let env = Env::new(
        "taskbudget",
        SeedSpec {
            seed: 4,
            locations: 1,
            customers: 620,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 0,
        },
        "[notes]\nenabled = false\n",
    )
    .await;
    env.sync(&[]).await;
    let tasks: BTreeMap<String, Vec<(String, String, bool)>> = tasks_of(&env)
        .into_iter()
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let open = tasks.len();
    assert!(open > 600, "{open} contacts with an onboarding task");
    let searches = |env: &Env| {
        env.requests()
            .iter()
            .filter(|r| r.path.ends_with("/tasks/search"))
            .count()
    };
    // Pass 2: 500 contacts, never checked before, in 10 searches.
    env.sandbox.ghl.clear_requests();
    env.sync(&["--only", "tasks"]).await;
    assert_eq!(searches(&env), 10);
    let note = format!("Task completion read back for 500 of {open} contacts");
    let notes = env.report().await["notes"].to_string();
    assert!(notes.contains(&note), "{notes}");
    let checked: Vec<String> = env
        .store()
        .links(Kind::Task)
        .unwrap()
        .into_iter()
        .filter(|l| l.extra.get("checked_at").is_some())
        .filter_map(|l| l.extra["contact_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(checked.len(), 500);
    // A task of a contact pass 2 did not read is completed in GHL; pass 3 reads the unread
    // ones first and notices it (10 searches of pending tasks, and one of completed tasks for
    // the contact whose open task the first did not show).
    let unread = tasks
        .iter()
        .find(|(cid, _)| !checked.contains(cid))
        .map(|(_, t)| t[0].0.clone())
        .expect("an unread contact");
    env.sandbox
        .ghl
        .with_state(|s| s.tasks.get_mut(&unread).unwrap().completed = true);
    env.sandbox.ghl.clear_requests();
    env.sync(&["--only", "tasks"]).await;
    assert_eq!(searches(&env), 11);
    let link = env
        .store()
        .links(Kind::Task)
        .unwrap()
        .into_iter()
        .find(|l| l.target_id == unread)
        .unwrap();
    assert_eq!(
        link.extra["completed"], true,
        "pass 3 read the unread contact"
    );
    // A full pass reads every contact with an open task: ceil(open - 1 / 50) searches.
    env.sandbox.ghl.clear_requests();
    env.sync(&["--only", "tasks", "--full"]).await;
    assert_eq!(searches(&env), (open - 1).div_ceil(50));
    eprintln!(
        "RESULT task read-back: {open} contacts with open tasks; 10 searches a pass, {} on a full pass (was {} every pass)",
        (open - 1).div_ceil(50),
        open.div_ceil(50)
    );
}

/// GHL's location task search takes one `completed` boolean ("Task Completed Or Pending") and
/// the spec gives no default: a server may answer pending tasks only when it is absent. A
/// deleted task may be gone or served as a row flagged `deleted`. Under each reading, tasks
/// completed in GHL are recorded completed, deleted ones deleted (each confirmed by a GET by
/// id first), and the others stay open.
async fn completion_and_deletion_are_read_back(pending_by_default: bool, deleted_rows: bool) {
    let env = Env::with_ghl(
        &format!("taskread-{pending_by_default}-{deleted_rows}"),
        SeedSpec {
            seed: 9,
            locations: 2,
            customers: 60,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 0,
        },
        "[notes]\nenabled = false\n",
        GhlOptions {
            task_search_pending_by_default: pending_by_default,
            deleted_task_rows: deleted_rows,
            ..GhlOptions::default()
        },
    )
    .await;
    env.sync(&[]).await;
    let ids: Vec<String> = tasks_of(&env)
        .values()
        .flatten()
        .map(|(id, _, _)| id.clone())
        .collect();
    assert!(ids.len() >= 45, "{} tasks", ids.len());
    let (done, rest) = ids.split_at(32);
    let (gone, open) = rest.split_at(5);
    env.sandbox.ghl.with_state(|s| {
        for id in done {
            s.tasks.get_mut(id).unwrap().completed = true;
        }
        for id in gone {
            s.delete_task(id).unwrap();
        }
    });
    env.sandbox.ghl.clear_requests();
    env.sync(&["--only", "tasks"]).await;
    let log = env.requests();
    assert_eq!(writes(&log), Vec::<String>::new());
    for r in log.iter().filter(|r| r.path.ends_with("/tasks/search")) {
        let body = r.body.as_ref().expect("search body");
        assert!(
            body["completed"].is_boolean(),
            "every task search says which tasks it asks for: {body}"
        );
    }
    let links = env.store().links(Kind::Task).unwrap();
    let by_target: HashMap<&str, _> = links.iter().map(|l| (l.target_id.as_str(), l)).collect();
    for id in done {
        let l = by_target[id.as_str()];
        assert_eq!(
            l.status,
            LinkStatus::Active,
            "completed task {id} taken for deleted"
        );
        assert_eq!(l.extra["completed"], true, "completion of {id} not seen");
    }
    for id in gone {
        let l = by_target[id.as_str()];
        assert_eq!(
            l.status,
            LinkStatus::Tombstoned,
            "deleted task {id} not seen"
        );
        let contact = l.extra["contact_id"].as_str().unwrap();
        let get = format!("/contacts/{contact}/tasks/{id}");
        assert!(
            log.iter().any(|r| r.method == "GET" && r.path == get),
            "deletion of {id} recorded without a GET to confirm it"
        );
    }
    for id in open {
        let l = by_target[id.as_str()];
        assert_eq!(l.status, LinkStatus::Active);
        assert_eq!(l.extra["completed"], false);
    }
    let notes = env.report().await["notes"].to_string();
    assert!(
        notes.contains("32 completed, 0 edited, 5 deleted"),
        "{notes}"
    );
    // Nothing changed since: no GET by id, one search per 50 contacts with open tasks.
    env.sandbox.ghl.clear_requests();
    env.sync(&["--only", "tasks", "--full"]).await;
    let log = env.requests();
    let searches = log
        .iter()
        .filter(|r| r.path.ends_with("/tasks/search"))
        .count();
    assert_eq!(searches, open.len().div_ceil(50));
    assert!(
        !log.iter()
            .any(|r| r.method == "GET" && r.path.contains("/tasks/")),
        "no task is confirmed when none is missing"
    );
    let still = env.store().links(Kind::Task).unwrap();
    assert_eq!(
        still
            .iter()
            .filter(|l| l.extra["completed"] == true)
            .count(),
        32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_read_back_when_search_answers_both_and_deleted_tasks_are_gone() {
    completion_and_deletion_are_read_back(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_read_back_when_search_answers_pending_only_by_default() {
    completion_and_deletion_are_read_back(true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_read_back_when_deleted_tasks_are_served_flagged() {
    completion_and_deletion_are_read_back(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_read_back_when_search_is_pending_only_and_deleted_tasks_are_flagged() {
    completion_and_deletion_are_read_back(true, true).await;
}

/// Every business the state records for a contact is the one GHL holds for it.
fn recorded_associations_hold(env: &Env) -> (usize, usize) {
    let held: HashMap<String, Option<String>> = env.sandbox.ghl.with_state(|s| {
        s.contacts
            .values()
            .map(|c| (c.id.clone(), c.business_id.clone()))
            .collect()
    });
    let (mut recorded, mut not_recorded) = (0, 0);
    for l in env.store().links(Kind::Contact).unwrap() {
        if l.status != LinkStatus::Active {
            continue;
        }
        match l.extra["business_id"].as_str() {
            Some(bid) => {
                recorded += 1;
                assert_eq!(
                    held.get(&l.target_id).cloned().flatten().as_deref(),
                    Some(bid),
                    "contact {} recorded as associated with {bid}, which GHL does not show",
                    l.target_id
                );
            }
            None => not_recorded += 1,
        }
    }
    (recorded, not_recorded)
}

/// The bulk association answers `ids` (required by the spec, whose example lists one id of
/// the two sent): only those are recorded as associated. GHL leaves out contacts it does not
/// know (deleted there since the last listing), and may handle part of a call (`limit`). The
/// others are reported and sent again on the next pass.
async fn associations_are_recorded_as_answered(limit: Option<usize>) {
    let env = Env::with_ghl(
        &format!("assoc-answer-{limit:?}"),
        SeedSpec {
            seed: 12,
            locations: 2,
            customers: 30,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 0,
        },
        "[notes]\nenabled = false\n[tasks]\nenabled = false\n[businesses]\nenabled = true\nbatch_size = 10\n",
        GhlOptions {
            bulk_business_limit: limit,
            ..GhlOptions::default()
        },
    )
    .await;
    // Contacts first; three of them are deleted in GHL before they are associated.
    env.sync(&["--only", "contacts"]).await;
    let victims: Vec<String> = env.sandbox.ghl.with_state(|s| {
        let ids: Vec<String> = s.contacts.keys().take(3).cloned().collect();
        for id in &ids {
            s.delete_contact(id).unwrap();
        }
        ids
    });
    let live = env.sandbox.ghl.with_state(|s| s.contacts.len());
    let sent = |env: &Env| -> Vec<String> {
        env.requests()
            .iter()
            .filter(|r| r.path == "/contacts/bulk/business")
            .flat_map(|r| {
                r.body.as_ref().unwrap()["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let mut passes = 0;
    loop {
        passes += 1;
        env.sandbox.ghl.clear_requests();
        let o = env.run(&["sync", "--only", "businesses"]).await;
        let (recorded, _) = recorded_associations_hold(&env);
        let ids = sent(&env);
        for v in &victims {
            assert!(ids.contains(v), "pass {passes}: {v} not sent again");
        }
        let report = env.report().await;
        let items = report["items"].to_string();
        for v in &victims {
            assert!(
                items.contains(v.as_str()),
                "pass {passes}: {v} not reported: {items}"
            );
        }
        assert_ne!(o.code, 0, "a contact left unassociated is not a success");
        if recorded == live {
            break;
        }
        assert!(
            passes < 10,
            "{recorded} of {live} associated after {passes} passes"
        );
    }
    match limit {
        None => assert_eq!(passes, 1),
        Some(_) => assert!(passes > 1, "a partial answer takes more than one pass"),
    }
    // Then only the contacts GHL never listed are sent.
    env.sandbox.ghl.clear_requests();
    let _ = env.run(&["sync", "--only", "businesses"]).await;
    let mut again = sent(&env);
    again.sort();
    let mut expected = victims.clone();
    expected.sort();
    assert_eq!(again, expected);
    recorded_associations_hold(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn association_records_only_the_contacts_the_answer_lists() {
    associations_are_recorded_as_answered(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn association_answer_listing_part_of_a_call_is_finished_on_later_passes() {
    associations_are_recorded_as_answered(Some(3)).await;
}

/// Two HotspotSystem customers sharing an email (a couple: own phone, own user name) are one
/// GHL contact. A transaction of either carries only that customer's phone and user name, and
/// must land once on the shared contact, whichever of the two it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_of_merged_customers_land_once_on_their_shared_contact() {
    use hotspot_ghl_sync::sandbox::seed::VoucherTransaction;
    let env = Env::new(
        "merged",
        SeedSpec {
            seed: 5,
            locations: 1,
            customers: 20,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 0,
        },
        "[tasks]\nenabled = false\n",
    )
    .await;
    let email = "couple@example.com";
    let refs: Vec<String> = env.sandbox.hotspot.with_data(|d| {
        let ids = d.add_customers(7, 2);
        let mut guests = Vec::new();
        for (k, id) in ids.iter().enumerate() {
            let c = d.customer_mut(id).unwrap();
            // The second writes the shared address differently: still the same person key.
            c.email = Some(if k == 0 {
                email.into()
            } else {
                " Couple@Example.COM ".into()
            });
            c.phone = Some(format!("+44 20 7946 10{k}{k}"));
            c.user_name = format!("couple-{k}");
            guests.push(c.clone());
        }
        let at = guests[1].registered_at + chrono::Duration::hours(1);
        let loc: i64 = guests[0].location_id.parse().unwrap();
        let txn = |id: i64, g: &hotspot_ghl_sync::sandbox::seed::Customer, phone: bool| {
            VoucherTransaction {
                id,
                operator: d.owner.operator.clone(),
                location_id: loc,
                user_name: g.user_name.clone(),
                customer: g.name.clone(),
                action_date_gmt: at + chrono::Duration::minutes(id - 900_000),
                amount: 4.5,
                currency: Some("EUR".into()),
                phone: if phone { g.phone.clone() } else { None },
                ..VoucherTransaction::default()
            }
        };
        let txns = vec![
            // The second customer's phone and user name, no email.
            txn(900_001, &guests[1], true),
            // The second customer's user name only.
            txn(900_002, &guests[1], false),
            // The first customer's phone and user name, no email.
            txn(900_003, &guests[0], true),
        ];
        let refs = txns.iter().map(|t| format!("voucher:{}", t.id)).collect();
        d.voucher_transactions.extend(txns);
        refs
    });

    for run in 1..=2 {
        env.sync(&[]).await;
        let (contacts, notes) = env.sandbox.ghl.with_state(|s| {
            let contacts: Vec<String> = s
                .contacts
                .values()
                .filter(|c| c.email.as_deref() == Some(email))
                .map(|c| c.id.clone())
                .collect();
            let notes: Vec<(String, String)> = s
                .notes
                .values()
                .map(|n| (n.contact_id.clone(), n.body.clone()))
                .collect();
            (contacts, notes)
        });
        assert_eq!(contacts.len(), 1, "run {run}: the couple is one contact");
        for r in &refs {
            let on: Vec<&String> = notes
                .iter()
                .filter(|(_, body)| body.lines().any(|l| l.trim() == format!("Ref: hgs:{r}")))
                .map(|(cid, _)| cid)
                .collect();
            assert_eq!(
                on,
                vec![&contacts[0]],
                "run {run}: {r} has one note, on the couple's contact"
            );
        }
        let report = env.report().await;
        assert_eq!(
            count(&report, "note", "skipped"),
            0,
            "run {run}: {report:#}"
        );
    }
}

/// A contact a CRM user deleted and the sync re-created (`on_target_delete = "recreate"`) is a
/// new GHL contact: it gets its business association again, whatever the old one had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_contact_is_associated_with_its_business_again() {
    let env = support::harness::TestEnv::start(
        "recreate-business",
        SandboxOptions {
            seed: SeedSpec {
                seed: 9,
                locations: 2,
                customers: 12,
                subscribers: 0,
                subscribers_also_customers: 0,
                transactions: 0,
            },
            ..SandboxOptions::default()
        },
        "conflict = \"hotspot_wins\"\non_target_delete = \"recreate\"\n\n[businesses]\nenabled = true\n",
    )
    .await;
    env.sync(&[]).await;
    let unassociated = |env: &support::harness::TestEnv| {
        env.sandbox.ghl.with_state(|s| {
            s.contacts
                .values()
                .filter(|c| c.business_id.is_none())
                .count()
        })
    };
    assert_eq!(
        unassociated(&env),
        0,
        "every contact has its location's business"
    );

    let victim = env
        .sandbox
        .ghl
        .with_state(|s| s.contacts.keys().next().cloned().unwrap());
    let count = env.sandbox.ghl.with_state(|s| {
        s.delete_contact(&victim);
        s.contacts.len()
    });
    // The dry run says the same: one create and its association.
    let dry = env.sync(&["--full", "--dry-run", "--format", "json"]).await;
    let dry: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(dry["writes_by_kind"]["contact"]["create"], 1, "{dry:#}");
    assert_eq!(dry["writes_by_kind"]["business"]["associate"], 1, "{dry:#}");
    env.sync(&["--full"]).await;
    env.sandbox.ghl.with_state(|s| {
        assert_eq!(
            s.contacts.len(),
            count + 1,
            "the deleted contact is re-created"
        );
        assert!(!s.contacts.contains_key(&victim));
    });
    assert_eq!(
        unassociated(&env),
        0,
        "the re-created contact is associated with its business again"
    );
}
