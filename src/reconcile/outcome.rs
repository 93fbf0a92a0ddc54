//! What one kind's step returns to the pass: the same shape for every kind, so the pass
//! accounts them all alike into the run's summary, items and status.

use std::collections::BTreeSet;

use crate::ghl::GhlError;
use crate::report::{KindCounts, UnsyncedRecord};
use crate::store::RunItem;

/// The outcome of one kind in a pass.
#[derive(Debug, Default)]
pub struct KindOutcome {
    pub counts: KindCounts,
    pub notes: Vec<String>,
    pub items: Vec<RunItem>,
    /// Eligible records left unsynced for a reason other than a failed write; the pass adds
    /// those from the failed `items` of every kind.
    pub unsynced: Vec<UnsyncedRecord>,
    /// Source ids whose write failed or was deferred (cursors stay put for their stream).
    pub unfinished: BTreeSet<String>,
    /// Why writing stopped early and the rest was deferred (the daily-quota reserve, a stop
    /// request).
    pub stopped: Option<String>,
    /// The error that ends the pass once the writes in flight are done: GHL refused a call for
    /// a scope the token lacks, which no other record can get past either.
    pub fatal: Option<GhlError>,
    /// The plan in words, for `--dry-run` (only contacts plan writes ahead of them).
    pub plan_text: Option<String>,
}
