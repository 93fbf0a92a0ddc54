//! The targeted pass: a pass over just the HotspotSystem records that webhooks named.
//!
//! A webhook says which record is new (its listing, id and, for transactions, location); the
//! record a pass writes is read from the REST listing all the same, newest first and down to
//! that id, exactly as a whole pass would read it. So the body's key spellings, a partial body,
//! or a customer's missing location (customers carry none) change nothing of what is written,
//! and the next regular pass, reading the same listing, finds nothing left to write for it.
//!
//! Cost: one request per listing and location involved (a customer event without a location:
//! per location of the pair), usually one page, since the records are the newest there; a
//! server that ignores `sort` is read to the end ([`super::new_records`]). What else the read
//! meets above the named ids (guests that registered meanwhile) is written too: it is new.
//!
//! The pass is a [`SourceScope::Records`] pass, so it runs the same planner, journal, limiter,
//! lock and accounting as any other, infers no deletion and moves no cursor.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::new_records::{followed, locations, read_guests};
use super::pass::{PassOptions, PassResult, run_pass};
use super::scope::{ScopedSource, SourceScope};
use super::transactions::{Uncursored, read_stream_from};
use crate::config::Config;
use crate::ghl::GhlClient;
use crate::hotspot::HotspotClient;
use crate::model::SourceKind;
use crate::store::{FastListing, Store};

/// One record a webhook named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamedRecord {
    pub listing: FastListing,
    /// Where it was created; `None` (a customer without `?location=`): any location of the pair.
    pub location: Option<String>,
    pub id: u64,
}

/// What the read found.
#[derive(Debug, Default)]
pub struct NamedRead {
    /// The records to write: the named ones the listings held, and what else was newer there.
    pub source: ScopedSource,
    /// The named records the listings held, by listing and id.
    pub found: BTreeSet<(FastListing, u64)>,
    /// Named records of listings this configuration does not sync (subscribers with
    /// `sync_subscribers = false`, a transaction type neither notes nor tasks use): nothing
    /// to write for them.
    pub not_synced: BTreeSet<(FastListing, u64)>,
}

/// What a targeted pass did.
#[derive(Debug, Default)]
pub struct Targeted {
    pub read: NamedRead,
    /// `None`: none of the named records is listed by HotspotSystem yet, so no pass ran.
    pub pass: Option<PassResult>,
}

/// Reads the named records and, if any was found, runs a pass scoped to what was read.
pub async fn run_named(
    cfg: &Config,
    store: &Mutex<Store>,
    hs: &HotspotClient,
    ghl: &GhlClient,
    named: &[NamedRecord],
    stop: &AtomicBool,
) -> anyhow::Result<Targeted> {
    let read = read_named(cfg, store, hs, named).await?;
    if read.source.is_empty() {
        return Ok(Targeted { read, pass: None });
    }
    let opts = PassOptions::scoped(SourceScope::Records(Arc::new(read.source.clone())));
    let pass = run_pass(cfg, store, hs, ghl, &opts, stop).await?;
    Ok(Targeted {
        read,
        pass: Some(pass),
    })
}

/// Reads, per listing and location, newest first down to the lowest id named there.
pub async fn read_named(
    cfg: &Config,
    store: &Mutex<Store>,
    hs: &HotspotClient,
    named: &[NamedRecord],
) -> anyhow::Result<NamedRead> {
    let mut out = NamedRead::default();
    let synced: BTreeSet<FastListing> = std::iter::once(FastListing::Customers)
        .chain(followed(cfg))
        .collect();
    let locations = locations(cfg, store, hs).await?;
    // The lowest id named per (location, listing): reading down to it covers the others.
    let mut lowest: BTreeMap<(String, FastListing), u64> = BTreeMap::new();
    for n in named {
        if !synced.contains(&n.listing) {
            out.not_synced.insert((n.listing, n.id));
            continue;
        }
        let at: Vec<&str> = match &n.location {
            Some(l) => locations
                .iter()
                .filter(|x| &x.id == l)
                .map(|x| x.id.as_str())
                .collect(),
            None => locations.iter().map(|x| x.id.as_str()).collect(),
        };
        for loc in at {
            let low = lowest.entry((loc.to_string(), n.listing)).or_insert(n.id);
            *low = (*low).min(n.id);
        }
    }
    let mut guests = BTreeSet::new();
    let mut txns = BTreeSet::new();
    for ((loc, listing), low) in &lowest {
        let after = low.saturating_sub(1);
        match listing {
            FastListing::Customers | FastListing::Subscribers => {
                let kind = if *listing == FastListing::Customers {
                    SourceKind::Customer
                } else {
                    SourceKind::Subscriber
                };
                let read = read_guests(hs, loc, kind, after).await?;
                for id in &read.listed {
                    out.found.insert((*listing, *id));
                }
                for r in read.records {
                    // A guest listed at several locations is written once.
                    if guests.insert(r.source_id.clone()) {
                        out.source.records.push(r);
                    }
                }
            }
            FastListing::Transactions(t) => {
                let after = i64::try_from(after).unwrap_or(i64::MAX);
                let read =
                    read_stream_from(hs, *t, loc, Some(after), Uncursored::Everything).await?;
                for txn in read.txns {
                    if let Ok(id) = u64::try_from(txn.id) {
                        out.found.insert((*listing, id));
                    }
                    if txns.insert(txn.source_id()) {
                        out.source.txns.push(txn);
                    }
                }
            }
        }
    }
    // Only what was named counts as found; the rest read is written but proves nothing.
    let named: BTreeSet<(FastListing, u64)> = named.iter().map(|n| (n.listing, n.id)).collect();
    out.found.retain(|k| named.contains(k));
    if !out.source.is_empty() {
        out.source.locations = locations;
    }
    Ok(out)
}
