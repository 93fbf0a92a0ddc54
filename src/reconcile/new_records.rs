//! The fast lane (`[schedule] new`, `sync --new`): reads only what HotspotSystem registered
//! since the last tick and writes only that, through a pass scoped to it.
//!
//! Each tick asks every location for its customers newest first (`sort=-id`), one page, and
//! stops at the first id at or below the location's cursor: an idle tick costs one
//! HotspotSystem request per location and no GHL request (the pass, and with it every GHL read,
//! starts only when something is new). A location with new customers is also read for its new
//! subscribers and transactions, each from its own cursor, so the new guests' notes and
//! onboarding tasks are written in the same pass.
//!
//! Whether the server honours `sort` is not documented (the reference infers it). The reader
//! stops early only while every id it has seen came in descending order; a page out of order
//! means the sort was ignored, and the listing is then read to its end, every record above the
//! cursor kept: correct under any order, only dearer.
//!
//! Without a cursor (the first tick, or a location or listing added later) the cursor is set
//! from the newest record and nothing is written: the backlog is the regular passes' work.
//! A cursor moves once the pass wrote and accounted the records up to it ([`SourceScope::advance`]).
//! The regular passes keep their own cursors and links, so they find nothing left to write for
//! what the fast lane did, and pick up whatever it left (a failed write, a transaction of a
//! returning guest).

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use serde::de::DeserializeOwned;

use super::context::lock;
use super::pass::{PassOptions, PassResult, run_pass};
use super::scope::{Mark, NewRecords, SourceScope};
use super::snapshot::{Location, source_contact};
use super::transactions::{Uncursored, read_stream_from};
use crate::config::{Config, TransactionType};
use crate::decode::Record;
use crate::ghl::GhlClient;
use crate::hotspot::HotspotClient;
use crate::hotspot::Pager;
use crate::hotspot::wire::Customer;
use crate::http::HttpError;
use crate::model::SourceKind;
use crate::store::{FastListing, FastLocations, Store};

/// How long the location list the fast lane reads at is kept before it is listed again: one
/// extra HotspotSystem request an hour, so that idle ticks cost only their per-location reads.
pub fn locations_ttl() -> Duration {
    Duration::hours(1)
}

/// What one tick of the fast lane did.
#[derive(Debug)]
pub enum Tick {
    /// Nothing new at any location; no pass ran and nothing was recorded as a run.
    Idle {
        locations: usize,
        /// Listings whose cursor this tick set for the first time, from their newest record.
        initialised: usize,
    },
    /// New records were written by a pass scoped to them (its run says how many).
    Ran { pass: PassResult },
}

/// One tick: read what is new, and if anything is, run a pass scoped to it.
pub async fn run_new(
    cfg: &Config,
    store: &Mutex<Store>,
    hs: &HotspotClient,
    ghl: &GhlClient,
    stop: &AtomicBool,
) -> anyhow::Result<Tick> {
    // What earlier idle ticks could not read belongs to records at or below the cursors.
    hs.decode_log().drain();
    let read = read_new(cfg, store, hs).await?;
    let locations = read.locations;
    if read.records.source.is_empty() {
        hs.decode_log().drain();
        // The tick's calls are kept like a pass's (for `calls` and the dashboard), under no run.
        let calls = super::pass::masked_calls(hs.policy());
        lock(store).insert_api_calls(None, &calls, Utc::now())?;
        return Ok(Tick::Idle {
            locations,
            initialised: read.initialised,
        });
    }
    let opts = PassOptions::scoped(SourceScope::NewSince(Arc::new(read.records)));
    let pass = run_pass(cfg, store, hs, ghl, &opts, stop).await?;
    Ok(Tick::Ran { pass })
}

/// What the reads of one tick found.
#[derive(Debug, Default)]
pub struct NewRead {
    pub records: NewRecords,
    pub locations: usize,
    pub initialised: usize,
}

/// The listings the fast lane follows besides customers, as the configuration asks.
pub(super) fn followed(cfg: &Config) -> Vec<FastListing> {
    let mut out = Vec::new();
    if cfg.contacts.sync_subscribers {
        out.push(FastListing::Subscribers);
    }
    let mut types: BTreeSet<TransactionType> = BTreeSet::new();
    if cfg.notes.enabled {
        types.extend(cfg.notes.transaction_types.iter().copied());
    }
    if cfg.tasks.enabled && cfg.tasks.paid_followup.is_some() {
        types.insert(TransactionType::Paid);
    }
    out.extend(types.into_iter().map(FastListing::Transactions));
    out
}

