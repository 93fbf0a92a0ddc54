//! The fast lane (`[schedule] new`, `sync --new`) through the real binary against the
//! emulators: the first tick sets its cursors and writes nothing; new guests reach GHL
//! (contact, note, onboarding task) and only they; an idle tick costs one HotspotSystem request
//! per location and no GHL request; the regular passes then find nothing left to write for
//! them; the daemon brings a guest in within a tick plus 10 s; and the fast lane and the
//! regular passes running side by side write no guest twice. Under every reading of `sort` the
//! emulator offers (honoured, ignored, newest first with each page shuffled).

mod support;

use std::time::Duration;

use hotspot_ghl_sync::sandbox::hotspot::{
    HotspotOptions, LinkHeader, OffsetReading, Paging, SortSupport,
};
use support::fast_lane::{FastEnv, Guest};

/// Guests seeded before the first tick (the backlog) and locations they spread over.
const SEEDED: usize = 30;
const LOCATIONS: usize = 2;
/// Small pages, so that new guests and the listings read to their end span several.
const PAGE: u32 = 5;

fn knobs(sort: SortSupport, paging: Paging) -> HotspotOptions {
    HotspotOptions {
        sort,
        paging,
        ..HotspotOptions::default()
    }
}

/// Every reading the emulator offers that the fast lane must stay correct under.
fn readings() -> Vec<(&'static str, HotspotOptions)> {
    vec![
        (
            "sort honoured",
            knobs(SortSupport::Honoured, Paging::default()),
        ),
        (
            "sort ignored",
            knobs(SortSupport::Ignored, Paging::default()),
        ),
        (
            "pages shuffled",
            knobs(SortSupport::PagesShuffled, Paging::default()),
        ),
        (
            "sort ignored, offset a page index, no Link",
            knobs(
                SortSupport::Ignored,
                Paging {
                    offset: OffsetReading::PageIndex,
                    link: LinkHeader::Absent,
                },
            ),
        ),
    ]
}

