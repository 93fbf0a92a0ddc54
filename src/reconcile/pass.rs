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
//!
//! Once the run is recorded, a pass that was not a dry run is weighed for alerts ([`notify`]):
//! here, so that every pass is, whether a `sync` process or a job of the daemon ran it.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use futures_util::future::LocalBoxFuture;

use super::context::{PassContext, lock};
use super::outcome::{KindOutcome, WritingStopped};
use super::scope::SourceScope;
use super::{appointments, businesses, contacts, notes, tasks};
use crate::config::Config;
use crate::ghl::GhlClient;
use crate::hotspot::HotspotClient;
use crate::model::Kind;
use crate::notify::{self, condition::PassEnd};
use crate::report::dry_run::DryRunPlan;
use crate::report::{RunSummary, Unsynced, UnsyncedRecord};
use crate::store::{ItemOutcome, RunItem, RunStatus, Store};

pub use super::context::PassOptions;

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

/// One kind's step: read → map → plan → apply → account, into a [`KindOutcome`].
struct Step {
    kind: Kind,
    /// Whether the configuration turns the kind on (the options must ask for it too).
    enabled: fn(&Config) -> bool,
    run: for<'c> fn(&'c PassContext<'c>) -> LocalBoxFuture<'c, anyhow::Result<KindOutcome>>,
}

/// The kinds of a pass, in the order they run: the kinds that hang off contact links run
/// after contacts, and tasks and businesses use what notes learnt (paid transactions, latest
/// visits).
const STEPS: [Step; 5] = [
    Step {
        kind: Kind::Contact,
        enabled: |_| true,
        run: |cx| Box::pin(contacts::reconcile(cx)),
    },
    Step {
        kind: Kind::Note,
        enabled: |cfg| cfg.notes.enabled,
        run: |cx| Box::pin(notes::reconcile(cx)),
    },
    Step {
        kind: Kind::Task,
        enabled: |cfg| cfg.tasks.enabled,
        run: |cx| Box::pin(tasks::reconcile(cx)),
    },
    Step {
        kind: Kind::Business,
        enabled: |cfg| cfg.businesses.enabled,
        run: |cx| Box::pin(businesses::reconcile(cx)),
    },
    Step {
        kind: Kind::Appointment,
        enabled: |cfg| cfg.appointments.enabled,
        run: |cx| Box::pin(appointments::reconcile(cx)),
    },
];

