//! Bad input (issue 6): bad configuration and bad state files each give ONE clear message
//! naming the problem, a non-zero exit and an untouched state file (compared byte for byte);
//! bad records from either API are synced or skipped with a reason — never a panic.

mod support;

use support::reliability as reliab;

use std::collections::BTreeSet;
use std::path::Path;

use hotspot_ghl_sync::sandbox::ghl::Contact;
use reliab::{ANCHOR, Env, Out, Setup, opts};
use serde_json::{Value, json};

/// The bytes of the state database and its WAL/SHM companions, if any.
fn state_bytes(db: &Path) -> Vec<(String, Option<usize>, Option<blake3::Hash>)> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let p = format!("{}{suffix}", db.display());
            let bytes = std::fs::read(&p).ok();
            (
                p,
                bytes.as_ref().map(Vec::len),
                bytes.as_deref().map(blake3::hash),
            )
        })
        .collect()
}

/// One message, on one `error:` line, that contains every `needle`; no panic; exit `code`.
fn assert_one_clear_error(out: &Out, code: i32, needles: &[&str], case: &str) {
    assert_eq!(out.code, code, "{case}: exit code\n{}", out.show());
    assert!(!out.stderr.contains("panicked"), "{case}: {}", out.show());
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.to_lowercase().contains("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{case}: one message\n{}", out.show());
    for n in needles {
        assert!(
            errors[0].contains(n),
            "{case}: the message names `{n}`: {}",
            errors[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_one_clear_error_and_leaves_the_state_untouched() {
    let env = Env::start("badcfg", opts(81, 10), Setup::default()).await;
    env.sync_ok().await;
    let good = env.config_text();
    let before = state_bytes(&env.state_path());
    assert!(before[0].2.is_some(), "a state exists");

    let unwritable = env.dir.join("a-file");
    std::fs::write(&unwritable, b"not a directory").unwrap();
    let cases: Vec<(&str, String, Vec<&str>, i32)> = vec![
        (
            "malformed TOML",
            good.replace("[http]", "[http"),
            vec!["config.toml"],
            2,
        ),
        (
            "unknown key",
            good.replace("[http]\n", "[http]\ncolour = \"red\"\n"),
            vec!["colour"],
            2,
        ),
        (
            "invalid cron",
            format!("{good}\n[schedule]\ncontacts = \"61 * * * *\"\n"),
            vec!["schedule.contacts"],
            2,
        ),
        (
            "missing secret variable",
            good.replace("HGS_R_GHL_TOKEN", "HGS_R_NOT_SET_ANYWHERE"),
            vec!["HGS_R_NOT_SET_ANYWHERE"],
            2,
        ),
        (
            "non-loopback http:// base URL",
            good.replace(&env.sandbox.ghl.base_url(), "http://crm.example.com"),
            vec!["base_url", "https"],
            2,
        ),
        (
            "unwritable state path",
            good.replace(
                &env.state_path().display().to_string(),
                &unwritable.join("sync.db").display().to_string(),
            ),
            vec!["a-file is a file, not a directory"],
            4,
        ),
    ];
    for (case, text, needles, code) in cases {
        std::fs::write(&env.config, &text).unwrap();
        let out = env.run(&["sync"]).await;
        assert_one_clear_error(&out, code, &needles, case);
        assert_eq!(
            state_bytes(&env.state_path()),
            before,
            "{case}: the state file changed"
        );
        eprintln!(
            "RESULT config {case}: exit {} `{}`",
            out.code,
            out.stderr.trim()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_state_files_are_refused_untouched() {
    let env = Env::start("badstate", opts(82, 10), Setup::default()).await;
    let db = env.state_path();

    // Corrupt: a file that is not SQLite at all.
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let out = env.run(&["sync"]).await;
    assert_one_clear_error(&out, 4, &["sync.db"], "corrupt state");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        garbage,
        "corrupt state untouched"
    );
    eprintln!(
        "RESULT state corrupt: exit {} `{}`",
        out.code,
        out.stderr.trim()
    );

    // Foreign: a valid SQLite database of another program.
    std::fs::remove_file(&db).unwrap();
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);
             INSERT INTO invoices (total) VALUES (12.5);",
        )
        .unwrap();
    }
    let before = state_bytes(&db);
    let out = env.run(&["sync"]).await;
    assert_one_clear_error(&out, 4, &["sync.db"], "foreign state");
    assert_eq!(state_bytes(&db), before, "foreign state untouched");
    eprintln!(
        "RESULT state foreign: exit {} `{}`",
        out.code,
        out.stderr.trim()
    );

    // Newer: our own schema, stamped by a later version.
    std::fs::remove_file(&db).unwrap();
    env.sync_ok().await;
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        c.execute_batch(&format!("PRAGMA user_version = {}", v + 7))
            .unwrap();
    }
    let before = state_bytes(&db);
    let out = env.run(&["sync"]).await;
    assert_one_clear_error(&out, 4, &["newer"], "newer state");
    assert_eq!(state_bytes(&db), before, "newer state untouched");
    eprintln!(
        "RESULT state newer: exit {} `{}`",
        out.code,
        out.stderr.trim()
    );
}

/// Hostile records on both sides: the run finishes (exit 0 or 1, never a panic), every bad
/// HotspotSystem record is synced or listed in the report with its reason, and a second run
/// is quiet about them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_from_either_api_are_synced_or_skipped_with_a_reason() {
    let env = Env::start("badrec", opts(83, 20), Setup::default()).await;
    env.sandbox.hotspot.set_lenient_types(true);
    let long = "x".repeat(2_000);
    let bad_ids: Vec<String> = env.sandbox.hotspot.with_data(|d| {
        let template = d.customers[0].clone();
        let mut ids = Vec::new();
        let mut add = |i: u32, f: &dyn Fn(&mut hotspot_ghl_sync::sandbox::seed::Customer)| {
            let mut c = template.clone();
            c.id = format!("{}", 880_000_000 + i);
            c.user_name = format!("bad{i}");
            c.email = Some(format!("bad{i}@example.org"));
            c.phone = None;
            f(&mut c);
            ids.push(c.id.clone());
            d.customers.push(c);
        };
        add(1, &|c| {
            c.name = None;
            c.email = None;
            c.phone = None;
            c.company_name = None;
            c.address = None;
            c.city = None;
            c.state = None;
            c.zip = None;
            c.country_code = None;
        });
        add(2, &|c| c.name = Some(long.clone()));
        add(3, &|c| c.city = Some(long.clone()));
        add(4, &|c| c.email = Some("not-an-email".into()));
        add(5, &|c| c.email = Some("two@@example..org".into()));
        add(6, &|c| c.name = Some("Zoë 🦀 O'Brien-Ñúñez 𝔘𝔫𝔦".into()));
        add(7, &|c| {
            c.email = Some(format!("{}@example.org", "e".repeat(2_000)))
        });
        add(8, &|c| c.phone = Some("call me maybe ☎".into()));
        add(9, &|c| {
            c.email = None;
            c.phone = Some("+1".into());
        });
        add(10, &|c| c.country_code = Some("🇫🇷".into()));
        add(11, &|c| c.email = Some("   ".into()));
        ids
    });
    // A customer with no id at all is dropped and counted.
    env.sandbox.hotspot.with_data(|d| {
        let mut c = d.customers[1].clone();
        c.id = String::new();
        c.email = Some("noid@example.org".into());
        d.customers.push(c);
    });
    // GHL contacts a CRM user (or another integration) left in odd shapes.
    let mut odd_ids: Vec<String> = Vec::new();
    env.sandbox.ghl.with_state(|s| {
        let anchor = s.custom_field(ANCHOR).map(|f| f.id.clone()).unwrap();
        let now = chrono::Utc::now();
        let mut odd = |f: &dyn Fn(&mut Contact)| {
            let mut c = Contact::new(s.new_id(), now);
            f(&mut c);
            odd_ids.push(s.insert_contact(c));
        };
        odd(&|_| {}); // null everywhere
        odd(&|c| c.email = Some("NOT AN EMAIL".into()));
        odd(&|c| c.first_name = Some(long.clone()));
        odd(&|c| c.first_name = Some("👻".repeat(300)));
        odd(&|c| c.custom_fields = vec![(anchor.clone(), json!(12345))]);
        odd(&|c| c.custom_fields = vec![(anchor.clone(), json!({"nested": [1, null]}))]);
        odd(&|c| c.custom_fields = vec![(anchor.clone(), Value::Null)]);
        odd(&|c| c.phone = Some("+".into()));
        odd(&|c| {
            c.tags = vec![String::new(), "🏷".repeat(100)];
            c.extra.insert("weird".into(), json!([{"a": null}]));
        });
    });

    let out = env.run(&["sync"]).await;
    // Invalid emails are no emails: nothing is sent that GHL would refuse, so no record fails
    // on a write. The customer without an id cannot be synced at all: the run says so (exit 1).
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(!out.stderr.contains("panicked"), "{}", out.show());
    let report = env.report_json().await;
    let items = report["items"].as_array().cloned().unwrap_or_default();
    let anchored: BTreeSet<String> = env.sandbox.ghl.with_state(|s| {
        let field = s.custom_field(ANCHOR).map(|f| f.id.clone()).unwrap();
        s.contacts
            .values()
            .flat_map(|c| c.custom_fields.iter())
            .filter(|(id, _)| *id == field)
            .filter_map(|(_, v)| v.as_str().map(str::to_string))
            .collect()
    });
    let mut synced = 0;
    let mut reasons = Vec::new();
    for id in &bad_ids {
        if anchored.contains(id) {
            synced += 1;
            continue;
        }
        let item = items
            .iter()
            .find(|i| i["source_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} neither synced nor in the report: {report:#}"));
        let reason = item["reason"].as_str().unwrap_or_default();
        assert!(!reason.trim().is_empty(), "{id}: a reason is given: {item}");
        reasons.push(format!("{id}: {} ({reason})", item["outcome"]));
    }
    assert!(
        items.iter().any(|i| i["outcome"] == "failed"
            && i["reason"].as_str().is_some_and(|r| r.contains("no id"))),
        "the record without an id is named as failed: {report:#}"
    );
    let (linked, _) = env.state_links();
    for id in &odd_ids {
        assert!(!linked.contains(id), "odd GHL contact {id} was adopted");
    }
    // A second run does not trip over the same records.
    let again = env.run(&["sync"]).await;
    assert!(again.code == 0 || again.code == 1, "{}", again.show());
    assert!(!again.stderr.contains("panicked"), "{}", again.show());
    eprintln!(
        "RESULT bad records: {} hostile HotspotSystem records: {synced} synced, {} skipped/failed with a reason; 9 odd GHL contacts read; exit {} then {}\n  {}",
        bad_ids.len(),
        reasons.len(),
        out.code,
        again.code,
        reasons.join("\n  ")
    );
}