/// `sync --new` as a cron user runs it, from a fresh state, under one reading of the API.
async fn cron_user_flow(name: &str, hotspot: HotspotOptions, sort_honoured: bool) {
    let env = FastEnv::start(name, LOCATIONS, SEEDED, hotspot, Duration::ZERO, PAGE, &[]).await;
    let locations = env.location_ids();

    // First tick: cursors from the newest records, nothing written, no run, no GHL request.
    let out = env.ok(&["sync", "--new"]).await;
    assert!(out.stdout.contains("nothing new"), "{name}: {}", out.show());
    assert!(
        out.stdout.contains("cursor(s) set"),
        "{name}: {}",
        out.show()
    );
    assert_eq!(
        env.ghl_request_count(),
        0,
        "{name}: first tick reads no GHL"
    );
    assert_eq!(
        env.sandbox.ghl.with_state(|s| s.contacts.len()),
        0,
        "{name}: the history is left to the regular passes"
    );

    // A dozen guests register (over a page per location): they, and only they, reach GHL.
    let guests = env.register(12);
    let out = env.ok(&["sync", "--new"]).await;
    assert!(
        out.stdout.contains("Fast lane: 12 new guest(s)"),
        "{name}: {}",
        out.show()
    );
    for g in &guests {
        assert!(
            env.in_ghl(g).complete(),
            "{name}: {g:?}: {:?}",
            env.in_ghl(g)
        );
    }
    assert_eq!(
        env.sandbox.ghl.with_state(|s| s.contacts.len()),
        guests.len(),
        "{name}: no backlog guest was written"
    );

    // Idle: one HotspotSystem request per location (its newest customers), no GHL request.
    env.clear_requests();
    let out = env.ok(&["sync", "--new"]).await;
    assert!(out.stdout.contains("nothing new"), "{name}: {}", out.show());
    assert!(
        !out.stdout.contains("cursor(s) set"),
        "{name}: {}",
        out.show()
    );
    assert_eq!(
        env.ghl_request_count(),
        0,
        "{name}: an idle tick sends no GHL request"
    );
    let hs = env.hotspot_requests();
    if sort_honoured {
        assert_eq!(hs.len(), locations.len(), "{name}: {hs:#?}");
        for loc in &locations {
            let path = format!("/v2.0/locations/{loc}/customers");
            assert_eq!(
                hs.iter().filter(|r| r.path == path).count(),
                1,
                "{name}: {hs:#?}"
            );
        }
        println!(
            "fast lane ({name}): idle tick = {} HotspotSystem request(s) for {} location(s), 0 GHL",
            hs.len(),
            locations.len()
        );
    } else {
        // Out of order, each listing is read to its end: dearer, still no GHL request.
        assert!(
            hs.iter().all(|r| r.path.ends_with("/customers")),
            "{name}: {hs:#?}"
        );
        println!(
            "fast lane ({name}): idle tick = {} HotspotSystem request(s) (customers read to the end), 0 GHL",
            hs.len()
        );
    }

    // The regular pass imports the backlog and writes nothing for the fast lane's guests.
    env.clear_requests();
    env.ok(&["sync"]).await;
    let fast_contacts: Vec<String> = guests
        .iter()
        .flat_map(|g| env.contacts_of(&g.customer_id))
        .collect();
    let writes = env.ghl_writes();
    for w in &writes {
        assert!(
            !fast_contacts.iter().any(|c| w.contains(c.as_str())),
            "{name}: the regular pass wrote {w} for a fast-lane guest"
        );
    }
    for g in &guests {
        assert!(
            env.in_ghl(g).complete(),
            "{name}: {g:?} after the regular pass"
        );
    }
    let contacts = env.sandbox.ghl.with_state(|s| s.contacts.len());
    assert!(
        contacts > guests.len(),
        "{name}: the backlog came with the regular pass"
    );
    // And a second regular pass has nothing at all to write.
    env.clear_requests();
    env.ok(&["sync"]).await;
    assert_eq!(env.ghl_writes(), Vec::<String>::new(), "{name}");
    assert_eq!(env.sandbox.ghl.with_state(|s| s.contacts.len()), contacts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_new_writes_only_new_guests_under_every_reading() {
    for (i, (name, hotspot)) in readings().into_iter().enumerate() {
        let honoured = hotspot.sort == SortSupport::Honoured;
        cron_user_flow(&format!("fast-cron-{i}"), hotspot, honoured).await;
        eprintln!("ok: {name}");
    }
}

/// The daemon ticks `new` every second, `contacts` hourly (after a first regular `sync`): a
/// guest reaches GHL within a tick plus 10 s, and the idle ticks after it reach GHL not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_brings_a_guest_in_within_a_tick() {
    let env = FastEnv::start(
        "fast-daemon",
        LOCATIONS,
        SEEDED,
        HotspotOptions::default(),
        Duration::ZERO,
        PAGE,
        &[("new", "*/1 * * * * *"), ("contacts", "0 0 * * * *")],
    )
    .await;
    env.ok(&["sync"]).await;
    let mut daemon = env.spawn_daemon();
    // The first tick sets the cursors.
    daemon
        .wait_for_line(
            &["run finished", "new: idle", "cursor(s) set"],
            Duration::from_secs(15),
        )
        .await;

    let guests = env.register(1);
    let took = env.wait_in_ghl(&guests, Duration::from_secs(11)).await;
    println!(
        "fast lane: guest registration -> GHL contact, note and task in {took:?} (tick every 1 s)"
    );

    // Idle ticks: count the requests over a few of them.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let idle_before = daemon.count_lines(&["run finished", "new: idle"]);
    env.clear_requests();
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let hs = env.hotspot_requests();
    let ghl = env.ghl_request_count();
    let idle_after = daemon.count_lines(&["run finished", "new: idle"]);
    let ticks = idle_after - idle_before;
    assert!(ticks >= 2, "idle ticks seen: {ticks}\n{}", daemon.log());
    assert_eq!(ghl, 0, "idle ticks send no GHL request");
    for loc in env.location_ids() {
        let path = format!("/v2.0/locations/{loc}/customers");
        let n = hs.iter().filter(|r| r.path == path).count();
        // A tick in flight at either end of the window may add one.
        assert!(
            n <= ticks + 1,
            "location {loc}: {n} requests over {ticks} ticks"
        );
    }
    assert!(
        hs.iter()
            .all(|r| r.path.ends_with("/customers") && r.query.contains("sort=-id")),
        "{hs:#?}"
    );
    println!(
        "fast lane: {} HotspotSystem request(s) over {ticks} idle tick(s) at {} location(s), 0 GHL",
        hs.len(),
        env.location_ids().len()
    );
    assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());

    // The run of the fast lane is recorded like any other and shows in the report.
    let out = env.ok(&["report", "list"]).await;
    assert!(out.stdout.lines().count() >= 2, "{}", out.show());
    let out = env.ok(&["report", "latest"]).await;
    assert!(
        out.stdout.contains("Fast lane: 1 new guest(s)"),
        "{}",
        out.show()
    );

    // The next regular pass writes nothing for the guest.
    env.clear_requests();
    env.ok(&["sync"]).await;
    assert_eq!(env.ghl_writes(), Vec::<String>::new());
    assert!(env.in_ghl(&guests[0]).complete());
}

