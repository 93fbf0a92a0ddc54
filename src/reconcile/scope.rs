//! Which HotspotSystem records a pass covers. A whole pass lists every record of every
//! location; a scoped pass runs the same steps (planner, journal, limiter, lock, accounting)
//! on a subset handed to it: the records the fast lane found new since its cursors
//! ([`SourceScope::NewSince`]), or records named one by one ([`SourceScope::Records`]).
//!
//! A scoped pass is incomplete by construction. Its listing says so (`complete = false`), so
//! the planner infers no deletion, and every linked guest it did not read is kept out of the
//! plan: neither changed nor gone, its contact not even fetched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::snapshot::{Location, SourceListing};
use super::transactions::Txn;
use crate::decode::{DecodeLog, Listing};
use crate::model::{SourceContact, SourceKind};
use crate::store::{FastListing, Store, StoreError};

/// The records a pass covers.
#[derive(Debug, Clone, Default)]
pub enum SourceScope {
    /// Every record of every location (the regular passes).
    #[default]
    Whole,
    /// What the fast lane read past its cursors; the cursors move once the pass accounted them.
    NewSince(Arc<NewRecords>),
    /// Records named one by one (no cursor moves).
    Records(Arc<ScopedSource>),
}

/// HotspotSystem records a scoped pass writes: guests, and the transactions whose notes (and
/// paid follow-up tasks) it writes.
#[derive(Debug, Clone, Default)]
pub struct ScopedSource {
    /// The locations the records belong to, with their names (for tags and templates).
    pub locations: Vec<Location>,
    pub records: Vec<SourceContact>,
    pub txns: Vec<Txn>,
}

impl ScopedSource {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.txns.is_empty()
    }

    /// The source ids of the guests in scope.
    pub fn guest_ids(&self) -> BTreeSet<&str> {
        self.records.iter().map(|r| r.source_id.as_str()).collect()
    }

    /// The pass's HotspotSystem listing: these records only, never complete. Values the client
    /// could not read on them are taken from its decode log, as a whole listing takes them.
    pub fn listing(&self, decode: &DecodeLog) -> SourceListing {
        let ids = self.guest_ids();
        let mut unreadable = BTreeMap::new();
        for (listing, kind) in [
            (Listing::Customers, SourceKind::Customer),
            (Listing::Subscribers, SourceKind::Subscriber),
        ] {
            for (id, fields) in decode.unreadable_records(listing) {
                let sid = match kind {
                    SourceKind::Customer => id,
                    SourceKind::Subscriber => format!("sub:{id}"),
                };
                if ids.contains(sid.as_str()) {
                    unreadable.insert(sid, fields);
                }
            }
        }
        SourceListing {
            records: self.records.clone(),
            locations: self.locations.clone(),
            complete: false,
            unreadable,
            ..SourceListing::default()
        }
    }
}

/// What the fast lane read past its cursors, and where each cursor goes once it is written.
#[derive(Debug, Clone, Default)]
pub struct NewRecords {
    pub source: ScopedSource,
    pub marks: Vec<Mark>,
}

/// One listing at one location: its cursor before the read, the highest id read, and the
/// records read past the cursor (numeric id, source id as the run's items name it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub location: String,
    pub listing: FastListing,
    pub from: u64,
    pub high: u64,
    pub read: Vec<(u64, String)>,
}

impl Mark {
    /// Where the cursor may go when the records in `deferred` were not written: just below the
    /// lowest of them (the next tick reads them again), else to the highest id read.
    pub fn next(&self, deferred: &BTreeSet<String>) -> u64 {
        let first_left = self
            .read
            .iter()
            .filter(|(_, sid)| deferred.contains(sid))
            .map(|(id, _)| *id)
            .min();
        match first_left {
            Some(id) => id.saturating_sub(1).max(self.from),
            None => self.high.max(self.from),
        }
    }
}

impl SourceScope {
    /// A line for the run's report: what the scoped pass covered. `None` for a whole pass.
    pub fn note(&self) -> Option<String> {
        let (who, source) = match self {
            SourceScope::Whole => return None,
            SourceScope::NewSince(n) => ("Fast lane", &n.source),
            SourceScope::Records(r) => ("Scoped pass", r.as_ref()),
        };
        let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
        for t in &source.txns {
            *by_type.entry(t.kind.as_str()).or_default() += 1;
        }
        let txns: Vec<String> = by_type.iter().map(|(k, n)| format!("{n} {k}")).collect();
        Some(format!(
            "{who}: {} new guest(s){}; only those were written (no deletion inferred, other guests untouched).",
            source.records.len(),
            if txns.is_empty() {
                String::new()
            } else {
                format!(
                    " and {} transaction(s) ({})",
                    source.txns.len(),
                    txns.join(", ")
                )
            }
        ))
    }

    /// The records of a scoped pass; `None` for a whole pass.
    pub fn scoped(&self) -> Option<&ScopedSource> {
        match self {
            SourceScope::Whole => None,
            SourceScope::NewSince(n) => Some(&n.source),
            SourceScope::Records(r) => Some(r),
        }
    }

    /// Moves the fast lane's cursors past what the pass wrote and accounted. `deferred`: the
    /// source ids (as run items name them) left for a later run.
    pub fn advance(&self, store: &Store, deferred: &BTreeSet<String>) -> Result<(), StoreError> {
        let SourceScope::NewSince(n) = self else {
            return Ok(());
        };
        store.transaction(|s| {
            for m in &n.marks {
                let to = m.next(deferred);
                if to > m.from {
                    s.set_fast_cursor(&m.location, m.listing, to)?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark() -> Mark {
        Mark {
            location: "1".into(),
            listing: FastListing::Customers,
            from: 100,
            high: 130,
            read: vec![
                (130, "130".into()),
                (120, "120".into()),
                (110, "110".into()),
            ],
        }
    }

    #[test]
    fn a_cursor_stops_below_the_first_record_left_for_later() {
        let m = mark();
        assert_eq!(m.next(&BTreeSet::new()), 130);
        assert_eq!(m.next(&["120".to_string()].into()), 119);
        assert_eq!(m.next(&["120".to_string(), "110".to_string()].into()), 109);
        // Never backwards.
        let m = Mark {
            read: vec![(100, "100".into())],
            ..mark()
        };
        assert_eq!(m.next(&["100".to_string()].into()), 100);
    }

    #[test]
    fn cursors_move_only_for_the_fast_lane() {
        let store = Store::open_in_memory().unwrap();
        SourceScope::Records(Arc::default())
            .advance(&store, &BTreeSet::new())
            .unwrap();
        assert_eq!(
            store.fast_cursor("1", FastListing::Customers).unwrap(),
            None
        );
        let scope = SourceScope::NewSince(Arc::new(NewRecords {
            source: ScopedSource::default(),
            marks: vec![mark()],
        }));
        scope.advance(&store, &["110".to_string()].into()).unwrap();
        assert_eq!(
            store.fast_cursor("1", FastListing::Customers).unwrap(),
            Some(109)
        );
    }
}
