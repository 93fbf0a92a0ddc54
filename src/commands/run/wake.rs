//! Webhook events wake a pass over just their records, at once instead of at the next tick.
//!
//! - **Targeted, same guards.** A pair with `[webhooks] listen` has one more scheduler job,
//!   [`WAKE_JOB`], whose body reads the records the pending events name from HotspotSystem and
//!   runs a pass scoped to them ([`crate::reconcile::named_records`]): the same planner, the
//!   same overlap guard, the same exclusive lock (so it waits for a scheduled pass of the pair
//!   instead of running beside it), the same limiter, journal and run records. Its own cron
//!   tick is once a year; events are what run it.
//! - **GHL's events** that need a pass (a contact edited in the CRM, a deleted contact under
//!   `on_target_delete = "recreate"`) ask for an incremental whole pass over contacts, notes
//!   and tasks instead ([`Wake::wake_whole`]): the changed contact is GHL's, not a record a
//!   webhook of HotspotSystem named. It covers the pending HotspotSystem events too.
//! - **Coalesced.** The receiver's wake-up is a [`Notify`] permit: however many events arrive
//!   while a pass runs, exactly one more pass follows it, and it covers all of them.
//! - **Processed when written.** After a targeted pass that succeeded, an event is processed
//!   once its record was listed and written (a transaction whose note waits for its guest's
//!   contact stays pending). A whole pass over contacts, notes and tasks (`pass`, `full`)
//!   notes, before it starts, the newest event queued so far; if it ends succeeded, the events
//!   up to that one are processed: an event received while it runs is left for the next one,
//!   since that pass may have read the listing before the record existed there.
//! - **Retried, then left to the passes.** A targeted pass that leaves events pending (their
//!   record not listed yet, a write that failed) is run again after [`RETRY_FIRST`], doubling
//!   up to [`RETRY_MAX`], while an event younger than [`GIVE_UP_AFTER`] is pending; older ones
//!   are the regular passes' (which write every record anyway).
//! - **Nothing lost.** On start, events still pending (a crash after the 200, a pass that
//!   failed) wake the pair at once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::ghl::GhlClient;
use crate::hotspot::HotspotClient;
use crate::model::Kind;
use crate::reconcile::named_records::{NamedRecord, Targeted, run_named};
use crate::reconcile::pass::{PassOptions, PassResult};
use crate::reconcile::transactions::type_name;
use crate::schedule::Scheduler;
use crate::store::{FastListing, RunStatus, Store};
use crate::webhooks::hotspot::{EventType, HotspotEvent};
use crate::webhooks::{self, Accepted, Inbox, InboxError, PairLocations};

use super::pair::PairDaemon;
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
    /// Set by a run that left events young enough to retry.
    retry: AtomicBool,
    /// Set by a GHL event whose consequence only a pass over the pair's contacts can draw (a
    /// contact changed or deleted in the CRM): the next run is an incremental whole pass.
    whole: AtomicBool,
}

impl Default for Wake {
    fn default() -> Wake {
        Wake {
            notify: Notify::new(),
            finished: watch::Sender::new(0),
            retry: AtomicBool::new(false),
            whole: AtomicBool::new(false),
        }
    }
}

impl Wake {
    /// Asks for one pass after the running one (if any); repeated calls before it starts ask
    /// for that same pass.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Asks for one incremental whole pass over contacts, notes and tasks after the running
    /// one (GHL's events: see [`Wake::whole`]); it covers the pending events too.
    pub fn wake_whole(&self) {
        self.whole.store(true, Ordering::Relaxed);
        self.notify.notify_one();
    }

