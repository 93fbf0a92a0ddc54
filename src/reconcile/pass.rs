//! One reconcile pass: read both sides, plan, apply (or print the plan), and record the run.
//!
//! This is where configuration meets the pure planner. The caller holds the state lock and the
//! open store; the pass records a run row from start to finish so that even a pass that fails
//! half-way leaves a report saying how far it got.
//!
//! Every pass is bounded in time. When the caller's stop flag is set (SIGTERM, SIGINT) or the
//! pass has run for `[sync] pass_budget_secs`, no new write starts, the writes in flight finish
//! and commit, and the rest is deferred to the next run; a pass still going [`STOP_GRACE`] later
//! (a slow or endless read) is dropped, which the create journal makes as safe as a crash. Either
//! way the run is recorded as aborted, with a note saying why.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use super::apply::{ApplyResult, ContactApplier};
use super::base;
use super::plan::{
    Action, ContactPolicy, ContactsInput, DeferReason, Outcome, Plan, PlanItem, plan_contacts,
};
use super::snapshot::{
    CustomFields, Location, SourceListing, TargetListing, read_source, read_target,
};
use crate::config::{Config, LostCreateRecovery};
use crate::ghl::GhlClient;
use crate::hotspot::HotspotClient;
use crate::mapping::{MappingConfig, SkipReason, SkippedSource, map_sources};
use crate::model::{Field, Kind};
use crate::report::{KindCounts, RunSummary, Unsynced, UnsyncedRecord};
use crate::store::{IntentState, ItemOutcome, RunItem, RunStatus, Store};

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct PassOptions {
    pub kinds: BTreeSet<Kind>,
    pub dry_run: bool,
    pub full: bool,
    /// Bars for a person at a terminal; `None` draws nothing (daemon, cron, pipes, tests).
    pub progress: Option<crate::progress::Progress>,
}

/// How a pass ended.
#[derive(Debug)]
pub struct PassResult {
    pub run_id: i64,
    pub status: RunStatus,
    /// The plan in words, for `--dry-run`.
    pub plan_text: Option<String>,
    /// Why the pass was told to stop before its end, if it was.
    pub interrupted: Option<Interruption>,
}

/// Why a pass was told to stop before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// The caller's stop flag: SIGTERM or SIGINT.
    StopRequested,
    /// The pass ran for `[sync] pass_budget_secs`.
    BudgetSpent,
}

/// How long a pass told to stop may go on: the writes in flight finish well within it. A pass
/// still going after it is dropped. Kept under the daemon's shutdown grace, so that the run is
/// recorded before the daemon exits.
pub const STOP_GRACE: Duration = Duration::from_secs(6);

/// How often the caller's stop flag is looked at (it is a plain flag a signal task sets).
const STOP_POLL: Duration = Duration::from_millis(100);

/// A create journaled this long ago and not yet visible in the GHL listing is presumed never
/// made: GHL's search lags writes by seconds, so a younger one may simply not show yet.
const INTENT_SETTLE: Duration = Duration::from_secs(120);

