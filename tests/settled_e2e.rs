//! A HotspotSystem record whose last plan was empty and whose inputs did not move is not mapped
//! again: across runs, through the real binary. Each sync logs "mapped N of M records".

mod support;

use std::collections::BTreeSet;

use hotspot_ghl_sync::sandbox::SandboxOptions;
use hotspot_ghl_sync::sandbox::seed::SeedSpec;
use support::harness::TestEnv;

const CONTACTS: &str = r#"conflict = "hotspot_wins"
on_source_delete = "ignore"
on_target_delete = "respect"
"#;

/// The same, with the social network mapped to a custom field.
const CONTACTS_WITH_SOCIAL: &str = r#"conflict = "hotspot_wins"
on_source_delete = "ignore"
on_target_delete = "respect"

[contacts.fields]
social_network = "customField:contact.social_network"
"#;

fn opts() -> SandboxOptions {
    let mut o = SandboxOptions {
        seed: SeedSpec {
            seed: 11,
            locations: 3,
            customers: 120,
            subscribers: 30,
            subscribers_also_customers: 15,
            transactions: 0,
        },
        ..SandboxOptions::default()
    };
    o.ghl.custom_fields.push((
        "contact.social_network".into(),
        "Social network".into(),
        "TEXT".into(),
    ));
    o
}

/// Records with neither email nor phone have no link, so nothing to compare with: they are
/// mapped on every pass (the seed has some).
async fn skipped(env: &TestEnv) -> usize {
    env.report_json().await["kinds"]["contact"]["skipped"]
        .as_u64()
        .unwrap() as usize
}

/// `(mapped, records)` from the sync's "mapped N of M records" log line.
fn mapped(stderr: &str) -> (usize, usize) {
    let line = stderr
        .lines()
        .find(|l| l.contains(" records") && l.contains("mapped "))
        .unwrap_or_else(|| panic!("no mapped line in:\n{stderr}"));
    let rest = &line[line.find("mapped ").unwrap() + "mapped ".len()..];
    let words: Vec<&str> = rest.split_whitespace().collect();
    assert_eq!(words[1], "of", "{line}");
    (words[0].parse().unwrap(), words[2].parse().unwrap())
}

/// Moves the first customer with an email to `city` in HotspotSystem.
fn change_a_city(env: &TestEnv, city: &str) {
    env.sandbox.hotspot.with_data(|d| {
        let c = d
            .customers
            .iter_mut()
            .find(|c| c.email.is_some())
            .expect("a customer with an email");
        c.city = Some(city.into());
    })
}

/// Syncs, and checks that `mapped` records were mapped and the one write was a PUT of `city`.
async fn sync_writes_one_city(env: &TestEnv, mapped_records: (usize, usize), city: &str) {
    env.sandbox.ghl.clear_requests();
    let out = env.sync(&[]).await;
    assert_eq!(mapped(&out.stderr), mapped_records, "{}", out.stderr);
    let writes = env.ghl_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "PUT");
    assert_eq!(writes[0].body.as_ref().unwrap()["city"], city, "{writes:?}");
}