/// The note that tells the run a kind stopped writing early.
fn stopped_note(kind: Kind, why: &WritingStopped) -> String {
    match kind {
        // Contacts were the only kind when this text was first written; reports and the
        // people who read them know it as it is.
        Kind::Contact => format!("Stopped writing: {why}. The rest is deferred to the next run."),
        _ => format!(
            "Stopped writing {}s: {why}. The rest is deferred to the next run.",
            kind.as_str()
        ),
    }
}

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
    // Records a scoped pass left for a later run: its cursors stop below them.
    let mut deferred: BTreeSet<String> = BTreeSet::new();
    // What the reserve stop said, for the alert about it.
    let mut quota_reserve: Option<String> = None;
    let work = async {
        let stop = &pass_stop;
        let mut any_failed = false;
        let cx = PassContext::new(cfg, store, hs, ghl, opts, run_id, stop);
        for step in STEPS {
            if !opts.kinds.contains(&step.kind) || !(step.enabled)(cfg) {
                continue;
            }
            if step.kind != Kind::Contact && told_to_stop() {
                // Its reads would only lead to deferred writes.
                break;
            }
            let kind = step.kind;
            let r = (step.run)(&cx).await?;
            any_failed |= r.counts.failed > 0;
            summary.unsynced.extend(r.unsynced);
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
                if matches!(why, WritingStopped::QuotaReserve { .. }) {
                    quota_reserve = Some(why.to_string());
                }
                summary.notes.push(stopped_note(kind, &why));
            }
            if opts.dry_run {
                summary
                    .planned
                    .get_or_insert_with(|| DryRunPlan {
                        ghl_rate_limit: cfg.ghl.rate_limit,
                        ghl_rate_window_secs: cfg.ghl.rate_window_secs,
                        ghl_daily_reserve: cfg.ghl.daily_reserve.into(),
                        ..Default::default()
                    })
                    .add(kind.as_str(), &r.planned, r.skipped_reads);
            }
            // Only the fast lane's cursors need them; a whole pass stopped by the reserve can
            // defer a whole location.
            if matches!(opts.scope, SourceScope::NewSince(_)) {
                deferred.extend(
                    r.items
                        .iter()
                        .filter(|i| i.outcome == ItemOutcome::Deferred)
                        .map(|i| i.source_id.clone()),
                );
            }
            // Stored as each kind ends rather than held to the end of the pass: an initial
            // sync's items (one per record written) would otherwise pile up kind after kind.
            lock(store).insert_run_items(run_id, &r.items)?;
            drop(r.items);
            if r.plan_text.is_some() {
                plan_text = r.plan_text;
            }
            if let Some(e) = r.fatal {
                return Err(e.into());
            }
        }
        // The operator's choice, said plainly; never an unsynced record.
        if let Some(k) = cx.kept_out_read().filter(|k| k.guests > 0) {
            let k = crate::report::KeptOutSummary {
                guests: k.guests,
                by_limit: k.by_limit,
                sample: k.sample.clone(),
            };
            summary.notes.push(k.line());
            summary.kept_out = Some(k);
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
    if let Some(line) = opts.scope.note() {
        summary.notes.insert(0, line);
    }
    // The fast lane's cursors move past what this pass wrote and accounted, only when it ran
    // to its end: a pass stopped early may not have reached a later kind's records at all.
    let ran_through = matches!(outcome, Some(Ok(_))) && interrupted.is_none() && !writing_stopped;
    if ran_through
        && !opts.dry_run
        && let Err(e) = opts.scope.advance(&lock(store), &deferred)
    {
        // Its records are read again next tick; their links keep them from being written twice.
        tracing::warn!(error = %e, "the fast lane's cursors could not be stored");
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
        s.insert_api_calls(Some(run_id), &masked_calls(hs.policy()), now)?;
        s.insert_api_calls(Some(run_id), &masked_calls(ghl.policy()), now)?;
        s.finish_run(run_id, status, &serde_json::to_value(&summary)?)?;
        s.prune_history(cfg.report.keep_days, now)?;
    }
    if !opts.dry_run {
        let end = PassEnd {
            scope: scope_of(opts),
            status,
            error: match &outcome {
                Some(Err(e)) => Some(notify::classify_error(e)),
                _ => None,
            },
            quota_reserve,
            stop_requested: interrupted == Some(Interruption::StopRequested),
            budget_spent: interrupted == Some(Interruption::BudgetSpent),
            unsynced: summary.unsynced.len(),
        };
        notify::pass_ended(cfg, store, run_id, &end).await;
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

/// The calls `policy` made since the last drain, their error messages with emails and phone
/// numbers masked: a server that quotes what it refused ("email x@y.z is taken") must not put
/// a guest's data into the call history.
pub(crate) fn masked_calls(policy: &crate::http::HttpPolicy) -> Vec<crate::http::AuditRecord> {
    let mut calls = policy.audit().drain();
    for call in &mut calls {
        if let Some(m) = &mut call.message {
            *m = crate::privacy::mask_text(m, &[]);
        }
    }
    calls
}

/// What the alerts call the pass's share of the work: `full`, `all` (every kind: a plain
/// `sync`), or its kinds (`contact`, `note+task`: a daemon job's, `sync --only`).
fn scope_of(opts: &PassOptions) -> String {
    if matches!(opts.scope, SourceScope::NewSince(_)) {
        return "new".into();
    }
    if opts.full {
        return "full".into();
    }
    if STEPS.iter().all(|s| opts.kinds.contains(&s.kind)) {
        return "all".into();
    }
    let kinds: Vec<&str> = opts.kinds.iter().map(|k| k.as_str()).collect();
    kinds.join("+")
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
