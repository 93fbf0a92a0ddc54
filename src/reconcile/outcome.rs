//! What one kind's step returns to the pass: the same shape for every kind, so the pass
//! accounts them all alike into the run's summary, items and status.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ghl::GhlError;
use crate::http::HttpError;
use crate::report::dry_run::KindWrites;
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
    pub stopped: Option<WritingStopped>,
    /// The error that ends the pass once the writes in flight are done: GHL refused a call for
    /// a scope the token lacks, which no other record can get past either.
    pub fatal: Option<GhlError>,
    /// The plan in words, for `--dry-run` (only contacts plan writes ahead of them).
    pub plan_text: Option<String>,
    /// In a dry run: the GHL writes the step would have sent, per operation.
    pub planned: KindWrites,
    /// In a dry run: the GHL reads the step left out that the real run makes.
    pub skipped_reads: u64,
}

/// Why a kind stopped writing early and deferred the rest to the next run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WritingStopped {
    /// GHL's daily quota fell to the configured reserve.
    QuotaReserve {
        api: &'static str,
        daily_remaining: u64,
        reserve: u64,
    },
    /// The pass was told to stop (a stop request, its time budget): the records in flight
    /// finished.
    StopRequested,
}

impl std::fmt::Display for WritingStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Worded as the HTTP policy words the error it comes from.
            WritingStopped::QuotaReserve {
                api,
                daily_remaining,
                reserve,
            } => write!(
                f,
                "{api}: daily quota reserve reached ({daily_remaining} left, reserve {reserve}); deferring"
            ),
            WritingStopped::StopRequested => {
                f.write_str("stop requested: in-flight records finished, the rest deferred")
            }
        }
    }
}

/// How a GHL error bears on the writes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// No new write starts; the rest is deferred.
    Deferred(WritingStopped),
    /// The token lacks a scope: no new write starts, and the pass ends with the error.
    ScopeDenied,
}

/// Whether `e` halts every writer of the pass, and how; sets `stop` when it does. The one
/// place a GHL error is told a quota or a scope halt.
pub fn halt_writing(e: &GhlError, stop: &AtomicBool) -> Option<Halt> {
    let halt = match e {
        GhlError::Http(HttpError::QuotaReserveReached {
            api,
            daily_remaining,
            reserve,
        }) => Halt::Deferred(WritingStopped::QuotaReserve {
            api,
            daily_remaining: *daily_remaining,
            reserve: *reserve,
        }),
        GhlError::ScopeDenied { .. } => Halt::ScopeDenied,
        _ => return None,
    };
    stop.store(true, Ordering::SeqCst);
    Some(halt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_stop_reads_as_the_error_it_comes_from() {
        let e = GhlError::Http(HttpError::QuotaReserveReached {
            api: "ghl",
            daily_remaining: 90,
            reserve: 100,
        });
        let stop = AtomicBool::new(false);
        let Some(Halt::Deferred(why)) = halt_writing(&e, &stop) else {
            panic!("a quota reserve defers the rest");
        };
        assert_eq!(why.to_string(), e.to_string());
        assert!(stop.load(Ordering::SeqCst));
    }

    #[test]
    fn only_quota_and_scope_errors_halt_writing() {
        let stop = AtomicBool::new(false);
        let denied = GhlError::ScopeDenied {
            scope: "contacts.write",
            method: "POST".into(),
            path: "/contacts/",
        };
        assert_eq!(halt_writing(&denied, &stop), Some(Halt::ScopeDenied));
        assert!(stop.load(Ordering::SeqCst));
        let stop = AtomicBool::new(false);
        assert_eq!(halt_writing(&GhlError::Invalid("x".into()), &stop), None);
        assert!(!stop.load(Ordering::SeqCst));
    }
}