/// The fast lane and the regular passes of one daemon overlapping in time, with slow GHL answers
/// so that ticks collide: every guest ends up in GHL exactly once (one contact, one note, one
/// task), whichever job wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_lane_and_regular_passes_side_by_side_write_nothing_twice() {
    for (i, sort) in [SortSupport::Honoured, SortSupport::PagesShuffled]
        .into_iter()
        .enumerate()
    {
        let env = FastEnv::start(
            &format!("fast-overlap-{i}"),
            LOCATIONS,
            SEEDED,
            knobs(sort, Paging::default()),
            Duration::from_millis(40),
            PAGE,
            &[
                ("new", "*/1 * * * * *"),
                ("contacts", "*/2 * * * * *"),
                ("notes", "*/3 * * * * *"),
                ("tasks", "*/3 * * * * *"),
            ],
        )
        .await;
        env.ok(&["sync"]).await;
        let before = env.sandbox.ghl.with_state(|s| s.contacts.len());
        let mut daemon = env.spawn_daemon();
        daemon
            .wait_for_line(
                &["run finished", "new: idle", "cursor(s) set"],
                Duration::from_secs(15),
            )
            .await;
        let mut guests: Vec<Guest> = Vec::new();
        for _ in 0..4 {
            guests.extend(env.register(2));
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        env.wait_in_ghl(&guests, Duration::from_secs(30)).await;
        // A few more ticks of every job, then every guest is still there exactly once.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(daemon.stop().await, Some(0), "{}", daemon.log());
        for g in &guests {
            assert!(
                env.in_ghl(g).complete(),
                "{sort:?}: {g:?}: {:?}",
                env.in_ghl(g)
            );
        }
        assert_eq!(
            env.sandbox.ghl.with_state(|s| s.contacts.len()),
            before + guests.len(),
            "{sort:?}: no contact twice"
        );
        println!(
            "fast lane ({sort:?}): {} fast-lane pass(es) and {} regular contacts pass(es) ran for {} guests",
            daemon.count_lines(&["run finished", "new run"]),
            daemon.count_lines(&["run finished", "contacts run"]),
            guests.len()
        );
    }
}