    /// Whether the next run is to be a whole pass; asking resets it.
    pub fn take_whole(&self) -> bool {
        self.whole.swap(false, Ordering::Relaxed)
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

/// The whole pass a GHL event asks for ([`Wake::wake_whole`]): [`EVENT_KINDS`], incremental.
pub(super) fn whole_pass_options() -> PassOptions {
    let mut opts = PassOptions::scoped(crate::reconcile::scope::SourceScope::Whole);
    opts.kinds.retain(|k| EVENT_KINDS.contains(k));
    opts
}

/// The first wait before a run that left events pending runs again.
pub(super) const RETRY_FIRST: Duration = Duration::from_secs(5);
/// The longest wait between such runs.
pub(super) const RETRY_MAX: Duration = Duration::from_secs(120);
/// Events older than this are left to the regular passes.
pub(super) const GIVE_UP_AFTER: chrono::Duration = chrono::Duration::minutes(10);

/// What one wake run did.
#[derive(Debug)]
pub(super) struct EventsRun {
    pub pending: usize,
    pub processed: usize,
    /// Events the run could not place by id (not a number): the regular passes cover them.
    pub unnumbered: usize,
    pub targeted: Targeted,
}

/// The record an event names, as the targeted read looks for it; `None`: an id that is no
/// number cannot be placed in a newest-first listing.
fn named(event: &HotspotEvent) -> Option<NamedRecord> {
    let listing = match event.event {
        EventType::CustomerCreate => FastListing::Customers,
        EventType::SubscriberCreate => FastListing::Subscribers,
        EventType::TransactionCreate(t) => FastListing::Transactions(t),
    };
    Some(NamedRecord {
        listing,
        location: event.location_id.clone(),
        id: event.record_id.trim().parse().ok()?,
    })
}

/// One wake run: the pending events' records, read and written by a targeted pass; the events
/// whose records it wrote are marked processed, and `wake` told whether to come back.
pub(super) async fn run_events(
    cfg: &Config,
    store: &Mutex<Store>,
    hs: &HotspotClient,
    ghl: &GhlClient,
    wake: &Wake,
    stop: &AtomicBool,
) -> anyhow::Result<EventsRun> {
    // Until this run knows better (it may fail before it does): come back later.
    wake.retry.store(true, Ordering::Relaxed);
    let pending = {
        let store = store.lock().unwrap_or_else(|p| p.into_inner());
        webhooks::pending_events(&store)?
    };
    let mut records = Vec::new();
    let mut unnumbered = 0;
    for p in &pending {
        match named(&p.event) {
            Some(n) => records.push((p, n)),
            None => unnumbered += 1,
        }
    }
    let mut wanted: Vec<NamedRecord> = records.iter().map(|(_, n)| n.clone()).collect();
    wanted.extend(recent_guests(store, &wanted)?);
    let targeted = if wanted.is_empty() {
        Targeted::default()
    } else {
        run_named(cfg, store, hs, ghl, &wanted, stop).await?
    };
    let succeeded = targeted
        .pass
        .as_ref()
        .is_none_or(|p| p.status == RunStatus::Succeeded);
    let now = Utc::now();
    let store = store.lock().unwrap_or_else(|p| p.into_inner());
    let mut done = Vec::new();
    let mut young_left = false;
    for (p, n) in &records {
        let key = (n.listing, n.id);
        // A guest whose event names no location and that none of the pair's locations lists is
        // another pair's (the receiver sends such events to every pair), or not listed yet:
        // either way the regular passes are the ones to write it.
        let elsewhere = n.location.is_none() && !targeted.read.found.contains(&key);
        let written = succeeded
            && (elsewhere
                || targeted.read.not_synced.contains(&key)
                || (targeted.read.found.contains(&key) && note_settled(cfg, &store, n)?));
        if written {
            done.push(p.id);
        } else {
            young_left |= now - p.received_at < GIVE_UP_AFTER;
        }
    }
    let processed = store.mark_webhook_events_done(&done, now, cfg.report.keep_days)?;
    wake.retry.store(young_left, Ordering::Relaxed);
    tracing::info!(
        pending = pending.len(),
        processed,
        left = pending.len() - processed,
        retry = young_left,
        "webhook events: targeted pass done"
    );
    Ok(EventsRun {
        pending: pending.len(),
        processed,
        unnumbered,
        targeted,
    })
}

/// A transaction's note is written in the pass that holds its guest: the guests named by the
/// events of the last [`GIVE_UP_AFTER`] at the locations of `wanted`'s transactions (already
/// written, most of them: they are read again, and cost no write).
fn recent_guests(
    store: &Mutex<Store>,
    wanted: &[NamedRecord],
) -> Result<Vec<NamedRecord>, crate::store::StoreError> {
    let at: BTreeSet<&str> = wanted
        .iter()
        .filter(|n| matches!(n.listing, FastListing::Transactions(_)))
        .filter_map(|n| n.location.as_deref())
        .collect();
    if at.is_empty() {
        return Ok(Vec::new());
    }
    let recent = {
        let store = store.lock().unwrap_or_else(|p| p.into_inner());
        webhooks::events_since(&store, Utc::now() - GIVE_UP_AFTER)?
    };
    Ok(recent
        .iter()
        .filter_map(|e| named(&e.event))
        .filter(|n| !matches!(n.listing, FastListing::Transactions(_)))
        .filter(|n| n.location.as_deref().is_none_or(|l| at.contains(l)))
        .filter(|n| !wanted.contains(n))
        .collect())
}

/// Whether a listed transaction's note is no longer waiting: written, or not wanted (a type
/// only the paid follow-up task uses). A note whose guest has no contact yet (the guest's own
/// event not in yet) keeps the event pending, so that the run that writes the guest writes it.
fn note_settled(
    cfg: &Config,
    store: &Store,
    n: &NamedRecord,
) -> Result<bool, crate::store::StoreError> {
    let FastListing::Transactions(t) = n.listing else {
        return Ok(true);
    };
    if !(cfg.notes.enabled && cfg.notes.transaction_types.contains(&t)) {
        return Ok(true);
    }
    let source_id = format!("{}:{}", type_name(t), n.id);
    Ok(store.link(Kind::Note, &source_id)?.is_some())
}

/// Before a whole pass: the newest pending event it will cover, if it covers every kind an event
/// can need (a guest's contact and task, a transaction's note): `pass`, `full`. A contacts-only
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

/// Runs the pair's wake job whenever it is woken, one run at a time, until dropped, and again
/// after a growing wait while a run leaves young events pending. On start, events left pending
/// wake it at once (a pair whose state is not open yet too: its run opens it).
pub(super) async fn serve_wakes(daemon: &PairDaemon, scheduler: &Scheduler) {
    let Some(wake) = daemon.wake() else {
        return std::future::pending().await;
    };
    let pending = daemon
        .with_open_store(|s| s.webhook_events_high_water().ok().flatten().is_some())
        .unwrap_or(true);
    if pending {
        tracing::info!(
            "webhook events may be pending from before the start; running a pass for them"
        );
        wake.wake();
    }
    let mut finished = wake.finished.subscribe();
    let mut retry_in = RETRY_FIRST;
    loop {
        let retrying = wake.retry.load(Ordering::Relaxed);
        tokio::select! {
            () = wake.notify.notified() => retry_in = RETRY_FIRST,
            () = tokio::time::sleep(retry_in), if retrying => {
                tracing::info!(after_secs = retry_in.as_secs(), "webhook events still pending; running their pass again");
                retry_in = (retry_in * 2).min(RETRY_MAX);
            }
        }
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

/// Runs `f` on `pair`'s state for a receiver: an error says which pair and why.
pub(super) fn in_state<R>(
    pair: &PairDaemon,
    f: impl FnOnce(&Store) -> Result<R, crate::store::StoreError>,
) -> Result<R, InboxError> {
    pair.with_open_store(f)
        .ok_or_else(|| InboxError::Unavailable {
            pair: pair.name().to_string(),
            reason: "its state is not open in this process (starting, reloading, or locked by another process)".to_string(),
        })?
        .map_err(|source| InboxError::Store {
            pair: pair.name().to_string(),
            source,
        })
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
            let inserted = in_state(pair, |s| webhooks::queue(s, event, at))?;
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
    use super::super::job_pass_options;
    use super::*;
    use crate::config::ScheduleJob;

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
        let pass = job_pass_options(ScheduleJob::Pass).unwrap();
        assert_eq!(events_before_pass(&store, &pass), Some(1));
        let full = job_pass_options(ScheduleJob::Full).unwrap();
        assert_eq!(events_before_pass(&store, &full), Some(1));
        let contacts = job_pass_options(ScheduleJob::Contacts).unwrap();
        assert_eq!(events_before_pass(&store, &contacts), None);
        let dry = PassOptions {
            dry_run: true,
            ..pass.clone()
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
