//! Shared HotspotSystem reads in the daemon: the passes that one scheduler second starts, over
//! every pair, form one [`ReadRound`], so a location that several pairs read is listed once for
//! all of them per tick, as `sync` does for the pairs it runs in turn (see
//! [`crate::hotspot::shared`] for what is shared and what each pair still does itself).
//!
//! A pass joins its tick's round *before* it waits its turn at the
//! [`PassGate`](super::gate::PassGate): an answer is kept only for the readers that exist when
//! it arrives, so a pair that waits behind `[run] max_concurrent_pairs` still finds what the
//! first passes of its tick read. A round ends when the last pass of its tick ends, which
//! drops whatever it still keeps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use chrono::{DateTime, Utc};

use crate::hotspot::shared::{ReadRound, RoundLimits, SharedReads, Wants};

/// The rounds of the ticks whose passes are still running, by tick.
#[derive(Default)]
pub(super) struct Rounds {
    open: Mutex<HashMap<DateTime<Utc>, Weak<ReadRound>>>,
}

/// One pass's place in its tick's round: hand `reads` to the pass's HotspotSystem client and
/// keep the whole value until the pass ends.
pub(super) struct TickReads {
    /// Holds the round open while this pass runs.
    _round: Arc<ReadRound>,
    pub reads: SharedReads,
}

impl Rounds {
    /// Joins the round of the tick `ticked_at` (see
    /// [`JobContext::ticked_at`](crate::schedule::JobContext::ticked_at)), starting it if this
    /// pass is the tick's first, as a reader of the locations `wants` covers.
    pub fn join(&self, ticked_at: DateTime<Utc>, wants: Wants) -> TickReads {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        // Rounds whose passes have all ended are gone; so are their entries.
        open.retain(|_, round| round.strong_count() > 0);
        let round = match open.get(&ticked_at).and_then(Weak::upgrade) {
            Some(round) => round,
            None => {
                let round = Arc::new(ReadRound::new(RoundLimits::default()));
                open.insert(ticked_at, Arc::downgrade(&round));
                round
            }
        };
        let reads = round.reader(wants);
        TickReads {
            _round: round,
            reads,
        }
    }

    #[cfg(test)]
    fn open_rounds(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.values().filter(|r| r.strong_count() > 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn passes_of_one_tick_share_a_round_and_the_round_ends_with_its_last_pass() {
        let rounds = Rounds::default();
        let t = Utc.with_ymd_and_hms(2026, 12, 2, 15, 0, 1).unwrap();
        let a = rounds.join(t, Wants::All);
        let b = rounds.join(t, Wants::Locations(["12".to_string()].into()));
        assert!(Arc::ptr_eq(&a._round, &b._round), "same tick, same round");
        let later = rounds.join(t + chrono::Duration::seconds(1), Wants::All);
        assert!(
            !Arc::ptr_eq(&a._round, &later._round),
            "next tick, next round"
        );
        assert_eq!(rounds.open_rounds(), 2);

        drop(a);
        assert_eq!(rounds.open_rounds(), 2, "b still runs in the first round");
        drop(b);
        drop(later);
        assert_eq!(rounds.open_rounds(), 0);
        // A pass of an old tick that only now starts gets a round of its own.
        let again = rounds.join(t, Wants::All);
        assert_eq!(again._round.stats().sent, 0);
        assert_eq!(
            rounds.open.lock().unwrap().len(),
            1,
            "ended rounds are forgotten"
        );
    }
}
