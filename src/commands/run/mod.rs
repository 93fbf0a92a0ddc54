//! `run`: the daemon (DESIGN.md §8). One scheduler job per `[schedule]` entry; each run of a job
//! is one reconcile pass over that job's kinds.
//!
//! - **One process per state file.** The daemon takes the state lock before anything else and
//!   holds it for its whole life, so a second `run` or `sync` on the same state is refused at
//!   once (exit 3, [`super::EXIT_LOCKED`]) instead of waiting or interleaving writes.
//! - **Passes never overlap.** The scheduler skips a tick whose previous run is still going
//!   and, with its `exclusive` lock, runs passes of different jobs one at a time: they share
//!   the SQLite state, the clients and GHL's rate limit.
//! - **Failures are contained.** A pass that fails or panics is recorded (its run row, and the
//!   scheduler's stats and log) and the next tick runs as usual.
//! - **SIGTERM / SIGINT.** No new pass starts; the running pass gets the stop flag, so it finishes
//!   the writes in flight, commits their state, defers the rest and records its run. A pass
//!   still reading a slow API after [`STOP_GRACE`] is dropped by [`run_pass`] (equivalent to a
//!   crash, which the create journal makes safe) and its run is recorded as aborted, so the
//!   process exits 0 within [`SHUTDOWN_GRACE`] plus a moment.
//! - **Bounded passes.** A pass that runs out of `[sync] pass_budget_secs` stops the same way,
//!   and the scheduler counts it as failed; the next tick runs as usual.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::runtime::Handle;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{Config, ScheduleJob, ScheduleMode};
use crate::connect;
use crate::ghl::GhlClient;
use crate::hotspot::HotspotClient;
use crate::model::Kind;
use crate::reconcile::pass::{Interruption, PassOptions, PassResult, STOP_GRACE, run_pass};
use crate::report::RunSummary;
use crate::schedule::{
    JobContext, JobOutcome, ScheduleError, ScheduledJob, Scheduler, SchedulerOptions, job_fn,
};
use crate::store::{RunStatus, Store};

use super::sync::{IMPLEMENTED, open_locked_state};
use super::{EXIT_CONFIG, EXIT_OK};

/// How long shutdown waits for the running pass. Kept under 10 s so that the default stop
/// timeouts of service managers (systemd: 90 s, Docker: 10 s) never escalate to SIGKILL, and
/// over [`STOP_GRACE`], so that a pass dropped by it still records its run first.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);
const _: () = assert!(STOP_GRACE.as_secs() < SHUTDOWN_GRACE.as_secs());

/// What every job shares: the configuration, the one open state connection and the clients
/// (one rate limiter and one token source per API for the daemon's whole life).
struct Daemon {
    cfg: Config,
    store: Mutex<Store>,
    hs: HotspotClient,
    ghl: GhlClient,
    /// The stop flag of [`run_pass`]: set once, on the stop signal.
    stop: AtomicBool,
}

/// The kinds a schedule entry covers and whether it is a full rescan; `None` when this build
/// reconciles none of them yet.
pub fn job_pass_options(job: ScheduleJob) -> Option<PassOptions> {
    let (kinds, full): (BTreeSet<Kind>, bool) = match job {
        ScheduleJob::Full => (IMPLEMENTED.iter().copied().collect(), true),
        ScheduleJob::Pass => (IMPLEMENTED.iter().copied().collect(), false),
        ScheduleJob::Contacts => (only_if_implemented(Kind::Contact), false),
        ScheduleJob::Notes => (only_if_implemented(Kind::Note), false),
        ScheduleJob::Tasks => (only_if_implemented(Kind::Task), false),
        ScheduleJob::Businesses => (only_if_implemented(Kind::Business), false),
        ScheduleJob::Appointments => (only_if_implemented(Kind::Appointment), false),
    };
    (!kinds.is_empty()).then_some(PassOptions {
        kinds,
        dry_run: false,
        full,
        limit: None,
        // The daemon runs unattended: its output is a log, never a terminal to draw on.
        progress: None,
    })
}

fn only_if_implemented(kind: Kind) -> BTreeSet<Kind> {
    IMPLEMENTED.iter().copied().filter(|k| *k == kind).collect()
}