fn write_count(env: &TestEnv) -> usize {
    env.ghl_writes().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_record_is_not_mapped_again_and_a_changed_one_is_written() {
    let env = TestEnv::start("settled", opts(), CONTACTS).await;
    let (first, records) = mapped(&env.sync(&[]).await.stderr);
    assert_eq!(first, records, "an initial sync maps everything");
    assert!(records > 100);
    // The first pass that finds records unchanged still maps them, and marks them settled.
    let (second, _) = mapped(&env.sync(&[]).await.stderr);
    assert_eq!(second, records);
    let before = env.report_json().await["kinds"]["contact"].clone();
    let linkless = skipped(&env).await;
    assert!(linkless < records / 10, "{before}");

    // From then on a no-change pass maps only the records without a link, writes nothing,
    // and counts every record as the full pass did.
    env.sandbox.ghl.clear_requests();
    let out = env.sync(&[]).await;
    assert_eq!(mapped(&out.stderr), (linkless, records), "{}", out.stderr);
    assert_eq!(write_count(&env), 0, "{:?}", env.ghl_writes());
    let report = env.report_json().await;
    assert_eq!(report["kinds"]["contact"], before, "{report:#}");

    // One guest changes in HotspotSystem: that record alone is mapped, and written.
    change_a_city(&env, "Settletown");
    sync_writes_one_city(&env, (linkless + 1, records), "Settletown").await;
    let cities: BTreeSet<String> = env
        .sandbox
        .ghl
        .with_state(|s| s.contacts.values().filter_map(|c| c.city.clone()).collect());
    assert!(cities.contains("Settletown"));
    // The written record is marked on the pass after, which again maps it alone.
    let (after, _) = mapped(&env.sync(&[]).await.stderr);
    assert_eq!(after, linkless + 1);
    let (then, _) = mapped(&env.sync(&[]).await.stderr);
    assert_eq!(then, linkless);
}

/// A CRM user removing a tag the sync generated moves no field hash: the mark covers the
/// contact's tags, so the record is mapped again and the tag restored, as without the marks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_generated_tag_is_restored_on_a_settled_record() {
    let env = TestEnv::start("settled-tags", opts(), CONTACTS).await;
    env.sync(&[]).await;
    env.sync(&[]).await;
    let linkless = skipped(&env).await;
    let (settled, records) = mapped(&env.sync(&[]).await.stderr);
    assert_eq!(settled, linkless);
    let gid = env.sandbox.ghl.with_state(|s| {
        let (id, c) = s
            .contacts
            .iter_mut()
            .find(|(_, c)| c.tags.iter().any(|t| t == "hotspotsystem"))
            .expect("a synced contact");
        c.tags.retain(|t| t != "hotspotsystem");
        id.clone()
    });
    env.sandbox.ghl.clear_requests();
    let out = env.sync(&[]).await;
    assert_eq!(
        mapped(&out.stderr),
        (linkless + 1, records),
        "{}",
        out.stderr
    );
    env.sandbox.ghl.with_state(|s| {
        assert!(
            s.contacts[&gid].tags.iter().any(|t| t == "hotspotsystem"),
            "tag restored on {gid}"
        )
    });
}

/// A changed field map changes every raw hash: everything is mapped again, and what the new
/// map requires is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_field_map_maps_everything_again() {
    let env = TestEnv::start("settled-config", opts(), CONTACTS).await;
    env.sync(&[]).await;
    env.sync(&[]).await;
    let linkless = skipped(&env).await;
    let (settled, records) = mapped(&env.sync(&[]).await.stderr);
    assert_eq!(settled, linkless);

    env.write_config(CONTACTS_WITH_SOCIAL);
    env.sandbox.ghl.clear_requests();
    let out = env.sync(&[]).await;
    assert_eq!(mapped(&out.stderr), (records, records), "{}", out.stderr);
    let social = env.sandbox.hotspot.with_data(|d| {
        d.customers
            .iter()
            .filter(|c| c.social_network.is_some() && c.email.is_some())
            .count()
    });
    assert!(social > 0, "the seed has social customers");
    let with_field = env.sandbox.ghl.with_state(|s| {
        let field = s.custom_field("contact.social_network").unwrap().id.clone();
        s.contacts
            .values()
            .filter(|c| c.custom_fields.iter().any(|(id, _)| *id == field))
            .count()
    });
    assert!(
        with_field >= social,
        "{with_field} contacts carry the social network, {social} customers have one"
    );
    assert!(write_count(&env) >= social, "{:?}", env.ghl_writes());
}

/// The steady state of a daemon: the incremental GHL read returns no contact, so a settled
/// record's mark is checked against the GHL tags it recorded; it is not mapped, nothing is
/// fetched by id, and one guest changed in HotspotSystem is still mapped alone and written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_records_stay_unmapped_when_the_incremental_read_leaves_their_contacts_out() {
    let env = TestEnv::start("settled-incremental", opts(), CONTACTS).await;
    let (_, records) = mapped(&env.sync(&[]).await.stderr);
    env.sync(&[]).await;
    let before = env.report_json().await["kinds"]["contact"].clone();
    let linkless = skipped(&env).await;
    env.an_hour_passes();
    env.sandbox.ghl.clear_requests();
    let out = env.sync(&[]).await;
    assert_eq!(mapped(&out.stderr), (linkless, records), "{}", out.stderr);
    let reads: Vec<String> = env
        .sandbox
        .ghl
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/contacts/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        reads.iter().filter(|r| r.starts_with("GET")).count(),
        0,
        "no contact fetched by id: {reads:?}"
    );
    assert_eq!(write_count(&env), 0, "{:?}", env.ghl_writes());
    assert_eq!(env.report_json().await["kinds"]["contact"], before);

    change_a_city(&env, "Quietville");
    env.an_hour_passes();
    sync_writes_one_city(&env, (linkless + 1, records), "Quietville").await;
}