/// Runs one pass. Errors are for the run as a whole (a side could not be listed, the state
/// failed); the run row then says `failed` with the reason.
pub async fn run_pass(
    cfg: &Config,
    store: &Mutex<Store>,
    hs: &HotspotClient,
    ghl: &GhlClient,
    opts: &PassOptions,
    stop: &AtomicBool,
) -> anyhow::Result<PassResult> {
    let kinds: Vec<Kind> = opts.kinds.iter().copied().collect();
    let run_id = lock(store).start_run(&kinds, opts.full, opts.dry_run)?;
    let mut summary = RunSummary::default();
    let mut items: Vec<RunItem> = Vec::new();
    let mut plan_text = None;
    seed_rate_windows(store, hs, ghl);
    let budget = Duration::from_secs(cfg.sync.pass_budget_secs);
    let deadline = tokio::time::Instant::now() + budget;
    // What the writers of this pass watch. Set when the caller's flag is set or the budget is
    // spent, and by a writer that reaches the daily-quota reserve or is refused for a scope the
    // token lacks (the pass then ends with that error); local to the pass, so that a daemon's
    // next pass starts with it clear.
    let pass_stop = AtomicBool::new(false);
    let told_to_stop = || stop.load(Ordering::SeqCst) || tokio::time::Instant::now() >= deadline;

    // Whether a kind stopped writing early (quota reserve, stop request) and deferred the rest.
    let mut writing_stopped = false;
    let work = async {
        let stop = &pass_stop;
        let mut any_failed = false;
        let cx = KindContext::new(cfg, store, hs, ghl, opts, run_id, stop);
        if opts.kinds.contains(&Kind::Contact) {
            let r = contacts(cfg, store, hs, ghl, opts, run_id, stop).await?;
            any_failed |= r.counts.failed > 0;
            writing_stopped |= r.writing_stopped;
            summary.unsynced.extend(r.unsynced);
            summary
                .kinds
                .insert(Kind::Contact.as_str().to_string(), r.counts);
            summary.notes.extend(r.notes);
            items.extend(r.items);
            plan_text = r.plan_text;
            if let Some(e) = r.fatal {
                return Err(e.into());
            }
            cx.keep_listings(r.source, r.target);
        }
        // The kinds that hang off contact links run after contacts, in this order: tasks and
        // businesses use what notes learnt (paid transactions, latest visits).
        for kind in [Kind::Note, Kind::Task, Kind::Business, Kind::Appointment] {
            let enabled = match kind {
                Kind::Note => cfg.notes.enabled,
                Kind::Task => cfg.tasks.enabled,
                Kind::Business => cfg.businesses.enabled,
                _ => cfg.appointments.enabled,
            };
            if !opts.kinds.contains(&kind) || !enabled {
                continue;
            }
            if told_to_stop() {
                // Its reads would only lead to deferred writes.
                break;
            }
            let r = match kind {
                Kind::Note => super::notes::reconcile(&cx).await?,
                Kind::Task => super::tasks::reconcile(&cx).await?,
                Kind::Business => super::businesses::reconcile(&cx).await?,
                _ => super::appointments::reconcile(&cx).await?,
            };
            any_failed |= r.counts.failed > 0;
            summary.unsynced.extend(
                r.items
                    .iter()
                    .filter(|i| i.outcome == ItemOutcome::Failed)
                    .map(|i| UnsyncedRecord {
                        kind,
                        source_id: i.source_id.clone(),
                        why: Unsynced::WriteFailed,
                    }),
            );
            summary.kinds.insert(kind.as_str().to_string(), r.counts);
            summary.notes.extend(r.notes);
            if let Some(why) = r.stopped {
                writing_stopped = true;
                summary.notes.push(format!(
                    "Stopped writing {}s: {why}. The rest is deferred to the next run.",
                    kind.as_str()
                ));
            }
            items.extend(r.items);
            if let Some(e) = r.fatal {
                return Err(e.into());
            }
        }
        anyhow::Ok(any_failed)
    };
    // The rate windows are saved as the pass goes, not only at its end: a process killed
    // mid-burst must not leave the next one believing the window empty.
    let work = async {
        tokio::pin!(work);
        let mut tick = tokio::time::interval(RATE_WINDOW_SAVE_EVERY);
        loop {
            tokio::select! {
                o = &mut work => break o,
                _ = tick.tick() => save_rate_windows(store, hs, ghl),
            }
        }
    };
    // `None`: the pass was dropped, still going `STOP_GRACE` after it was told to stop.
    let (outcome, interrupted): (Option<anyhow::Result<bool>>, Option<Interruption>) = {
        tokio::pin!(work);
        let told = tokio::select! {
            r = &mut work => Ok(r),
            why = stop_or_budget(stop, deadline) => Err(why),
        };
        match told {
            Ok(r) => (Some(r), None),
            Err(why) => {
                pass_stop.store(true, Ordering::SeqCst);
                match why {
                    Interruption::BudgetSpent => tracing::warn!(
                        budget_secs = budget.as_secs(),
                        "the pass's time budget (sync.pass_budget_secs) is spent: no new write starts, writes in flight finish, the rest is left to the next run"
                    ),
                    Interruption::StopRequested => tracing::info!(
                        "stop requested: no new write starts, writes in flight finish"
                    ),
                }
                tokio::select! {
                    r = &mut work => (Some(r), Some(why)),
                    _ = tokio::time::sleep(STOP_GRACE) => (None, Some(why)),
                }
            }
        }
    };

    save_rate_windows(store, hs, ghl);

    summary.ghl_daily_remaining = ghl.policy().quota().map(|q| q.daily_remaining);
    let dropped = outcome.is_none();
    match interrupted {
        Some(Interruption::BudgetSpent) => summary.notes.push(format!(
            "Stopped: the pass ran out of its time budget ({}s, sync.pass_budget_secs){}; the rest is left to the next run.",
            budget.as_secs(),
            if dropped {
                format!(
                    " and was still running {}s later, so it was interrupted",
                    STOP_GRACE.as_secs()
                )
            } else {
                "; writes in flight finished".to_string()
            }
        )),
        Some(Interruption::StopRequested) if dropped => summary.notes.push(format!(
            "Stopped: asked to stop, and the pass was still running {}s later; it was interrupted and the rest is left to the next run.",
            STOP_GRACE.as_secs()
        )),
        _ => {}
    }
    if dropped {
        tracing::warn!(
            run = run_id,
            "pass interrupted {}s after it was told to stop; run recorded as aborted",
            STOP_GRACE.as_secs()
        );
    }
    let unusable = account_decoding(hs, ghl, &mut summary, &mut items);
    summary.unsynced.sort();
    summary.unsynced.dedup();
    let status = match &outcome {
        None => RunStatus::Aborted,
        Some(Err(e)) => {
            summary.notes.push(format!("The run failed: {e:#}"));
            RunStatus::Failed
        }
        Some(Ok(_)) if interrupted == Some(Interruption::BudgetSpent) => RunStatus::Aborted,
        // An eligible record left unsynced for any reason but the quota reserve or a stop
        // request is not success, whatever else the run did.
        Some(Ok(_)) if !summary.unsynced.is_empty() => RunStatus::Partial,
        Some(Ok(false)) if unusable => RunStatus::Partial,
        Some(Ok(false)) if writing_stopped => RunStatus::Aborted,
        Some(Ok(false)) => RunStatus::Succeeded,
        Some(Ok(true)) => RunStatus::Partial,
    };
    {
        let s = lock(store);
        s.insert_run_items(run_id, &items)?;
        let now = Utc::now();
        s.insert_api_calls(Some(run_id), &hs.policy().audit().drain(), now)?;
        s.insert_api_calls(Some(run_id), &ghl.policy().audit().drain(), now)?;
        s.finish_run(run_id, status, &serde_json::to_value(&summary)?)?;
        s.prune_runs(cfg.report.keep_runs)?;
    }
    if let Some(r) = outcome {
        r?;
    }
    Ok(PassResult {
        run_id,
        status,
        plan_text,
        interrupted,
    })
}