pub async fn run(cfg: &Config) -> anyhow::Result<u8> {
    // A daemon beside the timer would double every pass, and alone it would run only the full.
    if cfg.schedule.mode == ScheduleMode::Timer {
        eprintln!(
            "error: {}: key `schedule.mode`: \"timer\" means a timer or cron starts `sync`; \
             `run` schedules nothing in that mode (set mode = \"daemon\" to use it)",
            cfg.source_path.display()
        );
        return Ok(EXIT_CONFIG);
    }
    // First, before any network or state work: a second process must be refused at once.
    let lock = Store::lock(&cfg.state.path)?;
    let mut store = open_locked_state(cfg)?;
    // Released with the store, whichever task drops it last.
    store.keep_lock(lock);
    let daemon = Arc::new(Daemon {
        cfg: cfg.clone(),
        store: Mutex::new(store),
        hs: connect::hotspot_client(cfg)?,
        ghl: connect::ghl_client(cfg)?,
        stop: AtomicBool::new(false),
    });

    let mut jobs = Vec::new();
    for (job, cron) in cfg.schedule.jobs() {
        let Some(opts) = job_pass_options(job) else {
            tracing::info!(
                job = job.as_str(),
                "not reconciled by this build yet; schedule entry ignored"
            );
            continue;
        };
        let d = Arc::clone(&daemon);
        jobs.push(ScheduledJob::new(
            job.as_str(),
            cron.expr.as_str(),
            job_fn(move |ctx| pass_job(Arc::clone(&d), opts.clone(), ctx)),
        ));
    }
    if jobs.is_empty() {
        tracing::warn!("no schedule entry names a kind this build reconciles; idle until stopped");
    }

    let mut scheduler = match Scheduler::new(jobs, SchedulerOptions::default()) {
        Ok(s) => s,
        // The configuration validates cron expressions with the same parser; this is the
        // safety net, reported as the configuration error it is.
        Err(ScheduleError::InvalidCron { job, cron }) => {
            eprintln!(
                "error: {}: key `schedule.{job}`: invalid cron expression `{cron}`",
                cfg.source_path.display()
            );
            return Ok(EXIT_CONFIG);
        }
        Err(e) => return Err(e).context("cannot set up the schedule"),
    };

    // Handlers are installed before the first job can start, so a signal is never missed
    // (or, worse, handled by the default action that kills mid-write).
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    scheduler
        .start()
        .await
        .context("cannot start the scheduler")?;
    tracing::info!(
        state = %cfg.state.path.display(),
        pid = std::process::id(),
        "daemon running; SIGTERM or SIGINT stops it"
    );

    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::warn!(
        signal = name,
        "stop requested: no new run; the running one finishes its in-flight writes"
    );
    daemon.stop.store(true, Ordering::SeqCst);
    let still_running = scheduler.shutdown(SHUTDOWN_GRACE).await;
    if !still_running.is_empty() {
        tracing::warn!(jobs = ?still_running, "exiting with runs still going; the next start marks them aborted");
    }
    for s in scheduler.stats() {
        tracing::info!(
            job = %s.name,
            runs = s.runs_started,
            succeeded = s.succeeded,
            failed = s.failed,
            panicked = s.panicked,
            skipped_overlap = s.skipped_overlap,
            skipped_lock_timeout = s.skipped_lock_timeout,
            "job totals"
        );
    }
    tracing::info!("daemon stopped");
    Ok(EXIT_OK)
}

/// One run of a job: one pass (which stops itself on the stop flag or its time budget).
///
/// The pass runs on a blocking-pool thread that drives it with the runtime's handle: the
/// compiler cannot prove [`run_pass`]'s future `Send` (a higher-ranked lifetime in the
/// applier's stream, rust-lang/rust#102211), and the scheduler spawns job futures. Driving it
/// with [`Handle::block_on`] keeps it on the same runtime (timers, connection pools) without
/// that requirement. A panic in the pass is re-raised here so the scheduler records it.
async fn pass_job(
    d: Arc<Daemon>,
    opts: PassOptions,
    ctx: JobContext,
) -> Result<JobOutcome, String> {
    if ctx.is_shutting_down() {
        return Ok(JobOutcome::stopped_early("not started: shutting down"));
    }
    let handle = Handle::current();
    let joined = tokio::task::spawn_blocking(move || {
        handle.block_on(async {
            let result = run_pass(&d.cfg, &d.store, &d.hs, &d.ghl, &opts, &d.stop).await;
            describe(&d, ctx.job_name(), result)
        })
    })
    .await;
    match joined {
        Ok(outcome) => outcome,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(format!("pass task did not finish: {e}")),
    }
}

/// The scheduler's view of a finished pass: a one-line summary, stopped early when the run
/// was aborted, an error when it failed, some records failed or it ran out of time.
fn describe(
    d: &Daemon,
    job: &str,
    result: anyhow::Result<PassResult>,
) -> Result<JobOutcome, String> {
    let r = result.map_err(|e| format!("{e:#}"))?;
    let summary = {
        let store = d.store.lock().unwrap_or_else(|p| p.into_inner());
        store
            .run(r.run_id)
            .ok()
            .flatten()
            .and_then(|run| serde_json::from_value::<RunSummary>(run.summary).ok())
            .unwrap_or_default()
    };
    let counts: Vec<String> = summary
        .kinds
        .iter()
        .map(|(kind, c)| {
            format!(
                "{kind}: {} created, {} adopted, {} updated, {} deleted, {} failed, {} deferred",
                c.created, c.adopted, c.updated, c.deleted, c.failed, c.deferred
            )
        })
        .collect();
    let line = format!(
        "{job} run {} {}; {}",
        r.run_id,
        r.status.as_str(),
        counts.join("; ")
    );
    if r.interrupted == Some(Interruption::BudgetSpent) {
        return Err(format!(
            "{line}; stopped: time budget (sync.pass_budget_secs) spent"
        ));
    }
    match r.status {
        RunStatus::Partial | RunStatus::Failed => Err(line),
        RunStatus::Aborted => Ok(JobOutcome::stopped_early(line)),
        RunStatus::Succeeded | RunStatus::Running => Ok(JobOutcome::done(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_schedule_entry_covers_its_kind_and_full_covers_all_implemented() {
        let contacts = job_pass_options(ScheduleJob::Contacts).expect("contacts implemented");
        assert_eq!(contacts.kinds, BTreeSet::from([Kind::Contact]));
        assert!(!contacts.full && !contacts.dry_run);

        let full = job_pass_options(ScheduleJob::Full).expect("full");
        assert_eq!(full.kinds, IMPLEMENTED.iter().copied().collect());
        assert!(full.full);

        for (job, kind) in [
            (ScheduleJob::Notes, Kind::Note),
            (ScheduleJob::Tasks, Kind::Task),
            (ScheduleJob::Businesses, Kind::Business),
            (ScheduleJob::Appointments, Kind::Appointment),
        ] {
            match job_pass_options(job) {
                Some(o) => assert_eq!(o.kinds, BTreeSet::from([kind])),
                None => assert!(!IMPLEMENTED.contains(&kind)),
            }
        }
    }
}
