//! Pilot mode through the real binary: `[filter]` and `sync --limit` sync a chosen subset of
//! guests with their notes and tasks, say what they kept out, never take a kept-out guest for
//! deleted, and leave nothing to duplicate when the filter is removed.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use hotspot_ghl_sync::model::Kind;
use hotspot_ghl_sync::sandbox::SandboxOptions;
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use hotspot_ghl_sync::store::{LinkStatus, Store};
use support::harness::TestEnv;

/// Deletion on, and no guard that would hide a wrong one: a guest taken for gone is deleted.
const CONTACTS: &str = r#"on_source_delete = "delete"
max_delete_ratio = 1.0
"#;

fn opts() -> SandboxOptions {
    SandboxOptions {
        seed: SeedSpec {
            seed: 15,
            locations: 3,
            customers: 30,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: 150,
        },
        ..SandboxOptions::default()
    }
}

/// The address of the one guest of its domain (the third customer with an email).
const PILOT_EMAIL: &str = "pilot.guest@Pilot-Domain.example";

async fn start(name: &str, filter: &str) -> TestEnv {
    let env = TestEnv::start(name, opts(), &with_filter(filter)).await;
    env.sandbox.hotspot.with_data(|d| {
        let mut with_email: Vec<_> = d
            .customers
            .iter_mut()
            .filter(|c| c.email.is_some())
            .collect();
        with_email.sort_by_key(|c| c.id.parse::<u64>().unwrap());
        let c = &mut with_email[2];
        // Its transactions carry the same address, as a guest's do.
        let old = c.email.replace(PILOT_EMAIL.to_string());
        let new = Some(PILOT_EMAIL.to_string());
        let emails = d
            .mac_transactions
            .iter_mut()
            .map(|t| &mut t.email)
            .chain(d.voucher_transactions.iter_mut().map(|t| &mut t.email))
            .chain(d.social_transactions.iter_mut().map(|t| &mut t.email))
            .chain(d.paid_transactions.iter_mut().map(|t| &mut t.email));
        for e in emails.filter(|e| **e == old) {
            *e = new.clone();
        }
    });
    env
}

fn with_filter(filter: &str) -> String {
    if filter.is_empty() {
        CONTACTS.to_string()
    } else {
        format!("{CONTACTS}\n[filter]\n{filter}\n")
    }
}

/// A customer as the tests choose them: id, email, location.
#[derive(Debug, Clone)]
struct Guest {
    id: String,
    email: Option<String>,
    location: String,
    eligible: bool,
}

/// Every customer, by numeric id (the order `--limit` takes them in).
fn guests(env: &TestEnv) -> Vec<Guest> {
    let mut out: Vec<Guest> = env.sandbox.hotspot.with_data(|d| {
        d.customers
            .iter()
            .map(|c| {
                let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
                Guest {
                    id: c.id.clone(),
                    email: c.email.clone(),
                    location: c.location_id.clone(),
                    eligible: has(&c.email) || has(&c.phone),
                }
            })
            .collect()
    });
    out.sort_by_key(|g| g.id.parse::<u64>().expect("numeric customer ids"));
    out
}

fn anchor_set(env: &TestEnv) -> BTreeSet<String> {
    let a = env.anchors();
    let set: BTreeSet<String> = a.iter().cloned().collect();
    assert_eq!(set.len(), a.len(), "a guest has two contacts: {a:?}");
    set
}

/// Notes and tasks per guest (by the HotspotSystem id of their contact).
fn dependents(env: &TestEnv) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    env.sandbox.ghl.with_state(|s| {
        let field = s
            .custom_field("contact.hotspot_customer_id")
            .map(|f| f.id.clone())
            .expect("field exists");
        let guest_of: BTreeMap<&str, String> = s
            .contacts
            .values()
            .filter_map(|c| {
                let (_, v) = c.custom_fields.iter().find(|(id, _)| *id == field)?;
                Some((c.id.as_str(), v.as_str()?.to_string()))
            })
            .collect();
        let mut notes = BTreeMap::new();
        for n in s.notes.values() {
            let g = guest_of
                .get(n.contact_id.as_str())
                .expect("note on a contact");
            *notes.entry(g.clone()).or_default() += 1;
        }
        let mut tasks = BTreeMap::new();
        for t in s.tasks.values() {
            let g = guest_of
                .get(t.contact_id.as_str())
                .expect("task on a contact");
            *tasks.entry(g.clone()).or_default() += 1;
        }
        (notes, tasks)
    })
}