/// Puts what the pages of both APIs could not read into the run: unreadable values counted per
/// field, and each record that could not be used at all as a failed item of its kind (its guest,
/// transaction or task is left unsynced, so the run is not a success). True when a record was
/// skipped.
fn account_decoding(
    hs: &HotspotClient,
    ghl: &GhlClient,
    summary: &mut RunSummary,
    items: &mut Vec<RunItem>,
) -> bool {
    let mut decoded = hs.decode_log().drain();
    decoded.merge(ghl.decode_log().drain());
    summary.unreadable = decoded.unreadable;
    let skipped = !decoded.skipped.is_empty();
    for s in decoded.skipped {
        let kind = s.listing.kind();
        summary
            .kinds
            .entry(kind.as_str().to_string())
            .or_default()
            .failed += 1;
        items.push(RunItem {
            kind,
            // The record could not be used because its id could not be read.
            source_id: String::new(),
            target_id: None,
            action: "read".into(),
            outcome: ItemOutcome::Failed,
            reason: Some(format!(
                "a record listed in {} could not be used: {}",
                s.listing.name(),
                s.reason
            )),
            detail: Value::Null,
        });
    }
    skipped
}

/// How often a pass stores the send times of each API's current rate window.
const RATE_WINDOW_SAVE_EVERY: Duration = Duration::from_millis(500);

/// Counts the requests an earlier process sent in the last rate window (stored by
/// [`save_rate_windows`]) against this process's first window, as the servers do.
fn seed_rate_windows(store: &Mutex<Store>, hs: &HotspotClient, ghl: &GhlClient) {
    let s = lock(store);
    for p in [hs.policy(), ghl.policy()] {
        match s.rate_window(p.api()) {
            Ok(sends) => p.seed_window(&sends),
            Err(e) => {
                tracing::warn!(api = p.api(), error = %e, "could not read the last rate window")
            }
        }
    }
}

fn save_rate_windows(store: &Mutex<Store>, hs: &HotspotClient, ghl: &GhlClient) {
    let s = lock(store);
    for p in [hs.policy(), ghl.policy()] {
        if let Err(e) = s.set_rate_window(p.api(), &p.window_sends()) {
            tracing::warn!(api = p.api(), error = %e, "could not store the rate window");
        }
    }
}

/// Resolves when the caller's stop flag is set or the budget's deadline passes, saying which.
async fn stop_or_budget(stop: &AtomicBool, deadline: tokio::time::Instant) -> Interruption {
    loop {
        if stop.load(Ordering::SeqCst) {
            return Interruption::StopRequested;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Interruption::BudgetSpent,
            _ = tokio::time::sleep(STOP_POLL) => {}
        }
    }
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    // A panic while holding the lock leaves a consistent SQLite connection (every change is
    // its own transaction), so a poisoned lock is safe to take over.
    store.lock().unwrap_or_else(|p| p.into_inner())
}

struct KindResult {
    counts: KindCounts,
    unsynced: Vec<UnsyncedRecord>,
    notes: Vec<String>,
    items: Vec<RunItem>,
    plan_text: Option<String>,
    source: Option<SourceListing>,
    target: Option<TargetListing>,
    /// The error that ends the pass (see [`ApplyResult::fatal`]).
    fatal: Option<crate::ghl::GhlError>,
    /// Writing stopped early and the rest was deferred (see [`ApplyResult::stopped`]).
    writing_stopped: bool,
}

/// What the kinds after contacts share: clients, state, options, and the listings of both sides
/// (taken from the contacts step when it ran, read on first use otherwise).
pub struct KindContext<'a> {
    pub cfg: &'a Config,
    pub store: &'a Mutex<Store>,
    pub hs: &'a HotspotClient,
    pub ghl: &'a GhlClient,
    pub opts: &'a PassOptions,
    pub run_id: i64,
    pub stop: &'a AtomicBool,
    /// Taken before either side is listed: a change GHL records after it is seen next run.
    pub started: chrono::DateTime<Utc>,
    source: tokio::sync::OnceCell<SourceListing>,
    target: tokio::sync::OnceCell<TargetListing>,
    index: tokio::sync::OnceCell<super::notes::ContactIndex>,
}