/// Reads every location's new records past its cursors (see the module docs).
pub async fn read_new(
    cfg: &Config,
    store: &Mutex<Store>,
    hs: &HotspotClient,
) -> anyhow::Result<NewRead> {
    let locations = locations(cfg, store, hs).await?;
    let mut out = NewRead {
        locations: locations.len(),
        ..NewRead::default()
    };
    let others = followed(cfg);
    let mut any_new = false;
    for loc in &locations {
        let cursor = lock(store).fast_cursor(&loc.id, FastListing::Customers)?;
        let Some(from) = cursor else {
            for listing in std::iter::once(FastListing::Customers).chain(others.iter().copied()) {
                initialise(store, hs, &loc.id, listing).await?;
                out.initialised += 1;
            }
            continue;
        };
        let customers = read_guests(hs, &loc.id, SourceKind::Customer, from).await?;
        let idle = customers.records.is_empty();
        out.records.marks.push(customers.mark(&loc.id, from));
        if idle {
            continue;
        }
        out.records.source.records.extend(customers.records);
        for listing in &others {
            let Some(from) = lock(store).fast_cursor(&loc.id, *listing)? else {
                initialise(store, hs, &loc.id, *listing).await?;
                out.initialised += 1;
                continue;
            };
            match listing {
                FastListing::Customers => {}
                FastListing::Subscribers => {
                    let subs = read_guests(hs, &loc.id, SourceKind::Subscriber, from).await?;
                    out.records.marks.push(subs.mark(&loc.id, from));
                    out.records.source.records.extend(subs.records);
                }
                FastListing::Transactions(t) => {
                    let after = i64::try_from(from).unwrap_or(i64::MAX);
                    let r = read_stream_from(hs, *t, &loc.id, Some(after), Uncursored::Everything)
                        .await?;
                    let high = r.max_id.and_then(|m| u64::try_from(m).ok()).unwrap_or(from);
                    out.records.marks.push(Mark {
                        location: loc.id.clone(),
                        listing: *listing,
                        from,
                        high,
                        read: r
                            .txns
                            .iter()
                            .filter_map(|t| Some((u64::try_from(t.id).ok()?, t.source_id())))
                            .collect(),
                    });
                    out.records.source.txns.extend(r.txns);
                }
            }
        }
        any_new = true;
    }
    // Every location, not only those with news: a guest's transaction may name another one.
    if any_new {
        out.records.source.locations = locations;
    }
    Ok(out)
}

/// The locations to read: the stored list while it is younger than [`locations_ttl`], else the
/// account's list read again (and stored); `[hotspot] locations` narrows it.
pub(super) async fn locations(
    cfg: &Config,
    store: &Mutex<Store>,
    hs: &HotspotClient,
) -> anyhow::Result<Vec<Location>> {
    let kept = lock(store)
        .fast_locations()?
        .filter(|l| Utc::now() - l.listed_at < locations_ttl());
    let all = match kept {
        Some(l) => l.locations,
        None => {
            let mut all = Vec::new();
            for l in hs.locations().collect_all().await? {
                let Some(id) = l.id.filter(|s| !s.trim().is_empty()) else {
                    continue;
                };
                let name = l.name.unwrap_or_else(|| id.clone());
                all.push((id, name));
            }
            lock(store).set_fast_locations(&FastLocations {
                listed_at: Utc::now(),
                locations: all.clone(),
            })?;
            all
        }
    };
    let only = &cfg.hotspot.locations;
    Ok(all
        .into_iter()
        .filter(|(id, _)| only.is_empty() || only.contains(id))
        .map(|(id, name)| Location { id, name })
        .collect())
}

