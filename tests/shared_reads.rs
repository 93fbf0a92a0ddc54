//! Shared HotspotSystem reads: the passes of several pairs that run together on one
//! `ReadRound` send each HotspotSystem GET once. The pairs' clients each have their own HTTP
//! policy (limiter, audit), as in agency mode; they read through the pass's own readers
//! (`read_source`, `read_stream`) against the HotspotSystem emulator, which counts the reads of
//! each location.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use hotspot_ghl_sync::config::TransactionType;
use hotspot_ghl_sync::hotspot::{HotspotClient, ReadRound, RoundLimits, Wants};
use hotspot_ghl_sync::http::{AuditSink, HttpError, HttpPolicy, PolicyConfig};
use hotspot_ghl_sync::reconcile::snapshot::{SourceListing, read_source};
use hotspot_ghl_sync::reconcile::transactions::read_stream;
use hotspot_ghl_sync::sandbox::faults::FaultKnobs;
use hotspot_ghl_sync::sandbox::hotspot::{HotspotEmulator, HotspotOptions, OddValues};
use hotspot_ghl_sync::sandbox::seed::{self, SeedSpec, Spread};
use secrecy::SecretString;

/// Guests per location: three pages of 100 (the client's page size), the last one short.
const GUESTS_PER_LOCATION: usize = 250;

struct Account {
    emu: HotspotEmulator,
    key: String,
    /// Location ids, in the emulator's order.
    locations: Vec<String>,
}

async fn account(locations: usize) -> Account {
    let _ = support::http_client();
    let data = seed::generate_spread(
        &SeedSpec {
            seed: 16,
            locations,
            customers: locations * GUESTS_PER_LOCATION,
            subscribers: 0,
            subscribers_also_customers: 0,
            transactions: locations * 30,
        },
        Spread::Even,
    );
    let ids = data.locations.iter().map(|l| l.id.clone()).collect();
    let opts = HotspotOptions::default();
    let key = opts.api_key.clone();
    let emu = HotspotEmulator::start(data, opts).await.unwrap();
    Account {
        emu,
        key,
        locations: ids,
    }
}

/// A pair's own client: its own policy (limiter, retries, audit), one attempt per request so a
/// fault is seen as it is.
fn client(acc: &Account, key: &str) -> HotspotClient {
    let policy = HttpPolicy::new(
        PolicyConfig {
            rate_max: 10_000,
            max_attempts: 1,
            ..PolicyConfig::hotspot()
        },
        AuditSink::new(),
    )
    .unwrap();
    HotspotClient::new(
        &acc.emu.base_url(),
        SecretString::from(key.to_string()),
        policy,
    )
    .unwrap()
}

fn ids(acc: &Account, which: &[usize]) -> Vec<String> {
    which.iter().map(|i| acc.locations[*i].clone()).collect()
}

/// The HotspotSystem calls a client recorded (what its pair's state would keep).
fn calls(c: &HotspotClient) -> usize {
    c.policy().audit().drain().len()
}

fn guests(l: &SourceListing) -> Vec<String> {
    let mut v: Vec<String> = l.records.iter().map(|r| r.source_id.clone()).collect();
    v.sort();
    v
}

/// The reads of one pass alone, per location: what a shared round must not exceed.
async fn reads_alone(acc: &Account, locations: &[String]) -> BTreeMap<String, usize> {
    acc.emu.clear_requests();
    let alone = client(acc, &acc.key);
    let listing = read_source(&alone, locations, false).await.unwrap();
    assert!(listing.complete);
    let counts = acc.emu.reads_per_location();
    acc.emu.clear_requests();
    counts
}

/// Two pairs share location 1; pair A also has location 0, pair B location 2. Their passes
/// run together: location 1 is read as often as one pass alone reads it, every pair lists
/// exactly the guests it would list alone, and the calls the pairs record add up to what the
/// server answered.
#[tokio::test]
async fn two_pairs_reading_together_read_a_shared_location_once() {
    let acc = account(3).await;
    let wants_a = ids(&acc, &[0, 1]);
    let wants_b = ids(&acc, &[1, 2]);
    let one_pass = reads_alone(&acc, &wants_a).await;
    let alone_a = read_source(&client(&acc, &acc.key), &wants_a, false)
        .await
        .unwrap();
    let alone_b = read_source(&client(&acc, &acc.key), &wants_b, false)
        .await
        .unwrap();
    acc.emu.clear_requests();

    let round = ReadRound::new(RoundLimits::default());
    let a = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::from_config(&wants_a)));
    let b = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::from_config(&wants_b)));
    let (la, lb) = tokio::join!(
        read_source(&a, &wants_a, false),
        read_source(&b, &wants_b, false)
    );
    let (la, lb) = (la.unwrap(), lb.unwrap());

    let counts = acc.emu.reads_per_location();
    let shared = &acc.locations[1];
    assert_eq!(
        counts.get(shared),
        one_pass.get(shared),
        "the shared location is read once: {counts:?}"
    );
    for own in [&acc.locations[0], &acc.locations[2]] {
        assert_eq!(counts.get(own), one_pass.get(shared), "{counts:?}");
    }
    assert_eq!(guests(&la), guests(&alone_a));
    assert_eq!(guests(&lb), guests(&alone_b));
    assert!(la.complete && lb.complete, "paging completeness survives");
    assert_eq!(la.locations, alone_a.locations);

    let served = acc.emu.requests().len();
    assert_eq!(
        calls(&a) + calls(&b),
        served,
        "a shared answer is a call once"
    );
    let stats = round.stats();
    assert_eq!(stats.sent as usize, served);
    assert!(stats.shared > 0, "{stats:?}");
    eprintln!("two passes reading together: {stats:?}");

    drop((a, b));
    let stats = round.stats();
    assert_eq!(
        (stats.held_answers, stats.held_bytes),
        (0, 0),
        "every answer left once its readers ended: {stats:?}"
    );
}