impl<'a> KindContext<'a> {
    pub fn new(
        cfg: &'a Config,
        store: &'a Mutex<Store>,
        hs: &'a HotspotClient,
        ghl: &'a GhlClient,
        opts: &'a PassOptions,
        run_id: i64,
        stop: &'a AtomicBool,
    ) -> Self {
        KindContext {
            cfg,
            store,
            hs,
            ghl,
            opts,
            run_id,
            stop,
            started: Utc::now(),
            source: tokio::sync::OnceCell::new(),
            target: tokio::sync::OnceCell::new(),
            index: tokio::sync::OnceCell::new(),
        }
    }

    fn keep_listings(&self, source: Option<SourceListing>, target: Option<TargetListing>) {
        if let Some(s) = source {
            let _ = self.source.set(s);
        }
        if let Some(t) = target {
            let _ = self.target.set(t);
        }
    }

    /// The HotspotSystem customers and subscribers of this run.
    pub async fn source(&self) -> anyhow::Result<&SourceListing> {
        self.source
            .get_or_try_init(|| async {
                Ok(read_source(
                    self.hs,
                    &self.cfg.hotspot.locations,
                    self.cfg.contacts.sync_subscribers,
                )
                .await?)
            })
            .await
    }

    /// The GHL contacts of this run (ids and update times are what the later kinds use).
    pub async fn target(&self) -> anyhow::Result<&TargetListing> {
        self.target
            .get_or_try_init(|| async {
                Ok(read_target(self.ghl, &CustomFields::default()).await?)
            })
            .await
    }

    /// The locations to sync; only the location listing when the customers are not needed.
    pub async fn locations(&self) -> anyhow::Result<Vec<Location>> {
        if let Some(s) = self.source.get() {
            return Ok(s.locations.clone());
        }
        let mut out = Vec::new();
        for l in self.hs.locations().collect_all().await? {
            let Some(id) = l.id.filter(|s| !s.trim().is_empty()) else {
                continue;
            };
            if self.cfg.hotspot.locations.is_empty() || self.cfg.hotspot.locations.contains(&id) {
                let name = l.name.unwrap_or_else(|| id.clone());
                out.push(Location { id, name });
            }
        }
        Ok(out)
    }

    /// Guest → GHL contact, through the contact links of this state.
    pub async fn contact_index(&self) -> anyhow::Result<&super::notes::ContactIndex> {
        self.index
            .get_or_try_init(|| async {
                let source = self.source().await?;
                let linked: HashMap<String, String> = lock(self.store)
                    .links(Kind::Contact)?
                    .into_iter()
                    .filter(|l| {
                        l.status == crate::store::LinkStatus::Active && !l.target_id.is_empty()
                    })
                    .map(|l| (l.source_id, l.target_id))
                    .collect();
                let phone = self.cfg.mapping().phone;
                Ok(super::notes::ContactIndex::build(
                    &source.records,
                    &linked,
                    phone,
                ))
            })
            .await
    }
}

/// The mapping as configured, with the location names of this run for the location tags.
pub fn mapping_config(cfg: &Config, locations: &[Location]) -> anyhow::Result<MappingConfig> {
    Ok(cfg
        .mapping()
        .clone()
        .with_location_names(locations.iter().map(|l| (l.id.clone(), l.name.clone()))))
}

fn contact_policy(cfg: &Config) -> ContactPolicy {
    cfg.contact_policy(Utc::now())
}