/// Sets a listing's first cursor from its newest record (0 for an empty listing: everything
/// that comes is new).
async fn initialise(
    store: &Mutex<Store>,
    hs: &HotspotClient,
    location: &str,
    listing: FastListing,
) -> anyhow::Result<()> {
    let high = match listing {
        FastListing::Customers => newest(hs.customers(Some(location))).await?,
        FastListing::Subscribers => newest(hs.subscribers(Some(location))).await?,
        FastListing::Transactions(t) => {
            read_stream_from(hs, t, location, None, Uncursored::NewestOnly)
                .await?
                .max_id
                .and_then(|m| u64::try_from(m).ok())
        }
    };
    let high = high.unwrap_or(0);
    tracing::info!(
        location,
        listing = listing.name(),
        cursor = high,
        "fast lane: first cursor set from the newest record; older records are left to the regular passes"
    );
    lock(store).set_fast_cursor(location, listing, high)?;
    Ok(())
}

/// The highest numeric id of a customer-shaped listing.
async fn newest<T>(pager: Pager<T>) -> Result<Option<u64>, HttpError>
where
    T: DeserializeOwned + Record + Default,
{
    Ok(read_newer(pager, None).await?.high)
}

/// Records of one listing above a cursor, and the highest id seen.
struct Newer<T> {
    records: Vec<T>,
    high: Option<u64>,
}

/// Reads newest first. `after = None`: only the newest id is wanted (nothing is kept). Stops at
/// the first page that reaches `after` while every id so far came in descending order; a
/// listing out of order is read to its end. Records whose id is not a number cannot be placed
/// against the cursor and are left to the regular passes.
async fn read_newer<T>(pager: Pager<T>, after: Option<u64>) -> Result<Newer<T>, HttpError>
where
    T: DeserializeOwned + Record + Default,
{
    let mut pager = pager.sort("-id");
    let mut out = Newer {
        records: Vec::new(),
        high: None,
    };
    let mut last: Option<u64> = None;
    let mut in_order = true;
    let mut unnumbered = 0usize;
    while let Some(page) = pager.next_page().await? {
        let mut reached = false;
        for r in page {
            let Some(id) = r.record_id().and_then(|s| s.trim().parse::<u64>().ok()) else {
                unnumbered += 1;
                continue;
            };
            in_order &= last.is_none_or(|l| id <= l);
            last = Some(id);
            out.high = out.high.max(Some(id));
            match after {
                Some(a) if id > a => out.records.push(r),
                _ => reached = true,
            }
        }
        if reached && in_order {
            break;
        }
    }
    if !in_order {
        tracing::warn!(
            "fast lane: HotspotSystem did not list newest first (sort=-id ignored?); the listing was read to its end"
        );
    }
    if unnumbered > 0 {
        tracing::warn!(
            records = unnumbered,
            "fast lane: records whose id is not a number were left to the regular passes"
        );
    }
    Ok(out)
}

/// New guests of one listing at one location.
pub(super) struct Guests {
    listing: FastListing,
    /// The guests to write (those a pass syncs).
    pub records: Vec<crate::model::SourceContact>,
    high: Option<u64>,
    /// Their numeric ids, with their source ids.
    read: Vec<(u64, String)>,
    /// Every numeric id read past the cursor, whether the guest is synced or not.
    pub listed: Vec<u64>,
}

impl Guests {
    fn mark(&self, location: &str, from: u64) -> Mark {
        Mark {
            location: location.to_string(),
            listing: self.listing,
            from,
            high: self.high.unwrap_or(from).max(from),
            read: self.read.clone(),
        }
    }
}

pub(super) async fn read_guests(
    hs: &HotspotClient,
    location: &str,
    kind: SourceKind,
    after: u64,
) -> Result<Guests, HttpError> {
    let (pager, listing) = match kind {
        SourceKind::Customer => (hs.customers(Some(location)), FastListing::Customers),
        SourceKind::Subscriber => (hs.subscribers(Some(location)), FastListing::Subscribers),
    };
    let newer = read_newer::<Customer>(pager, Some(after)).await?;
    let mut out = Guests {
        listing,
        records: Vec::new(),
        high: newer.high,
        read: Vec::new(),
        listed: Vec::new(),
    };
    for c in newer.records {
        let Some(id) = c.id.as_deref().and_then(|s| s.trim().parse::<u64>().ok()) else {
            continue;
        };
        out.listed.push(id);
        if let Some(r) = source_contact(c, kind, location) {
            out.read.push((id, r.source_id.clone()));
            out.records.push(r);
        }
    }
    Ok(out)
}