/// Passes that do not overlap in time still share: the second takes the pages the first
/// read and left for it. An answer is kept only for the readers that will ask for it: the
/// first pair's own location is never kept, and the shared pages leave memory as the second
/// pair takes them.
#[tokio::test]
async fn a_later_pass_takes_the_kept_pages_and_they_leave_memory_as_it_does() {
    let acc = account(3).await;
    let wants_a = ids(&acc, &[0, 1]);
    let wants_b = ids(&acc, &[1]);
    let one_pass = reads_alone(&acc, &wants_a).await;
    let pages = one_pass[&acc.locations[1]];

    let round = ReadRound::new(RoundLimits::default());
    let a = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::from_config(&wants_a)));
    let b = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::from_config(&wants_b)));
    read_source(&a, &wants_a, false).await.unwrap();
    let after_a = round.stats();
    // The pages of location 1 and the one page of `/locations` wait for pair B.
    assert_eq!(after_a.held_answers, pages + 1, "{after_a:?}");
    assert!(after_a.held_bytes > 0);
    let listing = read_source(&b, &wants_b, false).await.unwrap();
    assert_eq!(listing.records.len(), GUESTS_PER_LOCATION);
    assert!(listing.complete);
    assert_eq!(
        acc.emu.reads_per_location().get(&acc.locations[1]),
        Some(&pages),
        "pair B sent no read of location 1"
    );
    assert_eq!(calls(&b), 0, "pair B sent nothing at all");
    let after_b = round.stats();
    assert_eq!((after_b.held_answers, after_b.held_bytes), (0, 0));
    assert_eq!(after_b.peak_bytes, after_a.held_bytes);
    eprintln!(
        "a round holding {} pages of 100 customers and one of locations: {} bytes",
        pages, after_a.held_bytes
    );
}

/// A reader that ends without asking (its pass failed, or had nothing to read) releases what
/// was kept for it.
#[tokio::test]
async fn a_reader_that_ends_releases_what_was_kept_for_it() {
    let acc = account(2).await;
    let wants = ids(&acc, &[0]);
    let round = ReadRound::new(RoundLimits::default());
    let a = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::from_config(&wants)));
    let b = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::All));
    read_source(&a, &wants, false).await.unwrap();
    assert!(round.stats().held_answers > 0);
    drop(b);
    assert_eq!(round.stats().held_answers, 0);
    assert_eq!(round.stats().held_bytes, 0);
}

/// Transactions are read per location too, newest first: the streams of two pairs sharing a
/// location are read once.
#[tokio::test]
async fn transaction_streams_of_a_shared_location_are_read_once() {
    let acc = account(2).await;
    let loc = acc.locations[0].clone();
    let alone = client(&acc, &acc.key);
    for t in [TransactionType::Mac, TransactionType::Social] {
        read_stream(&alone, t, &loc, None).await.unwrap();
    }
    let one_pass = acc.emu.reads_per_location()[&loc];
    acc.emu.clear_requests();

    let round = ReadRound::new(RoundLimits::default());
    let wants = Wants::from_config(std::slice::from_ref(&loc));
    let a = client(&acc, &acc.key).with_shared_reads(round.reader(wants.clone()));
    let b = client(&acc, &acc.key).with_shared_reads(round.reader(wants));
    for t in [TransactionType::Mac, TransactionType::Social] {
        let (ra, rb) = tokio::join!(
            read_stream(&a, t, &loc, None),
            read_stream(&b, t, &loc, None)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.txns.len(), rb.txns.len());
        assert_eq!(ra.max_id, rb.max_id);
    }
    assert_eq!(acc.emu.reads_per_location()[&loc], one_pass);
}