async fn contacts(
    cfg: &Config,
    store: &Mutex<Store>,
    hs: &HotspotClient,
    ghl: &GhlClient,
    opts: &PassOptions,
    run_id: i64,
    stop: &AtomicBool,
) -> anyhow::Result<KindResult> {
    let source: SourceListing =
        read_source(hs, &cfg.hotspot.locations, cfg.contacts.sync_subscribers).await?;
    let mapping = mapping_config(cfg, &source.locations)?;
    // Before any write: a key the location does not have stops the run, naming it.
    let wanted = cfg.custom_field_keys();
    let custom_fields = if wanted.is_empty() {
        CustomFields::default()
    } else {
        CustomFields::resolve(&ghl.location_custom_fields().await?, &wanted)?
    };
    let mut target: TargetListing = read_target(ghl, &custom_fields).await?;

    let mut notes = Vec::new();
    if !source.complete {
        notes.push(
            "The HotspotSystem listing was incomplete: no deletion was inferred this run."
                .to_string(),
        );
        for (listing, why) in &source.incomplete {
            notes.push(format!("{listing}: {why}."));
        }
    }
    if !target.complete {
        notes.push(
            "The GHL listing was incomplete: no create and no deletion this run.".to_string(),
        );
        for why in &target.incomplete {
            notes.push(format!("GHL contact search: {why}."));
        }
    }

    // Where each guest registered, for the dashboard and the business association.
    let location_names: HashMap<&str, &str> = source
        .locations
        .iter()
        .map(|l| (l.id.as_str(), l.name.as_str()))
        .collect();
    let mut extras: HashMap<String, Value> = HashMap::new();
    for r in &source.records {
        if let Some(loc) = r.location_id.as_deref() {
            extras.entry(r.source_id.clone()).or_insert_with(|| {
                json!({"location_id": loc, "location_name": location_names.get(loc).copied().unwrap_or(loc)})
            });
        }
    }

    let mapped = map_sources(&source.records, &mapping, None);
    let (base_links, parked) = base::load_contacts(&lock(store))?;
    let recently_linked = recently_linked_targets(store)?;
    confirm_missing_targets(
        ghl,
        &custom_fields,
        &base_links,
        &recently_linked,
        &mut target,
    )
    .await;
    let mut input = ContactsInput::from_listings(
        mapped,
        source.complete,
        &target.contacts,
        target.complete,
        &mapping,
        base_links,
        parked,
    );
    let unreadable = hold_unreadable(&mut input, &source.unreadable, &mapping);
    // Field-level bases only where a hash moved: the only records the planner merges by field.
    let moved: Vec<String> = input
        .base
        .iter()
        .filter(|(sid, b)| {
            let s = input.source.get(*sid).map(|s| s.projection.hash);
            let t = input.target.get(&b.target_id).map(|t| t.projection.hash);
            matches!((s, t), (Some(s), Some(t)) if s != b.source_hash || t != b.target_hash)
        })
        .map(|(sid, _)| sid.clone())
        .collect();
    base::load_fields(&lock(store), &mut input.base, &moved)?;
    let held = resolve_pending_creates(
        store,
        &target,
        &mapping,
        &mut input,
        cfg.ghl.lost_create_recovery,
    )?;
    let plan = plan_contacts(&input, &contact_policy(cfg));
    for g in &plan.guards {
        notes.push(g.message.clone());
    }

    let (mut result, plan_text) = if opts.dry_run {
        (ApplyResult::default(), Some(describe_plan(&plan)))
    } else {
        let stop_flag = stop;
        let applier = ContactApplier {
            ghl,
            store,
            mapping: &mapping,
            custom_fields: &custom_fields,
            input: &input,
            extras: &extras,
            run_id,
            max_concurrency: cfg.ghl.max_concurrency,
            upsert_lost_creates: cfg.ghl.lost_create_recovery == LostCreateRecovery::Upsert,
            stop: stop_flag,
            progress: opts.progress.as_ref(),
        };
        (applier.apply(&plan).await, None)
    };
    let writing_stopped = result.stopped.is_some();
    if let Some(why) = &result.stopped {
        notes.push(format!(
            "Stopped writing: {why}. The rest is deferred to the next run."
        ));
    }
    let mut not_writable: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (sid, fields) in &result.not_writable {
        for f in fields {
            not_writable
                .entry(f.as_str())
                .or_default()
                .push(sid.as_str());
        }
    }
    for (field, sids) in not_writable {
        notes.push(format!(
            "{field} differs from HotspotSystem on {} contact(s) (e.g. {}), but GHL's update API does not accept it (it is set only when the sync creates a contact); left as it is in GHL.",
            sids.len(),
            sids.iter().take(3).copied().collect::<Vec<_>>().join(", ")
        ));
    }
    let fatal = result.fatal.take();
    let (counts, mut items, mut unsynced) = account(&plan, &result, opts.dry_run);
    for sid in held {
        unsynced.push(UnsyncedRecord {
            kind: Kind::Contact,
            source_id: sid.clone(),
            why: Unsynced::CreatePending,
        });
        items.push(RunItem {
            kind: Kind::Contact,
            source_id: sid,
            target_id: None,
            action: "create".into(),
            outcome: ItemOutcome::Deferred,
            reason: Some("an earlier create may still be on its way to GHL's search index; checked again next run".into()),
            detail: Value::Null,
        });
    }
    for (sid, fields) in unreadable {
        unsynced.push(UnsyncedRecord {
            kind: Kind::Contact,
            source_id: sid,
            why: Unsynced::UnreadableValue { fields },
        });
    }
    let mut counts = counts;
    counts.deferred = items
        .iter()
        .filter(|i| i.outcome == ItemOutcome::Deferred)
        .count() as u64;
    Ok(KindResult {
        counts,
        unsynced,
        notes,
        items,
        plan_text,
        source: Some(source),
        target: Some(target),
        fatal,
        writing_stopped,
    })
}

