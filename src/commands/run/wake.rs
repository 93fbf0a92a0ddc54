//! Webhook events wake a pair's pass at once instead of at its next tick.
//!
//! - **Same pass, same guards.** A pair with `[webhooks] listen` has one more scheduler job,
//!   [`WAKE_JOB`], whose body is the pair's ordinary pass over contacts, notes and tasks: it
//!   takes the same overlap guard, the same exclusive lock (so it waits for a scheduled pass of
//!   the pair instead of running beside it), the same limiter, journal and run records. Its own
//!   cron tick is once a year; events are what run it.
//! - **Coalesced.** The receiver's wake-up is a [`Notify`] permit: however many events arrive
//!   while a pass runs, exactly one more pass follows it, and it covers all of them.
//! - **Processed when covered.** A pass over contacts, notes and tasks (the wake job's, a
//!   `full` one) notes, before it starts, the newest event queued so far; if it ends succeeded, the events up to that one are marked processed. An
//!   event received while a pass runs is left for the next one, since that pass may have read
//!   the HotspotSystem listing before the event's record existed there.
//! - **Nothing lost.** On start, events still pending (a crash after the 200, a pass that
//!   failed) wake the pair at once. A pass that fails leaves its events pending for the next
//!   event, the next `full` pass, or the next start.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};

use super::job_pass_options;
use super::pair::PairDaemon;
use crate::config::ScheduleJob;
use crate::model::Kind;
use crate::reconcile::pass::{PassOptions, PassResult};
use crate::schedule::Scheduler;
use crate::store::{RunStatus, Store};
use crate::webhooks::hotspot::HotspotEvent;
use crate::webhooks::{self, Accepted, Inbox, InboxError, PairLocations};

/// The scheduler job that events run.
pub const WAKE_JOB: &str = "webhooks";

/// Its own tick: once a year (a cron expression must fire some time); a run then is one more
/// pass over what is pending, like any other.
pub const WAKE_CRON: &str = "0 0 0 1 1 *";

/// How often the waiter checks whether the run it asked for was skipped (its lock wait timed
/// out), which ends no run it could hear of.
const SKIP_CHECK: Duration = Duration::from_secs(1);

/// One pair's wake-up: the receiver's permit and the end of each wake run.
pub(super) struct Wake {
    notify: Notify,
    finished: watch::Sender<u64>,
}

impl Default for Wake {
    fn default() -> Wake {
        Wake {
            notify: Notify::new(),
            finished: watch::Sender::new(0),
        }
    }
}

impl Wake {
    /// Asks for one pass after the running one (if any); repeated calls before it starts ask
    /// for that same pass.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Counts a wake run's end when dropped, however the run ends (returns, fails, panics).
    pub fn run_guard(self: &Arc<Self>) -> RunEnded {
        RunEnded(Arc::clone(self))
    }
}

pub(super) struct RunEnded(Arc<Wake>);

impl Drop for RunEnded {
    fn drop(&mut self) {
        self.0.finished.send_modify(|n| *n += 1);
    }
}

/// The kinds a new guest or transaction shows in: its contact, its note, its onboarding task.
const EVENT_KINDS: [Kind; 3] = [Kind::Contact, Kind::Note, Kind::Task];

/// What a wake run covers: [`EVENT_KINDS`], incremental, as a scheduled `pass` of them.
pub(super) fn wake_pass_options() -> Option<PassOptions> {
    let mut opts = job_pass_options(ScheduleJob::Pass)?;
    opts.kinds.retain(|k| EVENT_KINDS.contains(k));
    (!opts.kinds.is_empty()).then_some(opts)
}

/// Before a pass: the newest pending event it will cover, if it covers every kind an event can
/// need (a guest's contact and task, a transaction's note): the wake job, `full`. A contacts-only
/// pass covers none, or a transaction's note would be marked done without being written.
pub(super) fn events_before_pass(store: &Mutex<Store>, opts: &PassOptions) -> Option<i64> {
    if opts.dry_run || !EVENT_KINDS.iter().all(|k| opts.kinds.contains(k)) {
        return None;
    }
    let store = store.lock().unwrap_or_else(|p| p.into_inner());
    match store.webhook_events_high_water() {
        Ok(hw) => hw,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the webhook queue; its events stay pending");
            None
        }
    }
}

/// After a pass: the events it covered are processed if it succeeded.
pub(super) fn settle_events(
    store: &Mutex<Store>,
    covered: Option<i64>,
    result: &anyhow::Result<PassResult>,
    keep_days: u32,
) {
    let Some(up_to) = covered else { return };
    if !matches!(result, Ok(r) if r.status == RunStatus::Succeeded) {
        return;
    }
    let store = store.lock().unwrap_or_else(|p| p.into_inner());
    match store.mark_webhook_events_processed(up_to, Utc::now(), keep_days) {
        Ok(0) => {}
        Ok(n) => tracing::info!(events = n, "webhook events processed"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot mark webhook events processed; the next pass covers them again")
        }
    }
}