/// Readers asking at the same moment wait for the one request in flight.
#[tokio::test]
async fn concurrent_callers_wait_for_the_request_in_flight() {
    let acc = account(1).await;
    acc.emu.set_latency(Duration::from_millis(150));
    let round = ReadRound::new(RoundLimits::default());
    let clients: Vec<HotspotClient> = (0..5)
        .map(|_| client(&acc, &acc.key).with_shared_reads(round.reader(Wants::All)))
        .collect();
    let lists =
        futures_util::future::join_all(clients.iter().map(|c| c.locations().collect_all())).await;
    for l in lists {
        assert_eq!(l.unwrap().len(), 1);
    }
    assert_eq!(acc.emu.requests().len(), 1, "one request for five readers");
    assert_eq!(clients.iter().map(calls).sum::<usize>(), 1);
}

/// The credential is part of a read's identity: a pair with a wrong key never gets the answer
/// another pair's right key fetched, even while it is kept or in flight.
#[tokio::test]
async fn a_pair_with_another_key_never_gets_a_shared_answer() {
    let acc = account(1).await;
    acc.emu.set_latency(Duration::from_millis(100));
    let round = ReadRound::new(RoundLimits::default());
    let right = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::All));
    let wrong = client(&acc, "not-the-key").with_shared_reads(round.reader(Wants::All));
    let (r, w) = tokio::join!(
        right.locations().collect_all(),
        wrong.locations().collect_all()
    );
    assert_eq!(r.unwrap().len(), 1);
    assert_eq!(w.unwrap_err().status(), Some(401));
    let again = wrong.locations().collect_all().await;
    assert_eq!(again.unwrap_err().status(), Some(401));
    assert_eq!(acc.emu.requests().len(), 3);
}

/// An error reaches the callers waiting for it at that moment only: a later caller sends the
/// request again and gets the answer.
#[tokio::test]
async fn an_error_is_not_kept_for_later_callers() {
    let acc = account(1).await;
    let round = ReadRound::new(RoundLimits::default());
    let a = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::All));
    let b = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::All));
    acc.emu.set_faults(FaultKnobs {
        p500: 1.0,
        ..FaultKnobs::default()
    });
    let failed = a.locations().collect_all().await.unwrap_err();
    assert!(matches!(&failed, HttpError::Api(e) if e.status == Some(500)));
    acc.emu.set_faults(FaultKnobs::default());
    assert_eq!(b.locations().collect_all().await.unwrap().len(), 1);
    assert_eq!(calls(&a), 1);
    assert_eq!(calls(&b), 1, "pair B sent its own request");
}

/// The cap on what a round holds: with no room, nothing is kept (a later pass reads again),
/// yet readers asking together still share the one request in flight.
#[tokio::test]
async fn with_no_room_nothing_is_kept() {
    let acc = account(1).await;
    let round = ReadRound::new(RoundLimits { max_held_bytes: 0 });
    let a = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::All));
    let b = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::All));
    a.locations().collect_all().await.unwrap();
    b.locations().collect_all().await.unwrap();
    assert_eq!(acc.emu.requests().len(), 2);
    assert_eq!(round.stats().peak_bytes, 0);

    acc.emu.clear_requests();
    acc.emu.set_latency(Duration::from_millis(150));
    let (x, y) = tokio::join!(a.locations().collect_all(), b.locations().collect_all());
    x.unwrap();
    y.unwrap();
    assert_eq!(acc.emu.requests().len(), 1);
}

/// Once the round is dropped, its clients send their own requests and nothing is held.
#[tokio::test]
async fn a_client_outliving_its_round_reads_on_its_own() {
    let acc = account(1).await;
    let round = ReadRound::new(RoundLimits::default());
    let a = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::All));
    let b = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::All));
    a.locations().collect_all().await.unwrap();
    drop(round);
    b.locations().collect_all().await.unwrap();
    assert_eq!(acc.emu.requests().len(), 2);
    assert_eq!(calls(&b), 1);
}

/// Each pair decodes its own copy of a shared page: the values it could not read, and the
/// records it had to leave out, are in its own listing as if it had read the page itself.
#[tokio::test]
async fn a_pair_taking_a_shared_page_reports_what_it_could_not_read() {
    let acc = account(1).await;
    acc.emu.set_odd_values(OddValues {
        malformed_dates: true,
        nulls: true,
        ..OddValues::default()
    });
    let wants = ids(&acc, &[0]);
    let alone = read_source(&client(&acc, &acc.key), &wants, false)
        .await
        .unwrap();
    assert!(
        !alone.unreadable.is_empty() && alone.without_id > 0,
        "the odd values show: {:?}",
        alone.unreadable
    );
    acc.emu.clear_requests();

    let round = ReadRound::new(RoundLimits::default());
    let a = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::from_config(&wants)));
    let b = client(&acc, &acc.key).with_shared_reads(round.reader(Wants::from_config(&wants)));
    let la = read_source(&a, &wants, false).await.unwrap();
    let lb = read_source(&b, &wants, false).await.unwrap();
    assert_eq!(calls(&b), 0, "pair B read everything from the round");
    for listing in [&la, &lb] {
        assert_eq!(listing.unreadable, alone.unreadable);
        assert_eq!(listing.without_id, alone.without_id);
        assert_eq!(listing.complete, alone.complete);
        assert_eq!(guests(listing), guests(&alone));
    }
}