/// Holds the linked records that carry a value the mapping reads and that could not be read
/// (taken as empty): planned, that empty value could clear the field in GHL. They are moved to
/// `input.skipped` (present, so never taken for deleted) and returned with those fields, to be
/// reported unsynced. A record not linked yet is left to sync: a create or a first match
/// never blanks a GHL field.
fn hold_unreadable(
    input: &mut ContactsInput,
    unreadable: &BTreeMap<String, BTreeSet<String>>,
    mapping: &MappingConfig,
) -> Vec<(String, Vec<String>)> {
    if unreadable.is_empty() {
        return Vec::new();
    }
    let mut held = Vec::new();
    for (sid, s) in &input.source {
        let members = || std::iter::once(sid).chain(&s.merged_ids);
        let linked = |m: &String| {
            input
                .base
                .get(m)
                .is_some_and(|b| b.status == super::plan::LinkStatus::Active)
        };
        if !members().any(linked) {
            continue;
        }
        let fields: BTreeSet<&String> = members()
            .filter_map(|m| unreadable.get(m))
            .flatten()
            .filter(|f| mapping.reads(f))
            .collect();
        if !fields.is_empty() {
            held.push((sid.clone(), fields.into_iter().cloned().collect::<Vec<_>>()));
        }
    }
    for (sid, fields) in &held {
        let Some(s) = input.source.remove(sid) else {
            continue;
        };
        tracing::warn!(source_id = %sid, fields = %fields.join(", "), "a linked guest has a value that could not be read; left as it is in GHL this run");
        for m in std::iter::once(sid.clone()).chain(s.merged_ids) {
            input.skipped.push(SkippedSource {
                source_id: m,
                reason: SkipReason::UnreadableValue,
            });
        }
    }
    held
}

/// GHL ids of contacts linked within [`INTENT_SETTLE`]: the only ones search may not show yet.
fn recently_linked_targets(store: &Mutex<Store>) -> anyhow::Result<BTreeSet<String>> {
    let since = Utc::now() - chrono::Duration::from_std(INTENT_SETTLE)?;
    Ok(lock(store).targets_linked_since(Kind::Contact, since)?)
}

/// Linked contacts missing from a complete listing look deleted in GHL, but search lags writes
/// by seconds: a contact created just before this run may simply not show yet. GET-by-id is
/// immediate, so each recently linked one is asked for before the planner may infer a
/// deletion or weigh its mass-deletion guard; those that exist join the listing. However many
/// they are: after a burst of creates (a crash, a restart) nearly all links are recent and
/// missing, and without the look-ups the guard would hold every new record. They are bounded
/// by what the rate limit lets a process create in [`INTENT_SETTLE`]. A failed look-up makes
/// the listing incomplete.
async fn confirm_missing_targets(
    ghl: &GhlClient,
    custom_fields: &CustomFields,
    base_links: &BTreeMap<String, super::plan::BaseLink>,
    recently_linked: &BTreeSet<String>,
    target: &mut TargetListing,
) {
    if !target.complete {
        return;
    }
    let listed: BTreeSet<&str> = target
        .contacts
        .iter()
        .map(|t| t.target_id.as_str())
        .collect();
    let active: Vec<&str> = base_links
        .values()
        .filter(|b| b.status == super::plan::LinkStatus::Active)
        .map(|b| b.target_id.as_str())
        .collect();
    let missing: BTreeSet<String> = active
        .iter()
        .filter(|id| !listed.contains(*id))
        .map(|id| id.to_string())
        .collect();
    if missing.is_empty() {
        return;
    }
    for id in missing.intersection(recently_linked) {
        match ghl.get_contact(id).await {
            Ok(Some(c)) => {
                if let Some(t) = super::snapshot::target_from_contact(&c, custom_fields) {
                    tracing::debug!(target_id = %id, "linked contact not yet in search; it exists");
                    target.contacts.push(t);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target_id = %id, error = %e, "could not confirm a missing contact; no deletion inferred this run");
                target.complete = false;
                return;
            }
        }
    }
}

/// Creates journaled by an earlier run that never completed (a crash, a dropped connection):
/// if the contact shows in GHL, the planner adopts it through its identity; if not, a record
/// with an email or phone stays pending for apply to upsert (under `lost_create_recovery =
/// "upsert"`), and any other, when the intent is recent, waits a run rather than risk a
/// second contact.
fn resolve_pending_creates(
    store: &Mutex<Store>,
    target: &TargetListing,
    mapping: &MappingConfig,
    input: &mut ContactsInput,
    recovery: LostCreateRecovery,
) -> anyhow::Result<Vec<String>> {
    let upsert = recovery == LostCreateRecovery::Upsert;
    let s = lock(store);
    let mut held = Vec::new();
    for intent in s.pending_intents()? {
        if intent.kind != Kind::Contact || intent.state != IntentState::Pending {
            continue;
        }
        let marker: Value = serde_json::from_str(&intent.marker).unwrap_or(Value::Null);
        let email = marker.get("email").and_then(Value::as_str);
        let phone = marker.get("phone").and_then(Value::as_str);
        let young = Utc::now() - intent.created_at < chrono::Duration::from_std(INTENT_SETTLE)?;
        let found = target.contacts.iter().find(|t| {
            let p = crate::mapping::target_projection(t, mapping);
            let anchor = mapping
                .fields
                .hotspot_id_field
                .as_ref()
                .and_then(|k| p.fields.get(&Field::Custom(k.clone())))
                == Some(intent.source_id.as_str());
            anchor
                || (email.is_some() && p.fields.email() == email)
                || (phone.is_some() && p.fields.phone() == phone)
        });
        match found {
            Some(t) => {
                tracing::info!(source_id = %intent.source_id, target_id = %t.target_id, "pending create found in GHL; adopting");
                s.journal_done(intent.id, &t.target_id)?;
            }
            // Keyed by email or phone: apply re-sends it as an upsert, which GHL matches
            // against a contact the lost answer created even before search shows it.
            None if young && upsert && (email.is_some() || phone.is_some()) => {}
            None if young => {
                input.source.remove(&intent.source_id);
                held.push(intent.source_id);
            }
            None => s.journal_abandon(intent.id)?,
        }
    }
    Ok(held)
}