fn ids<'a>(gs: impl IntoIterator<Item = &'a Guest>) -> BTreeSet<String> {
    gs.into_iter()
        .filter(|g| g.eligible)
        .map(|g| g.id.clone())
        .collect()
}

/// The same account synced in one go, without a filter: what the pilot must end up equal to.
async fn reference() -> (
    BTreeSet<String>,
    BTreeMap<String, usize>,
    BTreeMap<String, usize>,
) {
    let env = start("pilot-ref", "").await;
    env.sync(&[]).await;
    let (notes, tasks) = dependents(&env);
    (anchor_set(&env), notes, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filter_list_syncs_only_its_guests_and_removing_the_filter_syncs_the_rest_once() {
    let (all, ref_notes, ref_tasks) = reference().await;
    let env = start("pilot-lists", "").await;
    let gs = guests(&env);
    let with_email: Vec<&Guest> = gs.iter().filter(|g| g.email.is_some()).collect();
    let (a, b, c) = (with_email[0], with_email[1], with_email[2]);
    assert_eq!(c.email.as_deref(), Some(PILOT_EMAIL));
    let location = gs
        .iter()
        .map(|g| &g.location)
        .find(|l| **l != a.location && **l != b.location)
        .unwrap_or(&a.location)
        .clone();

    // Each list alone: only its guests; the guests synced before are kept out, not deleted.
    let mut expected = BTreeSet::new();
    let steps = [
        (format!("ids = [\"{}\"]", a.id), vec![a]),
        (
            format!(
                "emails = [\"  {}  \"]",
                b.email.as_deref().unwrap().to_uppercase()
            ),
            vec![b],
        ),
        (
            "email_domains = [\"@PILOT-DOMAIN.example\"]".to_string(),
            vec![c],
        ),
        (
            format!("locations = [\"{location}\"]"),
            gs.iter().filter(|g| g.location == location).collect(),
        ),
    ];
    for (filter, chosen) in steps {
        env.write_config(&with_filter(&filter));
        let out = env.sync(&[]).await;
        let kept = gs.len() - chosen.len();
        expected.extend(ids(chosen));
        assert_eq!(anchor_set(&env), expected, "after [filter] {filter}");
        let report = env.report_json().await;
        assert_eq!(
            report["kept_out"]["guests"], kept as u64,
            "{filter}: {}",
            report["kept_out"]
        );
        assert_eq!(report["kept_out"]["by_limit"], 0);
        assert!(
            out.stdout.contains("kept out by [filter]"),
            "{}",
            out.stdout
        );
        assert_eq!(report["status"], "succeeded", "{}", out.stdout);
        // Notes and tasks only on the guests synced so far.
        let (notes, tasks) = dependents(&env);
        for g in notes.keys().chain(tasks.keys()) {
            assert!(expected.contains(g), "{filter}: dependents of guest {g}");
        }
    }
    assert!(
        expected.len() < all.len(),
        "the pilot must leave guests out"
    );

    // Filter removed: the rest synced, each guest once, with the same notes and tasks as a
    // sync that never had a filter.
    env.write_config(&with_filter(""));
    let out = env.sync(&["--full"]).await;
    assert!(!out.stdout.contains("kept out"), "{}", out.stdout);
    assert_eq!(anchor_set(&env), all);
    let (notes, tasks) = dependents(&env);
    assert_eq!(notes, ref_notes);
    assert_eq!(tasks, ref_tasks);
    assert!(env.report_json().await.get("kept_out").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_syncs_the_first_guests_by_id_with_their_notes_and_tasks_and_names_the_rest() {
    let (_, ref_notes, _) = reference().await;
    let env = start("pilot-limit", "").await;
    let gs = guests(&env);

    let out = env.sync(&["--limit", "3"]).await;
    let first = ids(&gs[..3]);
    assert_eq!(anchor_set(&env), first);
    let (notes, tasks) = dependents(&env);
    let on_first: BTreeMap<String, usize> = ref_notes
        .iter()
        .filter(|(g, _)| first.contains(*g))
        .map(|(g, n)| (g.clone(), *n))
        .collect();
    assert!(
        !on_first.is_empty(),
        "the seed gives the first guests notes"
    );
    assert_eq!(notes, on_first, "each note of the first guests, no other");
    assert_eq!(tasks.keys().cloned().collect::<BTreeSet<_>>(), first);

    // The report names what the limit kept out: a count, and the first ids, bounded.
    let report = env.report_json().await;
    let kept = &report["kept_out"];
    assert_eq!(kept["guests"], (gs.len() - 3) as u64, "{kept}");
    assert_eq!(kept["by_limit"], (gs.len() - 3) as u64, "{kept}");
    let sample: Vec<String> = gs[3..23].iter().map(|g| g.id.clone()).collect();
    assert_eq!(kept["sample"], serde_json::json!(sample));
    assert_eq!(report["status"], "succeeded");
    assert!(
        out.stdout.contains(&format!(
            "{} listed guest(s) kept out by --limit",
            gs.len() - 3
        )) && out.stdout.contains(&format!("and {} more", gs.len() - 23)),
        "{}",
        out.stdout
    );
    assert!(report["unsynced"].as_array().unwrap().is_empty());
    // Their transactions wait for them, counted apart from those of no known guest.
    assert!(
        out.stdout
            .contains("transaction(s) belong to guests kept out by the filter or --limit"),
        "{}",
        out.stdout
    );

    let html = env.run(&["report", "latest", "--format", "html"]).await;
    assert!(
        html.stdout.contains("kept out by --limit"),
        "{}",
        html.stdout
    );

    // The same limit again: the same guests, nothing to write.
    let before = env.ghl_writes().len();
    env.sync(&["--limit", "3"]).await;
    assert_eq!(
        env.ghl_writes().len(),
        before,
        "a second pilot run writes nothing"
    );

    // A wider limit takes the next guests.
    env.sync(&["--limit", "5"]).await;
    assert_eq!(anchor_set(&env), ids(&gs[..5]));

    let bad = env.run(&["sync", "--limit", "0"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pass_with_a_filter_deletes_tags_and_forgets_nothing() {
    let (_, ref_notes, ref_tasks) = reference().await;
    let env = start("pilot-full", "").await;
    let gs = guests(&env);
    // Every guest linked, none with notes or tasks yet.
    env.sync(&["--only", "contacts"]).await;
    let all = anchor_set(&env);
    let links_before = contact_links(&env);

    let chosen = gs.iter().find(|g| g.eligible).unwrap().id.clone();
    env.write_config(&with_filter(&format!("ids = [\"{chosen}\"]")));
    let before = env.ghl_writes().len();
    let out = env.sync(&["--full"]).await;
    let contact_writes: Vec<_> = env.ghl_writes()[before..]
        .iter()
        .filter(|r| !r.path.ends_with("/notes") && !r.path.ends_with("/tasks"))
        .cloned()
        .collect();
    assert!(
        contact_writes.is_empty(),
        "a filtered full pass wrote to contacts: {contact_writes:?}\n{}",
        out.stdout
    );
    assert_eq!(anchor_set(&env), all);
    assert_eq!(
        contact_links(&env),
        links_before,
        "every link kept as it was"
    );
    let report = env.report_json().await;
    assert_eq!(report["kinds"]["contact"]["deleted"], 0);
    assert_eq!(report["kept_out"]["guests"], (gs.len() - 1) as u64);
    // Linked guests kept out get no note and no task; the chosen one gets its own.
    let (notes, tasks) = dependents(&env);
    let only = BTreeSet::from([chosen.clone()]);
    assert_eq!(tasks.keys().cloned().collect::<BTreeSet<_>>(), only);
    assert_eq!(notes.get(&chosen), ref_notes.get(&chosen));
    assert!(notes.keys().all(|g| *g == chosen), "{notes:?}");

    // And removed again: the rest get theirs, nothing is created twice.
    env.write_config(&with_filter(""));
    env.sync(&["--full"]).await;
    assert_eq!(anchor_set(&env), all);
    assert_eq!(dependents(&env), (ref_notes, ref_tasks));
}

/// Contact links: source id → (GHL id, status).
fn contact_links(env: &TestEnv) -> BTreeMap<String, (String, LinkStatus)> {
    let store = Store::open(env.state_path()).unwrap();
    store
        .links(Kind::Contact)
        .unwrap()
        .into_iter()
        .map(|l| (l.source_id, (l.target_id, l.status)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_that_could_never_match_is_refused_at_load() {
    let env = start("pilot-bad", "").await;
    for (filter, key) in [
        ("emails = [\"not-an-email\"]", "filter.emails[0]"),
        (
            "email_domains = [\"a@b.example\"]",
            "filter.email_domains[0]",
        ),
        ("ids = [\" \"]", "filter.ids[0]"),
        ("guests = [\"1\"]", "filter"),
    ] {
        env.write_config(&with_filter(filter));
        let out = env.run(&["sync"]).await;
        assert_eq!(out.code, 2, "{filter}: {}", out.stderr);
        assert!(out.stderr.contains(key), "{filter}: {}", out.stderr);
    }
    assert!(env.ghl_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_associations_and_appointment_reads_only_for_guests_that_pass() {
    let kinds = "\n[businesses]\nenabled = true\n\n[appointments]\nenabled = true\n";
    let env = start("pilot-kinds", "").await;
    env.write_config(&format!("{}{kinds}", with_filter("")));
    // Every guest linked; no association and no appointment read yet.
    env.sync(&["--only", "contacts"]).await;
    let contact_of: BTreeMap<String, String> = contact_links(&env)
        .into_iter()
        .map(|(sid, (tid, _))| (sid, tid))
        .collect();
    let gs = guests(&env);
    let chosen = gs.iter().find(|g| g.eligible).unwrap().id.clone();

    // Only these kinds, so the listing is read for the filter alone.
    env.write_config(&format!(
        "{}{kinds}",
        with_filter(&format!("ids = [\"{chosen}\"]"))
    ));
    let before = env.sandbox.ghl.requests().len();
    env.sync(&["--only", "businesses,appointments"]).await;
    let requests = env.sandbox.ghl.requests()[before..].to_vec();
    let associated: BTreeSet<String> = requests
        .iter()
        .filter(|r| r.path.ends_with("/contacts/bulk/business"))
        .flat_map(|r| r.body.as_ref().unwrap()["ids"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let read: BTreeSet<String> = requests
        .iter()
        .filter(|r| r.path.ends_with("/appointments"))
        .map(|r| r.path.split('/').nth(2).unwrap().to_string())
        .collect();
    let only = BTreeSet::from([contact_of[&chosen].clone()]);
    assert_eq!(associated, only, "associations");
    assert_eq!(read, only, "appointment reads");
    assert_eq!(
        env.report_json().await["kept_out"]["guests"],
        (gs.len() - 1) as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_pass_fetches_no_contact_of_a_guest_kept_out() {
    let env = start("pilot-fetch", "").await;
    // The first pass creates every contact, the second lists them and sets the cursor.
    env.sync(&["--only", "contacts"]).await;
    env.sync(&["--only", "contacts"]).await;
    env.an_hour_passes();
    let chosen = guests(&env).into_iter().find(|g| g.eligible).unwrap().id;
    env.write_config(&with_filter(&format!("ids = [\"{chosen}\"]")));
    let before = env.sandbox.ghl.requests().len();
    env.sync(&["--only", "contacts"]).await;
    // The guests kept out are not planned, so their contacts are not needed: the listing stays
    // incremental, with no contact asked for by id and no fall-back to a listing of every one.
    let requests = env.sandbox.ghl.requests()[before..].to_vec();
    let by_id: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/contacts/"))
        .map(|r| r.path.as_str())
        .collect();
    assert!(by_id.is_empty(), "{by_id:?}");
    let searches: Vec<String> = requests
        .iter()
        .filter(|r| r.path.ends_with("/contacts/search"))
        .map(|r| r.body.as_ref().map(|b| b.to_string()).unwrap_or_default())
        .collect();
    assert!(!searches.is_empty());
    assert!(
        searches.iter().all(|b| b.contains("dateUpdated")),
        "a listing of every contact: {searches:?}"
    );
}