/// `[schedule] new` is validated at load, naming the key: a bad cron expression, or the key in
/// timer mode (where `sync --new` from the timer is the way); and `--new` takes no other
/// selection of what to sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_schedule_is_checked_at_load() {
    let env = FastEnv::start(
        "fast-config",
        1,
        5,
        HotspotOptions::default(),
        Duration::ZERO,
        PAGE,
        &[],
    )
    .await;
    let text = std::fs::read_to_string(&env.config).unwrap();
    let head = &text[..text.find("[schedule]").expect("a schedule table")];
    let run = |schedule: &str, args: &[&str]| {
        std::fs::write(&env.config, format!("{head}[schedule]\n{schedule}")).unwrap();
        support::Out::from_output(env.command(args).output().expect("run the binary"))
    };
    let out = run("new = \"every minute\"\n", &["sync", "--new"]);
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(out.stderr.contains("schedule.new"), "{}", out.show());
    let out = run(
        "mode = \"timer\"\nnew = \"* * * * *\"\n",
        &["sync", "--new"],
    );
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(
        out.stderr.contains("schedule.new") && out.stderr.contains("sync --new"),
        "{}",
        out.show()
    );
    // Timer mode with the key off, and `sync --new` from the timer: fine.
    let out = run("mode = \"timer\"\nnew = \"off\"\n", &["sync", "--new"]);
    assert_eq!(out.code, 0, "{}", out.show());
    for other in ["--full", "--dry-run", "--only=contacts", "--limit=3"] {
        let out = run("new = \"* * * * *\"\n", &["sync", "--new", other]);
        assert_eq!(out.code, 2, "--new {other}: {}", out.show());
    }
}

/// A guest already synced signs up again at another venue (a new customer record, the same
/// email): the fast lane leaves the record to the contacts pass, which merges it into the
/// guest's contact, instead of parking it as a conflict; no second contact either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sign_up_with_a_known_email_is_left_to_the_merge() {
    let env = FastEnv::start(
        "fast-second-venue",
        LOCATIONS,
        SEEDED,
        HotspotOptions::default(),
        Duration::ZERO,
        PAGE,
        &[],
    )
    .await;
    env.ok(&["sync"]).await;
    env.ok(&["sync", "--new"]).await;
    let contacts = env.sandbox.ghl.with_state(|s| s.contacts.len());
    // A seeded guest with an email and exactly one contact.
    let known = env
        .sandbox
        .hotspot
        .with_data(|d| d.customers.clone())
        .into_iter()
        .rev()
        .find(|c| c.email.is_some() && env.contacts_of(&c.id).len() == 1)
        .expect("a synced guest with an email");
    let again = env.register(1).remove(0);
    env.sandbox.hotspot.with_data(|d| {
        d.customer_mut(&again.customer_id).unwrap().email = known.email.clone();
        for t in &mut d.mac_transactions {
            if t.id == again.transaction_id {
                t.email = known.email.clone();
            }
        }
    });
    env.clear_requests();
    let out = env.ok(&["sync", "--new"]).await;
    assert!(out.stdout.contains("share an email"), "{}", out.show());
    assert!(!out.stdout.contains("already linked"), "{}", out.show());
    assert_eq!(env.ghl_writes(), Vec::<String>::new(), "{}", out.show());
    // The contacts pass merges it; its visit's note lands on the guest's one contact.
    env.ok(&["sync"]).await;
    assert_eq!(env.sandbox.ghl.with_state(|s| s.contacts.len()), contacts);
    let email = known.email.clone().unwrap().to_lowercase();
    let reference = format!("hgs:mac:{}", again.transaction_id);
    let (holders, notes) = env.sandbox.ghl.with_state(|s| {
        let holders: Vec<String> = s
            .contacts
            .values()
            .filter(|c| c.email.as_deref().map(str::to_lowercase) == Some(email.clone()))
            .map(|c| c.id.clone())
            .collect();
        let notes = s
            .notes
            .values()
            .filter(|n| holders.contains(&n.contact_id) && n.body.contains(&reference))
            .count();
        (holders, notes)
    });
    assert_eq!(holders.len(), 1, "one contact for the email: {holders:?}");
    assert_eq!(notes, 1, "the second visit's note is on it");
}