/// Why a record the planner deferred is left unsynced, if it is eligible.
fn unsynced_for(reason: DeferReason) -> Option<Unsynced> {
    match reason {
        DeferReason::DeletionGuard => Some(Unsynced::DeletionGuard),
        DeferReason::TargetNotListed => Some(Unsynced::ContactNotListed),
        DeferReason::TargetIncomplete | DeferReason::SourceIncomplete => {
            Some(Unsynced::ListingIncomplete)
        }
        // Gone from HotspotSystem: nothing left to sync, only a tag to add later.
        DeferReason::SourceGoneTargetNotListed => None,
    }
}

/// Counts, the run items worth keeping (unchanged records are counted, not listed), and the
/// eligible records left unsynced.
fn account(
    plan: &Plan,
    result: &ApplyResult,
    dry_run: bool,
) -> (KindCounts, Vec<RunItem>, Vec<UnsyncedRecord>) {
    let mut c = KindCounts::default();
    let mut items = Vec::new();
    let mut unsynced = Vec::new();
    for it in &plan.items {
        let failed = result.failed.get(&it.source_id);
        let why = match (failed, it.outcome) {
            (Some(_), _) => Some(Unsynced::WriteFailed),
            (None, Outcome::Deferred(reason)) => unsynced_for(reason),
            (None, _) => None,
        };
        if let Some(why) = why {
            unsynced.push(UnsyncedRecord {
                kind: Kind::Contact,
                source_id: it.source_id.clone(),
                why,
            });
        }
        let deferred = result.deferred.contains(&it.source_id);
        if !it.drift.is_empty() {
            c.drift += 1;
        }
        if !it.conflicts.is_empty() || matches!(it.outcome, Outcome::Parked) {
            c.conflicts += 1;
        }
        let (action, done) = match it.outcome {
            Outcome::Create | Outcome::Recreate => ("create", Some(&mut c.created)),
            Outcome::Link => ("link", Some(&mut c.adopted)),
            Outcome::Update => ("update", Some(&mut c.updated)),
            Outcome::SourceDeleted => ("delete", Some(&mut c.deleted)),
            Outcome::SourceDeleteTagged => ("tag_deleted", Some(&mut c.deleted)),
            Outcome::RecordBase
            | Outcome::Unchanged
            | Outcome::StillParked
            | Outcome::Forgotten
            | Outcome::Merged => {
                c.unchanged +=
                    u64::from(!matches!(it.outcome, Outcome::Merged | Outcome::Forgotten));
                ("unchanged", None)
            }
            Outcome::Parked => ("conflict", None),
            Outcome::Deferred(_) => ("deferred", None),
            Outcome::Skipped
            | Outcome::SourceDeleteIgnored
            | Outcome::SourceDeleteWithheld
            | Outcome::TargetDeleteRespected => {
                c.skipped += 1;
                ("skip", None)
            }
        };
        let outcome = if let Some(err) = failed {
            c.failed += 1;
            items.push(item(it, action, ItemOutcome::Failed, err.clone()));
            continue;
        } else if deferred {
            ItemOutcome::Deferred
        } else {
            match it.outcome {
                Outcome::Parked => ItemOutcome::Parked,
                Outcome::Deferred(_) => ItemOutcome::Deferred,
                Outcome::Skipped
                | Outcome::SourceDeleteIgnored
                | Outcome::SourceDeleteWithheld
                | Outcome::TargetDeleteRespected => ItemOutcome::Skipped,
                _ if dry_run => ItemOutcome::Planned,
                _ => ItemOutcome::Applied,
            }
        };
        if matches!(outcome, ItemOutcome::Applied | ItemOutcome::Planned)
            && let Some(n) = done
        {
            *n += 1;
        }
        let label = if !it.conflicts.is_empty() {
            "conflict"
        } else if !it.drift.is_empty() {
            "drift"
        } else {
            action
        };
        // Unchanged records are counted, not listed: a run over 100k guests stores what changed.
        if label == "unchanged" && outcome == ItemOutcome::Applied {
            continue;
        }
        items.push(item(it, label, outcome, it.reason.to_string()));
    }
    (c, items, unsynced)
}