/// Runs the pair's wake job whenever it is woken, one run at a time, until dropped. On start,
/// events left pending wake it at once.
pub(super) async fn serve_wakes(daemon: &PairDaemon, scheduler: &Scheduler) {
    let Some(wake) = daemon.wake() else {
        return std::future::pending().await;
    };
    let pending = daemon
        .with_open_store(|s| s.webhook_events_high_water().ok().flatten().is_some())
        .unwrap_or(false);
    if pending {
        tracing::info!("webhook events pending from before the start; running a pass for them");
        wake.wake();
    }
    let mut finished = wake.finished.subscribe();
    loop {
        wake.notify.notified().await;
        let _seen = *finished.borrow_and_update();
        let skips = |s: &Scheduler| {
            s.job_stats(WAKE_JOB)
                .map(|j| j.skipped_lock_timeout + j.skipped_overlap)
                .unwrap_or(0)
        };
        let before = skips(scheduler);
        if !scheduler.trigger(WAKE_JOB) {
            return std::future::pending().await;
        }
        loop {
            tokio::select! {
                changed = finished.changed() => {
                    if changed.is_err() {
                        return std::future::pending().await;
                    }
                    break;
                }
                _ = tokio::time::sleep(SKIP_CHECK) => {
                    if skips(scheduler) > before {
                        // Not run (another run of it was going, or the lock wait timed out):
                        // its events are still pending, so ask again.
                        wake.wake();
                        break;
                    }
                }
            }
        }
    }
}

/// The daemon's pairs as the webhook receiver reaches them.
#[derive(Default)]
pub(super) struct PairInboxes {
    pairs: Mutex<Vec<Arc<PairDaemon>>>,
}

impl PairInboxes {
    /// Adds `daemon`, replacing a pair of the same name (a reload's new settings).
    pub fn set(&self, daemon: Arc<PairDaemon>) {
        let mut pairs = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        pairs.retain(|p| p.name() != daemon.name());
        pairs.push(daemon);
    }

    /// The pairs now (the GHL receiver routes by their GHL location: `ghl_inbox`).
    pub fn current(&self) -> Vec<Arc<PairDaemon>> {
        self.pairs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn remove(&self, name: &str) {
        self.pairs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| p.name() != name);
    }
}

impl Inbox for PairInboxes {
    fn accept(&self, event: &HotspotEvent, at: DateTime<Utc>) -> Result<Accepted, InboxError> {
        let pairs: Vec<Arc<PairDaemon>> =
            self.pairs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let locations: Vec<PairLocations<'_>> = pairs
            .iter()
            .map(|p| PairLocations {
                name: p.name(),
                locations: p.locations(),
            })
            .collect();
        let targets = webhooks::route(event.location_id.as_deref(), &locations);
        if targets.is_empty() {
            return Ok(Accepted::NoPair {
                location: event.location_id.clone().unwrap_or_default(),
            });
        }
        let mut to_wake = Vec::new();
        let mut names = BTreeSet::new();
        for i in targets {
            let pair = &pairs[i];
            let inserted = pair
                .with_open_store(|s| webhooks::queue(s, event, at))
                .ok_or_else(|| InboxError::Unavailable {
                    pair: pair.name().to_string(),
                    reason: "its state is not open in this process (starting, reloading, or locked by another process)".to_string(),
                })?
                .map_err(|source| InboxError::Store {
                    pair: pair.name().to_string(),
                    source,
                })?;
            names.insert(pair.name().to_string());
            if inserted {
                to_wake.push(pair);
            }
        }
        // Only once every pair has it: a 503 for one pair is retried whole, and the pairs that
        // had it already see a replay.
        for pair in &to_wake {
            if let Some(wake) = pair.wake() {
                wake.wake();
            }
        }
        Ok(Accepted::Queued {
            pairs: names.into_iter().collect(),
            new: to_wake.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_covers_the_kinds_of_a_new_guest_incrementally() {
        let opts = wake_pass_options().expect("contacts are reconciled");
        assert!(opts.kinds.contains(&Kind::Contact));
        assert!(
            opts.kinds
                .iter()
                .all(|k| matches!(k, Kind::Contact | Kind::Note | Kind::Task))
        );
        assert!(!opts.full && !opts.dry_run);
    }

    #[test]
    fn only_a_pass_over_every_kind_an_event_needs_covers_events() {
        let store = Mutex::new(Store::open_in_memory().unwrap());
        let event = crate::store::NewWebhookEvent {
            source: "hotspotsystem",
            event_type: "transaction.mac.create",
            location_id: Some("1"),
            record_id: "5",
            body: b"{}",
            received_at: Utc::now(),
        };
        store.lock().unwrap().insert_webhook_event(&event).unwrap();
        let wake = wake_pass_options().unwrap();
        assert_eq!(events_before_pass(&store, &wake), Some(1));
        let full = job_pass_options(ScheduleJob::Full).unwrap();
        assert_eq!(events_before_pass(&store, &full), Some(1));
        let contacts = job_pass_options(ScheduleJob::Contacts).unwrap();
        assert_eq!(events_before_pass(&store, &contacts), None);
        let dry = PassOptions {
            dry_run: true,
            ..wake.clone()
        };
        assert_eq!(events_before_pass(&store, &dry), None);
    }

    #[tokio::test]
    async fn permits_coalesce_into_one_more_run() {
        let wake = Arc::new(Wake::default());
        for _ in 0..50 {
            wake.wake();
        }
        // One permit is stored, however many wakes came.
        wake.notify.notified().await;
        let again = tokio::time::timeout(Duration::from_millis(50), wake.notify.notified()).await;
        assert!(again.is_err(), "a second permit was stored");
        let mut ended = wake.finished.subscribe();
        drop(wake.run_guard());
        ended.changed().await.unwrap();
        assert_eq!(*ended.borrow(), 1);
    }
}
