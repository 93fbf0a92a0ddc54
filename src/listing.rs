//! What both APIs' listings share: a listing is trusted only as far as its pages show.
//!
//! A listing ends on a short or empty page; a server's count (`total`, `total_count`) is a hint
//! that can be capped or lag. Every id a listing returns is remembered (as a 64-bit hash, a few
//! MB for 100,000 records): an id seen twice means records moved between pages while they were
//! read, so others may have been skipped, and a page of nothing but ids already seen means the
//! server is not moving forward at all.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Why a listing cannot be trusted to hold every record. No deletion is inferred from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    /// A request of the listing failed.
    Failed,
    /// Ids came back more than once: pages shifted while they were read.
    RepeatedIds { repeated: u64 },
    /// Fewer distinct records than the server's own count.
    BelowCount { listed: u64, count: u64 },
    /// HotspotSystem read `offset` as a page index, not a record offset; the pages were read
    /// by index, but that reading is not the documented one.
    OffsetIsPageIndex,
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Incomplete::Failed => write!(f, "a request of the listing failed"),
            Incomplete::RepeatedIds { repeated } => write!(
                f,
                "{repeated} record(s) came back twice (pages shifted while they were read)"
            ),
            Incomplete::BelowCount { listed, count } => write!(
                f,
                "{listed} distinct record(s) listed but the server counts {count}"
            ),
            Incomplete::OffsetIsPageIndex => write!(
                f,
                "the server reads `offset` as a page index, not a record offset; the pages were read by index"
            ),
        }
    }
}

/// What one page added to a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageProgress {
    /// Ids not seen before.
    pub new: u64,
    /// Ids already seen (earlier in the listing or earlier in this page).
    pub repeated: u64,
}

impl PageProgress {
    /// A page of records that all came before: the server is not moving forward.
    pub fn stalled(&self) -> bool {
        self.new == 0 && self.repeated > 0
    }
}

/// The ids a listing returned so far.
#[derive(Debug, Default)]
pub struct SeenIds {
    seen: HashSet<u64>,
    repeated: u64,
}

impl SeenIds {
    pub fn add<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) -> PageProgress {
        let mut p = PageProgress {
            new: 0,
            repeated: 0,
        };
        for id in ids {
            if self.seen.insert(id_hash(id)) {
                p.new += 1;
            } else {
                p.repeated += 1;
            }
        }
        self.repeated += p.repeated;
        p
    }

    /// Distinct ids listed.
    pub fn distinct(&self) -> u64 {
        self.seen.len() as u64
    }

    /// Ids that came back more than once, over the whole listing.
    pub fn repeated(&self) -> u64 {
        self.repeated
    }
}

fn id_hash(id: &str) -> u64 {
    // Fixed keys: the same id hashes the same in every page of the listing.
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// The reasons a finished listing is incomplete, given what it saw; empty means complete.
pub fn verdict(failed: bool, seen: &SeenIds, count: Option<u64>) -> Vec<Incomplete> {
    let mut out = Vec::new();
    if failed {
        out.push(Incomplete::Failed);
    }
    if seen.repeated() > 0 {
        out.push(Incomplete::RepeatedIds {
            repeated: seen.repeated(),
        });
    }
    // A count above what the pages held means the server knows of more; a count below is
    // a capped or lagging hint, and the pages are the truth.
    if let Some(count) = count
        && seen.distinct() < count
    {
        out.push(Incomplete::BelowCount {
            listed: seen.distinct(),
            count,
        });
    }
    out
}

/// The error of a listing that makes no progress (the same page again, a cursor or a next link
/// that leads back): logged, and named by API and path. The listing is incomplete.
pub fn no_progress(
    api: &'static str,
    path: &str,
    why: impl std::fmt::Display,
) -> crate::http::HttpError {
    tracing::warn!(api, path, "the listing makes no progress: {why}");
    crate::http::HttpError::decode(
        api,
        path,
        format!("the listing makes no progress: {why}; it is incomplete"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_stalled_pages() {
        let mut s = SeenIds::default();
        let p = s.add(["a", "b", "c"]);
        assert_eq!(
            p,
            PageProgress {
                new: 3,
                repeated: 0
            }
        );
        assert!(!p.stalled());
        let p = s.add(["c", "d"]);
        assert_eq!(
            p,
            PageProgress {
                new: 1,
                repeated: 1
            }
        );
        assert!(!p.stalled());
        assert!(s.add(["a", "b"]).stalled());
        assert!(!s.add([]).stalled());
        assert_eq!(s.distinct(), 4);
        assert_eq!(s.repeated(), 3);
    }

    #[test]
    fn a_count_is_a_hint_only_when_it_is_lower() {
        let mut s = SeenIds::default();
        s.add(["a", "b", "c"]);
        assert!(verdict(false, &s, Some(2)).is_empty(), "a capped count");
        assert!(verdict(false, &s, Some(3)).is_empty());
        assert!(verdict(false, &s, None).is_empty());
        assert_eq!(
            verdict(false, &s, Some(4)),
            vec![Incomplete::BelowCount {
                listed: 3,
                count: 4
            }]
        );
        assert_eq!(verdict(true, &s, None), vec![Incomplete::Failed]);
    }
}