fn item(it: &PlanItem, action: &str, outcome: ItemOutcome, reason: String) -> RunItem {
    let mut detail = serde_json::Map::new();
    if !it.written.is_empty() {
        detail.insert("written".into(), json!(it.written));
    }
    if !it.drift.is_empty() {
        detail.insert("drift".into(), json!(it.drift));
    }
    if !it.conflicts.is_empty() {
        detail.insert("fields".into(), json!(it.conflicts));
    }
    RunItem {
        kind: Kind::Contact,
        source_id: it.source_id.clone(),
        target_id: it.target_id.clone(),
        action: action.into(),
        outcome,
        reason: Some(reason),
        detail: if detail.is_empty() {
            Value::Null
        } else {
            Value::Object(detail)
        },
    }
}

/// The plan in words, one line per remote write, for `--dry-run`.
pub fn describe_plan(plan: &Plan) -> String {
    let mut out = String::new();
    let fields = |f: &BTreeMap<Field, Option<String>>| {
        f.keys()
            .map(|k| k.name().into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let tags = |t: &BTreeSet<String>| t.iter().cloned().collect::<Vec<_>>().join(", ");
    for a in &plan.actions {
        let line = match a {
            Action::CreateContact {
                source_id,
                fields: f,
                tags: t,
            } => {
                let names: Vec<String> = f.iter().map(|(k, _)| k.name().into_owned()).collect();
                format!(
                    "create contact for {source_id} ({}); tags {}",
                    names.join(", "),
                    tags(t)
                )
            }
            Action::LinkExisting {
                source_id,
                target_id,
                method,
                fields: f,
            } => {
                format!(
                    "link {source_id} to existing contact {target_id} by {method:?}; update: {}",
                    fields(f)
                )
            }
            Action::UpdateContact {
                source_id,
                target_id,
                fields: f,
            } => {
                format!("update contact {target_id} ({source_id}): {}", fields(f))
            }
            Action::AddTags {
                target_id, tags: t, ..
            } => format!("add tags to {target_id}: {}", tags(t)),
            Action::RemoveTags {
                target_id, tags: t, ..
            } => format!("remove tags from {target_id}: {}", tags(t)),
            Action::DeleteContact {
                source_id,
                target_id,
            } => format!("delete contact {target_id} ({source_id} gone)"),
            Action::TagDeleted {
                source_id,
                target_id,
                tag,
            } => format!("tag contact {target_id} `{tag}` ({source_id} gone)"),
            _ => continue,
        };
        out.push_str("  ");
        out.push_str(&line);
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("  nothing to write\n");
    }
    format!("Plan ({} writes):\n{out}", plan.remote_writes())
}

#[cfg(test)]
mod tests {
    use super::super::plan::{BaseLink, LinkStatus, SourceEntry};
    use super::*;
    use crate::model::{CanonicalContact, ContactProjection, Digest};

    fn base(status: LinkStatus) -> BaseLink {
        BaseLink {
            target_id: "t".into(),
            source_hash: Digest::of(b"s"),
            target_hash: Digest::of(b"t"),
            source_fields: None,
            target_fields: None,
            owned_tags: BTreeSet::new(),
            status,
        }
    }

    #[test]
    fn only_linked_records_with_an_unreadable_mapped_value_are_held() {
        let mut input = ContactsInput::default();
        let entry = || {
            SourceEntry::new(ContactProjection::new(
                CanonicalContact::new(),
                BTreeSet::new(),
            ))
        };
        for sid in ["linked", "unmapped", "new", "tombstoned", "merged"] {
            input.source.insert(sid.into(), entry());
        }
        input.source.get_mut("merged").unwrap().merged_ids = vec!["sub:9".into()];
        for sid in ["linked", "unmapped", "merged"] {
            input.base.insert(sid.into(), base(LinkStatus::Active));
        }
        input
            .base
            .insert("tombstoned".into(), base(LinkStatus::Tombstoned));
        let fields = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let unreadable = BTreeMap::from([
            ("linked".to_string(), fields(&["city", "registered_at"])),
            ("unmapped".to_string(), fields(&["registered_at"])),
            ("new".to_string(), fields(&["email"])),
            ("tombstoned".to_string(), fields(&["email"])),
            // The subscriber merged into a linked customer: its email could split them.
            ("sub:9".to_string(), fields(&["email"])),
        ]);
        let held = hold_unreadable(&mut input, &unreadable, &MappingConfig::default());
        assert_eq!(
            held,
            vec![
                ("linked".to_string(), vec!["city".to_string()]),
                ("merged".to_string(), vec!["email".to_string()]),
            ]
        );
        let left: Vec<&str> = input.source.keys().map(String::as_str).collect();
        assert_eq!(left, ["new", "tombstoned", "unmapped"]);
        let skipped: Vec<(&str, SkipReason)> = input
            .skipped
            .iter()
            .map(|s| (s.source_id.as_str(), s.reason))
            .collect();
        assert_eq!(
            skipped,
            [
                ("linked", SkipReason::UnreadableValue),
                ("merged", SkipReason::UnreadableValue),
                ("sub:9", SkipReason::UnreadableValue),
            ],
            "present, so never taken for deleted"
        );
    }
}
